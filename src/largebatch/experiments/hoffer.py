"""Hoffer, Hubara & Soudry 2017, "Train longer, generalize better".

The paper's table compares, per network, a small-batch baseline (SB) with a large
batch (LB) and three cumulative adaptations of the large-batch run:

* ``+LR``  -- learning rate scaled by sqrt(B_L / B_S) (``lr_scaling="sqrt"``,
  ``base_batch`` = the small batch);
* ``+GBN`` -- Ghost Batch Normalization with ghost batches of the small-batch size;
* ``+RA``  -- regime adaptation: the epoch budget and every LR-drop epoch multiplied
  by B_L / B_S, so the large batch makes as many updates as the small batch.

Its Fig. 2 plots the distance of the weights from their initialisation against the
number of updates (log scale) during the first, high-learning-rate phase, for
several batch sizes, before (a) and after (b) the adaptations.  ``plan`` adds those
batch sizes. This module is the planning and the declaration (read by the Snakefile at
parse time, so it imports no numpy, pandas or matplotlib); the fits, tables, figures and
claims are in ``largebatch.analysis.hoffer`` and ``largebatch.analysis.hoffer_claims``.
"""

from __future__ import annotations

import copy
import math

from .base import Figure, Paper, Table, seeds_of, train_size

TITLE = "Hoffer, Hubara & Soudry 2017: train longer, generalize better"

#: the table's arms, in order; each adds one adaptation to the previous one
ARMS = ("SB", "LB", "+LR", "+GBN", "+RA")

#: the three cumulative adaptations as (arm, previous arm)
STEPS = (("+LR", "LB"), ("+GBN", "+LR"), ("+RA", "+GBN"))

#: Published validation accuracy (%) per network and arm: the results table of the authors'
#: NeurIPS 2017 poster ("Train longer, generalize better", github.com/eladhoffer/eladhoffer.github.io,
#: Talks/train_longer_poster_nips2017.pdf), which has the same columns as the paper's Table 1; one
#: run per cell, and the poster prints neither batch sizes nor epochs per row. Keyed like
#: ``networks`` in config.yaml. The poster also gives AlexNet on ImageNet, which we do not run.
PUBLISHED = {
    "F1": {"data": "MNIST", "SB": 98.27, "LB": 97.05, "+LR": 97.55, "+GBN": 97.60, "+RA": 98.53},
    "C1": {"data": "CIFAR-10", "SB": 87.80, "LB": 83.95, "+LR": 86.15, "+GBN": 86.4, "+RA": 88.20},
    "ResNet44": {"data": "CIFAR-10", "SB": 92.83, "LB": 86.10, "+LR": 89.30, "+GBN": 90.50, "+RA": 93.07},
    "VGG": {"data": "CIFAR-10", "SB": 92.30, "LB": 84.1, "+LR": 88.6, "+GBN": 91.50, "+RA": 93.03},
    "C3": {"data": "CIFAR-100", "SB": 61.25, "LB": 51.50, "+LR": 57.38, "+GBN": 57.5, "+RA": 63.20},
    "WRN16-4": {"data": "CIFAR-100", "SB": 73.70, "LB": 68.15, "+LR": 69.05, "+GBN": 71.20, "+RA": 73.57},
}
#: where PUBLISHED is printed
SOURCE = "Hoffer, Hubara & Soudry 2017, authors' NeurIPS 2017 poster, results table (validation accuracy, %)"
#: where the weight-distance claims are made (shapes only; no values are printed for them):
#: d(t) = ||w_t - w_0|| grows like ln t in the high-learning-rate phase, with a slope that depends
#: on the batch size (Fig. 2a) until the adaptations are applied (Fig. 2b)
SOURCE_FIG2 = "Hoffer, Hubara & Soudry 2017, Sec. 3 and Fig. 2 (curves only, no values printed)"
#: the dataset each published row was trained on (paper-scale dataset names)
PUBLISHED_DATASET = {"MNIST": "mnist", "CIFAR-10": "cifar10", "CIFAR-100": "cifar100"}


