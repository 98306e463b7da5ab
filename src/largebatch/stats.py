"""Statistics that decide verdicts, and mean ± std formatting for tables.

Every claim of every section is decided here, by one three-way rule:

* **reproduced** -- the test in the claimed direction is significant (``p_claim < alpha``);
* **not reproduced** -- the evidence is against the claim: the reverse one-sided test is
  significant, or the effect is shown to lie within an equivalence margin stated in advance
  (TOST); ``p_against`` is the smaller of the two;
* **inconclusive** -- neither, or a precondition of the claim failed (an arm did not converge,
  train accuracies too far apart for a generalisation claim, too few values).

A ``decide*`` function returns a *decision* dict (the raw p-values, the effect with its 95%
confidence interval, the test's description). ``claim_row`` turns a decision into a claims-table
row, and ``finalize_claims`` (called by ``Section.claims``) applies Holm-Bonferroni across the
claims of one paper to ``p_claim`` and to ``p_against`` before it sets each verdict.
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.multitest import multipletests

REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE = "reproduced", "not reproduced", "inconclusive"
VERDICTS = (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE)
ALPHA = 0.05
DIRECTIONS = ("greater", "less")

#: columns of claims.csv, in order
CLAIM_COLUMNS = ["id", "claim", "metric", "ours", "paper", "paper_source", "effect", "ci_low", "ci_high",
                 "p_claim", "p_against", "p_claim_adj", "p_against_adj", "rule", "precondition",
                 "precondition_ok", "verdict", "test"]


def mean_std(values: Iterable[float], digits: int = 4, scale: float = 1.0) -> str:
    v = np.asarray([x for x in values if x is not None and not math.isnan(x)], dtype=float) * scale
    if v.size == 0:
        return "n/a"
    if np.all(v == np.round(v)) and np.all(np.abs(v) < 1e15):
        digits = 0  # counts (steps, epochs): no spurious decimals
    if v.size == 1:
        return f"{v[0]:.{digits}f}"
    return f"{v.mean():.{digits}f} ± {v.std(ddof=1):.{digits}f}"


def readable_digits(values: Iterable[float], digits: int = 3, significant: int = 2) -> int:
    """``digits`` decimals, or more where the values' mean |value| would otherwise show fewer than
    ``significant`` significant figures (a sharpness of 1e-4 printed as 0.000 says nothing)."""
    v = np.abs(_finite(list(values)))
    size = float(v.mean()) if v.size else 0.0
    if size == 0.0:
        return digits
    return max(digits, significant - 1 - int(math.floor(math.log10(size))))


def signed_difference(value: float | None, reference: float, digits: int = 2) -> str:
    """``value - reference`` with its sign ('+0.11'); '–' where ``value`` is missing or not finite."""
    if value is None or not math.isfinite(value):
        return "–"
    return f"{value - reference:+.{digits}f}"


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


def mean_sd(values: Iterable[float], digits: int = 2) -> str:
    """'mean ± sd' of the finite values with fixed decimals (one value: itself; none: 'n/a')."""
    v = _finite(values)
    if not v.size:
        return "n/a"
    return f"{v[0]:.{digits}f}" if v.size == 1 else f"{v.mean():.{digits}f} ± {v.std(ddof=1):.{digits}f}"


def describe(values: Sequence[float], digits: int = 2) -> str:
    """'mean ± sd (n=k)' of the finite values."""
    return f"{mean_sd(values, digits)} (n={_finite(values).size})"


def _finite(values) -> np.ndarray:
    v = np.asarray(list(values) if not isinstance(values, np.ndarray) else values, dtype=float).ravel()
    return v[np.isfinite(v)]


def _check_direction(direction: str) -> None:
    if direction not in DIRECTIONS:
        raise ValueError(f"direction = {direction!r}: use 'greater' (claim: a > b) or 'less' (claim: a < b)")


def _check_margin(margin: float) -> float:
    margin = float(margin)
    if not margin >= 0:
        raise ValueError(f"margin = {margin!r}: an equivalence margin is >= 0, in the units of the data")
    return margin


def verdict_of(p_claim: float, p_against: float, alpha: float = ALPHA, precondition_ok: bool = True) -> str:
    """The three-way rule on (already adjusted) p-values."""
    if not precondition_ok:
        return INCONCLUSIVE
    if np.isfinite(p_claim) and p_claim < alpha:
        return REPRODUCED
    if np.isfinite(p_against) and p_against < alpha:
        return NOT_REPRODUCED
    return INCONCLUSIVE


def _decision(p_claim, p_against, effect, ci, test, alpha, **extra) -> dict:
    p_claim, p_against = float(p_claim), float(p_against)
    return {"verdict": verdict_of(p_claim, p_against, alpha), "p_claim": p_claim, "p_against": p_against,
            "effect": float(effect), "ci_low": float(ci[0]), "ci_high": float(ci[1]), "test": test,
            "alpha": alpha, **extra}


def decide(a: Sequence[float], b: Sequence[float], direction: str, margin: float, alpha: float = ALPHA) -> dict:
    """Two-sample decision for the claim mean(a) > mean(b) (``direction="greater"``) or < ("less").

    p_claim: one-sided Welch t-test in the claimed direction. p_against: the smaller of the
    reverse one-sided Welch test and the TOST equivalence test within ±margin (Welch, in the
    units of the data; margin 0 disables equivalence). effect = mean(a) - mean(b) with its 95%
    Welch confidence interval. Fewer than 2 finite values in an arm -> inconclusive.
    """
    _check_direction(direction)
    margin = _check_margin(margin)
    a, b = _finite(a), _finite(b)
    reverse = "less" if direction == "greater" else "greater"
    sign = ">" if direction == "greater" else "<"
    test = (f"Welch t-test, one-sided (a {sign} b), and against: reverse one-sided Welch or TOST within "
            f"±{margin:g}; n={a.size}/{b.size}, alpha={alpha:g}")
    extra = {"n_a": int(a.size), "n_b": int(b.size), "ours": f"{describe(a)} vs {describe(b)}", "margin": margin}
    if a.size < 2 or b.size < 2:
        return _decision(np.nan, np.nan, (a.mean() - b.mean()) if a.size and b.size else np.nan,
                         (np.nan, np.nan), test + " (too few values)", alpha, **extra)
    effect = a.mean() - b.mean()
    if a.std() == 0 and b.std() == 0:  # no spread: the t-test is undefined; the sign decides exactly
        claimed = effect > 0 if direction == "greater" else effect < 0
        p_claim = 0.0 if claimed else 1.0
        p_against = 0.0 if (not claimed and effect != 0) or abs(effect) < margin else 1.0
        return _decision(p_claim, p_against, effect, (effect, effect), test + " (no spread)", alpha, **extra)
    p_claim = stats.ttest_ind(a, b, equal_var=False, alternative=direction).pvalue
    p_rev = stats.ttest_ind(a, b, equal_var=False, alternative=reverse).pvalue
    p_tost = tost(a, b, margin) if margin > 0 else 1.0
    ci = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    return _decision(p_claim, min(p_rev, p_tost), effect, (ci.low, ci.high), test, alpha,
                     p_reverse=float(p_rev), p_equivalence=float(p_tost), **extra)


def decide_noninferior(a: Sequence[float], b: Sequence[float], margin: float, alpha: float = ALPHA,
                       label: str = "") -> dict:
    """Non-inferiority: the claim "a is not worse than b by more than ``margin``" (mean(a) >
    mean(b) - margin), as :func:`decide` on (a + margin, b) in the direction "greater";
    against it: the reverse one-sided Welch test (a more than ``margin`` below b). The effect
    and its CI are reported unshifted, mean(a) - mean(b)."""
    margin = float(margin)
    if not margin >= 0:
        raise ValueError(f"margin = {margin!r}: a non-inferiority margin is >= 0, in the units of the data")
    a, b = _finite(a), _finite(b)
    d = decide(a + margin, b, "greater", 0.0, alpha)
    return {**d, "effect": d["effect"] - margin, "ci_low": d["ci_low"] - margin, "ci_high": d["ci_high"] - margin,
            "label": label, "ours": f"{describe(a)} vs {describe(b)}", "margin": margin,
            "test": f"non-inferiority: one-sided Welch t-test of mean(a) > mean(b) - {margin:g}; against: the reverse "
                    f"one-sided test (a more than {margin:g} below b); n={a.size}/{b.size}, alpha={d['alpha']:g}"}


def tost(a: Sequence[float], b: Sequence[float], margin: float) -> float:
    """Two one-sided Welch tests: p for |mean(a) - mean(b)| < margin (the larger of the two p's)."""
    a, b = _finite(a), _finite(b)
    lower = stats.ttest_ind(a + margin, b, equal_var=False, alternative="greater").pvalue
    upper = stats.ttest_ind(a - margin, b, equal_var=False, alternative="less").pvalue
    return float(max(lower, upper))


def decide_one_sample(x: Sequence[float], direction: str, reference: float, margin: float,
                      alpha: float = ALPHA) -> dict:
    """Decision for the claim mean(x) > reference ("greater") or < reference ("less").

    For ratios, thresholds and per-seed differences (paired designs: pass a - b, reference 0).
    p_against: the smaller of the reverse one-sided t-test and TOST within reference ± margin.
    """
    _check_direction(direction)
    margin = _check_margin(margin)
    x = _finite(x)
    reverse = "less" if direction == "greater" else "greater"
    sign = ">" if direction == "greater" else "<"
    test = (f"one-sample t-test, one-sided (mean {sign} {reference:g}), and against: reverse test or TOST "
            f"within ±{margin:g}; n={x.size}, alpha={alpha:g}")
    extra = {"n_a": int(x.size), "n_b": 0, "ours": describe(x), "margin": margin}
    if x.size < 2:
        return _decision(np.nan, np.nan, (x.mean() - reference) if x.size else np.nan, (np.nan, np.nan),
                         test + " (too few values)", alpha, **extra)
    effect = x.mean() - reference
    if x.std() == 0:
        claimed = effect > 0 if direction == "greater" else effect < 0
        p_claim = 0.0 if claimed else 1.0
        p_against = 0.0 if (not claimed and effect != 0) or abs(effect) < margin else 1.0
        return _decision(p_claim, p_against, effect, (effect, effect), test + " (no spread)", alpha, **extra)
    p_claim = stats.ttest_1samp(x, reference, alternative=direction).pvalue
    p_rev = stats.ttest_1samp(x, reference, alternative=reverse).pvalue
    p_tost = 1.0
    if margin > 0:
        p_tost = max(stats.ttest_1samp(x, reference - margin, alternative="greater").pvalue,
                     stats.ttest_1samp(x, reference + margin, alternative="less").pvalue)
    ci = stats.ttest_1samp(x, reference).confidence_interval(0.95)
    return _decision(p_claim, min(p_rev, p_tost), effect, (ci.low - reference, ci.high - reference), test, alpha,
                     p_reverse=float(p_rev), p_equivalence=float(p_tost), **extra)


def decide_trend(x: Sequence[float], y: Sequence[float], direction: str, margin: float = 0.0,
                 alpha: float = ALPHA) -> dict:
    """Decision for a monotone trend of y in x: "greater" = y rises with x, "less" = y falls.

    The test is the least-squares slope (``scipy.stats.linregress``), one-sided in the claimed
    direction; p_against: the reverse one-sided slope test or TOST of the slope within ±margin
    (y units per x unit). effect: the slope with its 95% CI. Pass log2(batch size) as x for
    trends over batch sizes.
    """
    _check_direction(direction)
    margin = _check_margin(margin)
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    word = "rises" if direction == "greater" else "falls"
    test = (f"least-squares slope, one-sided (y {word} with x), and against: reverse slope test or TOST of the "
            f"slope within ±{margin:g}; n={x.size}, alpha={alpha:g}")
    extra = {"n_a": int(x.size), "n_b": 0, "ours": f"slope over {x.size} points", "margin": margin}
    if x.size < 3 or np.all(x == x[0]):
        return _decision(np.nan, np.nan, np.nan, (np.nan, np.nan), test + " (too few points)", alpha, **extra)
    res = stats.linregress(x, y)
    df = x.size - 2
    slope, se = float(res.slope), float(res.stderr)
    if se == 0:
        claimed = slope > 0 if direction == "greater" else slope < 0
        p_against = 0.0 if (not claimed and slope != 0) or abs(slope) < margin else 1.0
        return _decision(0.0 if claimed else 1.0, p_against, slope, (slope, slope), test + " (exact fit)", alpha,
                         **extra)
    t = stats.t
    p_up, p_down = t.sf(slope / se, df), t.cdf(slope / se, df)
    p_claim, p_rev = (p_up, p_down) if direction == "greater" else (p_down, p_up)
    p_tost = 1.0
    if margin > 0:
        p_tost = max(t.sf((slope + margin) / se, df), t.cdf((slope - margin) / se, df))
    half = t.ppf(0.975, df) * se
    extra["ours"] = f"slope {slope:.3g} (r={res.rvalue:.2f}, n={x.size})"
    return _decision(p_claim, min(p_rev, p_tost), slope, (slope - half, slope + half), test, alpha,
                     p_reverse=float(p_rev), p_equivalence=float(p_tost), **extra)


def decide_rank(x: Sequence[float], y: Sequence[float], direction: str = "greater", alpha: float = ALPHA) -> dict:
    """Decision for a monotone association (Spearman's rho): "greater" = positive, "less" = negative.

    p_against: the reverse one-sided test (no equivalence for a rank correlation). effect: rho,
    with a 95% CI from Fisher's z (standard error 1.06 / sqrt(n - 3), Fieller et al. 1957).
    """
    _check_direction(direction)
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    sign = ">" if direction == "greater" else "<"
    test = f"Spearman rank correlation, one-sided (rho {sign} 0), against: reverse one-sided; n={x.size}, alpha={alpha:g}"
    extra = {"n_a": int(x.size), "n_b": 0, "margin": 0.0}
    if x.size < 4 or np.all(x == x[0]) or np.all(y == y[0]):
        return _decision(np.nan, np.nan, np.nan, (np.nan, np.nan), test + " (too few points or no spread)", alpha,
                         ours=f"n={x.size}", **extra)
    reverse = "less" if direction == "greater" else "greater"
    rho = float(stats.spearmanr(x, y).statistic)
    p_claim = stats.spearmanr(x, y, alternative=direction).pvalue
    p_rev = stats.spearmanr(x, y, alternative=reverse).pvalue
    if abs(rho) < 1 and x.size > 3:
        z, se = np.arctanh(rho), 1.06 / math.sqrt(x.size - 3)
        ci = (math.tanh(z - 1.96 * se), math.tanh(z + 1.96 * se))
    else:
        ci = (rho, rho)
    return _decision(p_claim, p_rev, rho, ci, test, alpha, ours=f"rho {rho:+.2f} (n={x.size})", **extra)


def decide_proportion(successes: int, trials: int, direction: str, reference: float, margin: float = 0.0,
                      alpha: float = ALPHA) -> dict:
    """Decision for a share of successes above ("greater") or below ("less") a reference rate.

    Exact binomial tests (``scipy.stats.binomtest``); p_against: the reverse one-sided test or
    the equivalence (two one-sided binomial tests) within reference ± margin.
    """
    _check_direction(direction)
    margin = _check_margin(margin)
    test = (f"exact binomial test, one-sided (rate {'>' if direction == 'greater' else '<'} {reference:g}), "
            f"against: reverse test or equivalence within ±{margin:g}; {successes}/{trials}, alpha={alpha:g}")
    extra = {"n_a": int(trials), "n_b": 0, "ours": f"{successes} of {trials}", "margin": margin}
    if trials < 1:
        return _decision(np.nan, np.nan, np.nan, (np.nan, np.nan), test + " (no trials)", alpha, **extra)
    reverse = "less" if direction == "greater" else "greater"
    res = stats.binomtest(successes, trials, reference, alternative=direction)
    p_rev = stats.binomtest(successes, trials, reference, alternative=reverse).pvalue
    p_eq = 1.0
    if margin > 0:
        lo, hi = max(reference - margin, 0.0), min(reference + margin, 1.0)
        p_eq = max(stats.binomtest(successes, trials, lo, alternative="greater").pvalue if lo > 0 else 0.0,
                   stats.binomtest(successes, trials, hi, alternative="less").pvalue if hi < 1 else 0.0)
    ci = stats.binomtest(successes, trials).proportion_ci(0.95)
    rate = successes / trials
    return _decision(res.pvalue, min(p_rev, p_eq), rate - reference, (ci.low - reference, ci.high - reference), test,
                     alpha, **extra)


def combine(decisions: Sequence[dict], how: str = "all", alpha: float = ALPHA) -> dict:
    """One decision from several parts of a claim (intersection-union / union-intersection).

    how="all": the claim holds only if every part does: p_claim is the largest part p_claim
    (intersection-union test, no correction needed), p_against the smallest part p_against
    Bonferroni-corrected by the number of parts (one refuted part refutes the conjunction).
    how="any": the claim holds if some part does: p_claim the smallest part p_claim x k
    (Bonferroni), p_against the largest part p_against. effect/CI: those of the deciding part.
    """
    if not decisions:
        raise ValueError("combine() needs at least one decision")
    k = len(decisions)
    pc = np.array([d["p_claim"] for d in decisions], dtype=float)
    pa = np.array([d["p_against"] for d in decisions], dtype=float)
    if np.isnan(pc).any():
        p_claim = np.nan if how == "all" else (np.nanmin(pc) * k if np.isfinite(pc).any() else np.nan)
    else:
        p_claim = pc.max() if how == "all" else min(pc.min() * k, 1.0)
    if how == "all":
        p_against = min(np.nanmin(pa) * k, 1.0) if np.isfinite(pa).any() else np.nan
    elif how == "any":
        p_against = np.nan if np.isnan(pa).any() else pa.max()
    else:
        raise ValueError(f"how = {how!r}: use 'all' or 'any'")
    idx = int(np.nanargmax(pc)) if (how == "all" and np.isfinite(pc).any()) else (
        int(np.nanargmin(pc)) if np.isfinite(pc).any() else 0)
    part = decisions[idx]
    parts = "; ".join(d.get("label", str(i + 1)) + f": p_claim={format_p(d['p_claim'])}, p_against={format_p(d['p_against'])}"
                      for i, d in enumerate(decisions))
    test = f"{k} parts, claim holds if {how} do ({'largest p_claim; Bonferroni on p_against' if how == 'all' else 'Bonferroni on p_claim; largest p_against'}): {parts}"
    return _decision(p_claim, p_against, part["effect"], (part["ci_low"], part["ci_high"]), test, alpha,
                     ours=part.get("ours", ""), margin=part.get("margin", 0.0), n_a=part.get("n_a", 0),
                     n_b=part.get("n_b", 0))


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (``statsmodels`` multipletests); NaN entries stay NaN and
    do not count towards the number of tests."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    keep = np.isfinite(p)
    if keep.any():
        out[keep] = multipletests(p[keep], method="holm")[1]
    return out


def format_p(p: float) -> str:
    """A p-value for a table: '< 0.001', '0.042', '> 0.99', 'n/a'."""
    if p is None or not np.isfinite(p):
        return "n/a"
    if p > 0.99:
        return "> 0.99"
    if p < 0.001:
        return "< 0.001"
    return f"{p:.3f}"


def claim_row(cid: str, claim: str, metric: str, decision: dict, *, rule: str, ours: str | None = None,
              paper: str = "not published", paper_source: str = "", precondition: str = "none",
              precondition_ok: bool = True) -> dict:
    """One row of a paper's claims table from a ``decide*`` decision.

    rule: the claim's decision rule in words (test, margin); ours: our evidence as text
    (default: the decision's 'mean ± sd (n) vs ...'); paper / paper_source: the published value
    and where it is printed (table/figure/page, or the authors' code/poster); precondition: what
    must hold for the comparison to mean anything, and whether it did; a failed precondition
    (``precondition_ok=False``) makes the verdict inconclusive whatever the p-values.
    """
    missing = {"verdict", "p_claim", "p_against", "effect", "ci_low", "ci_high", "test"} - set(decision)
    if missing:
        raise ValueError(f"claim {cid!r}: decision lacks {sorted(missing)}; make it with a largebatch.stats.decide* function")
    return {"id": cid, "claim": claim, "metric": metric, "ours": ours if ours is not None else decision.get("ours", ""),
            "paper": paper, "paper_source": paper_source, "effect": decision["effect"],
            "ci_low": decision["ci_low"], "ci_high": decision["ci_high"], "p_claim": decision["p_claim"],
            "p_against": decision["p_against"], "p_claim_adj": np.nan, "p_against_adj": np.nan, "rule": rule,
            "precondition": precondition, "precondition_ok": bool(precondition_ok),
            "verdict": decision["verdict"], "test": decision["test"], "alpha": decision.get("alpha", ALPHA)}


def finalize_claims(rows: Sequence[dict], alpha: float = ALPHA) -> list[dict]:
    """Holm-Bonferroni across one paper's claims, on p_claim and on p_against, then each verdict.

    Returns new rows with p_claim_adj / p_against_adj set and the verdict from the adjusted
    p-values and the precondition. Claim ids must be unique.
    """
    ids = [r["id"] for r in rows]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise ValueError(f"claim ids must be unique within a paper; repeated: {dup}")
    pc = holm([r["p_claim"] for r in rows])
    pa = holm([r["p_against"] for r in rows])
    out = []
    for r, c, a in zip(rows, pc, pa):
        r = dict(r)
        r["p_claim_adj"], r["p_against_adj"] = float(c), float(a)
        r["verdict"] = verdict_of(c, a, r.get("alpha", alpha), bool(r.get("precondition_ok", True)))
        out.append(r)
    return out
