"""Golmant et al. 2018: steps to a fixed loss threshold vs batch size, and the critical batch.

"On the Computational Inefficiency of Large Batch Sizes for Stochastic Gradient Descent"
(arXiv 1811.12941).  The experiment is a sweep: every batch size ``B`` of a power-of-two
grid, trained from the same initialisation under three learning-rate strategies

* ``fixed`` -- the base learning rate at every ``B`` (no scaling),
* ``lsr``   -- linear scaling ``lr * B/B0`` with a linear warm-up (Goyal et al. 2017),
* ``srsr``  -- square-root scaling ``lr * sqrt(B/B0)`` (Krizhevsky 2014 / Hoffer et al. 2017),

with ``B0`` the smallest batch of the grid, each for the protocol's budget (the same number of
epochs at every batch size).  The thresholds follow the paper: the lowest-quartile loss of the
largest batch (here the largest at which every run learnt).  The analysis counts the
steps ``T(B)`` each run needs to reach them (train and test loss), the speed-up
``T(B0)/T(B)`` against perfect scaling ``B/B0``, the cost ``B*T(B)`` and the critical batch
(``largebatch.scaling.critical_batch_size``; one definition for every curve).

Beyond the paper, the gradient noise scale ``B_simple`` of McCandlish et al. (2018) is
measured on the smallest-batch run's weights at fractions of its budget (short "snapshot"
runs replay the same trajectory; CPU training is deterministic; job ``golmant_noise``), the one
nearest to where B0 reaches each threshold, and compared with the measured critical batch;
easier/harder/smaller variants of the data and a second network on the standard data (role
``arch``) test whether the critical batch follows data complexity and architecture more than
data size.

This module is the planning and the declaration (the Snakefile imports it at parse time, so
it imports no numpy, pandas or torch); the analysis is in ``largebatch.analysis.golmant``
(curves), ``golmant_claims``, ``golmant_evidence`` (figures and tables) and
``golmant_noise`` (the noise-scale measurement).
"""

from __future__ import annotations

from .. import paths
from .base import Figure, Job, Paper, Table, View, dataset_sizes, seeds_of

TITLE = "Golmant et al. 2018: the critical batch size"

#: labels of the learning-rate rules (config: strategies.<name>.lr_scaling)
RULE_LABELS = {"none": "fixed LR", "linear": "LSR (linear)", "sqrt": "SRSR (square root)"}
#: classes per dataset kind (config ``datasets.<name>.kind``): the chance loss is ln(classes)
CLASSES = {"mnist1d": 10, "mnist": 10, "cifar10": 10, "cifar100": 100}
#: The paper's published findings used beside ours, with where they are stated.
PUBLISHED = {
    "G1": ("three regimes: near-linear scaling, diminishing returns, stagnation",
           "Golmant et al. 2018, abstract and main text"),
    "G2": ("CIFAR-10 ResNet: steps fall about linearly up to m ~ 2,048 (of 50,000 images); LSTM (WikiText-2) and "
           "DRN (Cityscapes) stop improving past m ~ 32 and ~ 64", "Golmant et al. 2018, main text"),
    "G3": ("LSR and SRSR beat the fixed lr for m = 256 to 2,048; past that the fixed lr is better",
           "Golmant et al. 2018, main text (CIFAR-10 ResNet)"),
    "G4": ("the break-down batch size depends more on data complexity than on data size",
           "Golmant et al. 2018, abstract"),
    "G5": ("the break-down point depends more on model architecture (and data complexity) than on data size",
           "Golmant et al. 2018, abstract"),
    "GX1": ("B_crit ~ B_noise, and B_simple approximates B_noise",
            "McCandlish et al. 2018, An Empirical Model of Large-Batch Training"),
}
#: The paper's protocol, aspect -> (what the paper does, where it says so), for the section's
#: protocol table (paper vs ours). The paper's Table 1 (per-model details) was not available
#: to us; nothing here is taken from it. There is no official code.
PROTOCOL = {
    "data": ("CIFAR-10, Cityscapes, WikiText-2; MNIST and SVHN for complexity; CIFAR-10 and SVHN at "
             "100/50/25% for size", "Golmant et al. 2018, main text, experimental setup"),
    "network": ("ResNets, MobileNetV2, AlexNet, DRN-D-22, LSTM", "Golmant et al. 2018, main text"),
    "measure": ("iterations to reach a training-loss threshold", "Golmant et al. 2018, main text, the metric k_eps(m)"),
    "threshold": ("the lowest-quartile loss reached by the largest batch", "Golmant et al. 2018, main text"),
    "batch sizes": ("powers of two up to the capacity of current systems",
                    "Golmant et al. 2018, abstract and main text"),
    "lr strategies": ("fixed (BLR), LSR with warm-up, SRSR, training longer", "Golmant et al. 2018, main text"),
    "cost": ("iterations x work per iteration", "Golmant et al. 2018, main text"),
}
#: the table of gradient noise scales the job ``golmant_noise`` writes (one row per checkpoint)
NOISE_FILE = paths.paper_file("golmant", "noise.csv")


