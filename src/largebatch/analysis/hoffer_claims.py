"""Hoffer, Hubara & Soudry 2017: the section's claims, decided by ``largebatch.stats``.

H0 and H4-H6 come from the table (per network: final test accuracy per arm and seed), H1-H3
from Fig. 2 (``analysis.hoffer.run_fits``). A comparison with SB needs SB to have fitted its
training set, and a generalisation comparison needs the two arms' train accuracies close
(the section's ``preconditions``): a gap between arms that do not fit the training set
equally well is an optimisation gap, not the generalisation gap the paper studies.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..experiments.hoffer import ARMS, PUBLISHED, SOURCE, SOURCE_FIG2, STEPS, seeds_by_arm
from ..stats import claim_row, combine, decide, decide_one_sample, describe
from ..stats import decide_noninferior as non_inferior
from ..stopping import arm_problems
from .hoffer import per_seed

#: the claims in the paper's order (a claim of one network of several is ``H0-<network>``)
CLAIM_IDS = ("H0", "H1", "H2", "H3", "H4", "H5", "H6")
#: the claims the table is evidence for, and those Fig. 2 is
TABLE_CLAIMS = ("H0", "H4", "H5", "H6")
FIG2_CLAIMS = ("H1", "H2", "H3")


def _pp(values) -> str:
    return describe(values, 2)


def _converged(name: str, train_pp, minimum: float) -> tuple[bool, str]:
    """Precondition 'arm `name` fitted its training set': mean final train accuracy >= minimum."""
    v = np.asarray(train_pp, dtype=float)
    m = float(np.nanmean(v)) if v.size else float("nan")
    ok = bool(np.isfinite(m) and m >= minimum)
    return ok, f"{name} converged (final train accuracy >= {minimum:g}%): {m:.1f}% {'yes' if ok else 'NO'}"


def _comparable(a: str, b: str, train: dict, max_gap: float) -> tuple[bool, str]:
    """Precondition for a generalisation claim: the two arms' mean train accuracies within max_gap."""
    gap = float(np.nanmean(train[a]) - np.nanmean(train[b]))
    ok = bool(np.isfinite(gap) and abs(gap) <= max_gap)
    unit = "point" if max_gap == 1 else "points"
    return ok, (f"train accuracies of {a} and {b} at most {max_gap:g} {unit} apart: {a} - {b} = {gap:+.2f} "
                f"{'yes' if ok else 'NO'}")


def problems_by_arm(runs: pd.DataFrame) -> dict[str, list[str]]:
    """``stopping.arm_problems`` of each arm's runs (every batch size of the arm): why any of
    them is no evidence (stopped at a safety cap, no learning, diverged)."""
    return {arm: arm_problems(g.to_dict("records"), arm) for arm, g in runs.groupby("arm", observed=True)}


def _clean(problems: dict | None, arms) -> list[tuple[bool, str]]:
    """Precondition 'no run of the claim's arms is a bad run' (``stopping.arm_problems``), always
    listed; problems: arm -> sentences (None: not checked, e.g. a unit test's bare values)."""
    if problems is None:
        return []
    arms = list(dict.fromkeys(arms))
    bad = [t for a in arms for t in problems.get(a, [])]
    return [(not bad, f"no run of {', '.join(arms)} stopped at a cap, without learning or diverged: "
                      + ("yes" if not bad else "NO (" + "; ".join(bad) + ")"))]


def _preconditions(*checks: tuple[bool, str]) -> dict:
    return {"precondition_ok": all(ok for ok, _ in checks), "precondition": "; ".join(t for _, t in checks)}


def _seeded(n_seeds: dict, arms, published: bool = False) -> list[tuple[bool, str]]:
    """Precondition 'every arm the claim's tests compare has >= 2 seeds' (a t-test needs two
    values), where an arm has its own fewer seeds (``arm_seeds``, e.g. +RA on one seed as the
    poster's table): its value is then shown, not tested. Listed only where it fails, so a
    section whose arms all have >= 2 seeds reads as before. n_seeds: arm -> planned seeds."""
    few = [a for a in dict.fromkeys(arms) if n_seeds.get(a, 2) < 2]
    if not few:
        return []
    what = ", ".join(f"{a} {'one seed' if n_seeds[a] == 1 else f'{n_seeds[a]} seeds'}" for a in few)
    return [(False, f"a test needs >= 2 seeds per arm: NO, {what}: not testable"
                    + ("; shown beside the published value" if published else ""))]


