"""Golmant et al. 2018: the section's claims G1-G4 and GX1, each decided per seed by
``largebatch.stats`` on the curves of ``largebatch.analysis.golmant.Results``.

Every claim is decided only on the eligible curves (threshold at most ``max_threshold_vs_chance``
x the chance loss); when no curve is eligible it is decided on all of them and its precondition
fails (the verdict is then inconclusive). The margins and bounds come from the config block
(``claims``) and ``LINEAR_ALPHA`` / ``PLATEAU_ALPHA``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..experiments.golmant import PUBLISHED
from ..stopping import arm_problems
from ..stats import claim_row, combine, decide, decide_one_sample, decide_rank, decide_trend, describe
from .golmant import LINEAR_ALPHA, METRICS, PLATEAU_ALPHA, Results, censored, fmt_b


def use(df: pd.DataFrame) -> tuple[pd.DataFrame, bool]:
    """The eligible curves, or every curve when none is (then the precondition fails)."""
    e = df[df.eligible]
    return (e, True) if len(e) else (df, False)


def elig_text(R: Results, data: str = "standard", metrics=tuple(METRICS)) -> str:
    """How many of a data role's thresholds are below the eligibility bar, and where they lie."""
    S, thresholds = R.setup, R.thresholds
    t = thresholds[(thresholds.data == data) & thresholds.metric.isin(metrics)]
    k = int(t.eligible.sum())
    return (f"{k} of {len(t)} thresholds are below {S.maxf:g} x the chance loss ({S.chance[data]:.2f}) "
            f"(thresholds at {t.vs_chance.min():.2f}-{t.vs_chance.max():.2f} x chance)")


def cut_text(df: pd.DataFrame) -> str:
    """Where runs that did not learn cut the per-seed curves of ``df``."""
    c = df.dropna(subset=["cut"]).drop_duplicates(["strategy", "seed"])
    if not len(c):
        return "every run learnt"
    return "runs that did not learn cut the curve at " + ", ".join(
        f"B = {int(b)} ({n} seed(s))" for b, n in c.groupby("cut").size().items())


def arm_runs(R: Results, data: str, strategy: str, before_cut: bool = True) -> list[dict]:
    """The runs a claim's statistic reads on one curve family (a data role and strategy): every
    seed's runs up to its first batch size that did not learn (that run ends the curve and is
    reported, it is not a point of it), or all of them (``before_cut=False``)."""
    g = R.sweep[(R.sweep.data == data) & (R.sweep.strategy == strategy)]
    if before_cut:
        cut = {s: g[(g.seed == s) & ~g.learnt].batch_size.min() for s in g.seed.unique()}
        g = g[[not (b >= cut[s]) for b, s in zip(g.batch_size, g.seed)]]
    return g.drop_duplicates("run").to_dict("records")


def arms_check(R: Results, arms: dict[str, list[dict]]) -> tuple[str, bool]:
    """Precondition text and verdict: no run of any arm stopped at a cap, diverged or did not
    learn (``largebatch.stopping.arm_problems``)."""
    if not arms:
        return "no arm to check", True
    probs = [p for label, rows in arms.items() for p in arm_problems(rows, label)]
    return ("; ".join(probs) if probs else f"no run of the arms ({', '.join(arms)}) stopped at a cap, diverged or "
            "did not learn"), not probs


def _pre(R: Results, text: str, ok: bool, arms: dict[str, list[dict]]) -> dict:
    """A claim's precondition: its own test and the arms' check, both stated."""
    at, aok = arms_check(R, arms)
    return {"precondition": f"{text}; {at}", "precondition_ok": bool(ok and aok)}


def _standard(R: Results) -> pd.DataFrame:
    return R.per_seed[(R.per_seed.data == "standard")]


