"""Masters & Luschi 2018, "Revisiting small batch training for deep neural networks".

Three studies, all with plain SGD (no momentum, as the paper), a fixed *epoch* budget (82
epochs, lr /10 at 50% and 75%) and the linear scaling rule eta = m * eta_base (spec ``lr`` = eta_base, ``lr_scaling="linear"``,
``base_batch=1``, so ``effective_lr`` = m * eta_base: a constant average weight update
per gradient computation):

* ``sweep``    -- network x batch size m x base learning rate eta_base = 2**k x {BN, no BN} x
                  seeds (``networks``: name -> run-spec keys, e.g. an AlexNet-style and a
                  ResNet-8-style 1-D conv net; without it, one network ``run`` names);
* ``bn_batch`` -- BN batch size decoupled from the SGD batch: ghost batch norm over
                  m_BN samples (m_BN divides m; m_BN = m is plain BN and shares the sweep's
                  runs), over a few eta_base, on one network (``bn_batch.network``);
* ``warmup``   -- the larger batches again, with a linear learning-rate warm-up.

Every run's spec differs from the others of its (network, norm, m) only in lr, seed and
warm-up (``spec.FREE_KEYS``), so all of them stack into one vectorised job group.

Two disjoint sets of seeds (issue 16, the winner's curse): ``seeds`` *select* the best cell
of a grid (the best eta_base at an m, the best m), ``test_seeds`` *test* the selected cells,
so the accuracy a claim is decided on is not the maximum it was selected for.  Every cell
of the sweep and of the warm-up study is trained with both sets (any cell may be selected);
the BN-batch study trains its test seeds only at the two m_BN a claim compares (the
reference and m_BN = m).

``plan`` lists the runs (label ``seed_role``: select | test); which runs share a training
job is the packing policy's choice (``largebatch.packing``), not the plan's. This module is
the planning and the declaration (the Snakefile imports it at parse time, so it imports no
numpy or pandas); the analysis behind the claims is in ``largebatch.analysis.masters_luschi``
(cells, selection, stable range, tables), ``..masters_luschi_claims`` (claims M1-M5) and
``..masters_luschi_figures``; every verdict is decided by ``largebatch.stats``.
"""

from __future__ import annotations

from .base import Figure, Paper, Table, View, seeds_of

TITLE = "Masters & Luschi 2018: revisiting small batch training"

#: The paper (arXiv 1804.07612, Graphcore; no official code) prints its results as figures, so
#: its findings are used beside ours as ranges, not numbers. claim -> (finding, where stated).
PUBLISHED = {
    "M1": ("best test accuracy for m = 2 to 32, often m = 2 or 4",
           "Masters & Luschi 2018, abstract and results text (CIFAR-10/100, ImageNet)"),
    "M2": ("the range of base learning rates with stable convergence and acceptable test accuracy "
           "shrinks as m grows", "Masters & Luschi 2018, abstract"),
    "M3": ("ResNet-32 without BN converged only for m = 2, 4, 8 (diverged for m = 16 to 2048)",
           "Masters & Luschi 2018, results text (CIFAR-10, no BN)"),
    "M4": ("with warm-up the best m stays small: 4 to 8 on CIFAR-10, 4 to 16 on CIFAR-100",
           "Masters & Luschi 2018, results text (warm-up study)"),
    "M5": ("best BN batch size 4 to 8 on CIFAR, 16 to 64 on ImageNet",
           "Masters & Luschi 2018, results text (BN batch-size study)"),
}