def table_claims(name: str, label: str, acc: dict, train: dict, margins: dict, pre: dict,
                 multi: bool = False, problems: dict | None = None) -> list[dict]:
    """Claims H0, H4, H5, H6 of one network from per-seed final accuracies in percent.

    acc / train: arm -> per-seed test / train accuracy (%); margins: the network's ``claims``
    block ({H0: {margin_pp}, H4: {margin_pp}, H5: {margin_pp: [3 steps]}, H6: {margin_pp}});
    pre: the section's ``preconditions`` ({sb_train_acc_min_pp, max_train_gap_pp}); problems:
    arm -> ``stopping.arm_problems`` of its runs (``problems_by_arm``), a precondition of every
    claim on the arm.
    """
    sfx = f" [{label}]" if multi else ""
    cid = (lambda c: f"{c}-{name}") if multi else (lambda c: c)
    pub = PUBLISHED.get(name)
    psrc = SOURCE if pub else ""

    def paper(*arms):
        if not pub:
            return "not published"
        return f"{name} on {pub['data']}: " + ", ".join(f"{a} {pub[a]:.2f}" for a in arms)

    sb_ok = _converged("SB", train["SB"], pre["sb_train_acc_min_pp"])
    gap = pre["max_train_gap_pp"]
    n_seeds = {arm: len(acc[arm]) for arm in ARMS}

    def seeded(*arms):  # SB too: every table claim's precondition reads SB's runs (SB converged)
        return [*_clean(problems, ("SB", *arms)), *_seeded(n_seeds, arms, published=bool(pub))]

    rows = []
    m0 = float(margins["H0"]["margin_pp"])

    def named(d, a, b):
        d["ours"] = f"{a} {_pp(acc[a])} vs {b} {_pp(acc[b])}"
        return d

    rows.append(claim_row(
        cid("H0"), "With the same epochs the large batch reaches a lower test accuracy than the small batch "
        "(the generalization gap the adaptations close)." + sfx, "final test accuracy (%), LB vs SB",
        named(decide(acc["LB"], acc["SB"], "less", m0), "LB", "SB"),
        rule=f"Welch one-sided LB < SB; against: reverse test or equivalence within ±{m0:g} points (the "
             "published SB - LB gap)", paper=paper("SB", "LB"), paper_source=psrc,
        **_preconditions(sb_ok, _converged("LB", train["LB"], pre["sb_train_acc_min_pp"]),
                         _comparable("LB", "SB", train, gap), *seeded("LB", "SB"))))
    m4 = float(margins["H4"]["margin_pp"])
    rows.append(claim_row(
        cid("H4"), "The gap comes from the number of updates, not the batch size: LB with all adaptations "
        "(as many updates as SB) is not worse than SB." + sfx, "final test accuracy (%), +RA vs SB",
        named(non_inferior(acc["+RA"], acc["SB"], m4), "+RA", "SB"),
        rule=f"non-inferiority: Welch one-sided +RA > SB - {m4:g} points (half the published SB - LB gap); "
             f"against: +RA more than {m4:g} points below SB", paper=paper("SB", "+RA"), paper_source=psrc,
        **_preconditions(sb_ok, _comparable("+RA", "SB", train, gap), *seeded("+RA", "SB"))))
    m5 = [float(x) for x in margins["H5"]["margin_pp"]]
    if len(m5) != len(STEPS):
        raise ValueError(f"networks.{name}.claims.H5.margin_pp: give {len(STEPS)} margins, one per adaptation "
                         f"step ({', '.join(f'{n} vs {o}' for n, o in STEPS)}), got {len(m5)}")
    parts = []
    for (new, old), m in zip(STEPS, m5):
        d = decide(acc[new], acc[old], "greater", m)
        d["label"] = f"{new} > {old}"
        parts.append(d)
    h5 = combine(parts, "all")
    h5["ours"] = "; ".join(f"{new} {_pp(acc[new])} vs {old} {_pp(acc[old])}" for new, old in STEPS)
    rows.append(claim_row(
        cid("H5"), "Each adaptation (+LR, +GBN, +RA) raises the test accuracy over the previous arm." + sfx,
        "final test accuracy (%), each arm vs the previous one", h5,
        rule="all three steps: Welch one-sided (arm > previous arm); the claim holds if every step does "
             "(largest p), is refuted if one step is refuted (reverse test or equivalence within that step's "
             f"published gain: {', '.join(f'{n} ±{m:g}' for (n, _), m in zip(STEPS, m5))}; Bonferroni over "
             "steps)", paper=paper("LB", "+LR", "+GBN", "+RA"), paper_source=psrc,
        **_preconditions(sb_ok, *seeded(*(a for step in STEPS for a in step)))))
    m6 = float(margins["H6"]["margin_pp"])
    rows.append(claim_row(
        cid("H6"), "Ghost Batch Normalization improves generalization without extra updates (+GBN vs +LR, "
        "same number of updates)." + sfx, "final test accuracy (%), +GBN vs +LR",
        named(decide(acc["+GBN"], acc["+LR"], "greater", m6), "+GBN", "+LR"),
        rule=f"Welch one-sided +GBN > +LR; against: reverse test or equivalence within ±{m6:g} points (the "
             f"published +GBN gain)", paper=paper("+LR", "+GBN"), paper_source=psrc,
        **_preconditions(sb_ok, _comparable("+GBN", "+LR", train, gap), *seeded("+GBN", "+LR"))))
    return rows


