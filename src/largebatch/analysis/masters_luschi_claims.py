"""Masters & Luschi 2018: claims M1-M5, the summary and the warm-up table.

Every comparison is decided on the test seeds of cells selected on the selection seeds
(``masters_luschi.Study``); the verdicts come from ``largebatch.stats``. Claims M1-M4 are
made per (dataset, network, normalisation): id suffix ``a`` with BatchNorm, ``b`` without,
``-<network>`` when the block sweeps more than one network and ``-<dataset>`` when it sweeps
more than one dataset. Every claim with arms (M1, M4, M5) has as precondition that no run of
an arm has a problem (``stopping.arm_problems``: stopped at a cap, no learning, diverged); the
grid claims M2 and M3 count diverged and no-learning runs as their evidence (not stable), so
for them only a run stopped at a cap is a problem.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..experiments.masters_luschi import PUBLISHED, SMALL_MAX
from ..stats import claim_row, combine, decide, decide_trend, describe
from ..stopping import arm_problems
from .masters_luschi import (NORM_NAME, BNStudy, Study, arm_runs, cells_of, eta, on_grid_edge, pct, select_best,
                             sizes_without_unstable_cell, stable_fraction_per_seed, test_accs, widths_per_seed)


@dataclass
class Warm:
    """The warm-up comparison of one (dataset, norm): the best warm-up cell and the best cell
    with m <= SMALL_MAX without warm-up (either None), with their test-seed accuracies."""

    best: pd.Series | None
    accs: list[float]
    small: pd.Series | None
    small_accs: list[float]


@dataclass
class Facts:
    """What the summary and the warm-up table repeat from the claims, per (norm, dataset)."""

    best_m: dict = field(default_factory=dict)  # (norm, ds, net) -> best m over every m (selection seeds), or None
    width: dict = field(default_factory=dict)  # mean acceptable-range width by m (a Series)
    warm: dict = field(default_factory=dict)  # Warm


def tag_of(norm: str, ds: str, datasets: list[str], net: str = "", nets: list[str] = ()) -> str:
    return (("a" if norm == "batch" else "b") + (f"-{net}" if len(nets) > 1 else "")
            + (f"-{ds}" if len(datasets) > 1 else ""))


def panel_name(st: Study, ds: str, net: str, norm: str) -> str:
    return (NORM_NAME.get(norm, norm) + (f", {net}" if len(st.nets) > 1 else "")
            + (f", {ds}" if len(st.datasets) > 1 else ""))


def arm_check(row, name: str, grid, runs=None) -> tuple[bool, str]:
    """Precondition of a selected arm: it exists, its eta_base is inside the grid and none of
    its test-seed runs (``runs``, a DataFrame) has a problem (``stopping.arm_problems``)."""
    if row is None:
        return False, f"{name}: no cell without a diverged selection seed"
    problems = arm_problems(runs.to_dict("records"), name) if runs is not None else []
    if problems:
        return False, "; ".join(problems)
    if on_grid_edge(row.lr_log2, grid):
        return False, f"{name}: selected eta_base {eta(row.lr_log2)} is at the edge of the grid (optimum not bracketed)"
    return True, f"{name}: eta_base {eta(row.lr_log2)} inside the grid, no run with a problem"


def cap_problems(runs: pd.DataFrame, label: str) -> list[str]:
    """The ``arm_problems`` sentences about runs stopped at a safety cap (the grid claims count
    diverged and no-learning runs as evidence)."""
    return [p for p in arm_problems(runs.to_dict("records"), label) if "cap" in p]


def sweep_claims(st: Study, block: dict) -> tuple[list[dict], Facts]:
    """Claims M1-M4 for every (dataset, norm) of the sweep."""
    margins, tol = block["claims"], float(block["stable_tolerance_pp"])
    claims, facts = [], Facts()
    for ds, net, norm in st.panels():
        name = panel_name(st, ds, net, norm)
        tag = tag_of(norm, ds, st.datasets, net, st.nets)
        sc = st.panel(st.sel_cells, ds, net, norm)
        small, large = select_best(sc[sc.m <= SMALL_MAX]), select_best(sc[sc.m > SMALL_MAX])
        a_small, a_large = test_accs(st.test_cells, small), test_accs(st.test_cells, large)
        ok_s, why_s = arm_check(small, f"best m <= {SMALL_MAX}", st.grid, arm_runs(st.sweep, small))
        ok_l, why_l = arm_check(large, f"best m > {SMALL_MAX}", st.grid, arm_runs(st.sweep, large))
        best_all = select_best(sc)
        best_m = facts.best_m[(norm, ds, net)] = int(best_all.m) if best_all is not None else None
        d = decide(a_small, a_large, "greater", margins["M1"]["margin_pp"])
        claims.append(claim_row(
            f"M1{tag}", f"{name}: the best test accuracy is obtained with a batch size between 2 and {SMALL_MAX}.",
            f"test accuracy (%) on {st.n_test} test seeds of the best cell with m <= {SMALL_MAX} vs the best with "
            f"m > {SMALL_MAX}, both selected on {st.n_sel} other seeds",
            d, rule=f"one-sided Welch (m <= {SMALL_MAX} higher); against: reverse or equivalent within "
                    f"±{margins['M1']['margin_pp']:g} points",
            ours=(f"m = {int(small.m)} at {eta(small.lr_log2)}: {describe(a_small, 1)} vs m = {int(large.m)} at "
                  f"{eta(large.lr_log2)}: {describe(a_large, 1)} (best m overall: {best_m})")
            if small is not None and large is not None else d["ours"],
            paper=PUBLISHED["M1"][0], paper_source=PUBLISHED["M1"][1],
            precondition=f"{why_s}; {why_l}", precondition_ok=ok_s and ok_l))

        # M2: acceptable eta_base range per (m, test seed), against ONE bar: the global best cell
        level = float(sc.acc_mean.max())
        panel = st.panel(st.sweep, ds, net, norm)
        wid = widths_per_seed(panel[panel.seed_role == "test"], level, tol)
        width = facts.width[(norm, ds, net)] = wid.groupby("m").width.mean()
        d = decide_trend(np.log2(wid.m), wid.width, "less", margins["M2"]["margin"])
        missing = sizes_without_unstable_cell(st.panel(st.all_cells, ds, net, norm))
        capped = cap_problems(panel, "sweep")
        claims.append(claim_row(
            f"M2{tag}", f"{name}: the range of base learning rates giving stable convergence and acceptable test "
            "accuracy narrows as m grows.",
            f"per test seed and m: number of eta_base grid points (one octave apart) where the run trained stably "
            f"within {tol:g} points of the best cell over every m ({pct(level)}%, selection seeds); slope vs log2 m",
            d, rule=f"least-squares slope over (m, seed) points, one-sided (falls); against: rises, or slope within "
                    f"±{margins['M2']['margin']:g} octaves per doubling",
            ours="mean width by m: " + ", ".join(f"{m}: {w:.1f}" for m, w in width.items())
                 + f"; slope {d['effect']:+.2f} octaves per doubling",
            paper=PUBLISHED["M2"][0], paper_source=PUBLISHED["M2"][1],
            precondition="; ".join(capped + [
                "the eta_base grid reaches the stability limit at every m (a cell where no seed trained stably)"
                if not missing else
                f"at m = {', '.join(map(str, missing))} every eta_base cell has a stable seed: the grid "
                "stops below the stability limit there (extend base_lrs_log2 upwards)"]),
            precondition_ok=not missing and not capped))

        # M3: fraction of the grid that trains stably, per (m, seed), every seed
        fr = stable_fraction_per_seed(panel)
        d = decide_trend(np.log2(fr.m), fr.stable_frac, "less", margins["M3"]["margin"])
        claims.append(claim_row(
            f"M3{tag}", f"{name}: small batches train more stably (over the same eta_base grid, fewer runs diverge "
            "or fail to lower their training loss).",
            "per seed and m: fraction of the eta_base grid trained stably; slope vs log2 m",
            d, rule=f"least-squares slope over (m, seed) points, one-sided (falls); against: rises, or slope within "
                    f"±{margins['M3']['margin']:g} per doubling",
            ours="mean stable fraction by m: "
                 + ", ".join(f"{m}: {f:.2f}" for m, f in fr.groupby("m").stable_frac.mean().items())
                 + f"; slope {d['effect']:+.3f} per doubling",
            paper=PUBLISHED["M3"][0], paper_source=PUBLISHED["M3"][1],
            precondition="; ".join(capped) or "no run stopped at a safety cap", precondition_ok=not capped))

        warm = st.panel(st.runs[st.runs.part == "warmup"], ds, net, norm)
        if len(warm):
            wbest = select_best(cells_of(warm, "select"))
            a_warm = test_accs(cells_of(warm, "test"), wbest)
            ok_w, why_w = arm_check(wbest, "best warm-up cell", st.grid, arm_runs(warm, wbest))
            facts.warm[(norm, ds, net)] = Warm(wbest, a_warm, small, a_small)
            d = decide(a_warm, a_small, "less", margins["M4"]["margin_pp"])
            claims.append(claim_row(
                f"M4{tag}", f"{name}: with a gradual warm-up the larger batches still do not reach the best "
                "small-batch accuracy.",
                f"test accuracy (%) on {st.n_test} test seeds: best warm-up cell (m >= {int(warm.m.min())}) vs best "
                f"cell with m <= {SMALL_MAX} (no warm-up), both selected on the selection seeds",
                d, rule=f"one-sided Welch (warm-up lower); against: reverse or equivalent within "
                        f"±{margins['M4']['margin_pp']:g} points",
                ours=(f"warm-up m = {int(wbest.m)} at {eta(wbest.lr_log2)}: {describe(a_warm, 1)} vs m = "
                      f"{int(small.m)}: {describe(a_small, 1)}") if wbest is not None and small is not None
                else d["ours"],
                paper=PUBLISHED["M4"][0], paper_source=PUBLISHED["M4"][1],
                precondition=f"{why_w}; {why_s}", precondition_ok=ok_w and ok_s))
    return claims, facts


def bn_claim(bn: BNStudy | None, block: dict) -> list[dict]:
    """Claim M5 (m_BN = reference beats m_BN = m at every m > reference; intersection-union
    test over m), or no claim without a BN-batch study, a reference or a comparable m."""
    ref = block.get("bn_batch", {}).get("reference")
    if bn is None or not len(bn.best) or not ref:
        return []
    best = bn.best
    parts, per, problems = [], [], []
    for m in sorted(best.m.unique()):
        if m <= ref:
            continue
        full = best[(best.m == m) & (best.m_bn == m)]
        ghost = best[(best.m == m) & (best.m_bn == ref)]
        if not len(full) or not len(ghost):
            continue
        a, b = list(ghost.test_accs.iloc[0]), list(full.test_accs.iloc[0])
        d = decide(a, b, "greater", block["claims"]["M5"]["margin_pp"])
        d["label"] = f"m = {m}"
        parts.append(d)
        problems += arm_problems(ghost.test_runs.iloc[0], f"m = {m}, m_BN = {ref}")
        problems += arm_problems(full.test_runs.iloc[0], f"m = {m}, m_BN = m")
        per.append(f"m = {m}: {describe(a, 1)} vs {describe(b, 1)}")
    if not parts:
        return []
    return [claim_row(
        "M5", f"BatchNorm: for batches larger than {ref}, computing BN statistics over m_BN = {ref} samples "
        "(ghost BN) gives a higher test accuracy than over the whole batch.",
        f"test accuracy (%) on the test seeds, m_BN = {ref} vs m_BN = m, each at the eta_base of the sub-grid "
        "selected on the selection seeds",
        combine(parts, "all"),
        rule=f"per m: one-sided Welch (m_BN = {ref} higher), against: reverse or equivalent within "
             f"±{block['claims']['M5']['margin_pp']:g} points; the claim needs every m (intersection-union test)",
        ours="; ".join(per), paper=PUBLISHED["M5"][0], paper_source=PUBLISHED["M5"][1],
        precondition="; ".join(problems) or "no run of an arm has a problem (cap, no learning, diverged)",
        precondition_ok=not problems)]


def summary(st: Study, facts: Facts, verdict: dict[str, str], epochs) -> str:
    """The section's opening paragraph: the grid, the seeds, and per (dataset, norm) the best
    m, the range widths and the verdicts."""
    lines = []
    for ds, net, norm in st.panels():
        tag = tag_of(norm, ds, st.datasets, net, st.nets)
        w = facts.width[(norm, ds, net)]
        lines.append(
            panel_name(st, ds, net, norm)
            + f": best m {facts.best_m[(norm, ds, net)]} (selection seeds); M1 {verdict.get('M1' + tag)}. The acceptable "
            f"eta_base range is {w.iloc[0]:.1f} octaves wide at m = {int(w.index[0])} and {w.iloc[-1]:.1f} at "
            f"m = {int(w.index[-1])}; M2 {verdict.get('M2' + tag)}, M3 {verdict.get('M3' + tag)}"
            + (f", M4 {verdict.get('M4' + tag)}." if ("M4" + tag) in verdict else "."))
    ms, grid = st.ms, st.grid
    return (f"{len(ms)} batch sizes (m = {ms[0]}..{ms[-1]}) x {len(grid)} base learning rates (eta_base = "
            f"2^{grid[0]}..2^{grid[-1]}, eta = m·eta_base) with and without BatchNorm on {len(st.nets)} "
            f"network(s) ({', '.join(st.nets)}), {epochs} epoch(s) each; accuracy is the median test accuracy of "
            "the last 5 epochs (the paper's metric). "
            f"Every cell has {st.n_sel} selection seeds, which pick the best cells, and {st.n_test} separate test "
            "seeds, on which every comparison is decided (a best-of-many cell tested on the seeds that selected it "
            "looks better than it is). " + " ".join(lines)
            + (f" BN batch (M5): {verdict.get('M5')}." if "M5" in verdict else ""))


def warmup_table(st: Study, facts: Facts) -> pd.DataFrame:
    """Per (norm, dataset) with a best warm-up cell: its test-seed accuracy, the same m without
    warm-up, and the best m <= SMALL_MAX without warm-up (claim M4); no rows (but the columns)
    where no warm-up cell could be selected."""
    rows = []
    for (norm, ds, net), w in facts.warm.items():
        if w.best is None:
            continue
        nw = st.panel(st.per_m, ds, net, norm).set_index("m")
        b = nw.loc[w.best.m]
        warm = st.panel(st.runs[st.runs.part == "warmup"], ds, net, norm)
        rows.append({"network": net, "normalisation": NORM_NAME.get(norm, norm),
                     "best warm-up cell": f"m = {int(w.best.m)}, {eta(w.best.lr_log2)}",
                     "with warm-up (%)": describe(w.accs, 1),
                     "with warm-up, final train (%)": describe(list(arm_runs(warm, w.best).train_pct), 1),
                     "same m, no warm-up (%)": describe(b.test_accs, 1), "same m, no warm-up, final train (%)": b.train,
                     f"best m <= {SMALL_MAX}, no warm-up (%)": describe(w.small_accs, 1),
                     f"best m <= {SMALL_MAX}, final train (%)": describe(list(arm_runs(st.sweep, w.small).train_pct), 1)
                     if w.small is not None else "n/a"})
    return pd.DataFrame(rows, columns=["network", "normalisation", "best warm-up cell", "with warm-up (%)",
                                       "with warm-up, final train (%)", "same m, no warm-up (%)",
                                       "same m, no warm-up, final train (%)", f"best m <= {SMALL_MAX}, no warm-up (%)",
                                       f"best m <= {SMALL_MAX}, final train (%)"])