# ----------------------------------------------------------------------------- planning


def batch_grid(block: dict, n_train: int) -> list[int]:
    """The block's batch sizes that fit the data: B <= max_batch_fraction * n_train."""
    limit = block.get("max_batch_fraction", 1.0) * n_train
    grid = sorted(b for b in block["batch_sizes"] if b <= limit)
    if len(grid) < 2:
        raise ValueError(f"batch_sizes {block['batch_sizes']} leave fewer than 2 batch sizes <= "
                         f"{limit:g} (max_batch_fraction x {n_train} training samples); add smaller ones")
    return grid


def warmup_epochs(warmup_steps: int, batch_size: int, n_train: int) -> float:
    """The spec's warm-up in epochs that lasts `warmup_steps` steps at this batch size."""
    return warmup_steps / (n_train // batch_size) if warmup_steps else 0.0


def budget_steps(block: dict, batch_size: int, n_train: int) -> int:
    """The protocol's step budget of a run at this batch size: ``epochs`` x steps per epoch
    (the same number of epochs at every batch size) or, in a block with ``steps``, that many."""
    if "epochs" in block:
        return max(1, int(round(block["epochs"] * (n_train // batch_size))))  # as the engine counts them
    return int(block["steps"])


def role_run(block: dict, role: str) -> dict:
    """A data role's run settings: the block's ``run`` with the role's own ``run`` on top (the
    architecture comparison runs a second network on the standard data as its own role)."""
    return {**block["run"], **block["datasets"][role].get("run", {})}


def plan(block: dict, scale: dict) -> list[tuple[dict, dict]]:
    """The sweep (every data role x strategy x batch size x seed) and the snapshot runs.

    Every run has the protocol's budget (``epochs`` at every batch size, or ``steps``): a run
    that has not reached a threshold by then never reaches it.  Which runs share a training job
    is the packing policy's choice (``largebatch.packing``), not the plan's."""
    sizes = dataset_sizes(scale)
    snaps = sorted(float(f) for f in block["noise"].get("snapshots", []))
    runs: list[tuple[dict, dict]] = []
    for role, info in block["datasets"].items():
        name = info["name"]
        if name not in sizes:
            raise ValueError(f"datasets.{role}.name = {name!r} is not defined under datasets "
                             f"(defined: {sorted(sizes)})")
        n = sizes[name]
        base = role_run(block, role)
        grid = batch_grid(block, n)
        b0 = grid[0]
        budget = {"epochs": block["epochs"]} if "epochs" in block else {"steps": block["steps"]}
        for strategy in info["strategies"]:
            if strategy not in block["strategies"]:
                raise ValueError(f"datasets.{role}.strategies lists {strategy!r}, which is not under "
                                 f"strategies (defined: {sorted(block['strategies'])})")
            rule = block["strategies"][strategy]
            for b in grid:
                for seed in seeds_of(block):
                    spec = {**base, "dataset": name, "batch_size": b, "seed": seed, **budget}
                    if b > b0 and rule["lr_scaling"] != "none":
                        # at B0 every strategy is the same run (lr = base lr, no warm-up): shared
                        spec.update(lr_scaling=rule["lr_scaling"], base_batch=b0,
                                    warmup_epochs=warmup_epochs(rule.get("warmup_steps", 0), b, n))
                    labels = {"kind": "sweep", "data": role, "dataset": name, "model": base["model"],
                              "strategy": strategy, "batch_size": b, "seed": seed, "frac": 1.0}
                    runs.append((labels, spec))
        # the B0 run stopped at fractions of its budget: its weights there (same trajectory as
        # the full run) feed the noise-scale measurement at the loss of each threshold
        for frac in snaps:
            if frac >= 1.0:
                continue
            for seed in seeds_of(block):
                spec = {**base, "dataset": name, "batch_size": b0, "seed": seed,
                        "steps": max(1, int(round(frac * budget_steps(block, b0, n))))}
                labels = {"kind": "snapshot", "data": role, "dataset": name, "model": base["model"],
                          "strategy": "fixed", "batch_size": b0, "seed": seed, "frac": frac}
                runs.append((labels, spec))
    return runs


def noise_points(rows: list[dict]) -> list[dict]:
    """The B0 checkpoints whose gradient noise scale is measured: one per dataset role,
    seed and threshold fraction (the snapshot runs, and the full B0 run for fraction 1)."""
    b0 = {}
    for r in rows:
        if r["kind"] == "sweep":
            b0[r["data"]] = min(b0.get(r["data"], r["batch_size"]), r["batch_size"])
    points = {}
    for r in rows:
        if r["batch_size"] == b0[r["data"]]:
            points.setdefault((r["data"], r["frac"], r["seed"]), {
                "data": r["data"], "dataset": r["dataset"], "seed": r["seed"], "frac": r["frac"], "run": r["run"]})
    return [points[k] for k in sorted(points)]


# ----------------------------------------------------------------------------- declaration


def jobs(view: View) -> list[Job]:
    """One job measures B_simple on every B0 checkpoint (``workflow/scripts/golmant_noise.py``):
    ``input.models`` lines up with ``params.points``, ``input.data`` with ``params.datasets``."""
    points = noise_points(view.rows)
    datasets = sorted({p["dataset"] for p in points})
    return [Job(
        name="golmant_noise",
        script="golmant_noise.py",
        input={"models": [paths.run_file(p["run"], "model.pt") for p in points],
               "data": [paths.data_file(d) for d in datasets]},
        output={"noise": NOISE_FILE},
        params={"points": points, "datasets": datasets, "specs": {p["run"]: view.runs[p["run"]] for p in points},
                "noise": view.block["noise"]},
    )]


def inputs(view: View) -> dict:
    return {"noise": NOISE_FILE}


PAPER = Paper(
    key="golmant",
    title=TITLE,
    category="4 Golmant 2018",
    plan=plan,
    jobs=jobs,
    inputs=inputs,
    outputs=[
        Figure("threshold_curves",
               "Where the train-loss thresholds lie: training loss of each data role's reference runs (the largest "
               "batch size at which every run learnt; log step axis), the threshold for each quantile q of their "
               "curves (q = 0.25: the paper's lowest quartile), the chance loss and the eligibility bar. A threshold "
               "above the bar (dashed) measures early progress only; claims are not decided on it."),
        Figure("steps_to_threshold",
               "Steps to each train- and test-loss threshold vs batch size on '{dataset}' (log-log), one panel per "
               "learning-rate strategy (fixed lr, linear scaling with warm-up LSR, square-root scaling SRSR) and loss: "
               "lines, geometric mean over seeds; dots, single seeds; dotted, perfect scaling from the smallest batch; "
               "dashed, each batch size's step budget ({epochs}); x, never reached by some seed within its budget; "
               "squares, some seed did not learn (final train loss at chance, or diverged). Legend: threshold and its ratio to the chance loss.",
               label="steps to threshold vs batch size"),
        Figure("speedup",
               "Speed-up S(B) = T(B0)/T(B) over the smallest batch vs batch size (log-log), one panel per "
               "learning-rate strategy, seed-mean curves; colour: threshold quantile q; solid: "
               "train-loss, dashed: test-loss thresholds; black: perfect scaling B/B0; vertical lines: the critical "
               "batch B* of each curve (where the scaling efficiency falls to 0.5). Points never reached or not "
               "learnt are left out.", label="speed-up vs batch size"),
        Figure("cost",
               "Total cost to each threshold, B·T(B) examples in epochs of the training set, vs batch size "
               "(log-log), seed-mean curves, one line per strategy and threshold. Perfect scaling is flat; growth "
               "past the critical batch is the computational inefficiency of large batches.",
               label="total cost vs batch size"),
        Figure("data_complexity",
               "{strategy} speed-up curves on the standard data, its easier and harder variants (same size) and a "
               "smaller training set (training samples in brackets); solid vertical: measured B*, dotted: the B* "
               "predicted by the gradient noise scale; '+': lower bound; dashed curve: its threshold is above the "
               "eligibility bar.", label="data complexity and size"),
        Figure("noise_prediction",
               "Beyond Golmant et al.: the critical batch predicted by McCandlish et al.'s gradient noise scale, "
               "B_simple + 2·B0 (B_simple measured on the smallest-batch weights at each threshold), against the "
               "measured critical batch, one point per data set and train-loss threshold (larger marker: later "
               "threshold); open markers: threshold above the eligibility bar (not used by claim GX1).",
               label="noise scale vs critical batch"),
        Table("curve_summary",
              "One row per data role, strategy and loss: the thresholds (for q = {fracs}, as a multiple of the chance "
              "loss), the critical batch of each seed-mean curve ('+': lower bound, efficiency never fell below 0.5), "
              "the largest speed-up over B0, the mean first and last local scaling exponents, and the first batch "
              "size at which some seed did not learn."),
        Table("thresholds",
              "Loss thresholds per data role: the q-quantile of the loss curves of its reference batch (the largest at "
              "which every run learnt; the largest value over its seeds and strategies, on a uniform step grid over "
              "its budget), its ratio to the chance loss, and whether claims use it (at most {maxf:g} x chance)."),
        Table("steps",
              "Steps to each threshold on '{dataset}', mean ± sd over seeds (k/n reached: only k of n seeds reached "
              "it within its budget ({epochs}), or learnt at all)."),
        Table("noise_scale",
              "B_simple of the B0 weights at each share of B0's budget (geometric mean and sd over seeds), with the "
              "train loss there (first 4,096 training samples); each threshold uses the checkpoint nearest (log steps) "
              "to where B0 reaches it."),
        Table("final",
              "Every arm's end of training: final train loss and accuracy beside test loss and accuracy (mean over "
              "seeds) per data role, strategy and batch size, with the step budget, the runs' status (ok, "
              "no_learning, diverged) and stop reasons (budget: the protocol's own epochs)."),
        Table("critical_batch",
              "Full per-curve table (secondary): the critical batch of every seed-mean curve, the mean ± sd of the "
              "per-seed critical batches, and the noise-scale prediction."),
    ],
)