def distance_claims(fits, small_batch: int, claims: dict, min_points: int = 3,
                    n_seeds: dict | None = None, problems: dict | None = None) -> list[dict]:
    """Claims H1-H3 (Fig. 2) from per-run fits (``distance_fits`` rows with condition,
    batch_size, seed, run). claims: the section's ``claims`` block (H1: r2_min, r2_margin;
    H2, H3: margin_log_ratio). n_seeds: arm -> planned seeds of the distance network (SB's runs
    fit both panels, LB's panel (a), +RA's panel (b)); a claim that tests an arm of fewer than
    2 seeds is inconclusive by its precondition (default: every arm has enough). problems: arm ->
    ``stopping.arm_problems`` of the distance network's runs of the arm (all its batch sizes)."""
    fits = fits.copy()
    # one group per trained configuration: SB is the same run in both panels
    groups = fits[~((fits.condition == "after") & (fits.batch_size == small_batch))]
    short = sorted({f"{c} B={b}" for (c, b), g in groups.groupby(["condition", "batch_size"])
                    if (g.points < min_points).any()})
    fit_ok = (not short, f"every run's high-LR phase has >= {min_points} log-grid points to fit: "
                         + ("yes" if not short else "NO (" + ", ".join(short) + ")"))
    n_seeds = n_seeds or {}
    has_after = bool(((groups.condition == "after") & (groups.batch_size != small_batch)).any())

    def fit_pre(*arms):
        return _preconditions(fit_ok, *_clean(problems, arms), *_seeded(n_seeds, arms))

    rows = []
    h1 = claims["H1"]
    r2_min, r2_margin = float(h1["r2_min"]), float(h1["r2_margin"])
    parts = []
    for (c, b), g in groups.groupby(["condition", "batch_size"], sort=True):
        level = decide_one_sample(g.r2_log, "greater", r2_min, 0.0)
        better = decide_one_sample(g.r2_log - g.r2_sqrt, "greater", 0.0, r2_margin)
        part = combine([level, better], "all")
        part["label"] = f"{'SB' if b == small_batch else c} B={b}"
        parts.append(part)
    h1d = combine(parts, "all")
    h1d["ours"] = (f"R² of a + b ln t {fits.r2_log.min():.3f}-{fits.r2_log.max():.3f}, of a + b √t "
                   f"{fits.r2_sqrt.min():.3f}-{fits.r2_sqrt.max():.3f} ({len(groups)} runs in {len(parts)} groups)")
    rows.append(claim_row(
        "H1", "In the high-LR phase the weight distance from initialisation grows logarithmically with the "
        "number of updates (d ≈ a + b ln t).", "R² of d = a + b ln t per run, by batch size and panel", h1d,
        rule=f"every group (batch size, before/after): one-sample t-test R² > {r2_min:g} and R²(ln t) - R²(√t) "
             f"> 0; against: R² significantly below {r2_min:g}, or the √t fit better, or the two within "
             f"±{r2_margin:g}", paper="curves only (no values printed)", paper_source=SOURCE_FIG2,
        **fit_pre("SB", "LB", *(["+RA"] if has_after else []))))

    def log_ratio(cond: str, b: int):
        sb = fits[(fits.condition == "before") & (fits.batch_size == small_batch)].set_index("seed").slope
        x = fits[(fits.condition == cond) & (fits.batch_size == b)].set_index("seed").slope
        common = sb.index.intersection(x.index)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.log(x[common].to_numpy(float) / sb[common].to_numpy(float)), common

    others = sorted(b for b in fits.batch_size.unique() if b != small_batch)
    m2 = float(claims["H2"]["margin_log_ratio"])
    parts = []
    for b in others:
        lr, _ = log_ratio("before", b)
        d = decide_one_sample(lr, "less", 0.0, m2)
        d["label"] = f"B={b}"
        parts.append(d)
    h2 = combine(parts, "all")
    h2["ours"] = "; ".join(f"B={b}: slope ratio to SB {np.exp(np.nanmean(log_ratio('before', b)[0])):.2f}"
                           for b in others)
    rows.append(claim_row(
        "H2", "Before adaptation each batch size has its own slope: a larger batch's distance grows more slowly "
        "per update than the small batch's (Fig. 2a).", f"ln(slope(B) / slope(B={small_batch})) per seed", h2,
        rule=f"every larger batch: one-sample t-test of the per-seed log slope ratio < 0; against: > 0, or "
             f"within ±{m2:g} (slopes within ~{100 * (np.exp(m2) - 1):.0f}%)", paper="curves only (no values printed)",
        paper_source=SOURCE_FIG2, **fit_pre("SB", "LB")))
    m3 = float(claims["H3"]["margin_log_ratio"])
    parts, texts = [], []
    for b in others:
        before, sb_before = log_ratio("before", b)
        after, sb_after = log_ratio("after", b)
        if not len(after):
            continue
        common = sb_before.intersection(sb_after)
        ib = [list(sb_before).index(s) for s in common]
        ia = [list(sb_after).index(s) for s in common]
        closer = np.abs(after[ia]) - np.abs(before[ib])
        d = decide_one_sample(closer, "less", 0.0, m3)
        d["label"] = f"B={b}"
        parts.append(d)
        texts.append(f"B={b}: |ln ratio| before {np.nanmean(np.abs(before)):.2f}, after {np.nanmean(np.abs(after)):.2f}")
    h3 = combine(parts, "all") if parts else combine([decide_one_sample([], "less", 0.0, m3)])
    h3["ours"] = "; ".join(texts) or "no adapted runs"
    rows.append(claim_row(
        "H3", "After the adaptations (+LR +GBN +RA) a larger batch's distance grows at about the small batch's "
        "rate: its slope moves towards the small batch's (Fig. 2b).",
        f"|ln(slope(B) / slope(B={small_batch}))| after minus before, per seed", h3,
        rule=f"every larger batch: one-sample t-test of the per-seed change < 0; against: > 0, or within ±{m3:g}",
        paper="curves only (no values printed)", paper_source=SOURCE_FIG2, **fit_pre("SB", "LB", "+RA")))
    return rows


