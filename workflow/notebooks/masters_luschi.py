# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Masters & Luschi 2018: revisiting small batch training
#
# Batch size m x base learning rate eta_base (eta = m * eta_base, a constant average weight
# update per gradient computation), a fixed epoch budget, with and without BatchNorm; the BN
# batch size decoupled from m (ghost BN); warm-up for the larger batches. Best cells are
# selected on one set of seeds and tested on another. Run by Snakemake (`script:`); in
# Jupyter, `context()` rebuilds the inputs from config.yaml.

# %%
import os
import time

T0 = time.perf_counter()

import matplotlib

matplotlib.use("Agg")
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib import pyplot as plt
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle

from largebatch.experiments import masters_luschi as ML
from largebatch.experiments import scale_block
from largebatch.experiments.golmant import CLASSES
from largebatch.notebook import context
from largebatch.report import Section, load_runs
from largebatch.stats import claim_row, combine, decide, decide_trend, describe, finalize_claims

sm = context("masters_luschi", globals())
block = getattr(sm.params, "block", None) or sm.params.scale
rows = sm.params.runs
runs = load_runs(rows)
# the training loss at initialisation (first history row) of every run: all the analysis needs
# from the histories, read without loading thousands of whole files
init_loss = pd.Series({r: float(pd.read_csv(f"results/runs/{r}/history.csv", nrows=1).train_loss.iloc[0])
                       for r in runs.run.unique()})
sec = Section("masters_luschi", ML.TITLE)
TOL = float(block["stable_tolerance_pp"])
CLAIMS = block["claims"]
spec = block["run"]
SMALL_MAX = 32  # the paper's headline range is m = 2..32
NORM_NAME = {"batch": "BatchNorm", "none": "no BN"}


def pct(v, d=1):
    return f"{v:.{d}f}" if np.isfinite(v) else "n/a"


def eta(k):
    return f"2^{int(k)}" if k is not None and np.isfinite(k) else "n/a"


# %%
# per run: accuracy in percent; did it train stably (not diverged, final train loss below 95% of the
# loss at initialisation)?
runs["stable"] = ML.run_stability(runs, init_loss)
runs["diverged"] = runs["status"].eq("diverged")
runs["acc"] = 100 * pd.to_numeric(runs["test_acc"], errors="coerce")
runs["train_pct"] = 100 * pd.to_numeric(runs["train_acc"], errors="coerce")
sweep = runs[runs.part == "sweep"].copy()
datasets = list(dict.fromkeys(sweep.dataset))
norms = list(dict.fromkeys(sweep.norm))
grid = sorted(sweep.lr_log2.unique())
ms = sorted(sweep.m.unique())
n_sel = sweep[sweep.seed_role == "select"].seed.nunique()
n_test = sweep[sweep.seed_role == "test"].seed.nunique()
CELL = ["dataset", "norm", "m", "lr_log2"]


def cells_of(df: pd.DataFrame, role: str, by=CELL) -> pd.DataFrame:
    return ML.cell_table(df[df.seed_role == role], by, value="acc")


sel_cells, test_cells = cells_of(sweep, "select"), cells_of(sweep, "test")
all_cells = ML.cell_table(sweep, CELL, value="acc")


def test_accs(cells: pd.DataFrame, row, keys=CELL) -> list[float]:
    """Test-seed accuracies of the cell `row` (selected on the selection seeds)."""
    if row is None:
        return []
    hit = cells
    for k in keys:
        hit = hit[hit[k] == row[k]]
    return [float(a) for a in hit.accs.iloc[0]] if len(hit) else []


def train_of(df: pd.DataFrame, row, keys=CELL) -> list[float]:
    hit = df[df.seed_role == "test"]
    for k in keys:
        hit = hit[hit[k] == row[k]]
    return list(hit.train_pct)


# per (dataset, norm, m): the cell selected on the selection seeds and its test-seed accuracy
per_m = []
for (ds, norm, m), g in sel_cells.groupby(["dataset", "norm", "m"]):
    best = ML.select_best(g)
    accs = test_accs(test_cells, best)
    r = sweep[(sweep.dataset == ds) & (sweep.norm == norm) & (sweep.m == m)]
    per_m.append({"dataset": ds, "norm": norm, "m": m, "lr_log2": best.lr_log2 if best is not None else np.nan,
                  "sel_acc": best.acc_mean if best is not None else np.nan, "test_accs": accs,
                  "test_mean": np.mean(accs) if accs else np.nan,
                  "test_sd": np.std(accs, ddof=1) if len(accs) > 1 else np.nan,
                  "train": describe(train_of(sweep, best), 1) if best is not None else "n/a",
                  "stable_frac": float(r.stable.mean()), "diverged_frac": float(r.diverged.mean())})