#: The paper's protocol as its text states it (the "paper" column of the section's protocol
#: table): aspect -> what the paper does, with where it says so.
PROTOCOL = {
    "data": "CIFAR-10, CIFAR-100, ImageNet (abstract)",
    "network": "reduced AlexNet, ResNet-8/20/32 (CIFAR); ResNet-50 (ImageNet) (main text)",
    "optimiser": "plain SGD, no momentum (main text)",
    "learning rate": "eta = m·eta_base (abstract: a constant average weight update per gradient computation), "
                     "eta_base = 2^-12..2^0 (main text)",
    "batch sizes": "m = 2 up to a few thousand (main text)",
    "budget": "82 epochs (CIFAR-10), 164 (CIFAR-100), lr /10 at 50% and 75% (main text)",
    "metric": "median test accuracy of the last 5 epochs (main text)",
    "normalisation": "with and without BN; BN statistics over m_BN samples (main text)",
    "warm-up": "linear from eta/32 to eta over the first 5% of training (main text)",
    "augmentation": "with and without crop + flip (main text)",
    "seeds": "ImageNet curves average 2 runs (main text)",
}

#: the paper's headline range of good batch sizes is m = 2..32 (abstract): claims M1 and M4
#: compare the best cell with m <= SMALL_MAX against the others
SMALL_MAX = 32

#: number of classes of each dataset kind (chance accuracy = 1 / classes)
CLASSES = {"mnist1d": 10, "mnist": 10, "fashion_mnist": 10, "cifar10": 10, "cifar100": 100}


def _check_positive_ints(values, key: str) -> list[int]:
    if not isinstance(values, list) or not values:
        raise ValueError(f"{key} = {values!r}: give a non-empty list of positive integers")
    for i, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{key}[{i}] = {v!r}: must be an integer >= 1")
    return list(values)


def _check_ints(values, key: str) -> list[int]:
    if not isinstance(values, list) or not values:
        raise ValueError(f"{key} = {values!r}: give a non-empty list of integers")
    for i, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, int):
            raise ValueError(f"{key}[{i}] = {v!r}: must be an integer (the base learning rate is 2**k)")
    return list(values)


def _spec(block: dict, net: dict, dataset: str, m: int, k: int, seed: int, norm: str, gbs: int | None = None,
          warmup: float = 0.0, warmup_start: float = 0.0) -> dict:
    spec = {**block["run"], **net, "dataset": dataset, "batch_size": m, "lr": 2.0 ** k, "lr_scaling": "linear",
            "base_batch": 1, "norm": norm, "seed": seed}
    if norm == "ghost":
        spec["ghost_batch_size"] = gbs
    if warmup:
        spec["warmup_epochs"] = warmup
        if warmup_start:
            spec["warmup_start"] = warmup_start
    return spec


def networks_of(block: dict) -> dict[str, dict]:
    """Network name -> its run-spec keys (``networks``), or one network named after ``run.model``."""
    nets = block.get("networks")
    if nets is None:
        return {block["run"].get("model", "mlp"): {}}
    if not isinstance(nets, dict) or not nets:
        raise ValueError(f"networks = {nets!r}: give a mapping name -> run-spec keys (model, width, ...)")
    return nets