def section_claims(block: dict, tab: pd.DataFrame, fits: pd.DataFrame, runs: pd.DataFrame | None = None) -> list[dict]:
    """Every claim of the section, in the paper's order (H0, H1, ...; per network where the
    block has several): H1-H3 from the Fig. 2 ``fits``, H0 and H4-H6 per network from the table
    runs ``tab`` (``analysis.hoffer.table_runs``). Every claim's precondition includes that no
    run of its arms is a bad run (``stopping.arm_problems``): the table claims over ``tab``'s
    runs, Fig. 2's over every run of the distance network in ``runs`` (default: ``tab``)."""
    nets, pre = block["networks"], block["preconditions"]
    dist_net = block["distance"]["network"]
    n_seeds = {arm: len(seeds) for arm, seeds in seeds_by_arm(block, dist_net).items()}
    every = tab if runs is None else runs
    claims = distance_claims(fits, nets[dist_net]["small_batch"], block["claims"], pre["min_fit_points"], n_seeds,
                             problems=problems_by_arm(every[every.network == dist_net]))
    for name, net in nets.items():
        acc = {arm: per_seed(tab, name, arm, "test_acc") for arm in ARMS}
        train = {arm: per_seed(tab, name, arm, "train_acc") for arm in ARMS}
        claims += table_claims(name, net.get("label", name), acc, train, net["claims"], pre, multi=len(nets) > 1,
                               problems=problems_by_arm(tab[tab.network == name]))
    claims.sort(key=lambda r: (r["id"].split("-")[0], r["id"]))
    return claims


def claim_ids(claims: list[dict], of) -> list[str]:
    """The ids of the claims whose base id (H0 of H0-C1) is in `of`, in the claims' order."""
    return [r["id"] for r in claims if r["id"].split("-")[0] in of]