per_m = pd.DataFrame(per_m)

# %% [markdown]
# ## Claims (decided before the evidence is laid out, so the summary can state them)

# %%
claims, facts = [], {}


def arm_check(row, name: str) -> tuple[bool, str]:
    if row is None:
        return False, f"{name}: no cell without a diverged selection seed"
    if ML.on_grid_edge(row.lr_log2, grid):
        return False, f"{name}: selected eta_base {eta(row.lr_log2)} is at the edge of the grid (optimum not bracketed)"
    return True, f"{name}: eta_base {eta(row.lr_log2)} inside the grid"


for ds, norm in [(ds, norm) for ds in datasets for norm in norms]:
    name = NORM_NAME.get(norm, norm) + (f", {ds}" if len(datasets) > 1 else "")
    tag = ("a" if norm == "batch" else "b") + (f"-{ds}" if len(datasets) > 1 else "")
    sc = sel_cells[(sel_cells.dataset == ds) & (sel_cells.norm == norm)]
    small, large = ML.select_best(sc[sc.m <= SMALL_MAX]), ML.select_best(sc[sc.m > SMALL_MAX])
    a_small, a_large = test_accs(test_cells, small), test_accs(test_cells, large)
    ok_s, why_s = arm_check(small, f"best m <= {SMALL_MAX}")
    ok_l, why_l = arm_check(large, f"best m > {SMALL_MAX}")
    best_all = ML.select_best(sc)
    facts[("best_m", norm, ds)] = int(best_all.m) if best_all is not None else None
    d = decide(a_small, a_large, "greater", CLAIMS["M1"]["margin_pp"])
    claims.append(claim_row(
        f"M1{tag}", f"{name}: the best test accuracy is obtained with a batch size between 2 and {SMALL_MAX}.",
        f"test accuracy (%) on {n_test} test seeds of the best cell with m <= {SMALL_MAX} vs the best with m > "
        f"{SMALL_MAX}, both selected on {n_sel} other seeds",
        d, rule=f"one-sided Welch (m <= {SMALL_MAX} higher); against: reverse or equivalent within "
                f"±{CLAIMS['M1']['margin_pp']:g} points",
        ours=(f"m = {int(small.m)} at {eta(small.lr_log2)}: {describe(a_small, 1)} vs m = {int(large.m)} at "
              f"{eta(large.lr_log2)}: {describe(a_large, 1)} (best m overall: {facts[('best_m', norm, ds)]})")
        if small is not None and large is not None else d["ours"],
        paper=ML.PUBLISHED["M1"][0], paper_source=ML.PUBLISHED["M1"][1],
        precondition=f"{why_s}; {why_l}", precondition_ok=ok_s and ok_l))

    # M2: acceptable eta_base range per (m, test seed), against ONE bar: the global best cell
    level = float(sc.acc_mean.max())
    tr = sweep[(sweep.dataset == ds) & (sweep.norm == norm) & (sweep.seed_role == "test")]
    wid = ML.widths_per_seed(tr, level, TOL)
    facts[("width", norm, ds)] = wid.groupby("m").width.mean()
    d = decide_trend(np.log2(wid.m), wid.width, "less", CLAIMS["M2"]["margin"])
    missing = ML.sizes_without_unstable_cell(all_cells[(all_cells.dataset == ds) & (all_cells.norm == norm)])
    claims.append(claim_row(
        f"M2{tag}", f"{name}: the range of base learning rates giving stable convergence and acceptable test "
        "accuracy narrows as m grows.",
        f"per test seed and m: number of eta_base grid points (one octave apart) where the run trained stably "
        f"within {TOL:g} points of the best cell over every m ({pct(level)}%, selection seeds); slope vs log2 m",
        d, rule=f"least-squares slope over (m, seed) points, one-sided (falls); against: rises, or slope within "
                f"±{CLAIMS['M2']['margin']:g} octaves per doubling",
        ours="mean width by m: " + ", ".join(f"{m}: {w:.1f}" for m, w in facts[("width", norm, ds)].items())
             + f"; slope {d['effect']:+.2f} octaves per doubling",
        paper=ML.PUBLISHED["M2"][0], paper_source=ML.PUBLISHED["M2"][1],
        precondition=("the eta_base grid reaches the stability limit at every m (a cell where no seed trained "
                      "stably)" if not missing else
                      f"at m = {', '.join(map(str, missing))} every eta_base cell has a stable seed: the grid stops "
                      "below the stability limit there (extend base_lrs_log2 upwards)"),
        precondition_ok=not missing))

    # M3: fraction of the grid that trains stably, per (m, seed), every seed
    fr = ML.stable_fraction_per_seed(sweep[(sweep.dataset == ds) & (sweep.norm == norm)])
    d = decide_trend(np.log2(fr.m), fr.stable_frac, "less", CLAIMS["M3"]["margin"])
    claims.append(claim_row(
        f"M3{tag}", f"{name}: small batches train more stably (over the same eta_base grid, fewer runs diverge "
        "or fail to lower their training loss).",
        "per seed and m: fraction of the eta_base grid trained stably; slope vs log2 m",
        d, rule=f"least-squares slope over (m, seed) points, one-sided (falls); against: rises, or slope within "
                f"±{CLAIMS['M3']['margin']:g} per doubling",
        ours="mean stable fraction by m: " + ", ".join(f"{m}: {f:.2f}" for m, f in fr.groupby("m").stable_frac.mean().items())
             + f"; slope {d['effect']:+.3f} per doubling",
        paper=ML.PUBLISHED["M3"][0], paper_source=ML.PUBLISHED["M3"][1]))

    warm = runs[(runs.part == "warmup") & (runs.dataset == ds) & (runs.norm == norm)]
    if len(warm):
        wbest = ML.select_best(cells_of(warm, "select"))
        a_warm = test_accs(cells_of(warm, "test"), wbest)
        ok_w, why_w = arm_check(wbest, "best warm-up cell")
        facts[("warm", norm, ds)] = (wbest, a_warm, small, a_small)
        d = decide(a_warm, a_small, "less", CLAIMS["M4"]["margin_pp"])
        claims.append(claim_row(
            f"M4{tag}", f"{name}: with a gradual warm-up the larger batches still do not reach the best small-batch "
            "accuracy.",
            f"test accuracy (%) on {n_test} test seeds: best warm-up cell (m >= {int(warm.m.min())}) vs best cell "
            f"with m <= {SMALL_MAX} (no warm-up), both selected on the selection seeds",
            d, rule=f"one-sided Welch (warm-up lower); against: reverse or equivalent within "
                    f"±{CLAIMS['M4']['margin_pp']:g} points",
            ours=(f"warm-up m = {int(wbest.m)} at {eta(wbest.lr_log2)}: {describe(a_warm, 1)} vs m = {int(small.m)}: "
                  f"{describe(a_small, 1)}") if wbest is not None and small is not None else d["ours"],
            paper=ML.PUBLISHED["M4"][0], paper_source=ML.PUBLISHED["M4"][1],
            precondition=f"{why_w}; {why_s}", precondition_ok=ok_w and ok_s))

