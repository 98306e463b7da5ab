"""Statistics that decide verdicts, and mean ± std formatting for tables."""

from __future__ import annotations

import math
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
from scipy import stats

REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE = "reproduced", "not reproduced", "inconclusive"


def mean_std(values: Iterable[float], digits: int = 4, scale: float = 1.0) -> str:
    v = np.asarray([x for x in values if x is not None and not math.isnan(x)], dtype=float) * scale
    if v.size == 0:
        return "n/a"
    if np.all(v == np.round(v)) and np.all(np.abs(v) < 1e15):
        digits = 0  # counts (steps, epochs): no spurious decimals
    if v.size == 1:
        return f"{v[0]:.{digits}f}"
    return f"{v.mean():.{digits}f} ± {v.std(ddof=1):.{digits}f}"


def summarise(df: pd.DataFrame, by: list[str], columns: list[str], digits: int = 4, scale: float = 1.0) -> pd.DataFrame:
    """One row per group with 'mean ± std (n)' strings for `columns`."""
    rows = []
    for key, g in df.groupby(by, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        row = dict(zip(by, key))
        for c in columns:
            row[c] = mean_std(g[c], digits, scale)
        row["n"] = len(g)
        rows.append(row)
    return pd.DataFrame(rows)


def welch_verdict(a: Sequence[float], b: Sequence[float], claim: str = "less", alpha: float = 0.05) -> tuple[str, float, str]:
    """Verdict for the claim "mean(a) < mean(b)" (claim="less") or "mean(a) > mean(b)" ("greater").

    Welch's t-test, one-sided in the claimed direction.  reproduced: p < alpha;
    not reproduced: the observed difference points the other way; inconclusive:
    right direction, p >= alpha (or fewer than 2 values per group).
    Returns (verdict, p, description of the test).
    """
    a = np.asarray([x for x in a if np.isfinite(x)], dtype=float)
    b = np.asarray([x for x in b if np.isfinite(x)], dtype=float)
    desc = f"Welch t-test, one-sided ({'a < b' if claim == 'less' else 'a > b'}), n={len(a)}/{len(b)}, alpha={alpha}"
    if len(a) < 2 or len(b) < 2:
        return INCONCLUSIVE, float("nan"), desc + " (too few values)"
    diff = a.mean() - b.mean()
    if (claim == "less" and diff > 0) or (claim == "greater" and diff < 0):
        p = stats.ttest_ind(a, b, equal_var=False, alternative=claim).pvalue
        return NOT_REPRODUCED, float(p), desc
    if np.all(a == a[0]) and np.all(b == b[0]):
        return (REPRODUCED if diff != 0 else INCONCLUSIVE), 0.0 if diff != 0 else 1.0, desc + " (no spread)"
    p = float(stats.ttest_ind(a, b, equal_var=False, alternative=claim).pvalue)
    return (REPRODUCED if p < alpha else INCONCLUSIVE), p, desc


def claim_row(cid: str, claim: str, metric: str, ours: str, paper: str, verdict: str, test: str) -> dict:
    if verdict not in (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE):
        raise ValueError(f"verdict {verdict!r} must be one of reproduced / not reproduced / inconclusive")
    return {"id": cid, "claim": claim, "metric": metric, "ours": ours, "paper": paper, "verdict": verdict, "test": test}