def published_margins(network: str) -> dict:
    """The accuracy margins (percentage points) the poster's row of `network` implies:
    H0 its SB - LB gap, H4 half that gap, H5 each adaptation's own gain, H6 the +GBN gain.
    config.yaml states these values per network; a test checks they agree."""
    r = PUBLISHED[network]
    gap = r["SB"] - r["LB"]
    steps = [round(r[new] - r[old], 3) for new, old in STEPS]
    return {"H0": round(gap, 3), "H4": round(gap / 2, 3), "H5": steps, "H6": steps[1]}


def ra_factor(large_batch: int, small_batch: int) -> int:
    """Regime-adaptation factor: ceil(B_L / B_S), as ``--regime_bb_fix`` in bigBatch."""
    if small_batch < 1 or large_batch < small_batch:
        raise ValueError(f"regime adaptation needs 1 <= small batch <= large batch, got {small_batch} / {large_batch}")
    return math.ceil(large_batch / small_batch)


def regime_adaptation(run: dict, factor: float) -> dict:
    """A copy of run-spec keys with the regime stretched by `factor`.

    The training budget (``epochs``, or ``steps`` when the budget is in steps), every
    LR-drop epoch (``milestones``) and the warm-up length (also an epoch of the
    regime) are multiplied by `factor`; nothing else changes.
    """
    if not factor > 0:
        raise ValueError(f"regime adaptation factor = {factor!r} must be > 0")
    out = copy.deepcopy(run)
    if out.get("epochs") is not None:
        out["epochs"] = out["epochs"] * factor
    if out.get("steps") is not None:
        out["steps"] = int(round(out["steps"] * factor))
    if out.get("milestones"):
        out["milestones"] = [m * factor for m in out["milestones"]]
    if out.get("warmup_epochs"):
        out["warmup_epochs"] = out["warmup_epochs"] * factor
    return out