bnr = runs[runs.part == "bn_batch"].copy()
bn_best = pd.DataFrame()
if len(bnr):
    bsel = cells_of(bnr, "select", ["m", "m_bn", "lr_log2"])
    btest = cells_of(bnr, "test", ["m", "m_bn", "lr_log2"]) if (bnr.seed_role == "test").any() else bsel.iloc[:0]
    recs = []
    for (m, b), g in bsel.groupby(["m", "m_bn"]):
        best = ML.select_best(g)
        accs = test_accs(btest, best, ["m", "m_bn", "lr_log2"]) if best is not None else []
        recs.append({"m": m, "m_bn": b, "lr_log2": best.lr_log2 if best is not None else np.nan,
                     "sel_acc": best.acc_mean if best is not None else np.nan,
                     "sel_sd": best.acc_std if best is not None else np.nan, "test_accs": accs,
                     "n_diverged": int(g.n_diverged.sum())})
    bn_best = pd.DataFrame(recs)
ref = block.get("bn_batch", {}).get("reference")
if len(bn_best) and ref:
    parts, per = [], []
    for m in sorted(bn_best.m.unique()):
        if m <= ref:
            continue
        full = bn_best[(bn_best.m == m) & (bn_best.m_bn == m)]
        ghost = bn_best[(bn_best.m == m) & (bn_best.m_bn == ref)]
        if not len(full) or not len(ghost):
            continue
        a, b = list(ghost.test_accs.iloc[0]), list(full.test_accs.iloc[0])
        d = decide(a, b, "greater", CLAIMS["M5"]["margin_pp"])
        d["label"] = f"m = {m}"
        parts.append(d)
        per.append(f"m = {m}: {describe(a, 1)} vs {describe(b, 1)}")
    if parts:
        claims.append(claim_row(
            "M5", f"BatchNorm: for batches larger than {ref}, computing BN statistics over m_BN = {ref} samples "
            "(ghost BN) gives a higher test accuracy than over the whole batch.",
            f"test accuracy (%) on the test seeds, m_BN = {ref} vs m_BN = m, each at the eta_base of the sub-grid "
            "selected on the selection seeds",
            combine(parts, "all"),
            rule=f"per m: one-sided Welch (m_BN = {ref} higher), against: reverse or equivalent within "
                 f"±{CLAIMS['M5']['margin_pp']:g} points; the claim needs every m (intersection-union test)",
            ours="; ".join(per), paper=ML.PUBLISHED["M5"][0], paper_source=ML.PUBLISHED["M5"][1]))

