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
batch sizes; ``log_fit`` / ``sqrt_fit`` / ``high_lr_phase`` are the analysis.
"""

from __future__ import annotations

import copy
import math

import numpy as np

TITLE = "Hoffer, Hubara & Soudry 2017: train longer, generalize better"

#: the table's arms, in order; each adds one adaptation to the previous one
ARMS = ("SB", "LB", "+LR", "+GBN", "+RA")

#: the three cumulative adaptations as (arm, previous arm)
STEPS = (("+LR", "LB"), ("+GBN", "+LR"), ("+RA", "+GBN"))

#: Published validation accuracy (%) per network and arm: the results table of the authors'
#: NeurIPS 2017 poster (same columns as the paper's Table 1; one run per cell, the poster
#: prints neither batch sizes nor epochs per row). Keyed like ``networks`` in config.yaml.
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
#: where the weight-distance claims are made (shapes only; no values are printed for them)
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


def arm_spec(run: dict, arm: str, batch: int, small_batch: int) -> dict:
    """Run-spec keys of one arm of the table at large batch `batch` (SB ignores it)."""
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
        spec = regime_adaptation(spec, ra_factor(batch, small_batch))
    return spec


def plan(block: dict, scale: dict) -> list[tuple[dict, dict]]:
    """Every network's table arms, plus the distance batch sizes of Fig. 2.

    The distance network's runs also log extra evaluations on a log-spaced step
    grid (``distance.log_points``).  Each extra distance batch size B gets the
    unadapted run ("LB" arm at batch B, Fig. 2a) and the fully adapted one ("+RA"
    arm, Fig. 2b); the small batch is the same run in both panels.  With ``pack: true``
    all runs of a seed train in one job (one start-up per seed).
    """
    from . import seeds_of

    seeds = seeds_of(block)
    dist = block.get("distance") or {}
    runs = []
    for name, net in block["networks"].items():
        sb, lb = net["small_batch"], net["large_batch"]
        if lb <= sb:
            raise ValueError(f"networks.{name}: large_batch = {lb} must be larger than small_batch = {sb}")
        base = dict(net["run"])
        if not base.get("milestones"):
            raise ValueError(f"networks.{name}.run: give the LR-drop epochs (milestones) of the paper's step regime")
        base.setdefault("schedule", "step")
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
            for seed in seeds:
                labels = {"network": name, "label": net.get("label", name), "arm": arm,
                          "batch_size": sb if arm == "SB" else b, "seed": seed,
                          "table": b == lb}
                if block.get("pack"):
                    labels["pack"] = f"seed{seed}"
                runs.append((labels, {**arm_spec(base, arm, b, sb), "seed": seed}))
    if dist and dist.get("network") not in block["networks"]:
        raise ValueError(f"distance.network = {dist.get('network')!r} is not one of networks "
                         f"{sorted(block['networks'])}")
    return runs


# ----------------------------------------------------------------------------- analysis
def _linear_fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) < 3 or np.ptp(x) == 0:
        return float("nan"), float("nan"), float("nan")
    b, a = np.polyfit(x, y, 1)
    resid = y - (a + b * x)
    ss_tot = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - float((resid ** 2).sum()) / ss_tot if ss_tot > 0 else float("nan")
    return float(a), float(b), r2


def log_fit(t, d) -> tuple[float, float, float]:
    """Least-squares d = a + b ln t; returns (a, b, R^2).  Needs t >= 1 and >= 3 points."""
    t = np.asarray(t, dtype=float)
    if np.any(t <= 0):
        raise ValueError("log_fit: steps must be positive")
    return _linear_fit(np.log(t), d)


def sqrt_fit(t, d) -> tuple[float, float, float]:
    """Least-squares d = a + b sqrt(t) (the random-walk alternative); returns (a, b, R^2)."""
    return _linear_fit(np.sqrt(np.asarray(t, dtype=float)), d)


def high_lr_phase(history, min_step: int = 1):
    """Rows of a run's history during the first (highest) learning-rate phase, step >= min_step.

    A row's ``lr`` is the rate of the last update before it, so the rows whose lr is the
    run's peak are exactly the updates 1..t_drop of the high-LR phase.
    """
    h = history[history["step"] >= min_step]
    peak = h["lr"].max()
    return h[np.isclose(h["lr"], peak, rtol=1e-9, atol=0)]


def log_grid(total: int, points: int) -> list[int]:
    """The log-spaced steps the engine evaluates for ``log_points = points`` (see
    ``largebatch.train.eval_steps``), in order, without the per-epoch evaluations."""
    if points <= 0 or total < 1:
        return []
    return sorted({int(round(s)) for s in np.geomspace(1, total, points)})


def distance_fits(history, log_points: int, total: int, min_step: int = 1) -> dict:
    """Fits of ||w_t - w_0|| in one run's high-LR phase, on its log-grid evaluations at
    updates t >= `min_step` (e.g. after momentum's build-up, 1/(1 - momentum) updates).

    Returns t_drop (last update of the phase), the number of points fitted, d at t_drop,
    and (a, b, R^2) of d = a + b ln t and of the random-walk alternative d = a + b sqrt(t)
    (NaN with fewer than 3 points).
    """
    phase = high_lr_phase(history)
    grid = set(log_grid(total, log_points))
    pts = phase[phase["step"].isin(grid) & (phase["step"] >= min_step)]
    t, d = pts["step"].to_numpy(float), pts["w_dist"].to_numpy(float)
    a, b, r2 = log_fit(t, d) if len(t) else (float("nan"),) * 3
    _, _, r2_sqrt = sqrt_fit(t, d) if len(t) else (float("nan"),) * 3
    return {"t_drop": int(phase["step"].max()) if len(phase) else 0, "points": len(t),
            "d_drop": float(phase["w_dist"].iloc[-1]) if len(phase) else float("nan"),
            "intercept": a, "slope": b, "r2_log": r2, "r2_sqrt": r2_sqrt}


# ----------------------------------------------------------------------------- claims
def _pp(values) -> str:
    from ..stats import describe

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


def _preconditions(*checks: tuple[bool, str]) -> dict:
    return {"precondition_ok": all(ok for ok, _ in checks), "precondition": "; ".join(t for _, t in checks)}


def non_inferior(a, b, margin: float) -> dict:
    """Non-inferiority of a to b: the claim mean(a) > mean(b) - margin, as ``stats.decide`` on
    (a + margin, b); against it: a significantly more than `margin` below b. The effect and its
    CI are reported as mean(a) - mean(b)."""
    from ..stats import decide, describe

    a = np.asarray(a, dtype=float)
    d = decide(a + margin, b, "greater", 0.0)
    d.update(effect=d["effect"] - margin, ci_low=d["ci_low"] - margin, ci_high=d["ci_high"] - margin,
             ours=f"{describe(a)} vs {describe(b)}",
             test=(f"non-inferiority: Welch t-test, one-sided (a > b - {margin:g}), and against: the reverse "
                   f"one-sided test (a < b - {margin:g}); n={d['n_a']}/{d['n_b']}, alpha={d['alpha']:g}"))
    return d


def table_claims(name: str, label: str, acc: dict, train: dict, margins: dict, pre: dict,
                 multi: bool = False) -> list[dict]:
    """Claims H0, H4, H5, H6 of one network from per-seed final accuracies in percent.

    acc / train: arm -> per-seed test / train accuracy (%); margins: the network's ``claims``
    block ({H0: {margin_pp}, H4: {margin_pp}, H5: {margin_pp: [3 steps]}, H6: {margin_pp}});
    pre: the section's ``preconditions`` ({sb_train_acc_min_pp, max_train_gap_pp}).
    """
    from ..stats import claim_row, combine, decide

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
                         _comparable("LB", "SB", train, gap))))
    m4 = float(margins["H4"]["margin_pp"])
    rows.append(claim_row(
        cid("H4"), "The gap comes from the number of updates, not the batch size: LB with all adaptations "
        "(as many updates as SB) is not worse than SB." + sfx, "final test accuracy (%), +RA vs SB",
        named(non_inferior(acc["+RA"], acc["SB"], m4), "+RA", "SB"),
        rule=f"non-inferiority: Welch one-sided +RA > SB - {m4:g} points (half the published SB - LB gap); "
             f"against: +RA more than {m4:g} points below SB", paper=paper("SB", "+RA"), paper_source=psrc,
        **_preconditions(sb_ok, _comparable("+RA", "SB", train, gap))))
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
        **_preconditions(sb_ok)))
    m6 = float(margins["H6"]["margin_pp"])
    rows.append(claim_row(
        cid("H6"), "Ghost Batch Normalization improves generalization without extra updates (+GBN vs +LR, "
        "same number of updates)." + sfx, "final test accuracy (%), +GBN vs +LR",
        named(decide(acc["+GBN"], acc["+LR"], "greater", m6), "+GBN", "+LR"),
        rule=f"Welch one-sided +GBN > +LR; against: reverse test or equivalence within ±{m6:g} points (the "
             f"published +GBN gain)", paper=paper("+LR", "+GBN"), paper_source=psrc,
        **_preconditions(sb_ok, _comparable("+GBN", "+LR", train, gap))))
    return rows


def distance_claims(fits, small_batch: int, claims: dict, min_points: int = 3) -> list[dict]:
    """Claims H1-H3 (Fig. 2) from per-run fits (``distance_fits`` rows with condition,
    batch_size, seed, run). claims: the section's ``claims`` block (H1: r2_min, r2_margin;
    H2, H3: margin_log_ratio)."""
    from ..stats import claim_row, combine, decide_one_sample

    fits = fits.copy()
    # one group per trained configuration: SB is the same run in both panels
    groups = fits[~((fits.condition == "after") & (fits.batch_size == small_batch))]
    short = sorted({f"{c} B={b}" for (c, b), g in groups.groupby(["condition", "batch_size"])
                    if (g.points < min_points).any()})
    fit_pre = {"precondition_ok": not short,
               "precondition": (f"every run's high-LR phase has >= {min_points} log-grid points to fit: "
                                + ("yes" if not short else "NO (" + ", ".join(short) + ")"))}
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
             f"±{r2_margin:g}", paper="curves only (no values printed)", paper_source=SOURCE_FIG2, **fit_pre))

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
        paper_source=SOURCE_FIG2, **fit_pre))
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
        paper="curves only (no values printed)", paper_source=SOURCE_FIG2, **fit_pre))
    return rows


# TODO(issue 15 port): outputs with captions, analysis jobs and section inputs
from .base import Paper as _Paper  # noqa: E402

PAPER = _Paper(key="hoffer", title=TITLE, category="2 Hoffer 2017", plan=plan, outputs=[])
