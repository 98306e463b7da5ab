"""Keskar et al. 2017: large-batch training converges to sharp minima and generalises worse.

``plan(block, scale)`` turns the ``keskar:`` block of a scale into training runs:

* for every network of ``networks`` and every seed, a small-batch (SB) and a large-batch
  (LB) run with Adam and the same learning rate (no batch-size scaling).  LB is
  ``large_batch_fraction`` (10% in the paper) of the network's training set, computed from
  the dataset size, not typed in.  SB and LB of one seed share the spec's ``seed``, which
  fixes the initialisation: both start from the same x0, as the authors' code does (it
  loads one saved ``x0.h5`` into both).  Every run trains until its training loss stops
  improving (spec ``patience``, evaluated each epoch) or hits the ``max_steps`` cap (a
  network may override it with its own ``steps``).
* the Fig. 4 sweep: the ``sweep.network`` trained with each of ``sweep.batch_sizes`` (and
  the SB and LB runs of every seed, which are shared with the main comparison).

``PAPER`` declares the section: its tables and figures with their captions, the sharpness
jobs (one JSON per run; the runs of one training pack are measured in one job, as they were
trained, every other run in a job of its own) and the parametric-plot job of every SB/LB
pair. This module is imported when the Snakefile is parsed, so it holds planning and the
published facts only; the measurements and the analysis are in ``largebatch.analysis.keskar*``.
"""

from __future__ import annotations

from .. import paths
from .base import Figure, Job, Paper, Table, View, dataset_sizes, seeds_of

TITLE = "Keskar et al. 2017: large-batch training, generalization gap and sharp minima"
KEY = "keskar"
ARMS = ("SB", "LB")

# --------------------------------------------------------------------------- #
# Published values and protocol facts
# --------------------------------------------------------------------------- #
# Source: N. S. Keskar, D. Mudigere, J. Nocedal, M. Smelyanskiy, P. T. P. Tang, "On Large-Batch
# Training for Deep Learning: Generalization Gap and Sharp Minima", ICLR 2017 (arXiv:1609.04836
# v2, main text), and the authors' code, github.com/keskarnitish/large-batch-training (Keras 1.x).

#: Published values, each (mean, std) over the paper's 5 starting points: Table 2 accuracy (%),
#: Table 3 (full space, A = I) and Table 4 (random 100-dimensional subspaces) epsilon-sharpness
#: (Metric 2.1). F2 (TIMIT) is listed but never trained here.
PUBLISHED = {
    "table2": {  # train SB, train LB, test SB, test LB
        "F1": [(99.66, 0.05), (99.92, 0.01), (98.03, 0.07), (97.81, 0.07)],
        "F2": [(99.99, 0.03), (98.35, 2.08), (64.02, 0.2), (59.45, 1.05)],
        "C1": [(99.89, 0.02), (99.66, 0.2), (80.04, 0.12), (77.26, 0.42)],
        "C2": [(99.99, 0.04), (99.99, 0.01), (89.24, 0.12), (87.26, 0.07)],
        "C3": [(99.56, 0.44), (99.88, 0.30), (49.58, 0.39), (46.45, 0.43)],
        "C4": [(99.10, 1.23), (99.57, 1.84), (63.08, 0.5), (57.81, 0.17)],
    },
    "table3": {  # full space: eps=1e-3 SB, LB, eps=5e-4 SB, LB
        "F1": [(1.23, 0.83), (205.14, 69.52), (0.61, 0.27), (42.90, 17.14)],
        "F2": [(1.39, 0.02), (310.64, 38.46), (0.90, 0.05), (93.15, 6.81)],
        "C1": [(28.58, 3.13), (707.23, 43.04), (7.08, 0.88), (227.31, 23.23)],
        "C2": [(8.68, 1.32), (925.32, 38.29), (2.07, 0.86), (175.31, 18.28)],
        "C3": [(29.85, 5.98), (258.75, 8.96), (8.56, 0.99), (105.11, 13.22)],
        "C4": [(12.83, 3.84), (421.84, 36.97), (4.07, 0.87), (109.35, 16.57)],
    },
    "table4": {  # random 100-dim subspace: eps=1e-3 SB, LB, eps=5e-4 SB, LB
        "F1": [(0.11, 0.00), (9.22, 0.56), (0.05, 0.00), (9.17, 0.14)],
        "F2": [(0.29, 0.02), (23.63, 0.54), (0.05, 0.00), (6.28, 0.19)],
        "C1": [(2.18, 0.23), (137.25, 21.60), (0.71, 0.15), (29.50, 7.48)],
        "C2": [(0.95, 0.34), (25.09, 2.61), (0.31, 0.08), (5.82, 0.52)],
        "C3": [(17.02, 2.20), (236.03, 31.26), (4.03, 1.45), (86.96, 27.39)],
        "C4": [(6.05, 1.13), (72.99, 10.96), (1.89, 0.33), (19.85, 4.12)],
    },
}
#: where each published value is printed, in our words (the claims table's paper_source)
SOURCES = {
    "table2": "Keskar et al. 2017, Table 2",
    "table3": "Keskar et al. 2017, Table 3",
    "table4": "Keskar et al. 2017, Table 4",
    "distance": "Keskar et al. 2017, main text",
    "threshold": "Keskar et al. 2017, Fig. 4",
    "hessian": "Keskar et al. 2017, text on Metric 2.1 (no values)",
    "parametric": "Keskar et al. 2017, Fig. 3 (shape only)",
}
#: the range of ||x_SB - x0|| / ||x_LB - x0|| the main text reports ("in the range of 3-10")
PUBLISHED_DISTANCE_RATIO = (3.0, 10.0)
#: Fig. 4 (main text): test accuracy drops sharply beyond a batch of about 500 (C1) and about
#: 15,000 (F2), each with its training-set size: CIFAR-10's 50,000 images, and TIMIT's 721,329
#: frames as the paper's data-set table (Table 5, appendix) gives them
PUBLISHED_THRESHOLD = {"C1": (500, 50000), "F2": (15000, 721329)}
#: the data each published network was trained on (Table 1; a reference line is drawn only on the same data)
PAPER_DATASET = {"F1": "mnist", "F2": "timit", "C1": "cifar10", "C2": "cifar10", "C3": "cifar100",
                 "C4": "cifar100"}