verdict = {r["id"]: r["verdict"] for r in finalize_claims(claims)}

# %%
lines = []
for ds, norm in [(ds, norm) for ds in datasets for norm in norms]:
    tag = ("a" if norm == "batch" else "b") + (f"-{ds}" if len(datasets) > 1 else "")
    w = facts[("width", norm, ds)]
    lines.append(
        f"{NORM_NAME.get(norm, norm)}" + (f" ({ds})" if len(datasets) > 1 else "")
        + f": best m {facts[('best_m', norm, ds)]} (selection seeds); M1 {verdict.get('M1' + tag)}. The acceptable "
        f"eta_base range is {w.iloc[0]:.1f} octaves wide at m = {int(w.index[0])} and {w.iloc[-1]:.1f} at "
        f"m = {int(w.index[-1])}; M2 {verdict.get('M2' + tag)}, M3 {verdict.get('M3' + tag)}"
        + (f", M4 {verdict.get('M4' + tag)}." if ("M4" + tag) in verdict else "."))
sec.summary(
    f"{len(ms)} batch sizes (m = {ms[0]}..{ms[-1]}) x {len(grid)} base learning rates (eta_base = 2^{grid[0]}.."
    f"2^{grid[-1]}, eta = m·eta_base) with and without BatchNorm, {spec['epochs']} epoch(s) each. Every cell has "
    f"{n_sel} selection seeds, which pick the best cells, and {n_test} separate test seeds, on which every "
    "comparison is decided (a best-of-many cell tested on the seeds that selected it looks better than it is). "
    + " ".join(lines)
    + (f" BN batch (M5): {verdict.get('M5')}." if "M5" in verdict else ""))
sec.scope("This scale can test the shape of the (m, eta_base) landscape of a small MLP in a short fixed budget; it "
          "cannot test the paper's convolutional networks trained for 82 epochs.")

# %% [markdown]
# ## Evidence

# %%
sns.set_theme(style="whitegrid")
panels = [(ds, n) for ds in datasets for n in norms]
fig, axes = plt.subplots(1, len(panels), figsize=(6.8 * len(panels), 0.42 * len(ms) + 2.2), squeeze=False)
fig.subplots_adjust(wspace=0.25)
vmax = float(np.nanmax(all_cells.acc_mean)) if all_cells.acc_mean.notna().any() else 100.0
for ax, (ds, norm) in zip(axes[0], panels):
    c = all_cells[(all_cells.dataset == ds) & (all_cells.norm == norm)]
    mat = c.pivot(index="m", columns="lr_log2", values="acc_mean").reindex(index=ms, columns=grid)
    div = c.pivot(index="m", columns="lr_log2", values="n_diverged").reindex(index=ms, columns=grid)
    n_of = c.pivot(index="m", columns="lr_log2", values="n").reindex(index=ms, columns=grid)
    sfrac = c.pivot(index="m", columns="lr_log2", values="stable_frac").reindex(index=ms, columns=grid)
    annot = np.where(div.to_numpy() > 0, "", np.vectorize(
        lambda v, f: "" if not np.isfinite(v) else f"{v:.0f}" + ("" if f == 1 else "*" if f > 0 else "x"))(mat, sfrac))
    ax.set_facecolor("0.55")
    sns.heatmap(mat, ax=ax, annot=annot, fmt="", cmap="viridis", vmin=10, vmax=vmax,
                cbar_kws={"label": "test accuracy (%), mean over all seeds"}, annot_kws={"fontsize": 7})
    chosen = per_m[(per_m.dataset == ds) & (per_m.norm == norm)]
    for yi, m in enumerate(ms):
        for xj, k in enumerate(grid):
            if div.loc[m, k] > 0:
                ax.text(xj + 0.5, yi + 0.5, f"div\n{int(div.loc[m, k])}/{int(n_of.loc[m, k])}", ha="center",
                        va="center", fontsize=5.5, color="white")
        r = chosen[chosen.m == m]
        if len(r) and np.isfinite(r.lr_log2.iloc[0]):
            xj = grid.index(r.lr_log2.iloc[0])
            ax.add_patch(Rectangle((xj + 0.05, yi + 0.05), 0.9, 0.9, fill=False, edgecolor="red", lw=1.5))
    ax.set_xticklabels([f"2^{int(k)}" for k in grid], rotation=45, fontsize=8)
    ax.set_xlabel("base learning rate eta_base (eta = m·eta_base)")
    ax.set_ylabel("batch size m")
    ax.set_title(f"{ds}, {NORM_NAME.get(norm, norm)}")
