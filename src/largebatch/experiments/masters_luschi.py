"""Masters & Luschi 2018, "Revisiting small batch training for deep neural networks".

Three studies, all with SGD + momentum, a fixed *epoch* budget and the linear scaling
rule eta = m * eta_base (spec ``lr`` = eta_base, ``lr_scaling="linear"``,
``base_batch=1``, so ``effective_lr`` = m * eta_base: a constant average weight update
per gradient computation):

* ``sweep``    -- batch size m x base learning rate eta_base = 2**k x {BN, no BN} x seeds;
* ``bn_batch`` -- BN batch size decoupled from the SGD batch: ghost batch norm over
                  m_BN samples (m_BN divides m; m_BN = m is plain BN and shares the sweep's
                  runs), over a few eta_base;
* ``warmup``   -- the larger batches again, with a linear learning-rate warm-up.

Two disjoint sets of seeds (issue 16, the winner's curse): ``seeds`` *select* the best cell
of a grid (the best eta_base at an m, the best m), ``test_seeds`` *test* the selected cells,
so the accuracy a claim is decided on is not the maximum it was selected for.  Every cell
of the sweep and of the warm-up study is trained with both sets (any cell may be selected);
the BN-batch study trains its test seeds only at the two m_BN a claim compares (the
reference and m_BN = m).

``plan`` lists the runs (label ``seed_role``: select | test); with ``packs: P`` in the block
the runs are grouped into about P training jobs of similar cost (runs of one batch size stay
together; the expensive small batches are split).  The analysis helpers below (cell table,
stable range, selection, per-seed widths) are used by the report notebook and tested on
their own; every verdict is decided by ``largebatch.stats``.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd

TITLE = "Masters & Luschi 2018: revisiting small batch training"

#: The paper's published findings used beside ours (ranges; the paper prints its results as
#: figures, so no single number is quoted). Source strings say where each is stated.
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

#: per-run fixed cost (evaluations, model build, files), in units of one training step
RUN_OVERHEAD_STEPS = 100
#: a ghost-BN step costs about twice a plain BN step on a CPU (measured, MLP width 32)
GHOST_STEP_COST = 2.0


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


def _spec(block: dict, dataset: str, m: int, k: int, seed: int, norm: str, gbs: int | None = None,
          warmup: float = 0.0) -> dict:
    spec = {**block["run"], "dataset": dataset, "batch_size": m, "lr": 2.0 ** k, "lr_scaling": "linear",
            "base_batch": 1, "norm": norm, "seed": seed}
    if norm == "ghost":
        spec["ghost_batch_size"] = gbs
    if warmup:
        spec["warmup_epochs"] = warmup
    return spec


def plan(block: dict, scale: dict) -> list[tuple[dict, dict]]:
    from . import dataset_sizes, seeds_of

    run = block["run"]
    if run.get("optimizer", "sgd") != "sgd" or not run.get("momentum"):
        raise ValueError("run: the paper trains with SGD + momentum; set optimizer: sgd and momentum > 0")
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

    for ds in datasets:
        for norm in norms:
            for m in ms:
                for k in ks:
                    for seed in seeds:
                        add({"part": "sweep", "dataset": ds, "norm": norm, "m": m, "m_bn": m if norm == "batch" else 0,
                             "lr_log2": k, "warmup_epochs": 0.0}, _spec(block, ds, m, k, seed, norm))

    sub_ds = datasets[0]  # the BN-batch and warm-up studies run on the first dataset
    bn = block.get("bn_batch")
    if bn:
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
                        add({"part": "bn_batch", "dataset": sub_ds, "norm": "batch", "m": m, "m_bn": b,
                             "lr_log2": k, "warmup_epochs": 0.0},
                            _spec(block, sub_ds, m, k, seed, norm, gbs=b))

    warm = block.get("warmup")
    if warm:
        wms = _check_positive_ints(warm["batch_sizes"], "warmup.batch_sizes")
        w = warm["epochs"]
        if not isinstance(w, (int, float)) or isinstance(w, bool) or not 0 < w < run["epochs"]:
            raise ValueError(f"warmup.epochs = {w!r}: must be > 0 and shorter than the budget ({run['epochs']} epochs)")
        for norm in norms:
            for m in wms:
                for k in ks:
                    for seed in seeds:
                        add({"part": "warmup", "dataset": sub_ds, "norm": norm, "m": m,
                             "m_bn": m if norm == "batch" else 0, "lr_log2": k, "warmup_epochs": float(w)},
                            _spec(block, sub_ds, m, k, seed, norm, warmup=w))

    packs = block.get("packs", 0)
    if packs:
        assign_packs(rows, packs, dataset_sizes(scale))
    return rows


def run_cost(spec: dict, n_train: int) -> float:
    """Estimated cost of a run in training-step units (steps, ghost steps weighted, + overhead)."""
    m = spec["batch_size"]
    steps = spec.get("steps") or max(1, round(spec["epochs"] * max(n_train // m, 1)))
    return steps * (GHOST_STEP_COST if spec.get("norm") == "ghost" else 1.0) + RUN_OVERHEAD_STEPS


def assign_packs(rows: list[tuple[dict, dict]], packs: int, sizes: dict[str, int]) -> None:
    """Label every row with a ``pack`` so that about `packs` jobs of similar cost result.

    Runs are grouped by (dataset, batch size) in increasing batch size.  A group costing
    at least 1.5x the target (total / packs) is split into round(cost / target) packs;
    cheaper groups are merged with their neighbours while the pack stays within 1.25x
    the target.  Runs of one batch size therefore share a pack (or a few), which is what
    a vectorised pack trainer needs.  Rows with the same spec (a run two studies share)
    get the same pack.
    """
    if not isinstance(packs, int) or isinstance(packs, bool) or packs < 1:
        raise ValueError(f"packs = {packs!r}: must be an integer >= 1 (or 0 for one job per run)")
    key_of = [json.dumps(spec, sort_keys=True) for _, spec in rows]
    cost: dict[str, float] = {}
    group_of: dict[str, tuple] = {}
    order: dict[str, tuple] = {}
    for (labels, spec), key in zip(rows, key_of):
        if key in cost:
            continue
        cost[key] = run_cost(spec, sizes.get(spec["dataset"], 0) or spec["batch_size"])
        group_of[key] = (spec["dataset"], spec["batch_size"])
        order[key] = (labels["part"], spec.get("norm", ""), spec["seed"], spec["lr"])
    groups: dict[tuple, list[str]] = {}
    for key in cost:
        groups.setdefault(group_of[key], []).append(key)
    target = sum(cost.values()) / packs
    multi_ds = len({g[0] for g in groups}) > 1
    pack_of: dict[str, str] = {}
    acc: list[tuple] = []
    acc_cost = 0.0

    def name(ds: str, stem: str) -> str:
        return f"{ds}-{stem}" if multi_ds else stem

    def flush() -> None:
        nonlocal acc, acc_cost
        if acc:
            lo, hi = acc[0][1], acc[-1][1]
            stem = f"m{lo}" if lo == hi else f"m{lo}-{hi}"
            for g in acc:
                for key in groups[g]:
                    pack_of[key] = name(g[0], stem)
        acc, acc_cost = [], 0.0

    for g in sorted(groups):
        keys = sorted(groups[g], key=order.__getitem__)
        gcost = sum(cost[k] for k in keys)
        if acc and acc[0][0] != g[0]:
            flush()
        if gcost >= 1.5 * target:
            flush()
            n = max(2, round(gcost / target))
            bounds = np.cumsum([cost[k] for k in keys]) / gcost * n
            for key, b in zip(keys, bounds):
                part = min(int(math.ceil(b - 1e-9)), n)
                pack_of[key] = name(g[0], f"m{g[1]}-{part}of{n}")
            continue
        if acc and acc_cost + gcost > 1.25 * target:
            flush()
        acc.append(g)
        acc_cost += gcost
    flush()
    for (labels, _), key in zip(rows, key_of):
        labels["pack"] = pack_of[key]


# ----------------------------------------------------------------------------------------
# analysis helpers (used by workflow/notebooks/masters_luschi.py)

#: a run trained stably only if its final training loss fell below this fraction of the loss at
#: initialisation: a network driven to chance by a large lr ends at about its initial loss (ln 10
#: for 10 classes) without a NaN, on either side of it by noise, and has not trained at all
STABLE_LOSS_FRACTION = 0.95


def run_stability(runs: pd.DataFrame, initial_loss: pd.Series) -> pd.Series:
    """True where a run trained stably: not diverged (NaN/inf) and its final training loss is
    below ``STABLE_LOSS_FRACTION`` x the training loss at initialisation.  `initial_loss` is
    indexed by run id."""
    init = runs["run"].map(initial_loss)
    final = pd.to_numeric(runs["train_loss"], errors="coerce")
    ok = runs["status"].eq("ok") & np.isfinite(final) & (final < STABLE_LOSS_FRACTION * init)
    return ok


def cell_table(runs: pd.DataFrame, by: list[str], value: str = "test_acc") -> pd.DataFrame:
    """One row per cell (`by`): mean/std/n of the accuracy column `value` over seeds, how many
    seeds diverged, and the fraction of seeds that trained stably (column ``stable`` per run)."""
    def agg(g: pd.DataFrame) -> pd.Series:
        acc = g[value].where(g["status"].eq("ok"))
        return pd.Series({
            "acc_mean": acc.mean() if acc.notna().all() else float("nan"),
            "acc_std": acc.std(ddof=1) if acc.notna().sum() > 1 else float("nan"),
            "n": len(g),
            "n_diverged": int(g["status"].eq("diverged").sum()),
            "stable_frac": float(g["stable"].mean()),
            "accs": list(g[value]),
        })

    rows = []
    for key, g in runs.groupby(by, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        rows.append({**dict(zip(by, key)), **agg(g).to_dict()})
    return pd.DataFrame(rows)


def stable_cells(cells: pd.DataFrame, tol: float, group: list[str]) -> pd.Series:
    """True for a cell whose eta_base lies in the stable range of its group: no seed
    diverged, every seed trained stably, and the mean test accuracy is within `tol`
    (absolute) of the best mean of the group (group = [..., "m"]: the best at that batch
    size; group without "m": the best over every batch size)."""
    acc = cells["acc_mean"]
    best = cells.groupby(group)["acc_mean"].transform("max")
    return (cells["n_diverged"].eq(0) & cells["stable_frac"].eq(1.0) & acc.notna()
            & (acc >= best - tol))


def select_best(cells: pd.DataFrame) -> pd.Series | None:
    """The cell with the highest mean accuracy among `cells` (a ``cell_table`` of the
    selection seeds; cells with a diverged seed have no mean and are never selected), or
    None when no cell has a mean."""
    ok = cells[cells["acc_mean"].notna()]
    if not len(ok):
        return None
    return ok.loc[ok["acc_mean"].idxmax()]


def on_grid_edge(lr_log2: float, grid) -> bool:
    """True when a selected eta_base is the smallest or largest of its grid (the optimum is
    not bracketed: a wider grid could move it)."""
    return lr_log2 in (min(grid), max(grid))


def widths_per_seed(runs: pd.DataFrame, level: float, tol: float) -> pd.DataFrame:
    """Width of the acceptable eta_base range per (m, seed): the number of grid points at which
    that seed trained stably (column ``stable``) with an accuracy (column ``acc``) of at least
    ``level - tol``.  ``level`` is fixed from other seeds (the global best cell of the selection
    seeds), so the widths of every m are measured against one common bar."""
    ok = runs["stable"] & runs["acc"].ge(level - tol)
    return (runs.assign(acceptable=ok).groupby(["m", "seed"], as_index=False)["acceptable"].sum()
            .rename(columns={"acceptable": "width"}))


def stable_fraction_per_seed(runs: pd.DataFrame) -> pd.DataFrame:
    """Per (m, seed): the fraction of the eta_base grid at which the run trained stably."""
    return runs.groupby(["m", "seed"], as_index=False)["stable"].mean().rename(columns={"stable": "stable_frac"})


def sizes_without_unstable_cell(cells: pd.DataFrame) -> list[int]:
    """Batch sizes at which every eta_base cell had a seed that trained stably: the grid does
    not reach the stability limit there (claim M2's precondition).  A cell beyond the limit
    has no stable seed: its runs diverged (NaN/inf) or ended above their initial training
    loss (a network driven to chance, which at large lr is how this MLP fails more often
    than by NaN)."""
    worst = cells.groupby("m")["stable_frac"].min()
    return [int(m) for m, f in worst.items() if f > 0]


# TODO(issue 15 port): outputs with captions, analysis jobs and section inputs
from .base import Paper as _Paper  # noqa: E402

PAPER = _Paper(key="masters_luschi", title=TITLE, category="3 Masters & Luschi 2018", plan=plan, outputs=[])