DATASET_NAMES = {"mnist": "MNIST", "timit": "TIMIT", "cifar10": "CIFAR-10", "cifar100": "CIFAR-100",
                 "mnist1d": "MNIST-1D"}
#: the paper's protocol, aspect -> what it did, for the section's protocol table; tags as in
#: ``largebatch.report.SOURCE_TAGS``: [V] the paper's main text (section 2 and Table 1),
#: [C] the authors' Keras code (its Adam default, the x0 saved once and loaded into both
#: arms, BatchNormalization(mode=2) and the evaluation batch of 5,000)
PAPER_PROTOCOL = {
    "optimizer": "Adam, same lr for SB and LB [V]; Keras default lr 1e-3 [C]",
    "batch sizes": "SB 256; LB 10% of the training set (6,000 MNIST, 5,000 CIFAR) [V]",
    "stopping": "until the loss ceased to improve, no budget [V]",
    "trials": "5 starting points [V]; SB and LB share x0 [C]",
    "networks": "F1 (MNIST), F2 (TIMIT), C1-C4 (CIFAR-10/100) [V]",
    "BatchNorm at evaluation": "Keras mode 2: batch statistics, eval batch 5,000 [C]",
    "sharpness objective": "training loss (whole training set), 10 L-BFGS-B iterations [V]",
    "batch-size sweep (Fig. 4)": "F2 and C1, 100 epochs per batch size [V]",
}


def smallest_published_gap() -> tuple[float, str]:
    """The smallest SB - LB test-accuracy gap of Table 2 (pp) and the network it belongs to."""
    gaps = {n: round(r[2][0] - r[3][0], 2) for n, r in PUBLISHED["table2"].items()}
    n = min(gaps, key=gaps.get)
    return gaps[n], n


def smallest_published_ratio(table: str) -> tuple[float, str]:
    """The smallest LB / SB sharpness ratio of Table 3 or 4 (both epsilons), rounded to 0.1,
    with the cell it belongs to."""
    cells = {}
    for n, r in PUBLISHED[table].items():
        for i, eps in ((0, "1e-3"), (2, "5e-4")):
            cells[f"{n}, ε={eps}: {r[i + 1][0]} / {r[i][0]}"] = round(r[i + 1][0] / r[i][0], 1)
    cell = min(cells, key=cells.get)
    return cells[cell], cell


# --------------------------------------------------------------------------- #
# Planning
# --------------------------------------------------------------------------- #
def large_batch(n_train: int, fraction: float) -> int:
    """The LB size: ``fraction`` of the training set (Keskar et al.: 10%), at least 1."""
    if not 0 < fraction <= 1:
        raise ValueError(f"large_batch_fraction = {fraction} must be in (0, 1]")
    return max(1, int(round(n_train * fraction)))