axes[0, -1].legend(handles=[Patch(facecolor="none", edgecolor="red", label="selected at this m (selection seeds)"),
                            Patch(facecolor="0.55", label="div k/n: k of n seeds diverged"),
                            Patch(facecolor="none", label="*: some seeds unstable, x: no seed stable")],
                   loc="upper left", bbox_to_anchor=(1.25, 1.0), fontsize=8, frameon=False)
sec.figure("accuracy_heatmap", fig,
           f"Final test accuracy (%) over batch size m and base learning rate, mean over all {n_sel + n_test} seeds "
           "of a cell. Grey 'div k/n': k of n seeds diverged (NaN/inf loss). '*': some seeds did not train stably "
           "(final training loss not below 95% of the initial), 'x': no seed did (beyond the stability limit). Red "
           "outline: the cell selected at each m on the selection seeds. The colour scale starts at chance (10%).",
           alt=f"Heat maps, one per normalisation, of test accuracy over {len(ms)} batch sizes and {len(grid)} base "
               "learning rates; diverged cells are grey; the selected learning rate per batch size is outlined.",
           supports=[c["id"] for c in claims if c["id"][:2] in ("M1", "M2", "M3")])

# %%
fig, ax = plt.subplots(figsize=(7.2, 4.2))
colors = dict(zip(norms, sns.color_palette(n_colors=len(norms))))
for norm in norms:
    for ds, ls in zip(datasets, ["-", ":", "-."]):
        s = per_m[(per_m.norm == norm) & (per_m.dataset == ds)]
        ax.errorbar(s.m, s.test_mean, yerr=s.test_sd.fillna(0), marker="o", ls=ls, color=colors[norm], capsize=3)
    wr = runs[(runs.part == "warmup") & (runs.norm == norm)]
    if len(wr):
        wsel, wtest = cells_of(wr, "select"), cells_of(wr, "test")
        pts = []
        for m, g in wsel.groupby("m"):
            a = test_accs(wtest, ML.select_best(g))
            pts.append((m, np.mean(a) if a else np.nan, np.std(a, ddof=1) if len(a) > 1 else 0.0))
        pts = np.array(pts)
        ax.errorbar(pts[:, 0], pts[:, 1], yerr=pts[:, 2], marker="s", ls="--", color=colors[norm], capsize=3, alpha=0.8)
ax.axvspan(2, SMALL_MAX, color="0.88", zorder=0)
chance = {100.0 / CLASSES[scale_block(sm.config)["datasets"][ds]["kind"]] for ds in datasets}
for c in chance:
    ax.axhline(c, color="black", ls=":", lw=1)
ax.set_xscale("log", base=2)
ax.set_xlabel("batch size m")
ax.set_ylabel("test accuracy (%), test seeds")
handles = [Line2D([], [], color=colors[n], marker="o", label=NORM_NAME.get(n, n)) for n in norms]
handles += [Line2D([], [], color="0.3", ls="-", marker="o", label="no warm-up"),
            Line2D([], [], color="0.3", ls="--", marker="s", label="linear warm-up")]