def plan(block: dict, scale: dict) -> list[tuple[dict, dict]]:
    run = block["run"]
    nets = networks_of(block)
    if run.get("optimizer", "sgd") != "sgd" or any(n.get("momentum", run.get("momentum", 0)) for n in [run, *nets.values()]):
        raise ValueError("run: the paper trains with plain SGD, momentum not used; set optimizer: sgd and momentum: 0")
    if run.get("epochs") is None:
        raise ValueError("run.epochs: the paper uses a fixed epoch budget; give epochs")
    datasets = block.get("datasets") or [run["dataset"]]
    sel_seeds = seeds_of(block)
    test_seeds = seeds_of(block, "test_seeds") if "test_seeds" in block else []
    clash = sorted(set(sel_seeds) & set(test_seeds))
    if clash:
        raise ValueError(f"test_seeds {clash} are also in seeds: the seeds that test a selected cell must be "
                         "separate from the seeds that select it; use other seeds")
    seeds = sel_seeds + test_seeds
    role_of = {**{s: "select" for s in sel_seeds}, **{s: "test" for s in test_seeds}}
    ms = _check_positive_ints(block["batch_sizes"], "batch_sizes")
    ks = _check_ints(block["base_lrs_log2"], "base_lrs_log2")
    norms = block["norms"]
    for i, norm in enumerate(norms):
        if norm not in ("batch", "none"):
            raise ValueError(f"norms[{i}] = {norm!r}: choose batch or none (ghost batches are the bn_batch study)")

    rows: list[tuple[dict, dict]] = []

    def add(labels: dict, spec: dict) -> None:
        rows.append(({**labels, "lr_base": 2.0 ** labels["lr_log2"], "seed": spec["seed"],
                      "seed_role": role_of[spec["seed"]]}, spec))

    warm = block.get("warmup")
    wms: list[int] = []
    if warm:
        wms = _check_positive_ints(warm["batch_sizes"], "warmup.batch_sizes")
        w = warm["epochs"]
        if not isinstance(w, (int, float)) or isinstance(w, bool) or not 0 < w < run["epochs"]:
            raise ValueError(f"warmup.epochs = {w!r}: must be > 0 and shorter than the budget ({run['epochs']} epochs)")
    sub_ds = datasets[0]  # the BN-batch and warm-up studies run on the first dataset
    for ds in datasets:
        for net, keys in nets.items():
            for norm in norms:
                for m in ms:
                    for k in ks:
                        for seed in seeds:
                            add({"part": "sweep", "dataset": ds, "net": net, "norm": norm, "m": m,
                                 "m_bn": m if norm == "batch" else 0, "lr_log2": k, "warmup_epochs": 0.0},
                                _spec(block, keys, ds, m, k, seed, norm))
                    if ds == sub_ds and m in wms:  # warm-up runs stack with the same m's sweep (FREE_KEYS)
                        for k in ks:
                            for seed in seeds:
                                add({"part": "warmup", "dataset": ds, "net": net, "norm": norm, "m": m,
                                     "m_bn": m if norm == "batch" else 0, "lr_log2": k,
                                     "warmup_epochs": float(warm["epochs"])},
                                    _spec(block, keys, ds, m, k, seed, norm, warmup=warm["epochs"],
                                          warmup_start=warm.get("start", 0.0)))

    bn = block.get("bn_batch")
    if bn:
        bnet = bn.get("network", next(iter(nets)))
        if bnet not in nets:
            raise ValueError(f"bn_batch.network = {bnet!r} is not one of networks {list(nets)}")
        bms = _check_positive_ints(bn["batch_sizes"], "bn_batch.batch_sizes")
        mbns = _check_positive_ints(bn["bn_batch_sizes"], "bn_batch.bn_batch_sizes")
        bks = _check_ints(bn["base_lrs_log2"], "bn_batch.base_lrs_log2")
        ref = bn.get("reference")
        for m in bms:
            cells = sorted({b for b in mbns if b < m} | {m})
            for b in cells:
                if m % b:
                    raise ValueError(f"bn_batch.bn_batch_sizes: {b} does not divide batch size {m}; "
                                     f"ghost batches must split the batch evenly (use powers of two)")
                if b == 1:
                    raise ValueError("bn_batch.bn_batch_sizes: 1 cannot be normalised (zero variance); use >= 2")
            if ref is not None and ref < m and ref not in cells:
                raise ValueError(f"bn_batch.reference = {ref} must be one of bn_batch.bn_batch_sizes")
            for b in cells:
                # test seeds only where claim M5 compares: m_BN = reference and m_BN = m
                cell_seeds = seeds if (ref is not None and b in (ref, m)) else sel_seeds
                for k in bks:
                    for seed in cell_seeds:
                        norm = "batch" if b == m else "ghost"
                        add({"part": "bn_batch", "dataset": sub_ds, "net": bnet, "norm": "batch", "m": m,
                             "m_bn": b, "lr_log2": k, "warmup_epochs": 0.0},
                            _spec(block, nets[bnet], sub_ds, m, k, seed, norm, gbs=b))
    return rows