def plan(block: dict, scale: dict) -> list[tuple[dict, dict]]:
    sizes = dataset_sizes(scale)
    seeds = seeds_of(block)
    sb = block["small_batch"]
    nets = block["networks"]
    if not nets:
        raise ValueError("networks is empty: name at least one network")
    common = {**block.get("run", {}), "eval_bn": block["eval_bn"], "steps": block["max_steps"],
              "epochs": None}
    rows: dict[tuple, tuple[dict, dict]] = {}

    def add(net: str, batch: int, seed: int, arm: str, role: str) -> None:
        key = (net, batch, seed)
        if key in rows:
            rows[key][0][role] = True
            return
        spec = {**common, **nets[net], "batch_size": batch, "seed": seed}  # a network's `steps` overrides max_steps
        labels = {"network": net, "arm": arm, "batch_size": batch, "seed": seed, "main": False, "sweep": False}
        labels[role] = True
        rows[key] = (labels, spec)

    lbs = {}
    for net, cfg in nets.items():
        dataset = cfg.get("dataset")
        if dataset not in sizes:
            raise ValueError(f"networks.{net}.dataset = {dataset!r} is not defined under datasets "
                             f"(defined: {sorted(sizes)})")
        lbs[net] = large_batch(sizes[dataset], block["large_batch_fraction"])
        if sb >= lbs[net]:
            raise ValueError(f"small_batch = {sb} must be smaller than the large batch of {net} ({lbs[net]} "
                             f"= {block['large_batch_fraction']} of {sizes[dataset]} samples)")
        for seed in seeds:
            add(net, sb, seed, "SB", "main")
            add(net, lbs[net], seed, "LB", "main")
    sweep = block.get("sweep")
    if sweep:
        net = sweep["network"]
        if net not in nets:
            raise ValueError(f"sweep.network = {net!r} is not one of networks ({sorted(nets)})")
        for batch in sweep["batch_sizes"]:
            arm = "SB" if batch == sb else "LB" if batch == lbs[net] else "other"
            for seed in sweep.get("seeds", seeds):
                add(net, batch, seed, arm, "sweep")
        for seed in seeds:  # the main SB and LB runs are points of the sweep too
            add(net, sb, seed, "SB", "sweep")
            add(net, lbs[net], seed, "LB", "sweep")
    return list(rows.values())


# --------------------------------------------------------------------------- #
# Analysis jobs and section inputs
# --------------------------------------------------------------------------- #
def sharpness_file(run: str) -> str:
    """The sharpness JSON of a run (``analysis.keskar_measure.run_sharpness``)."""
    return paths.paper_file(KEY, "sharpness", f"{run}.json")


PARAMETRIC_FILE = paths.paper_file(KEY, "parametric.csv")


def sb_lb_pairs(rows: list[dict], runs: dict[str, dict]) -> list[dict]:
    """The SB/LB pairs of the main comparison (same network and seed, hence the same x0), each
    with the SB run's spec and its dataset file: the inputs of the parametric-plot job."""
    main = [r for r in rows if r["main"]]
    lbs = {(r["network"], r["seed"]): r["run"] for r in main if r["arm"] == "LB"}
    pairs = []
    for r in main:
        if r["arm"] != "SB":
            continue
        spec = runs[r["run"]]
        pairs.append({"network": r["network"], "seed": r["seed"], "sb": r["run"], "lb": lbs[(r["network"], r["seed"])],
                      "spec": spec, "data": paths.data_file(spec["dataset"])})
    return pairs


def sharpness_jobs(view: View) -> dict[str, list[str]]:
    """Sharpness job name -> run ids: the runs a training pack trained together are measured
    in one job too (one start-up and data load; still one JSON per run), every other run in a
    job of its own."""
    groups: dict[str, list[str]] = {}
    for run in view.ids:
        groups.setdefault(f"{KEY}_sharpness_{view.pack_of(run) or run}", []).append(run)
    return groups