handles += [Line2D([], [], color="0.3", ls=ls, label=ds) for ds, ls in zip(datasets, [":", "-."])][: len(datasets) - 1]
handles.append(Patch(color="0.88", label=f"m = 2..{SMALL_MAX}: the paper's best range (abstract)"))
handles.append(Line2D([], [], color="black", ls=":", label="chance accuracy"))
ax.legend(handles=handles, fontsize=8, loc="best")
sec.figure("best_vs_m", fig,
           f"Test accuracy at each batch size of the cell selected there on the selection seeds, mean ± sd over the "
           f"{n_test} test seeds. Dashed squares: the larger batches with a linear learning-rate warm-up. Shaded: "
           "m = 2 to 32, where the paper finds its best results; dotted: chance accuracy.",
           alt="Line plot of test accuracy against batch size on a log2 axis, one line per normalisation, with the "
               "warm-up runs dashed and the paper's best range m = 2 to 32 shaded.",
           supports=[c["id"] for c in claims if c["id"][:2] in ("M1", "M4")])

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 3.9))
for norm in norms:
    for ds, ls in zip(datasets, ["-", ":", "-."]):
        tr = sweep[(sweep.dataset == ds) & (sweep.norm == norm) & (sweep.seed_role == "test")]
        sc = sel_cells[(sel_cells.dataset == ds) & (sel_cells.norm == norm)]
        wid = ML.widths_per_seed(tr, float(sc.acc_mean.max()), TOL).groupby("m").width.agg(["mean", "std"])
        axes[0].errorbar(wid.index, wid["mean"], yerr=wid["std"].fillna(0), marker="o", ls=ls, color=colors[norm],
                         capsize=3)
        fr = ML.stable_fraction_per_seed(sweep[(sweep.dataset == ds) & (sweep.norm == norm)]).groupby("m").stable_frac
        axes[1].errorbar(fr.mean().index, fr.mean(), yerr=fr.std().fillna(0), marker="o", ls=ls,
                         color=colors[norm], capsize=3)
for ax in axes:
    ax.set_xscale("log", base=2)
    ax.set_xlabel("batch size m")
    ax.legend(handles=[Line2D([], [], color=colors[n], marker="o", label=NORM_NAME.get(n, n)) for n in norms],
              fontsize=8)
axes[0].set_ylabel("acceptable eta_base range (octaves)")
axes[0].set_ylim(bottom=0)
axes[1].set_ylabel("fraction of the eta_base grid trained stably")
axes[1].set_ylim(0, 1.02)
sec.figure("stable_range", fig,
           f"Left (claim M2): per test seed, the number of eta_base grid points (one octave apart) where the run "
           f"trained stably with a test accuracy within {TOL:g} points of the best cell over every m; mean ± sd over "
           "test seeds. Right (claim M3): fraction of the eta_base grid where a seed trained stably (no NaN/inf, "
           "final training loss below 95% of the initial), mean ± sd over all seeds.",
           alt="Two line plots against batch size on a log2 axis: width of the acceptable learning-rate range in "
               "octaves, and the fraction of learning rates that trained stably, one line per normalisation.",
           supports=[c["id"] for c in claims if c["id"][:2] in ("M2", "M3")])

# %%
tab = per_m.assign(**{
    "normalisation": per_m.norm.map(NORM_NAME),
    "selected eta_base": [eta(k) for k in per_m.lr_log2],
    "test accuracy (%)": [describe(a, 1) for a in per_m.test_accs],
    "train accuracy (%)": per_m.train,
    "trained stably": [f"{f:.0%}" for f in per_m.stable_frac],
    "diverged": [f"{f:.0%}" for f in per_m.diverged_frac],
})
cols = (["dataset"] if len(datasets) > 1 else []) + ["normalisation", "m", "selected eta_base", "test accuracy (%)",
                                                      "train accuracy (%)", "trained stably", "diverged"]
sec.table("per_batch_size", tab[cols],
          f"Per batch size: the eta_base selected on the {n_sel} selection seeds, its test and final train accuracy "
          f"on the {n_test} test seeds (mean ± sd, n), and the share of all runs at that m (every eta_base and seed) "
          "that trained stably and that diverged.", supports=[c["id"] for c in claims if c["id"][:2] in ("M1", "M3")])

# every cell of the sweep, for download (the heat map shows them)
all_cells.assign(eta_base=[eta(k) for k in all_cells.lr_log2], accuracy_pct=all_cells.acc_mean.round(2),
                 sd_pct=all_cells.acc_std.round(2))[
    ["dataset", "norm", "m", "eta_base", "accuracy_pct", "sd_pct", "n", "n_diverged", "stable_frac"]].to_csv(
    getattr(sm.output, "table", sec.outdir / "tables" / "sweep_cells.csv"), index=False)