def g1(R: Results) -> dict:
    """G1 (LSR): three regimes, per seed: near-linear first doubling, exponent falling with log2 B,
    plateau over the last interval."""
    S, C = R.setup, R.setup.claims
    std_seed = _standard(R)
    g, ok = use(std_seed[std_seed.strategy == S.lsr])
    g = g[g.n_points >= 3]
    seedwise = g.groupby("seed").agg(first=("alpha_first", "mean"), last=("alpha_last", "mean"))
    trend = pd.DataFrame([(s, m, a) for s, mids, al in zip(g.seed, g.mid_log2, g.alpha) for m, a in zip(mids, al)],
                         columns=["seed", "mid", "alpha"])
    trend["alpha"] = trend.alpha.replace(-np.inf, np.nan)  # censored steps leave no -inf; a 0/0 pair stays out
    trend = trend.groupby(["seed", "mid"], as_index=False).alpha.mean()
    parts = [dict(decide_one_sample(seedwise["first"], "greater", LINEAR_ALPHA, C["G1"]["margin"]),
                  label=f"near-linear first doubling (exponent > {LINEAR_ALPHA})"),
             dict(decide_trend(trend.mid, trend.alpha, "less", C["G1"]["margin"]), label="exponent falls as B grows"),
             dict(decide_one_sample(seedwise["last"], "less", PLATEAU_ALPHA, C["G1"]["margin"]),
                  label=f"plateau over the last interval (exponent < {PLATEAU_ALPHA})")]
    return claim_row(
        "G1", f"{S.slabel[S.lsr]} (the strategy the paper finds to scale): the speed-up vs batch size has three "
        "regimes, near-linear scaling, then diminishing returns, then a plateau.",
        "local scaling exponent alpha (S ~ B^alpha between neighbouring batch sizes) of each seed's curve, averaged "
        "over the eligible thresholds; never reached counted as twice the step cap",
        combine(parts, "all"),
        rule=f"all three parts: first-doubling exponent > {LINEAR_ALPHA} (one-sample t over seeds), exponent falling "
             f"with log2 B (slope test), last exponent < {PLATEAU_ALPHA} (one-sample t); against: any part refuted",
        ours=(f"first exponent {describe(seedwise['first'], 2)}, last {describe(seedwise['last'], 2)}; slope of the "
              f"exponent {parts[1]['effect']:+.2f} per doubling; {cut_text(g)}") if len(seedwise) else "no curve",
        paper=PUBLISHED["G1"][0], paper_source=PUBLISHED["G1"][1],
        **_pre(R, elig_text(R) + ("" if len(g) else "; no curve with 3 learning batch sizes"), ok and len(g) > 0,
               {f"standard {S.lsr}": arm_runs(R, "standard", S.lsr)}))


def g2(R: Results) -> dict:
    """G2: the critical batch is far below the data size (LSR, per seed)."""
    S, C = R.setup, R.setup.claims
    std_seed = _standard(R)
    g, ok = use(std_seed[std_seed.strategy == S.lsr])
    g = g.assign(rel=np.log2(g.b_crit / S.n_std)).dropna(subset=["rel"])
    x = g.groupby("seed").rel.mean()
    ref = float(C["G2"]["reference_fraction"])
    return claim_row(
        "G2", "The batch size beyond which steps stop decreasing (the critical batch) is far below the data size.",
        f"log2(B*/n_train) per seed ({S.slabel[S.lsr]}, mean over the eligible curves; a lower bound counts at its "
        "value)",
        decide_one_sample(x, "less", round(float(np.log2(ref)), 3), C["G2"]["margin"]),
        rule=f"one-sample t over seeds: B* < {ref:g} x n_train ({ref * S.n_std:,.0f}); against: above it, or within "
             f"±{C['G2']['margin']:g} octave of it",
        ours=(f"B* {fmt_b(2 ** (x.mean()) * S.n_std)} (geometric mean over {len(x)} seeds; "
              f"{int(g.lower_bound.sum())} of {len(g)} curves only a lower bound) vs n_train {S.n_std:,}"),
        paper=PUBLISHED["G2"][0], paper_source=PUBLISHED["G2"][1],
        **_pre(R, elig_text(R), ok and len(x) > 0, {f"standard {S.lsr}": arm_runs(R, "standard", S.lsr)}))