def outputs(block: dict, scale: dict) -> list:
    """The section's tables and figures: the BN-batch items only with a ``bn_batch`` study,
    the warm-up table only with a ``warmup`` study."""
    items = [
        Figure("accuracy_heatmap",
               "Test accuracy (%; the paper's metric, the median of the last 5 epochs) for every batch size m and "
               "base learning rate eta_base (eta = m·eta_base), per network, with and without BatchNorm, mean over "
               "all {seeds} seeds of a cell. Grey 'div k/n': k of n seeds "
               "diverged (NaN/inf loss). '*': some seeds did not train stably (final training loss not below 95% of "
               "the initial), 'x': no seed did (beyond the stability limit). Red outline: the cell selected at each "
               "m on the selection seeds. The colour scale starts at chance (10%).",
               label="test accuracy over (m, base lr)"),
        Figure("best_vs_m",
               "Test accuracy against batch size m, with and without BatchNorm: at each m the eta_base cell selected "
               "on the selection seeds, mean ± sd over the {n_test} test seeds. Dashed squares: the larger batches "
               "with a linear learning-rate warm-up. Shaded: m = 2 to 32, where the paper finds its best results; "
               "dotted: chance accuracy.", label="best test accuracy vs m"),
        Figure("stable_range",
               "Left (claim M2): per test seed, the width of the acceptable eta_base range: the number of grid "
               "points (one octave apart) where the run trained stably with a test accuracy within {tol:g} points "
               "of the best cell over every m (chosen on the selection seeds); mean ± sd over test seeds. Right "
               "(claim M3): fraction of the eta_base grid where a seed trained stably (no NaN/inf, final training "
               "loss below 95% of the initial), mean ± sd over all seeds.", label="stable base-lr range vs m"),
        Table("per_batch_size",
              "Per batch size: the eta_base selected on the {n_sel} selection seeds, its test and final train "
              "accuracy on the {n_test} test seeds (mean ± sd, n), and the share of all runs at that m (every "
              "eta_base and seed) that trained stably and that diverged."),
        Table("sweep_cells",
              "Every cell of the sweep (the heat map's numbers): test accuracy (%, median of the last 5 epochs) mean "
              "and sd over all seeds of the cell, the mean final train accuracy (%), the number of seeds, how many "
              "diverged, and the fraction that trained stably."),
    ]
    if block.get("bn_batch"):
        items += [
            Figure("bn_batch_accuracy",
                   "Test accuracy when BatchNorm statistics are computed over m_BN samples (ghost batch norm) while "
                   "SGD uses batches of m (m_BN = m is ordinary BN). Circles: mean ± sd over the selection seeds at "
                   "the eta_base selected per (m, m_BN) from {grid}; stars: the test seeds at m_BN = {ref} and "
                   "m_BN = m (claim M5).", label="BN batch size"),
            Table("bn_batch",
                  "BN batch study: test accuracy at the eta_base selected per (m, m_BN) on the selection seeds, and the "
                  "test seeds' final train accuracy; test seeds are trained only where claim M5 compares "
                  "(m_BN = {ref} and m_BN = m)."),
        ]
    if block.get("warmup"):
        items.append(Table("warmup",
                           "Warm-up (linear over {epochs} epoch(s)) for m = {batch_sizes}: the best warm-up cell "
                           "(selected on the selection seeds) on the test seeds, the same m without warm-up, and the "
                           "best small-batch cell (claim M4), each with its final train accuracy."))
    items.append(Table("timing", "Training jobs of this section: wall and CPU seconds per job (each job pays the "
                                 "Python/torch start-up once; a shared machine inflates both)."))
    return items


def inputs(view: View) -> dict:
    """The benchmark file of the job that trained each run, one entry per run id in plan order
    (a pack's file repeats for each of its runs), so the section reports its own training time
    and counts the runs of each job."""
    return {"benchmarks": [view.train_benchmark(r) for r in view.ids]}


PAPER = Paper(key="masters_luschi", title=TITLE, category="3 Masters & Luschi 2018", plan=plan, outputs=outputs,
              inputs=inputs)