# %%
if len(bn_best):
    fig, ax = plt.subplots(figsize=(6.8, 4))
    for m, color in zip(sorted(bn_best.m.unique()), sns.color_palette("rocket", n_colors=bn_best.m.nunique())):
        s = bn_best[bn_best.m == m]
        ax.errorbar(s.m_bn, s.sel_acc, yerr=s.sel_sd.fillna(0), marker="o", color=color, capsize=3, label=f"m = {m}")
        t = s[s.test_accs.map(len) > 0]
        ax.scatter(t.m_bn, [np.mean(a) for a in t.test_accs], marker="*", s=90, color=color, edgecolor="black",
                   zorder=3)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("BN batch size m_BN (ghost batch; m_BN = m is ordinary BN)")
    ax.set_ylabel("test accuracy (%)")
    h, _ = ax.get_legend_handles_labels()
    h.append(Line2D([], [], marker="*", color="0.4", ls="", markeredgecolor="black", markersize=10,
                    label="test-seed mean (compared in M5)"))
    ax.legend(handles=h, fontsize=8)
    sec.figure("bn_batch", fig,
               "BN batch size decoupled from the SGD batch size: ghost BN over m_BN samples. Circles: mean ± sd over "
               "the selection seeds at the eta_base selected per (m, m_BN) from "
               + ", ".join(eta(k) for k in sorted(bnr.lr_log2.unique()))
               + f"; stars: the test seeds at m_BN = {ref} and m_BN = m (claim M5).",
               alt="Line plot of test accuracy against the BN batch size on a log2 axis, one line per SGD batch "
                   "size, with stars marking the test-seed means compared in claim M5.", supports="M5")
    sec.table("bn_batch", pd.DataFrame({
        "m": bn_best.m, "m_BN": bn_best.m_bn, "selected eta_base": [eta(k) for k in bn_best.lr_log2],
        "selection seeds (%)": [describe(a, 1) for a in
                                [bsel[(bsel.m == r.m) & (bsel.m_bn == r.m_bn) & (bsel.lr_log2 == r.lr_log2)].accs.iloc[0]
                                 if np.isfinite(r.lr_log2) else [] for r in bn_best.itertuples()]],
        "test seeds (%)": [describe(a, 1) if len(a) else "not trained" for a in bn_best.test_accs],
        "diverged runs": bn_best.n_diverged}),
        "BN batch study: test accuracy at the eta_base selected per (m, m_BN) on the selection seeds; test seeds "
        f"are trained only where claim M5 compares (m_BN = {ref} and m_BN = m).", supports="M5")

# %%
wt = []
for (norm, ds), v in {(k[1], k[2]): v for k, v in facts.items() if k[0] == "warm"}.items():
    wbest, a_warm, small, a_small = v
    nw = per_m[(per_m.norm == norm) & (per_m.dataset == ds)].set_index("m")
    if wbest is not None:
        b = nw.loc[wbest.m]
        wt.append({"normalisation": NORM_NAME.get(norm, norm), "best warm-up cell": f"m = {int(wbest.m)}, "
                   f"{eta(wbest.lr_log2)}", "with warm-up (%)": describe(a_warm, 1),
                   "same m, no warm-up (%)": describe(b.test_accs, 1),
                   f"best m <= {SMALL_MAX}, no warm-up (%)": describe(a_small, 1)})
if wt:
    sec.table("warmup", pd.DataFrame(wt),
              f"Warm-up (linear over {block['warmup']['epochs']} epoch(s)) for m = {block['warmup']['batch_sizes']}: "
              "the best warm-up cell (selected on the selection seeds) on the test seeds, the same m without warm-up, "
              "and the best small-batch cell (claim M4).", supports=[c["id"] for c in claims if c["id"][:2] == "M4"])

# %%
sec.claims(claims)