def g3(R: Results) -> list[dict]:
    """G3: LSR / SRSR help at medium batch sizes, not at the largest (no row without a fixed-lr
    strategy to compare with)."""
    S, C = R.setup, R.setup.claims
    lo, hi = (float(v) for v in C["medium_batch"])
    grid, b0 = R.grid, R.b0["standard"]
    sd = R.st[(R.st.data == "standard")].copy()
    # the largest batch at which every strategy's runs learnt: a run at chance is no evidence
    ok_b = sd.groupby("batch_size").learnt.all()
    bmax = max((int(b) for b, v in ok_b.items() if v), default=grid[-1])
    med = [b for b in grid if lo * b0 <= b <= hi * b0 and b <= bmax]
    sd = sd[sd.batch_size <= bmax]
    sd["logT"] = np.log2(censored(sd.steps, sd.budget if "budget" in sd else S.steps))
    sd_e, ok = use(sd)
    parts, text = [], []
    if S.fixed is not None:
        base = sd_e[sd_e.strategy == S.fixed].set_index(["metric", "frac", "seed", "batch_size"]).logT
        for s in S.scaled:
            d = sd_e[sd_e.strategy == s].set_index(["metric", "frac", "seed", "batch_size"]).logT - base
            d = d.dropna().reset_index()
            mid = d[d.batch_size.isin(med)].groupby("seed").logT.mean()
            top = d[d.batch_size == bmax].groupby("seed").logT.mean()
            parts.append(dict(decide_one_sample(mid, "less", 0.0, C["G3"]["margin"]),
                              label=f"{s.upper()} faster at B = {med[0]}..{med[-1]}" if med else f"{s.upper()} medium"))
            parts.append(dict(decide_one_sample(top, "greater", -float(C["G3"]["margin"]), 0.0),
                              label=f"{s.upper()} not faster at B = {bmax}"))
            text.append(f"{s.upper()} vs fixed: {describe(mid, 2)} octaves at B = {med[0]}..{med[-1]}, "
                        f"{describe(top, 2)} at B = {bmax}")
    if not parts:
        return []
    arms = {f"standard {s} B <= {bmax}": [r for r in R.sweep[(R.sweep.data == "standard") & (R.sweep.strategy == s)
                                                                & (R.sweep.batch_size <= bmax)]
                                          .drop_duplicates("run").to_dict("records")] for s in [S.fixed, *S.scaled]}
    return [claim_row(
        "G3", "LSR and SRSR help only in the small-to-medium batch regime: at the largest batches they are no "
        "faster than the fixed learning rate.",
        "log2 T(strategy) - log2 T(fixed lr) per seed (negative: fewer steps), mean over the eligible curves; never "
        "reached or not learnt counted as twice the step cap",
        combine(parts, "all"),
        rule=f"per strategy: medium batches ({lo:g}x..{hi:g}x B0) faster (one-sample t < 0; against: slower or "
             f"within ±{C['G3']['margin']:g} octave) and at B = {bmax} not faster by more than "
             f"{C['G3']['margin']:g} octave; every part must hold",
        ours="; ".join(text) + (f" (B = {bmax} is the largest batch at which every strategy learnt)"
                                if bmax < grid[-1] else ""),
        paper=PUBLISHED["G3"][0], paper_source=PUBLISHED["G3"][1], **_pre(R, elig_text(R), ok and bool(med), arms))]


def _vs_size_effect(R: Results, cid: str, claim: str, roles: tuple[str, ...], pair: tuple[str, str], effect: str,
                    labels: dict[str, str], where: str, pair_on: str, eligible_on: str) -> dict:
    """G4 / G5: the effect of ``pair`` (|log2 B*(a) - log2 B*(b)|) against the data-size effect
    |log2 B*(standard) - log2 B*(small)|, per seed (the variants' strategy, train-loss thresholds
    eligible on every role of ``roles``); ``labels[role]`` names each role's B* in the text, and
    ``where`` / ``pair_on`` / ``eligible_on`` complete its sentences."""
    S, C = R.setup, R.setup.claims
    pv = R.per_seed[(R.per_seed.strategy == S.var_strat) & (R.per_seed.metric == "train_loss")].copy()
    common = [f for f in S.fracs if all(R.elig((r, "train_loss", f)) for r in roles)]
    ok = bool(common)
    pv = pv[pv.frac.isin(common or S.fracs)]
    w = pv.assign(l2=np.log2(pv.b_crit)).pivot_table(index="seed", columns="data", values="l2", aggfunc="mean").reindex(
        columns=list(roles))
    d_e, d_s = (w[pair[0]] - w[pair[1]]).abs(), (w["standard"] - w["small"]).abs()
    g = R.summary[(R.summary.strategy == S.var_strat) & (R.summary.metric == "train_loss")]
    bs = {r: " / ".join(fmt_b(x, lb) for x, lb in zip(g[g.data == r].sort_values("frac").b_crit,
                                                      g[g.data == r].sort_values("frac").lower_bound)) for r in roles}
    return claim_row(
        cid, claim,
        f"per seed: |log2 B*({labels[pair[0]]}) - log2 B*({labels[pair[1]]})|{pair_on} vs |log2 B*(standard) - "
        f"log2 B*(small)| ({S.var_strat.upper()}, train-loss thresholds eligible on {eligible_on})",
        decide(d_e, d_s, "greater", C[cid]["margin"]),
        rule=f"one-sided Welch over seeds ({effect} effect larger); against: smaller, or equal within "
             f"±{C[cid]['margin']:g} octave",
        ours=(f"{effect} effect {describe(d_e, 2)} vs size effect {describe(d_s, 2)} octaves; B* per threshold "
              "(seed-mean curves): " + "; ".join(f"{labels[r]} {bs[r]}" for r in labels)),
        paper=PUBLISHED["G4"][0], paper_source=PUBLISHED["G4"][1],
        **_pre(R, ("train-loss thresholds q = " + ", ".join(f"{f:g}" for f in common) + " are below "
                   f"{S.maxf:g} x chance {where}") if ok else
               f"no train-loss threshold is below {S.maxf:g} x the chance loss {where}", ok,
               {f"{r} {S.var_strat}": arm_runs(R, r, S.var_strat) for r in roles}))