def arm_spec(run: dict, arm: str, batch: int, small_batch: int, n_train: int | None = None) -> dict:
    """Run-spec keys of one arm of the table at large batch `batch` (SB ignores it).

    With `n_train` (the training-set size) and a run evaluated once per epoch (no
    ``eval_every``), +RA is evaluated once per adapted epoch (B_L/B_S epochs), i.e. at the
    update counts where SB is evaluated: the regime's epochs, not B_L/B_S times as many
    evaluations (an evaluation choice; what the run computes is unchanged)."""
    if arm not in ARMS:
        raise ValueError(f"arm {arm!r} is not one of {list(ARMS)}")
    spec = copy.deepcopy(run)
    if arm == "SB":
        spec["batch_size"] = small_batch
        return spec
    spec["batch_size"] = batch
    level = ARMS.index(arm)
    if level >= ARMS.index("+LR"):
        spec.update(lr_scaling="sqrt", base_batch=small_batch)
    if level >= ARMS.index("+GBN"):
        if batch % small_batch:
            raise ValueError(f"batch {batch} is not a multiple of the small batch {small_batch}: "
                             f"ghost batches of {small_batch} samples would not tile it")
        spec.update(norm="ghost", ghost_batch_size=small_batch)
    if level >= ARMS.index("+RA"):
        factor = ra_factor(batch, small_batch)
        spec = regime_adaptation(spec, factor)
        if n_train and spec.get("eval_every") is None and spec.get("epochs") is not None:
            spec["eval_every"] = max(n_train // batch, 1) * factor
    return spec


def seeds_by_arm(block: dict, name: str) -> dict[str, list[int]]:
    """Each arm's seeds for network `name`: its ``arm_seeds`` entry where the network's block
    names the arm, else the section's ``seeds``.

    Why per arm: +RA trains B_L/B_S times the epochs of the other arms, so where a budget
    cannot hold it on every seed the cheapest cut is fewer seeds for +RA alone (the poster's
    table is one run per cell), not a smaller network or a shorter regime. An arm's seeds
    hold at every batch size it trains (the table's and Fig. 2's). A claim whose test needs an
    arm with fewer than 2 seeds is inconclusive by its precondition (``analysis.hoffer_claims``).
    """
    seeds = seeds_of(block)
    own = block["networks"][name].get("arm_seeds") or {}
    unknown = [a for a in own if a not in ARMS]
    if unknown:
        raise ValueError(f"networks.{name}.arm_seeds: {unknown} are not arms; choose from {list(ARMS)}")
    for arm, arm_seeds in own.items():
        if not isinstance(arm_seeds, list) or not arm_seeds:
            raise ValueError(f"networks.{name}.arm_seeds.{arm} = {arm_seeds!r}: give a non-empty list of integer seeds")
    return {arm: list(own.get(arm, seeds)) for arm in ARMS}


def plan(block: dict, scale: dict) -> list[tuple[dict, dict]]:
    """Every network's table arms, plus the distance batch sizes of Fig. 2.

    The distance network's runs also log extra evaluations on a log-spaced step
    grid (``distance.log_points``).  Each extra distance batch size B gets the
    unadapted run ("LB" arm at batch B, Fig. 2a) and the fully adapted one ("+RA"
    arm, Fig. 2b); the small batch is the same run in both panels. Each arm trains on
    its own seeds (``seeds_by_arm``: the section's ``seeds`` unless the network's
    ``arm_seeds`` names the arm).  Which runs share a training job is the packing
    policy's choice (``largebatch.packing``), not the plan's.
    """
    dist = block.get("distance") or {}
    runs = []
    for name, net in block["networks"].items():
        seeds = seeds_by_arm(block, name)
        sb, lb = net["small_batch"], net["large_batch"]
        if lb <= sb:
            raise ValueError(f"networks.{name}: large_batch = {lb} must be larger than small_batch = {sb}")
        base = dict(net["run"])
        if not base.get("milestones"):
            raise ValueError(f"networks.{name}.run: give the LR-drop epochs (milestones) of the paper's step regime")
        base.setdefault("schedule", "step")
        data_cfg = (scale.get("datasets") or {}).get(base.get("dataset"))
        n_train = train_size(data_cfg, base["dataset"]) if data_cfg else None
        jobs = [(arm, lb) for arm in ARMS]
        if dist and dist.get("network") == name:
            base["log_points"] = dist["log_points"]
            for b in dist["batch_sizes"]:
                if b % sb:
                    raise ValueError(f"distance.batch_sizes: {b} is not a multiple of networks.{name}.small_batch "
                                     f"= {sb} (GBN uses ghost batches of the small batch)")
                if b not in (sb, lb):
                    jobs += [("LB", b), ("+RA", b)]
        for arm, b in jobs:
            for seed in seeds[arm]:
                labels = {"network": name, "label": net.get("label", name), "arm": arm,
                          "batch_size": sb if arm == "SB" else b, "seed": seed,
                          "table": b == lb}
                runs.append((labels, {**arm_spec(base, arm, b, sb, n_train), "seed": seed}))
    if dist and dist.get("network") not in block["networks"]:
        raise ValueError(f"distance.network = {dist.get('network')!r} is not one of networks "
                         f"{sorted(block['networks'])}")
    return runs


#: The paper's side of the protocol table, as (aspect, what the authors did). The networks are those
#: of the paper's Table 1 and the poster's table; +LR, +GBN and +RA as the paper defines them
#: (sqrt learning-rate scaling, Ghost Batch Normalization, epochs and drops x B_L/B_S). The settings
#: are from the authors' code, github.com/eladhoffer/bigBatch (one commit, 0c69f28): models/mnist_f1.py (F1's regime), main_gbn.py (GBN by chunked
#: forward/backward, ``--lr_bb_fix`` = lr x sqrt(batch / ghost size), ``--regime_bb_fix`` = epochs
#: and drop epochs x ceil(batch / ghost size), gradient norm clipped at 5, seed 123, the weight
#: distance of parameter 0 logged once per epoch) and run_experiments.sh (batch sizes, epochs).
PROTOCOL = (
    ("networks / data", "F1 (MNIST), C1/C3 shallow conv (CIFAR-10/100), ResNet-44 (CIFAR-10), WRN-16-4 "
     "(CIFAR-100), VGG, AlexNet (ImageNet)"),
    ("optimiser (F1)", "SGD lr 0.1, momentum 0.9, weight decay 1e-4, gradient norm clipped at 5 (authors' code, "
     "bigBatch)"),
    ("regime (F1)", "lr x0.1 at epochs 10, 20, 30; 50 epochs (authors' code)"),
    ("batch sizes (F1)", "SB 128, LB 4096 (B_L/B_S = 32; authors' scripts)"),
    ("+LR", "lr x √(B_L / ghost size)"),
    ("+GBN", "ghost batches of 128, by chunked forward/backward (authors' code)"),
    ("+RA", "epochs and LR-drop epochs x B_L/B_S"),
    ("weight distance", "||w_t - w_0|| against iterations (log), high-LR phase; the authors' code logs the first "
     "layer only, once per epoch"),
    ("test accuracy", "validation accuracy (poster's table)"),
    ("seeds", "1 (seed 123, authors' code)"),
)


#: the arms as the report names them (each adds one adaptation to the previous column)
ARM_NAMES = {"SB": "SB", "LB": "LB", "+LR": "LB +LR", "+GBN": "LB +LR +GBN", "+RA": "LB +LR +GBN +RA"}

PAPER = Paper(
    key="hoffer",
    title=TITLE,
    category="2 Hoffer 2017",
    plan=plan,
    outputs=[
        Table("table1", "Final test accuracy (%) as the paper's Table 1 lays it out: each column adds one adaptation "
              "to the previous one (+LR: learning rate x √(B_L/B_S); +GBN: ghost batch normalization; +RA: regime "
              "adaptation). Ours: mean ± sd over seeds; the published row: one run per cell."),
        Table("arms", "Every arm, the table's and Fig. 2's other batch sizes: batch size, number of updates, epochs, "
              "peak learning rate, final train accuracy beside test accuracy and their difference (mean ± sd over "
              "seeds), how the runs stopped (budget: the regime's own epochs) and any run that is no evidence "
              "(stopped at a safety cap, no learning, diverged); the train accuracies and these problems decide "
              "the preconditions."),
        Table("distance_fits", "Fits of the weight distance d = ||w_t - w_0|| against the update count t over the "
              "high-LR phase (log-grid evaluations from update {fit_min_step} to the first LR drop), mean ± sd over "
              "seeds. (a) before: same learning rate, BatchNorm, same epochs; (b) after: +LR +GBN +RA (the small "
              "batch is the same run in both panels)."),
        Figure("arm_accuracy", "Final test accuracy of the arms of the paper's Table 1: the small batch (SB), the "
               "large batch (LB), and LB with √ learning-rate scaling (+LR), Ghost Batch Normalization (+GBN) and "
               "regime adaptation (+RA), each adding one adaptation; one grey dot per seed, mean ± sd in "
               "black{published}", label="table arms"),
        Figure("curves", "Test accuracy against the number of updates (log scale), mean ± sd over seeds: with "
               "regime adaptation LB makes as many updates as SB. Dotted grey: chance accuracy."),
        Figure("distance", "The paper's Fig. 2: distance of the weights from their initialisation, ||w_t - w_0|| over "
               "all trainable weights, against the number of updates (log scale) during the high-learning-rate "
               "phase, for several batch sizes; (a) same learning rate, BatchNorm and epochs, (b) after √ "
               "learning-rate scaling, Ghost Batch Normalization and regime adaptation. Dots: evaluations of every "
               "seed; lines: the least-squares fit d = a + b ln t over updates >= {fit_min_step} (slope b and R² "
               "averaged over seeds).", label="weight distance (Fig. 2)"),
    ],
)