# %%
sec.protocol([
    {"aspect": "data", "paper": "CIFAR-10, CIFAR-100, ImageNet [V]",
     "ours": f"{', '.join(datasets)} ({int(sweep.steps_per_epoch.max() * sweep.m.min()):,} training samples)"},
    {"aspect": "network", "paper": "reduced AlexNet, ResNet-8/20/32 (CIFAR); ResNet-50 (ImageNet) [V]",
     "ours": f"{spec['model']} width {spec['width']} depth {spec['depth']}"},
    {"aspect": "optimiser", "paper": "plain SGD, no momentum [V]",
     "ours": f"SGD, momentum {spec['momentum']}, weight decay {spec.get('weight_decay', 0)}"},
    {"aspect": "learning rate", "paper": "eta = m·eta_base, eta_base = 2^-12..2^0 [V]",
     "ours": f"eta = m·eta_base, eta_base = 2^{grid[0]}..2^{grid[-1]}"},
    {"aspect": "batch sizes", "paper": "m = 2 up to a few thousand [V]", "ours": f"m = {ms[0]}..{ms[-1]}"},
    {"aspect": "budget", "paper": "82 epochs (CIFAR-10), 164 (CIFAR-100), lr /10 at 50% and 75% [V]",
     "ours": f"{spec['epochs']} epoch(s), lr x0.1 at epochs {spec.get('milestones', [])}"},
    {"aspect": "metric", "paper": "median test accuracy of the last 5 epochs (main text)",
     "ours": "final test accuracy"},
    {"aspect": "normalisation", "paper": "with and without BN; BN statistics over m_BN samples (main text)",
     "ours": "BN / none; ghost BN over m_BN samples"},
    {"aspect": "warm-up", "paper": "linear from eta/32 to eta over the first 5% of training (main text)",
     "ours": (f"linear from 0 over {block['warmup']['epochs']} epoch(s) for m = {block['warmup']['batch_sizes']}"
              if block.get("warmup") else "none")},
    {"aspect": "augmentation", "paper": "with and without crop + flip (main text)", "ours": spec.get("augment", "none")},
    {"aspect": "seeds", "paper": "ImageNet curves average 2 runs (main text)",
     "ours": f"{n_sel} selection + {n_test} test seeds per cell"},
])

# %%
# wall and CPU time of the jobs that trained this section's runs (Snakemake benchmark files)
bench_files = list(getattr(sm.input, "benchmarks", []))
if bench_files:
    recs = []
    for f in bench_files:
        b = pd.read_csv(f, sep="\t")
        recs.append({"job": os.path.basename(f).removesuffix(".tsv"), "wall": float(b.s.iloc[-1]),
                     "cpu": float(b.cpu_time.iloc[-1]) if "cpu_time" in b else float("nan")})
    timing = pd.DataFrame(recs)
    per_job = runs.drop_duplicates("run").groupby("pack").size() if "pack" in runs else pd.Series(dtype=int)
    timing["runs"] = timing.job.map(lambda j: int(per_job.get(j.removeprefix("masters_luschi-"), 1)))
    sec.table("timing", pd.DataFrame({"training job": timing.job, "runs": timing.runs,
                                      "wall time (s)": timing.wall.map(lambda v: f"{v:.1f}"),
                                      "CPU time (s)": timing.cpu.map(lambda v: f"{v:.1f}")}).sort_values("training job"),
              "Training jobs of this section: wall and CPU seconds per job (each job pays the Python/torch start-up "
              "once; a shared machine inflates both).")
    sec.text(f"Compute: {len(timing)} training jobs for {runs.run.nunique()} runs took {timing.wall.sum():.0f} "
             f"job-seconds of wall time ({timing.cpu.sum():.0f} CPU-seconds); this analysis took "
             f"{time.perf_counter() - T0:.0f} s.", heading="Compute")

# %%
largest = sweep.sort_values("m").iloc[-1]
sec.caveats(
    f"The network is a {spec['depth']}-layer MLP of width {spec['width']} on MNIST-1D, far smaller than the paper's "
    f"convolutional networks, and BatchNorm in an MLP over 2 to 4 samples is more degenerate than in a conv net "
    f"(which also averages over positions). The budget is {spec['epochs']} epoch(s) instead of 82, so the largest "
    f"batch (m = {int(largest.m)}) makes only {int(largest.steps_per_epoch * spec['epochs'])} updates; a fixed "
    "epoch budget this short favours small batches more strongly than the paper's. We use momentum 0.9 where the "
    "paper uses plain SGD, report the final test accuracy rather than the median of the last 5 epochs, and warm "
    "up from 0 rather than from eta/32. A selected learning rate at the edge of the grid, or a grid that never "
    "diverges at some m, makes the claims that depend on it inconclusive (their precondition).")
sec.save(sm.output.section if hasattr(sm.output, "section") else None)
