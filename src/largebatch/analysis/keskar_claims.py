"""Keskar et al. 2017: the claims, their preconditions and their decisions.

K1-K7 compare the SB and LB runs of one network (``sb_lb_claims``), K8 reads the batch-size
sweep (``sweep_claim``); ``largebatch.stats`` decides every verdict. A claim whose
precondition fails (a run with a problem, ``stopping.arm_problems``: stopped at the safety
cap, no learning, diverged; or one not stopped by the paper's rule, patience; for K1 also
train accuracies too far apart) is inconclusive whatever its test says. ``arm_check``, ``describe_unit`` and
``margin_note`` are shared with the batch-size baseline (``analysis.baseline``), which is
built on Keskar et al.'s design.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd

from ..experiments.keskar import (DATASET_NAMES, PAPER_DATASET, PUBLISHED, PUBLISHED_DISTANCE_RATIO,
                                  PUBLISHED_THRESHOLD, SOURCES, smallest_published_gap, smallest_published_ratio)
from ..stats import claim_row, combine, decide, decide_one_sample, decide_trend, describe, readable_digits
from ..stopping import arm_problems
from .keskar import sharp_col, threshold_batch

#: stop reasons that mean "trained until the training loss ceased to improve" (the paper's rule);
#: any other (the safety cap, divergence) means the run did not converge
CONVERGED_STOPS = ("patience",)
#: what every claim's precondition asks of its arms' runs, in words (``arm_check``)
NO_PROBLEM = "none at the safety cap, without learning or diverged"


def _pct(values) -> np.ndarray:
    return 100.0 * np.asarray(values, dtype=float)


def _described(values) -> str:
    """'mean ± sd (n=k)' of sharpness values with at least 3 decimals and 2 significant figures."""
    return describe(values, readable_digits(values))


def describe_unit(values, unit: str = "", digits: int = 2) -> str:
    """'mean ± sd unit (n=k)' (``stats.describe`` with the unit before the count)."""
    text = describe(values, digits)
    return text.replace(" (n=", f" {unit} (n=") if unit else text


def _num(value: float, spec: str) -> str:
    return format(value, spec) if np.isfinite(value) else "n/a"


def _log10(values) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log10(np.asarray(values, dtype=float))


def arm_check(arms: dict[str, pd.DataFrame], *, similar_train_pp: float | None = None,
              converged: Sequence[str] | None = CONVERGED_STOPS) -> tuple[bool, str]:
    """Preconditions of a comparison between arms (run tables with ``status``,
    ``stop_reason`` and ``train_acc`` as a fraction): no run of any arm has a problem
    (``stopping.arm_problems``: stopped at the safety cap, did not learn, diverged); with
    ``converged``, also every run stopped by one of those stop reasons (the paper's rule, the
    stricter check: a run that ended any other way did not converge); and, with
    ``similar_train_pp``, the arms' mean train accuracies within that many percentage points.
    Returns (ok, what was found)."""
    problems, facts = [], []
    for label, arm in arms.items():
        if arm.empty:
            problems.append(f"{label} has no runs")
            continue
        found = arm_problems(arm.to_dict("records"), label)
        stops = arm["stop_reason"].astype(str)
        if converged is not None:
            # cap and diverged are arm_problems' own sentences; any other non-converged stop here
            other = stops[~stops.isin([*converged, "cap", "diverged"])]
            if len(other):
                found.append(f"{label}: {len(other)} of {len(arm)} runs stopped by "
                             f"{', '.join(sorted(set(other)))}, not by {'/'.join(converged)}")
        if found:
            problems.extend(found)
        else:
            facts.append(f"{label}: {len(arm)} of {len(arm)} stopped by {', '.join(sorted(set(stops)))}")
    if similar_train_pp is not None and len(arms) == 2 and not any(a.empty for a in arms.values()):
        (n1, a1), (n2, a2) = arms.items()
        m1, m2 = 100 * a1["train_acc"].mean(), 100 * a2["train_acc"].mean()
        gap = abs(m2 - m1)
        text = f"train accuracy {n1} {m1:.2f} %, {n2} {m2:.2f} % ({gap:.2f} pp apart)"
        (facts if gap <= similar_train_pp else problems).append(text)
    if problems:
        return False, "failed: " + "; ".join(problems + facts)
    return True, "met: " + "; ".join(facts)


def margin_note(cid: str, value: float) -> str:
    """Where a margin comes from, for the claims table: '; the smallest published ...' when
    ``value`` is the published quantity the config comments name, else '; set in config'."""
    published = {"K1": lambda: smallest_published_gap()[0], "K2": lambda: smallest_published_ratio("table3")[0],
                 "K3": lambda: smallest_published_ratio("table4")[0], "K6": lambda: PUBLISHED_DISTANCE_RATIO[0]}
    what = {"K1": "smallest SB − LB test gap in Keskar et al. 2017, Table 2",
            "K2": "smallest LB/SB ratio in Keskar et al. 2017, Table 3",
            "K3": "smallest LB/SB ratio in Keskar et al. 2017, Table 4",
            "K6": "lower end of Keskar et al. 2017's range 3–10"}
    if cid in published and math.isclose(float(value), published[cid]()):
        return f"; margin: {what[cid]}"
    return "; margin set in config" if value else ""


def _requirement(similar_train_pp: float | None) -> str:
    text = f"both arms converged (every run stopped by {'/'.join(CONVERGED_STOPS)}; {NO_PROBLEM})"
    if similar_train_pp is not None:
        text += f", mean train accuracies within {similar_train_pp:g} pp"
    return text


def _table_cell(table: str, net: str, i: int, unit: str = "") -> str:
    m, s = PUBLISHED[table][net][i]
    return f"{m:.2f} ± {s:.2f}{unit}"


def sb_lb_claims(net: str, sb: pd.DataFrame, lb: pd.DataFrame, rises: pd.DataFrame, ratios: pd.DataFrame,
                 block: dict) -> list[dict]:
    """Claims K1-K7 for one network: its SB and LB runs (with the sharpness columns), the
    parametric-curve rises of its SB/LB pairs and its per-seed distance ratios; decision
    settings from ``block["claims"]`` and ``block["similar_train_acc_pp"]``. Preconditions:
    every run of both arms converged (all claims) and, for K1, mean train accuracies within
    ``similar_train_acc_pp``; a failed one makes the claim inconclusive."""
    cfg, tol = block["claims"], block["similar_train_acc_pp"]
    eps = [float(e) for e in block["sharpness"]["epsilons"]]
    # K1 compares generalisation, so it needs similar train accuracies as well as converged arms
    # (Table 2's premise); K2-K7 compare the minimisers each batch size converges to
    ok, found = arm_check({"SB": sb, "LB": lb}, similar_train_pp=tol)
    pre_k1 = dict(precondition=f"{_requirement(tol)}: {found}", precondition_ok=ok)
    ok, found = arm_check({"SB": sb, "LB": lb})
    pre = dict(precondition=f"{_requirement(None)}: {found}", precondition_ok=ok)
    where = f", {net} on {DATASET_NAMES.get(PAPER_DATASET.get(net), 'its data')}"
    rows = []

    m = float(cfg["K1"]["margin_pp"])
    pub = PUBLISHED["table2"].get(net)
    rows.append(claim_row(
        f"K1-{net}", "At similar training accuracy, LB reaches lower test accuracy than SB (Table 2).",
        f"{net}: final test accuracy (%), LB vs SB",
        decide(_pct(lb.test_acc), _pct(sb.test_acc), "less", m),
        rule=f"LB < SB: one-sided Welch t-test; against: reverse test, or equivalence within ±{m:g} pp (TOST{margin_note('K1', m)})",
        ours=f"test SB {describe_unit(_pct(sb.test_acc), '%')} vs LB {describe_unit(_pct(lb.test_acc), '%')}; "
             f"train SB {describe_unit(_pct(sb.train_acc), '%')} vs LB {describe_unit(_pct(lb.train_acc), '%')}",
        paper=(f"test SB {_table_cell('table2', net, 2, ' %')} vs LB {_table_cell('table2', net, 3, ' %')}; train SB "
               f"{_table_cell('table2', net, 0, ' %')} vs LB {_table_cell('table2', net, 1, ' %')}" if pub
               else "not published"),
        paper_source=SOURCES["table2"] + where if pub else "", **pre_k1))

    for cid, space, table, what in (("K2", "full", "table3", "full space (Table 3)"),
                                    ("K3", "subspace", "table4",
                                     f"random {block['sharpness']['subspace_dim']}-dim subspaces (Table 4)")):
        ratio = float(cfg[cid]["margin_ratio"])
        parts = []
        for e in eps:
            c = sharp_col(space, e)
            part = decide(_log10(lb[c]), _log10(sb[c]), "greater", math.log10(ratio))
            part["label"] = f"ε={e:g}"
            parts.append(part)
        pubrow = PUBLISHED[table].get(net)
        rows.append(claim_row(
            f"{cid}-{net}", f"LB minimisers are sharper than SB ones: ε-sharpness in {what}, at every ε.",
            f"{net}: log10 ε-sharpness, LB vs SB, at ε = {', '.join(f'{e:g}' for e in eps)}",
            combine(parts, how="all"),
            rule=(f"LB > SB on log10 sharpness at every ε (one-sided Welch t-tests); against: any ε reversed or "
                  f"shown within a factor {ratio:g} (TOST{margin_note(cid, ratio)})"),
            ours="; ".join(f"ε={e:g}: SB {_described(sb[sharp_col(space, e)])} vs LB {_described(lb[sharp_col(space, e)])}"
                           for e in eps),
            paper=("; ".join(f"ε={e}: SB {_table_cell(table, net, i)} vs LB {_table_cell(table, net, i + 1)}"
                             for i, e in ((0, "1e-3"), (2, "5e-4"))) if pubrow else "not published"),
            paper_source=SOURCES[table] + where if pubrow else "", **pre))

    m = float(cfg["K4"]["margin"])
    rows.append(claim_row(
        f"K4-{net}", "LB minimisers are sharper than SB ones: largest eigenvalue of the training-loss Hessian.",
        f"{net}: top Hessian eigenvalue, LB vs SB",
        decide(lb.hessian_max_eig, sb.hessian_max_eig, "greater", m),
        rule="LB > SB: one-sided Welch t-test; against: reverse test"
             + (f", or equivalence within ±{m:g} (TOST)" if m > 0 else " (no published size for an equivalence margin)"),
        ours=f"SB {describe(sb.hessian_max_eig, 3)} vs LB {describe(lb.hessian_max_eig, 3)}",
        paper="not published", paper_source=SOURCES["hessian"], **pre))

    r = rises[rises.network == net]
    m = float(cfg["K5"]["margin"])
    delta = block["parametric"]["delta"]
    rows.append(claim_row(
        f"K5-{net}", "Along the line between an SB and an LB minimiser the training loss rises faster around the "
                     "LB end (Fig. 3).",
        f"{net}: rise of the training loss {delta:g} outward from each end, LB end − SB end, paired by seed",
        decide_one_sample(r.lb_rise - r.sb_rise, "greater", 0.0, m),
        rule="mean paired difference > 0: one-sided t-test; against: reverse test"
             + (f", or equivalence within ±{m:g} (TOST)" if m > 0 else " (Fig. 3 gives a shape, no size)"),
        ours=f"SB end {describe(r.sb_rise, 3)} vs LB end {describe(r.lb_rise, 3)}",
        paper="not published", paper_source=SOURCES["parametric"], **pre))

    rr = ratios[ratios.network == net]
    lo, hi = PUBLISHED_DISTANCE_RATIO
    m = float(cfg["K6"]["margin_ratio"])
    rows.append(claim_row(
        f"K6-{net}", "SB iterates travel further from the shared starting point x0 than LB iterates.",
        f"{net}: log10(‖x_SB − x0‖ / ‖x_LB − x0‖), paired by seed",
        decide_one_sample(_log10(rr.ratio), "greater", 0.0, math.log10(m)),
        rule=f"mean log10 ratio > 0: one-sided t-test; against: reverse test, or ratio within a factor {m:g} (TOST{margin_note('K6', m)})",
        ours=f"‖x − x0‖ SB {describe(rr.sb_dist)} vs LB {describe(rr.lb_dist)}; ratio {describe(rr.ratio)}",
        paper=f"ratio {lo:g}–{hi:g}", paper_source=SOURCES["distance"], **pre))
    parts = [decide_one_sample(_log10(rr.ratio), "greater", math.log10(lo), 0.0),
             decide_one_sample(_log10(rr.ratio), "less", math.log10(hi), 0.0)]
    parts[0]["label"], parts[1]["label"] = f"ratio > {lo:g}", f"ratio < {hi:g}"
    rows.append(claim_row(
        f"K7-{net}", f"The ratio ‖x_SB − x0‖ / ‖x_LB − x0‖ lies between {lo:g} and {hi:g}.",
        f"{net}: log10 distance ratio per seed",
        combine(parts, how="all"),
        rule=(f"mean log10 ratio above log10 {lo:g} and below log10 {hi:g}: one-sided t-tests, both must hold; "
              f"against: significantly outside either bound"),
        ours=f"ratio {describe(rr.ratio)}", paper=f"{lo:g}–{hi:g}", paper_source=SOURCES["distance"], **pre))
    return rows


def sweep_claim(sweep: pd.DataFrame, block: dict) -> dict:
    """Claim K8 (Fig. 4) from the batch-size sweep's runs (with the sharpness columns): test
    accuracy falls and full-space sharpness at the first epsilon rises with log2(batch size)."""
    cfg = block["claims"]["K8"]
    net, eps = block["sweep"]["network"], float(block["sharpness"]["epsilons"][0])
    x = np.log2(sweep.batch_size.to_numpy(float))
    acc = decide_trend(x, _pct(sweep.test_acc), "less", float(cfg["margin_acc_pp"]))
    sharp = decide_trend(x, _log10(sweep[sharp_col("full", eps)]), "greater", float(cfg["margin_log10_sharpness"]))
    acc["label"], sharp["label"] = "test accuracy falls", "sharpness rises"
    drop = block["sweep"]["threshold_drop"]
    thr = threshold_batch(sweep, drop=drop)
    # every batch size is an arm of the trend: each is checked on its own
    ok, found = arm_check({f"batch {int(b)}": g for b, g in sweep.groupby("batch_size")})
    small = sweep.batch_size.min()
    return claim_row(
        f"K8-{net}", "Test accuracy falls and sharpness rises as the batch size grows (Fig. 4).",
        f"{net}: slopes of test accuracy (pp) and log10 ε-sharpness (full space, ε={eps:g}) per doubling of the "
        f"batch size, {sweep.batch_size.nunique()} sizes",
        combine([acc, sharp], how="all"),
        rule="accuracy slope < 0 and sharpness slope > 0: one-sided least-squares slope tests, both must hold; "
             "against: either slope significantly the other way",
        ours=(f"accuracy {_num(acc['effect'], '+.2f')} pp per doubling, log10 sharpness "
              f"{_num(sharp['effect'], '+.3f')} per doubling; "
              f"first size {100 * drop:g} pp below the smallest batch's accuracy: "
              + ("none" if thr is None else f"{thr:.0f} ({thr / small:.0f}× the smallest)")),
        paper="threshold ≈ " + "; ".join(f"{b:,} of {n:,} training samples ({100 * b / n:.0f}%) for {k}"
                                         for k, (b, n) in PUBLISHED_THRESHOLD.items()),
        paper_source=SOURCES["threshold"],
        precondition=f"every sweep run converged (stopped by {'/'.join(CONVERGED_STOPS)}; {NO_PROBLEM}): {found}",
        precondition_ok=ok)


def all_claims(main: pd.DataFrame, sweep: pd.DataFrame, rises: pd.DataFrame, ratios: pd.DataFrame,
               block: dict) -> list[dict]:
    """Every claim of the section, in report order: K1-K7 of each network (in the order of
    ``block["networks"]``), then K8 from the sweep."""
    arm = lambda n, a: main[(main.network == n) & (main.arm == a)]
    rows = [r for n in block["networks"] for r in sb_lb_claims(n, arm(n, "SB"), arm(n, "LB"), rises, ratios, block)]
    rows.append(sweep_claim(sweep, block))
    return rows
