"""Batch-size scaling analysis (Golmant et al. 2018; McCandlish et al. 2018).

Pure numpy/pandas helpers to turn training histories into the quantities of
Golmant et al. 2018, "On the Computational Inefficiency of Large Batch Sizes
for Stochastic Gradient Descent":

* ``T(B, l*)`` -- iterations (steps) to reach a loss/accuracy threshold
  (:func:`steps_to_threshold`);
* speed-up ``S(B) = T(B0)/T(B)`` relative to the smallest batch ``B0``, perfect
  scaling ``B/B0``, scaling efficiency ``S(B)/(B/B0)`` and total cost
  ``B*T(B)`` in examples (:func:`speedup_table`);
* one critical-batch definition used for every curve
  (:func:`critical_batch_size`);
* McCandlish et al.'s model ``S = S_min (1 + B_noise/B)``
  (:func:`fit_steps_model`), comparable with
  :func:`largebatch.noise.gradient_noise_scale`;
* learning-rate scaling rules (:func:`scale_lr`).

Conventions for "never reached": :func:`steps_to_threshold` returns NaN.  In
the functions taking step counts, NaN means *missing* (the point is ignored),
while ``+inf`` means *ran but never reached the threshold* (speed-up and
efficiency 0).  Convert with ``np.where(np.isnan(t), np.inf, t)`` if runs that
never reached the threshold should count as failures.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd

from .spec import scale_lr  # one definition of the none / linear / sqrt rules, shared with run specs

__all__ = [
    "steps_to_threshold",
    "speedup_table",
    "critical_batch_size",
    "fit_steps_model",
    "scale_lr",
]


def steps_to_threshold(
    history: pd.DataFrame,
    column: str,
    threshold: float,
    step_col: str = "step",
    mode: str = "min",
) -> float:
    """First step at which a metric reaches a threshold: Golmant's T(B, l*).

    Rows of ``history`` are evaluations; they are ordered by ``step_col``
    (stable sort, so an already increasing history is unchanged).  Returns the
    value of ``step_col`` in the first row with

    * ``history[column] <= threshold`` for ``mode="min"`` (losses, errors), or
    * ``history[column] >= threshold`` for ``mode="max"`` (accuracies),

    as a float, or NaN if the threshold is never reached (NaN metric values
    never count as reaching it).  No interpolation between evaluations is
    done, so the resolution is the evaluation interval.
    """
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
    for col in (column, step_col):
        if col not in history.columns:
            raise KeyError(f"column {col!r} not in history (columns: {list(history.columns)})")
    if len(history) == 0:
        return float("nan")
    h = history.sort_values(step_col, kind="mergesort")
    values = pd.to_numeric(h[column], errors="coerce").to_numpy(dtype=float)
    with np.errstate(invalid="ignore"):
        hit = values <= threshold if mode == "min" else values >= threshold
    if not hit.any():
        return float("nan")
    return float(h[step_col].to_numpy()[int(np.argmax(hit))])


def _add_speedup(g: pd.DataFrame, batch_col: str, steps_col: str) -> pd.DataFrame:
    g = g.sort_values(batch_col, kind="mergesort").copy()
    b = g[batch_col].to_numpy(dtype=float)
    t = g[steps_col].to_numpy(dtype=float)
    finite = np.isfinite(t) & (t > 0) & np.isfinite(b) & (b > 0)
    if finite.any():
        b_finite = b[finite]
        b0 = float(b_finite.min())
        if np.sum(b_finite == b0) > 1:
            raise ValueError(
                f"several rows share the reference batch size {b0:g}; "
                "pass `by=` to compute speed-ups within groups"
            )
        t0 = float(t[finite][np.argmin(b_finite)])
        with np.errstate(divide="ignore", invalid="ignore"):
            speedup = t0 / t  # +inf steps -> 0, NaN -> NaN
        perfect = b / b0
    else:
        speedup = np.full(len(g), np.nan)
        perfect = np.full(len(g), np.nan)
    g["speedup"] = speedup
    g["perfect"] = perfect
    with np.errstate(divide="ignore", invalid="ignore"):
        g["efficiency"] = speedup / perfect
        g["examples"] = b * t
    return g


def speedup_table(
    df: pd.DataFrame,
    batch_col: str = "batch_size",
    steps_col: str = "steps",
    by: str | Sequence[str] | None = None,
) -> pd.DataFrame:
    """Add Golmant-style speed-up columns to a table of steps-to-threshold.

    For each row with batch size ``B`` and steps ``T(B)``:

    * ``speedup``    ``S(B) = T(B0)/T(B)``, with ``B0`` the smallest batch size
      whose ``T`` is finite and positive;
    * ``perfect``    ``B/B0`` (perfect linear scaling);
    * ``efficiency`` ``S(B)/(B/B0) = B0*T(B0) / (B*T(B))`` -- 1 for perfect
      scaling, the inverse of the relative total cost;
    * ``examples``   ``B*T(B)``, total examples processed (computational cost).

    NaN steps give NaN columns; ``+inf`` steps (never reached) give speed-up 0,
    efficiency 0 and infinite cost.  The result is a copy sorted by batch
    size (within groups when ``by`` is given: the reference ``B0`` is then
    chosen per group, e.g. per loss threshold or per LR rule).  Batch sizes
    must be unique within a group.
    """
    for col in (batch_col, steps_col):
        if col not in df.columns:
            raise KeyError(f"column {col!r} not in table (columns: {list(df.columns)})")
    if by is None:
        return _add_speedup(df, batch_col, steps_col)
    keys = [by] if isinstance(by, str) else list(by)
    parts = [_add_speedup(g, batch_col, steps_col) for _, g in df.groupby(keys, sort=True, dropna=False)]
    if not parts:
        out = df.copy()
        for c in ("speedup", "perfect", "efficiency", "examples"):
            out[c] = pd.Series(dtype=float)
        return out
    return pd.concat(parts)


def _clean_curve(batch_sizes, steps) -> tuple[np.ndarray, np.ndarray]:
    b = np.asarray(batch_sizes, dtype=float).ravel()
    t = np.asarray(steps, dtype=float).ravel()
    if b.shape != t.shape:
        raise ValueError(f"batch_sizes and steps differ in length ({b.size} vs {t.size})")
    keep = np.isfinite(b) & (b > 0) & ~np.isnan(t) & (t > 0)
    b, t = b[keep], t[keep]
    order = np.argsort(b, kind="mergesort")
    b, t = b[order], t[order]
    if b.size and np.any(np.diff(b) == 0):
        raise ValueError("batch_sizes must be unique (aggregate repeated runs first)")
    return b, t


def critical_batch_size(batch_sizes, steps, efficiency: float = 0.5) -> float:
    """Critical batch size: where the scaling efficiency first falls to ``efficiency``.

    Definition (used for every curve).  Let ``B0`` be the smallest batch size
    with a finite step count ``T(B0)`` and define the scaling efficiency

        eff(B) = S(B) / (B/B0) = [T(B0)/T(B)] / (B/B0) = B0*T(B0) / (B*T(B)),

    i.e. the inverse of the total cost (examples processed) relative to
    ``B0``.  The critical batch size is the largest ``B`` such that
    ``eff(B') >= efficiency`` for *every* measured ``B0 <= B' <= B``: scanning
    the sorted batch sizes upward, let ``B_a`` be the last one before the first
    point ``B_b`` with ``eff(B_b) < efficiency``; the result is interpolated
    linearly in ``log2(B)`` between ``(log2 B_a, eff(B_a))`` and
    ``(log2 B_b, eff(B_b))`` to the crossing ``eff = efficiency``:

        log2 B* = log2 B_a + (eff_a - efficiency)/(eff_a - eff_b) * (log2 B_b - log2 B_a).

    Later recoveries of the efficiency above the threshold (noise) are ignored.

    With the default ``efficiency=0.5``, ``B*`` is the batch size at which
    training to the threshold costs **twice as many examples** as at ``B0``
    (the speed-up is half of perfect).  Under McCandlish's model
    ``S = S_min(1 + B_noise/B)`` this gives exactly ``B* = B_noise + 2*B0``,
    i.e. ``B_crit = B_noise`` as ``B0 -> 0``.  For a curve with perfect scaling
    up to a kink ``B_k`` and no further gain beyond it, ``eff(B) = B_k/B`` for
    ``B >= B_k``, so ``B* = B_k/efficiency`` (``2*B_k`` at the default): the
    definition locates the point where the extra cost reaches the threshold,
    not the kink itself (``fit_steps_model`` estimates the knee/asymptote
    crossing instead).

    Conventions: NaN steps are missing and dropped; ``+inf`` steps mean the
    run never reached the threshold (efficiency 0).  Returns NaN if fewer than
    2 finite points remain.  If the efficiency never falls below the threshold
    the largest measured finite batch size is returned -- a *lower bound*.

    Parameters
    ----------
    batch_sizes, steps:
        Array-likes of equal length (unique batch sizes).
    efficiency:
        Threshold in (0, 1].
    """
    if not (0 < efficiency <= 1):
        raise ValueError(f"efficiency must be in (0, 1], got {efficiency!r}")
    b, t = _clean_curve(batch_sizes, steps)
    finite = np.isfinite(t)
    if finite.sum() < 2:
        return float("nan")
    first = int(np.argmax(finite))
    b, t = b[first:], t[first:]  # B0 = smallest batch with finite T
    with np.errstate(divide="ignore"):
        eff = (b[0] * t[0]) / (b * t)  # inf steps -> 0
    below = np.nonzero(eff < efficiency)[0]
    if below.size == 0:
        return float(b[np.isfinite(t)].max())
    k = int(below[0])  # k >= 1 because eff[0] == 1 >= efficiency
    la, lb = math.log2(b[k - 1]), math.log2(b[k])
    ea, eb = float(eff[k - 1]), float(eff[k])
    frac = (ea - efficiency) / (ea - eb)
    return float(2.0 ** (la + frac * (lb - la)))


def fit_steps_model(batch_sizes, steps, relative: bool = True) -> dict:
    """Fit McCandlish et al.'s ``S(B) = S_min (1 + B_noise/B)`` to steps-to-threshold.

    The model is linear in ``1/B``: ``S = S_min + E_min * (1/B)`` with
    ``E_min = S_min * B_noise`` (the minimum number of examples) so it is fit
    by (weighted) linear least squares on the finite points.  With
    ``relative=True`` (default) residuals are relative, ``(S_i - model)/S_i``,
    so that the small-batch points (many steps) do not dominate; with
    ``relative=False`` plain absolute residuals are used.  Exact data
    following the model are recovered exactly either way.

    Returns a dict with

    * ``s_min``   minimum number of steps (large-batch limit),
    * ``e_min``   minimum number of examples (small-batch limit),
    * ``b_noise`` ``e_min/s_min``, McCandlish's critical batch
      ``B_crit = E_min/S_min`` (compare with ``gradient_noise_scale``),
    * ``b_crit``  same value as ``b_noise``,
    * ``n_points`` number of finite points used,
    * ``rms_rel_residual`` RMS of ``(S_i - model_i)/S_i``.

    All values are NaN with fewer than 2 finite points (non-finite steps are
    dropped).  ``b_noise`` is NaN when the fitted ``s_min <= 0`` (the data do
    not level off); a negative ``e_min`` (steps grow with B) is returned as
    is.
    """
    b, t = _clean_curve(batch_sizes, steps)
    keep = np.isfinite(t)
    b, t = b[keep], t[keep]
    nan = float("nan")
    out = {
        "s_min": nan,
        "e_min": nan,
        "b_noise": nan,
        "b_crit": nan,
        "n_points": int(b.size),
        "rms_rel_residual": nan,
    }
    if b.size < 2:
        return out
    a = np.column_stack([np.ones_like(b), 1.0 / b])
    w = 1.0 / t if relative else np.ones_like(t)
    coef, *_ = np.linalg.lstsq(a * w[:, None], t * w, rcond=None)
    s_min, e_min = float(coef[0]), float(coef[1])
    pred = a @ coef
    out["s_min"] = s_min
    out["e_min"] = e_min
    out["b_noise"] = out["b_crit"] = e_min / s_min if s_min > 0 else nan
    out["rms_rel_residual"] = float(np.sqrt(np.mean(((t - pred) / t) ** 2)))
    return out