def jobs(view: View) -> list[Job]:
    out = [Job(name, "keskar_sharpness.py",
               input={"data": [view.data_file(r) for r in ids],  # one per run, in the order of the runs
                      "models": [paths.run_file(r, "model.pt") for r in ids],
                      "specs": [paths.run_file(r, "spec.json") for r in ids]},
               output={"sharpness": [sharpness_file(r) for r in ids]},
               params={"cfg": view.block["sharpness"]})
           for name, ids in sharpness_jobs(view).items()]
    pairs = sb_lb_pairs(view.rows, view.runs)
    out.append(Job(f"{KEY}_parametric", "keskar_parametric.py",
                   input={"sb": [paths.run_file(p["sb"], "model.pt") for p in pairs],
                          "lb": [paths.run_file(p["lb"], "model.pt") for p in pairs],
                          "data": [p["data"] for p in pairs]},  # one per pair
                   output={"curves": PARAMETRIC_FILE},
                   params={"cfg": view.block["parametric"],
                           "pairs": [{k: p[k] for k in ("network", "seed", "spec")} for p in pairs]}))
    return out


def inputs(view: View) -> dict:
    """The section's inputs beside the runs' metrics and histories, each list in run order."""
    return {"sharpness": [sharpness_file(r) for r in view.ids],
            "specs": [paths.run_file(r, "spec.json") for r in view.ids],
            "parametric": PARAMETRIC_FILE}


PAPER = Paper(
    key=KEY,
    title=TITLE,
    category="1 Keskar 2017",
    plan=plan,
    jobs=jobs,
    inputs=inputs,
    outputs=[
        Table("table2_accuracy",
              "Table 2 accuracy: final train and test accuracy of SB and LB Adam, mean ± sd over seeds, beside "
              f"{SOURCES['table2']}. Our train accuracy is measured on {{train_set}}. Epochs trained (mean ± sd) "
              "and how the runs stopped (stop reason: count): 'patience' is the paper's rule (the training loss "
              "ceased to improve); 'cap' would be the safety limit on updates, not convergence. The paper gives "
              "no epochs ('–')."),
        Table("table3_sharpness_full",
              "Table 3 sharpness: ε-sharpness in full space (A = I), mean ± sd over seeds (Metric 2.1, ×100 "
              f"scale), beside {SOURCES['table3']}."),
        Table("table4_sharpness_subspace",
              "Table 4 sharpness: ε-sharpness in random {subspace_dim}-dim subspaces, mean ± sd over seeds "
              f"(Metric 2.1, ×100 scale), beside {SOURCES['table4']}."),
        Table("hessian_distance",
              "Hessian and distance: top Hessian eigenvalue of the training loss, distance travelled from the "
              f"shared start x0 over all trainable weights, their SB/LB ratio (paper ratio: {SOURCES['distance']}) "
              "and epochs trained; mean ± sd over seeds."),
        Figure("learning_curves",
               "Fig. 2 analogue: train (solid) and test (dashed) accuracy per epoch of every SB (blue) and LB "
               "(red) run of every network and seed, each trained until its training loss stopped improving (a run "
               "that hit the safety cap on updates instead is named in the claims' preconditions); grey dotted: "
               "chance; dash-dotted, on the paper's own data only: the paper's test accuracy (Table 2). A "
               "generalisation gap without a test-accuracy peak followed by decay is not over-fitting.",
               label="Fig. 2 learning curves"),
        Figure("parametric",
               "Fig. 3 analogue: loss (blue) and accuracy (red) on {train_set} (solid) and the test set "
               "(dashed) along α·x_LB + (1−α)·x_SB, α ∈ [{alpha_min:g}, {alpha_max:g}], through a small-batch "
               "(α = 0) and a large-batch (α = 1) minimiser that started from the same initial weights x0 (the "
               "pair of seed {seed}).", label="Fig. 3 parametric plot"),
        Table("parametric_rise",
              "Parametric rise: how much the training loss rises {delta:g} outward from each end of the SB–LB "
              "line, f(−δ) − f(0) at the SB end and f(1+δ) − f(1) at the LB end; mean ± sd over SB/LB pairs."),
        Figure("sweep",
               "Fig. 4 analogue for {network}: test accuracy (left) and sharpness (right: ε-sharpness in full "
               "space at ε={epsilon:g} and the top Hessian eigenvalue of the training loss) against batch size; "
               "points are means, bars ± one sd over seeds; dotted, where inside the sweep: the batch size that "
               "is the same fraction of our training set as the paper's C1 threshold "
               f"({SOURCES['threshold']}).", label="Fig. 4 batch-size sweep"),
        Table("batch_sweep", "Batch-size sweep of {network}: mean ± sd over seeds; epochs trained and the runs' "
              "stop reasons (with count) beside the accuracies."),
    ],
)
