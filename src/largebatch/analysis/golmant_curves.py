"""Golmant et al. 2018 analysis, one curve at a time: loss thresholds read off a run's curve,
steps to them, and a steps-vs-batch-size curve's scaling exponents, regimes and critical
batch (the pure functions :mod:`largebatch.analysis.golmant` builds the section's pipeline
from; split from it to keep each module short).

Conventions (as in ``largebatch.scaling``): ``+inf`` steps mean a run never reached the
threshold within its budget; a run that did not learn reaches nothing and cuts its curve.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd

from ..experiments.golmant import CLASSES
from ..scaling import critical_batch_size, steps_to_threshold

#: the three regimes are told apart by the local scaling exponent alpha of the speed-up
#: (S ~ B^alpha between neighbouring batch sizes): alpha >= LINEAR is near-linear scaling,
#: PLATEAU <= alpha < LINEAR diminishing returns, alpha < PLATEAU no real gain (a plateau).
#: Our bounds (the paper names the regimes but gives no exponents), fixed before any run.
LINEAR_ALPHA = 0.75
PLATEAU_ALPHA = 0.15


def curve_quantile(h: pd.DataFrame, metric: str, q: float, budget: int, points: int = 1001) -> float:
    """The q-quantile of a run's loss curve read on a uniform grid of ``points`` steps over its
    budget (linear interpolation between evaluations), so that it does not depend on where the
    evaluations fall (a log grid would weight early, high losses)."""
    h = h.dropna(subset=[metric]).sort_values("step")
    grid = np.linspace(0, budget, points)
    return float(np.quantile(np.interp(grid, h.step.to_numpy(float), h[metric].to_numpy(float)), q))


def reference_thresholds(ref: list[tuple[pd.DataFrame, int]], qs: Sequence[float],
                         metrics: Sequence[str] = ("train_loss", "test_loss")) -> pd.DataFrame:
    """Loss thresholds of one data role, Golmant et al.'s definition: the q-quantile (q = 0.25:
    the lowest quartile) of the loss curve of the largest batch size, here its reference runs
    ``ref`` (history, budget), one per seed and strategy.  The threshold is the largest of their
    quantiles, so every reference run reaches it within its budget."""
    out = []
    for metric in metrics:
        for q in sorted(qs):
            out.append({"metric": metric, "frac": q,
                        "threshold": max(curve_quantile(h, metric, q, budget) for h, budget in ref)})
    return pd.DataFrame(out)


def steps_table(runs: pd.DataFrame, histories: dict[str, pd.DataFrame], thresholds: pd.DataFrame) -> pd.DataFrame:
    """Steps to each threshold of every sweep run: one row per (run, metric, frac).

    ``steps`` is +inf when the run never reached the threshold within its budget (or
    diverged first); ``reached`` says which.  ``thresholds`` has columns dataset, metric,
    frac, threshold.
    """
    key = "data" if "data" in thresholds and "data" in runs else "dataset"  # a role: data and network
    rows = []
    for r in runs.itertuples(index=False):
        h = histories[r.run]
        for t in thresholds[thresholds[key] == getattr(r, key)].itertuples(index=False):
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


def chance_loss(kind: str) -> float:
    """Cross-entropy of a uniform guess, ln(classes), for a dataset kind."""
    if kind not in CLASSES:
        raise ValueError(f"dataset kind {kind!r}: its number of classes is unknown; add it to "
                         f"largebatch.experiments.golmant.CLASSES (known: {sorted(CLASSES)})")
    return math.log(CLASSES[kind])


def learnt(status: str, final_train_loss: float, chance: float, no_learning: float) -> bool:
    """False for a run that did not learn: status ``diverged`` or ``no_learning``
    (``largebatch.stopping.run_status``), or a final training loss of at least ``no_learning`` x
    the chance loss.  Such a run is flagged and ends its curve, never counted as a plateau."""
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


def censored(steps, cap) -> np.ndarray:
    """Steps with 'never reached' (+inf) counted as twice the run's step budget ``cap`` (one
    number, or one per point): a finite stand-in that understates how slow such a run is (so
    tests of 'no gain' are conservative)."""
    t = np.asarray(steps, dtype=float)
    return np.where(np.isfinite(t), t, 2.0 * np.asarray(cap, dtype=float))


def exponent_summary(batch_sizes, steps, cap) -> dict:
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


def gmean(v) -> float:
    """Geometric mean of the finite positive values (NaN if none)."""
    v = np.asarray(v, dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    return float(np.exp(np.mean(np.log(v)))) if v.size else float("nan")


def fmt_b(v, lower: bool = False) -> str:
    """A batch size as text; '+' marks a lower bound, 'n/a' a missing one."""
    return "n/a" if not np.isfinite(v) else f"{v:,.0f}" + ("+" if lower else "")
