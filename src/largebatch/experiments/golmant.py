"""Golmant et al. 2018: steps to a fixed loss threshold vs batch size, and the critical batch.

"On the Computational Inefficiency of Large Batch Sizes for Stochastic Gradient Descent"
(arXiv 1811.12941).  The experiment is a sweep: every batch size ``B`` of a power-of-two
grid, trained from the same initialisation under three learning-rate strategies

* ``fixed`` -- the base learning rate at every ``B`` (no scaling),
* ``lsr``   -- linear scaling ``lr * B/B0`` with a linear warm-up (Goyal et al. 2017),
* ``srsr``  -- square-root scaling ``lr * sqrt(B/B0)`` (Krizhevsky 2014 / Hoffer et al. 2017),

with ``B0`` the smallest batch of the grid, for a fixed step budget.  The analysis counts the
steps ``T(B)`` each run needs to reach fixed train- and test-loss thresholds, the speed-up
``T(B0)/T(B)`` against perfect scaling ``B/B0``, the cost ``B*T(B)`` and the critical batch
(``largebatch.scaling.critical_batch_size``; one definition for every curve).

Beyond the paper, the gradient noise scale ``B_simple`` of McCandlish et al. (2018) is
measured on the smallest-batch run's weights at the step where it reaches each threshold
(short "snapshot" runs replay the same trajectory; CPU training is deterministic) and
compared with the measured critical batch; easier/harder/smaller variants of the data test
whether the critical batch follows data complexity more than data size.

Everything here is pure Python/numpy/pandas except :func:`measure_noise` (imports torch
lazily), so Snakemake can import the module to plan runs without loading torch.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd

TITLE = "Golmant et al. 2018: the critical batch size"

#: labels of the learning-rate rules (config: strategies.<name>.lr_scaling)
RULE_LABELS = {"none": "fixed LR", "linear": "LSR (linear)", "sqrt": "SRSR (square root)"}
#: the three regimes are told apart by the local scaling exponent alpha of the speed-up
#: (S ~ B^alpha between neighbouring batch sizes): alpha >= LINEAR is near-linear scaling,
#: PLATEAU <= alpha < LINEAR diminishing returns, alpha < PLATEAU no real gain (a plateau).
LINEAR_ALPHA = 0.75
PLATEAU_ALPHA = 0.15
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
    "GX1": ("B_crit ~ B_noise, and B_simple approximates B_noise",
            "McCandlish et al. 2018, An Empirical Model of Large-Batch Training"),
}
#: per-step cost of the MLP in "equivalent samples" (measured on CPU: ~0.6 ms per step of
#: overhead vs ~2 us per sample), used only to balance packs
STEP_OVERHEAD_SAMPLES = 300


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


def _cost(spec: dict) -> float:
    return spec["steps"] * (spec["batch_size"] + STEP_OVERHEAD_SAMPLES)


def assign_packs(rows: list[tuple[dict, dict]], n_packs: int) -> None:
    """Label every run with a pack of similar estimated cost (longest-first greedy).

    Runs of one batch size stay together (a pack can then be vectorised over its runs),
    unless that batch size alone costs more than an average pack: it is then split by seed.
    """
    groups: dict[tuple, float] = {}
    for _, spec in rows:
        key = (spec["batch_size"],)
        groups[key] = groups.get(key, 0.0) + _cost(spec)
    mean = sum(groups.values()) / n_packs
    for (b,), cost in list(groups.items()):
        if cost > mean:
            del groups[(b,)]
            for _, spec in rows:
                if spec["batch_size"] == b:
                    key = (b, spec["seed"])
                    groups[key] = groups.get(key, 0.0) + _cost(spec)
    load = [0.0] * n_packs
    members: list[list[tuple]] = [[] for _ in range(n_packs)]
    for key, cost in sorted(groups.items(), key=lambda kv: (-kv[1], kv[0])):
        i = int(np.argmin(load))
        load[i] += cost
        members[i].append(key)
    name = {}
    for i, group in enumerate(members):
        for key in group:
            name[key] = f"p{i}-b" + "-".join(dict.fromkeys(str(k[0]) for k in sorted(group)))
    for labels, spec in rows:
        key = (spec["batch_size"], spec["seed"])
        labels["pack"] = name.get(key) or name[(spec["batch_size"],)]


def plan(block: dict, scale: dict) -> list[tuple[dict, dict]]:
    from . import dataset_sizes, seeds_of

    sizes = dataset_sizes(scale)
    base = dict(block["run"])
    steps = block["steps"]
    fracs = sorted(block["thresholds"])
    runs: list[tuple[dict, dict]] = []
    for role, info in block["datasets"].items():
        name = info["name"]
        if name not in sizes:
            raise ValueError(f"datasets.{role}.name = {name!r} is not defined under datasets "
                             f"(defined: {sorted(sizes)})")
        n = sizes[name]
        grid = batch_grid(block, n)
        b0 = grid[0]
        for strategy in info["strategies"]:
            if strategy not in block["strategies"]:
                raise ValueError(f"datasets.{role}.strategies lists {strategy!r}, which is not under "
                                 f"strategies (defined: {sorted(block['strategies'])})")
            rule = block["strategies"][strategy]
            for b in grid:
                for seed in seeds_of(block):
                    spec = {**base, "dataset": name, "batch_size": b, "seed": seed, "steps": steps}
                    if b > b0 and rule["lr_scaling"] != "none":
                        # at B0 every strategy is the same run (lr = base lr, no warm-up): shared
                        spec.update(lr_scaling=rule["lr_scaling"], base_batch=b0,
                                    warmup_epochs=warmup_epochs(rule.get("warmup_steps", 0), b, n))
                    labels = {"kind": "sweep", "data": role, "dataset": name, "strategy": strategy,
                              "batch_size": b, "seed": seed, "frac": 1.0}
                    runs.append((labels, spec))
        # the B0 run stopped where it reaches each easier threshold: its weights there
        # (same trajectory as the full run) feed the noise-scale measurement
        for frac in fracs:
            if frac >= 1.0:
                continue
            for seed in seeds_of(block):
                spec = {**base, "dataset": name, "batch_size": b0, "seed": seed,
                        "steps": max(1, int(round(frac * steps)))}
                labels = {"kind": "snapshot", "data": role, "dataset": name, "strategy": "fixed",
                          "batch_size": b0, "seed": seed, "frac": frac}
                runs.append((labels, spec))
    if block.get("packs"):
        assign_packs(runs, int(block["packs"]))
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


def measure_noise(points: list[dict], data_files: dict[str, str], specs: dict[str, dict], noise: dict,
                  device: str = "cpu", log=print) -> pd.DataFrame:
    """B_simple (McCandlish et al.) of each checkpoint's weights on its training set.

    The model is evaluated in eval mode (BatchNorm running statistics; no dropout), with the
    unbiased two-batch estimator of ``largebatch.noise.gradient_noise_stats``.
    """
    import torch
    import torch.nn.functional as F

    from ..data import load_dataset
    from ..models import build_model
    from ..noise import gradient_noise_stats
    from ..train import load_weights

    cache = {}
    rows = []
    for p in points:
        name = p["dataset"]
        if name not in cache:
            cache[name] = load_dataset(data_files[name], device)
        data = cache[name]
        spec = specs[p["run"]]
        model = build_model(spec, data.input_shape, data.num_classes).to(device)
        model.load_state_dict(load_weights(f"results/runs/{p['run']}/model.pt", device))
        model.eval()
        x, y = data.x_train, data.y_train
        b_big = min(noise["b_big"], len(y))
        stats = gradient_noise_stats(model, F.cross_entropy, x, y, b_small=noise["b_small"], b_big=b_big,
                                     n_estimates=noise["n_estimates"], seed=noise.get("seed", 0))
        with torch.no_grad():
            loss = float(F.cross_entropy(model(x[:4096]), y[:4096]))
        rows.append({**p, "step": spec["steps"], "train_loss_sample": loss, **stats})
        log(f"{p['data']} seed {p['seed']} frac {p['frac']}: B_simple = {stats['b_simple']:.1f}")
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- analysis


def reference_thresholds(ref: pd.DataFrame, fracs: Sequence[float], steps: int,
                         metrics: Sequence[str] = ("train_loss", "test_loss")) -> pd.DataFrame:
    """Loss thresholds of one dataset, fixed from its smallest-batch (B0) runs.

    For each metric and fraction ``f``: the threshold is the largest over seeds of the
    lowest value a B0 run reaches within its first ``f * steps`` steps, so every B0 seed
    reaches it by then.  ``ref`` holds the B0 histories (columns seed, step, metrics).
    """
    out = []
    for metric in metrics:
        for f in sorted(fracs):
            limit = f * steps
            per_seed = [g.loc[g.step <= limit + 1e-9, metric].min() for _, g in ref.groupby("seed")]
            out.append({"metric": metric, "frac": f, "ref_step": int(round(limit)),
                        "threshold": float(np.nanmax(per_seed))})
    return pd.DataFrame(out)


def steps_table(runs: pd.DataFrame, histories: dict[str, pd.DataFrame], thresholds: pd.DataFrame) -> pd.DataFrame:
    """Steps to each threshold of every sweep run: one row per (run, metric, frac).

    ``steps`` is +inf when the run never reached the threshold within its budget (or
    diverged first); ``reached`` says which.  ``thresholds`` has columns dataset, metric,
    frac, threshold.
    """
    from ..scaling import steps_to_threshold

    rows = []
    for r in runs.itertuples(index=False):
        h = histories[r.run]
        for t in thresholds[thresholds.dataset == r.dataset].itertuples(index=False):
            s = steps_to_threshold(h, t.metric, t.threshold)
            rows.append({**r._asdict(), "metric": t.metric, "frac": t.frac, "threshold": t.threshold,
                         "steps": s if math.isfinite(s) else math.inf, "reached": math.isfinite(s)})
    return pd.DataFrame(rows)


def scaling_exponents(batch_sizes, steps) -> np.ndarray:
    """Local exponent alpha_k of the speed-up between neighbouring batch sizes:
    ``S ~ B^alpha``, i.e. alpha = log(T_{k-1}/T_k) / log(B_k/B_{k-1}).  A run that never
    reached the threshold (T = inf) after a finite one gives -inf (no gain)."""
    b = np.asarray(batch_sizes, dtype=float)
    t = np.asarray(steps, dtype=float)
    order = np.argsort(b)
    b, t = b[order], t[order]
    with np.errstate(divide="ignore", invalid="ignore"):
        alpha = np.log(t[:-1] / t[1:]) / np.log(b[1:] / b[:-1])
    alpha = np.where(np.isinf(t[1:]) & np.isfinite(t[:-1]), -np.inf, alpha)
    return alpha


def regimes(batch_sizes, steps) -> dict:
    """The three regimes of Golmant et al. on one steps-to-threshold curve.

    * near-linear: the first doubling from B0 scales near-linearly (alpha_1 >= LINEAR_ALPHA);
    * diminishing returns: some later interval gains, but sub-linearly
      (PLATEAU_ALPHA <= alpha < LINEAR_ALPHA);
    * plateau: the last interval (largest batches) gains nothing real
      (alpha < PLATEAU_ALPHA, including a run that never reached the threshold).
    """
    alpha = scaling_exponents(batch_sizes, steps)
    ok = alpha.size >= 2 and np.isfinite(np.asarray(steps, dtype=float)[np.argmin(batch_sizes)])
    near = bool(ok and alpha[0] >= LINEAR_ALPHA)
    dim = bool(ok and np.any((alpha[1:] >= PLATEAU_ALPHA) & (alpha[1:] < LINEAR_ALPHA)))
    plateau = bool(ok and not (alpha[-1] >= PLATEAU_ALPHA))  # NaN (inf -> inf) counts as no gain
    return {"alpha": alpha, "near_linear": near, "diminishing": dim, "plateau": plateau,
            "three_regimes": near and dim and plateau}


def curve_stats(batch_sizes, steps, efficiency: float = 0.5) -> dict:
    """Critical batch (and whether it is only a lower bound) of one steps curve."""
    from ..scaling import critical_batch_size

    b = np.asarray(batch_sizes, dtype=float)
    t = np.asarray(steps, dtype=float)
    order = np.argsort(b)
    b, t = b[order], t[order]
    bstar = critical_batch_size(b, t, efficiency)
    if math.isnan(bstar) and t.size >= 2 and np.isfinite(t[0]) and np.isinf(t[1]):
        # only B0 reached the threshold: critical_batch_size needs two finite points, but its
        # definition (efficiency 0 for never reached, log2 interpolation) gives this crossing
        bstar = float(2.0 ** (math.log2(b[0]) + (1 - efficiency) * (math.log2(b[1]) - math.log2(b[0]))))
    finite = np.isfinite(t)
    lower = False
    if finite.sum() >= 2 and finite[0]:
        with np.errstate(divide="ignore"):
            eff = b[0] * t[0] / (b * t)
        lower = bool(np.all(eff >= efficiency))
    return {"b_crit": bstar, "lower_bound": lower}


def mean_curve(df: pd.DataFrame) -> pd.DataFrame:
    """Geometric mean over seeds of the steps per batch size (+inf if any seed never got there)."""
    def gmean(s):
        v = s.to_numpy(dtype=float)
        return math.inf if np.any(~np.isfinite(v)) else float(np.exp(np.mean(np.log(np.maximum(v, 1e-12)))))

    return df.groupby("batch_size", as_index=False)["steps"].agg(gmean).sort_values("batch_size")


# ----------------------------------------------------------------------------- claim helpers


def chance_loss(kind: str) -> float:
    """Cross-entropy of a uniform guess, ln(classes), for a dataset kind."""
    if kind not in CLASSES:
        raise ValueError(f"dataset kind {kind!r}: its number of classes is unknown; add it to "
                         f"largebatch.experiments.golmant.CLASSES (known: {sorted(CLASSES)})")
    return math.log(CLASSES[kind])


def learnt(status: str, final_train_loss: float, chance: float, no_learning: float) -> bool:
    """False for a run that did not learn: it diverged, or its final training loss is at least
    ``no_learning`` x the chance loss.  Such a run is flagged, never counted as a plateau."""
    return status == "ok" and math.isfinite(final_train_loss) and final_train_loss < no_learning * chance


def learning_curve(batch_sizes, steps, learning) -> tuple[np.ndarray, np.ndarray, float]:
    """A steps curve cut before the first batch size whose run did not learn.

    Returns (batch sizes, steps, the first batch size that did not learn or NaN).  Points past
    that batch size say nothing about the plateau (a run at chance loss is a failed run, not a
    run that gained nothing from its batch size)."""
    b = np.asarray(batch_sizes, dtype=float)
    t = np.asarray(steps, dtype=float)
    ok = np.asarray(learning, dtype=bool)
    order = np.argsort(b)
    b, t, ok = b[order], t[order], ok[order]
    bad = np.flatnonzero(~ok)
    if bad.size:
        return b[: bad[0]], t[: bad[0]], float(b[bad[0]])
    return b, t, float("nan")


def censored(steps, cap: int) -> np.ndarray:
    """Steps with 'never reached' (+inf) counted as twice the step cap: a finite stand-in that
    understates how slow such a run is (so tests of 'no gain' are conservative)."""
    t = np.asarray(steps, dtype=float)
    return np.where(np.isfinite(t), t, 2.0 * cap)


def exponent_summary(batch_sizes, steps, cap: int) -> dict:
    """First and last local scaling exponents of a (learning) curve, with never-reached
    steps censored at twice the cap, and the exponent of every interval at its log2
    mid-point (for the trend)."""
    b = np.asarray(batch_sizes, dtype=float)
    if b.size < 3:
        return {"alpha_first": np.nan, "alpha_last": np.nan, "mid_log2": np.array([]), "alpha": np.array([])}
    t = censored(steps, cap)
    alpha = scaling_exponents(b, t)
    mid = (np.log2(b[1:]) + np.log2(b[:-1])) / 2
    return {"alpha_first": float(alpha[0]), "alpha_last": float(alpha[-1]), "mid_log2": mid, "alpha": alpha}


# TODO(issue 15 port): outputs with captions, analysis jobs and section inputs
from .base import Paper as _Paper  # noqa: E402

PAPER = _Paper(key="golmant", title=TITLE, category="4 Golmant 2018", plan=plan, outputs=[])