def g4(R: Results) -> list[dict]:
    """G4: complexity matters more than size (the variants' strategy, train loss, per seed); no
    row without the easy, hard and small variants."""
    S = R.setup
    if not {"easy", "hard", "small"} <= set(S.roles):
        return []
    return [_vs_size_effect(
        R, "G4", "The critical batch depends more on data complexity than on the size of the dataset.",
        ("easy", "hard", "standard", "small"), ("hard", "easy"), "complexity",
        {"easy": "easy", "standard": "standard", "hard": "hard",
         "small": f"small ({S.sizes[S.dname['small']]:,} train)"}, "on all four data sets", "", "all four data sets")]


def g5(R: Results) -> list[dict]:
    """G5: the critical batch depends more on the architecture (the ``arch`` role: a second
    network on the standard data) than on the size of the data set (``small``); no row without
    both roles."""
    S = R.setup
    if not {"arch", "small"} <= set(S.roles):
        return []
    model = {r: S.block["datasets"][r].get("run", {}).get("model", S.block["run"]["model"])
             for r in ("arch", "standard", "small")}
    return [_vs_size_effect(
        R, "G5", "The critical batch depends more on the model architecture than on the size of the dataset.",
        ("arch", "standard", "small"), ("arch", "standard"), "architecture",
        {"standard": model["standard"], "arch": model["arch"],
         "small": f"{model['standard']} on {S.sizes[S.dname['small']]:,} train"},
        "for both networks and the small data", " on the standard data", "all three")]


def prediction_points(R: Results) -> pd.DataFrame:
    """The curves GX1 compares (the variants' strategy, train loss) that have a finite measured
    and predicted critical batch."""
    S, summary = R.setup, R.summary
    pts = summary[(summary.strategy == S.var_strat) & (summary.metric == "train_loss")]
    return pts[np.isfinite(pts.b_pred) & np.isfinite(pts.b_crit)]


def gx1(R: Results) -> dict:
    """GX1 (beyond the paper): the noise scale predicts the critical batch. One row even without
    points (then inconclusive, with the reason)."""
    S, C = R.setup, R.setup.claims
    cmp_all = prediction_points(R)
    cmp, ok = use(cmp_all)
    within = float(C["GX1"]["within"])
    ratio = np.log2(cmp.b_crit / cmp.b_pred)
    parts = [dict(decide_rank(cmp.b_pred, cmp.b_crit, "greater"), label="positive rank correlation"),
             dict(decide_one_sample(np.abs(ratio), "less", float(np.log2(within)), 0.0),
                  label=f"|log2(measured/predicted)| < {np.log2(within):g}")]
    return claim_row(
        "GX1", "(Beyond the paper; McCandlish et al. 2018) The gradient noise scale B_simple, measured at the loss "
        "of a threshold, predicts the critical batch.",
        f"measured B* ({S.var_strat.upper()}, train loss, seed-mean curve) vs predicted B_simple + 2·B0, one point "
        "per data set and eligible threshold",
        combine(parts, "all"),
        rule=f"both: Spearman rho > 0 (one-sided) and mean |log2 ratio| < log2 {within:g} (within {within:g}x; "
             "one-sample t); against: either refuted",
        ours=(f"rho {parts[0]['effect']:+.2f}; measured/predicted from {2 ** ratio.min():.2f} to "
              f"{2 ** ratio.max():.2f} over {len(cmp)} points ({int(cmp.lower_bound.sum())} measured B* only lower "
              "bounds)") if len(cmp) else "no data set and threshold with a finite measured and predicted B*",
        paper=PUBLISHED["GX1"][0], paper_source=PUBLISHED["GX1"][1],
        **_pre(R, (f"{len(cmp)} points with an eligible threshold" if ok and len(cmp) >= 4 else
                   f"only {int(cmp_all.eligible.sum())} points with a threshold below {S.maxf:g} x chance (need 4)"),
               ok and len(cmp) >= 4, {f"{r} {S.var_strat}": arm_runs(R, r, S.var_strat) for r in sorted(set(cmp.data))}))


def claims(R: Results) -> list[dict]:
    """Every claim row, in the report's order."""
    return [g1(R), g2(R), *g3(R), *g4(R), *g5(R), gx1(R)]
