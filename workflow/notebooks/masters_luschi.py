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
# update per gradient computation), a fixed epoch budget, SGD with momentum, with and
# without BatchNorm; the BN batch size decoupled from m (ghost BN); warm-up for the larger
# batches. Run by Snakemake (`script:`); in Jupyter, `context()` rebuilds the inputs from
# config.yaml.

# %%
import time

T0 = time.perf_counter()

import matplotlib

matplotlib.use("Agg")
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib import pyplot as plt
from matplotlib.patches import Rectangle

from largebatch.experiments.masters_luschi import cell_table, run_stability, stable_cells, trend_verdict
from largebatch.notebook import context
from largebatch.report import Section, load_histories, load_runs
from largebatch.stats import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED, claim_row, mean_std, welch_verdict

sm = context("masters_luschi", globals())
block = getattr(sm.params, "block", None) or sm.params.scale
rows = sm.params.runs
runs = load_runs(rows)
hist = load_histories(rows)
sec = Section("masters_luschi", "Masters & Luschi 2018: revisiting small batch training")
TOL = float(block["stable_tolerance"])
spec = block["run"]
SMALL_MAX = 32  # the paper's headline range is m = 2..32

# %%
# per run: did it train stably (not diverged, final train loss <= loss at initialisation)?
init_loss = hist[hist.step == 0].drop_duplicates("run").set_index("run")["train_loss"]
runs["stable"] = run_stability(runs, init_loss)
runs["diverged"] = runs["status"].eq("diverged")
sweep = runs[runs.part == "sweep"].copy()
datasets = list(dict.fromkeys(sweep.dataset))
norms = list(dict.fromkeys(sweep.norm))
NORM_NAME = {"batch": "BatchNorm", "none": "no BN"}

cells = cell_table(sweep, ["dataset", "norm", "m", "lr_log2"])
cells["in_range"] = stable_cells(cells, TOL, ["dataset", "norm", "m"])
cells["acceptable_global"] = stable_cells(cells, TOL, ["dataset", "norm"])


def per_m(cells: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (dataset, norm, m): best cell, stable-range width, stable fraction."""
    out = []
    for (ds, norm, m), g in cells.groupby(["dataset", "norm", "m"]):
        r = runs[(runs.dataset == ds) & (runs.norm == norm) & (runs.m == m)]
        ok = g[g.acc_mean.notna()]
        best = ok.loc[ok.acc_mean.idxmax()] if len(ok) else None
        stable_lrs = g[g.stable_frac == 1.0].lr_log2
        out.append({
            "dataset": ds, "norm": norm, "m": m,
            "best_acc": best.acc_mean if best is not None else float("nan"),
            "best_std": best.acc_std if best is not None else float("nan"),
            "best_lr_log2": best.lr_log2 if best is not None else float("nan"),
            "best_accs": best.accs if best is not None else [],
            "width_octaves": int(g.in_range.sum()),
            "width_global": int(g.acceptable_global.sum()),
            "stable_frac": float(r.stable.mean()),
            "diverged_frac": float(r.diverged.mean()),
            "max_stable_lr_log2": stable_lrs.max() if len(stable_lrs) else float("nan"),
        })
    return pd.DataFrame(out)


summary = per_m(cells, sweep)

# %%
grid = sorted(sweep.lr_log2.unique())
ms = sorted(sweep.m.unique())
n_seeds = sweep.seed.nunique()
sec.text(
    f"Our sweep: {spec['model'].upper()} (width {spec['width']}, depth {spec['depth']}) on {', '.join(datasets)}, "
    f"SGD with momentum {spec['momentum']}, {spec['epochs']} epoch(s) for every batch size, lr x0.1 at epochs "
    f"{spec.get('milestones', [])}; m = {ms[0]}..{ms[-1]} ({len(ms)} sizes), eta_base = 2^{grid[0]}..2^{grid[-1]} "
    f"({len(grid)} values, one octave apart) with eta = m * eta_base, with and without BatchNorm, {n_seeds} seeds "
    f"per cell: {len(sweep)} runs (every cell: tables/sweep_cells.csv). A run diverged when its loss became "
    "NaN/inf (kept as a result, shown as such). "
    f"A run trained stably when it did not diverge and its final training loss was not above the loss at "
    f"initialisation. The stable range at m is the set of eta_base whose cell has every seed trained stably "
    f"and a mean test accuracy within {TOL:.2f} (absolute) of the best cell at that m; its width is counted "
    f"in octaves (grid points)."
)
sec.protocol([
    {"aspect": "data", "paper": "CIFAR-10, CIFAR-100, ImageNet [V]",
     "ours": f"{', '.join(datasets)} ({int(sweep.steps_per_epoch.max() * sweep.m.min())} training samples"
             + (", MNIST-1D)" if spec["model"] == "mlp" else ")")},
    {"aspect": "network", "paper": "CIFAR ResNets (8/20/32/44/56), ResNet-18/50 on ImageNet [M]",
     "ours": f"{spec['model']} width {spec['width']} depth {spec['depth']} (paper scale: ResNet-20 on CIFAR)"},
    {"aspect": "learning rate", "paper": "eta = m * eta_base, eta_base on a power-of-two grid [V]",
     "ours": f"eta = m * eta_base, eta_base = 2^{grid[0]}..2^{grid[-1]}"},
    {"aspect": "batch sizes", "paper": "m = 2^k from 2 to a few thousand [M]", "ours": f"m = {ms[0]}..{ms[-1]}"},
    {"aspect": "optimiser", "paper": "SGD with momentum [M]",
     "ours": f"SGD, momentum {spec['momentum']}, weight decay {spec.get('weight_decay', 0)}"},
    {"aspect": "budget", "paper": "fixed number of epochs, step lr schedule [M]",
     "ours": f"{spec['epochs']} epoch(s), x0.1 at epochs {spec.get('milestones', [])}"},
    {"aspect": "normalisation", "paper": "with and without BN; BN batch m_BN studied separately [M]",
     "ours": "BN / none; ghost BN over m_BN samples"},
    {"aspect": "warm-up", "paper": "gradual warm-up for some large-batch runs [M]",
     "ours": (f"linear warm-up over {block['warmup']['epochs']} epoch(s) for m = "
              f"{block['warmup']['batch_sizes']}" if block.get("warmup") else "none")},
    {"aspect": "augmentation", "paper": "with and without crop + flip [M]", "ours": spec.get("augment", "none")},
    {"aspect": "seeds", "paper": "not stated in what we read [M]", "ours": str(n_seeds)},
])

# %%
show = cells.assign(eta_base=lambda d: 2.0 ** d.lr_log2, acc=lambda d: d.acc_mean.round(4),
                    std=lambda d: d.acc_std.round(4))[
    ["dataset", "norm", "m", "lr_log2", "eta_base", "acc", "std", "n", "n_diverged", "stable_frac", "in_range",
     "acceptable_global"]]
# every cell as CSV only (the heatmap shows them; the report keeps the per-m summary below)
show.to_csv(sec.outdir / "tables" / "sweep_cells.csv", index=False)

# %%
sns.set_theme(style="whitegrid")
panels = [(ds, n) for ds in datasets for n in norms]
fig, axes = plt.subplots(1, len(panels), figsize=(6.6 * len(panels), 0.42 * len(ms) + 1.9), squeeze=False)
fig.subplots_adjust(wspace=0.28)
for ax, (ds, norm) in zip(axes[0], panels):
    c = cells[(cells.dataset == ds) & (cells.norm == norm)]
    mat = c.pivot(index="m", columns="lr_log2", values="acc_mean").reindex(index=ms, columns=grid)
    div = c.pivot(index="m", columns="lr_log2", values="n_diverged").reindex(index=ms, columns=grid)
    sfrac = c.pivot(index="m", columns="lr_log2", values="stable_frac").reindex(index=ms, columns=grid)
    rng = c.pivot(index="m", columns="lr_log2", values="in_range").reindex(index=ms, columns=grid)
    annot = mat.copy().astype(object)
    for i in mat.index:
        for j in mat.columns:
            if div.loc[i, j] > 0:
                annot.loc[i, j] = "div"
            else:
                annot.loc[i, j] = f"{100 * mat.loc[i, j]:.0f}" + ("!" if sfrac.loc[i, j] < 1 else "")
    ax.set_facecolor("0.6")
    sns.heatmap(mat, ax=ax, annot=annot.values, fmt="", cmap="viridis", vmin=0.1,
                vmax=float(np.nanmax(cells.acc_mean)), cbar_kws={"label": "test accuracy"},
                annot_kws={"fontsize": 7})
    for yi, i in enumerate(mat.index):
        for xj, j in enumerate(mat.columns):
            if bool(rng.loc[i, j]):
                ax.add_patch(Rectangle((xj + 0.06, yi + 0.06), 0.88, 0.88, fill=False, edgecolor="red", lw=1.4))
            if div.loc[i, j] > 0:  # seaborn leaves NaN cells blank: label the diverged ones
                ax.text(xj + 0.5, yi + 0.5, f"div {int(div.loc[i, j])}/{n_seeds}", ha="center", va="center",
                        fontsize=6.5, color="black")
    ax.set_xticklabels([f"2^{int(k)}" for k in grid], rotation=45, fontsize=8)
    ax.set_xlabel("base learning rate eta_base (eta = m * eta_base)")
    ax.set_ylabel("batch size m")
    ax.set_title(f"{ds}, {NORM_NAME.get(norm, norm)}")
sec.figure("accuracy_heatmap", fig,
           "Final test accuracy (%, mean over seeds) over (m, eta_base). Grey 'div k/n': k of n seeds diverged "
           "(NaN/inf loss); "
           "'!': a seed ended with a higher training loss than at initialisation; red outline: the stable range "
           f"(every seed stable, mean within {TOL:.2f} of the best at that m).")

# %%
warm = runs[runs.part == "warmup"].copy()
warm_summary = pd.DataFrame()
if len(warm):
    wcells = cell_table(warm, ["dataset", "norm", "m", "lr_log2"])
    wcells["in_range"] = stable_cells(wcells, TOL, ["dataset", "norm", "m"])
    wcells["acceptable_global"] = stable_cells(wcells, TOL, ["dataset", "norm"])
    warm_summary = per_m(wcells, warm)

fig, ax = plt.subplots(figsize=(6.4, 4))
for norm, color in zip(norms, sns.color_palette(n_colors=len(norms))):
    for ds, ls in zip(datasets, ["-", ":", "-."]):
        s = summary[(summary.norm == norm) & (summary.dataset == ds)]
        ax.errorbar(s.m, s.best_acc, yerr=s.best_std.fillna(0), marker="o", ls=ls, color=color, capsize=3,
                    label=f"{NORM_NAME.get(norm, norm)}" + (f" ({ds})" if len(datasets) > 1 else ""))
    if len(warm_summary):
        w = warm_summary[warm_summary.norm == norm]
        ax.errorbar(w.m, w.best_acc, yerr=w.best_std.fillna(0), marker="s", ls="--", color=color, capsize=3,
                    alpha=0.7, label=f"{NORM_NAME.get(norm, norm)} + warm-up")
ax.axvspan(2, SMALL_MAX, color="0.9", zorder=0, label="m = 2..32 (paper's best)")
ax.set_xscale("log", base=2)
ax.set_xlabel("batch size m")
ax.set_ylabel("best test accuracy over eta_base")
ax.legend(fontsize=8)
sec.figure("best_vs_m", fig, "Best test accuracy over the eta_base grid at each m: mean ± one std over seeds of the "
           "best cell. Dashed: the larger batches with a linear learning-rate warm-up.")

# %%
fig, axes = plt.subplots(1, 3, figsize=(16, 3.8))
for norm, color in zip(norms, sns.color_palette(n_colors=len(norms))):
    for ds, ls in zip(datasets, ["-", ":", "-."]):
        s = summary[(summary.norm == norm) & (summary.dataset == ds)]
        label = NORM_NAME.get(norm, norm) + (f" ({ds})" if len(datasets) > 1 else "")
        axes[0].plot(s.m, s.width_octaves, marker="o", ls=ls, color=color, label=label)
        axes[1].plot(s.m, s.stable_frac, marker="o", ls=ls, color=color, label=label)
        axes[2].plot(s.m, s.width_global, marker="o", ls=ls, color=color, label=label)
    if len(warm_summary):
        w = warm_summary[warm_summary.norm == norm]
        axes[0].plot(w.m, w.width_octaves, marker="s", ls="--", color=color, alpha=0.7,
                     label=f"{NORM_NAME.get(norm, norm)} + warm-up")
        axes[1].plot(w.m, w.stable_frac, marker="s", ls="--", color=color, alpha=0.7,
                     label=f"{NORM_NAME.get(norm, norm)} + warm-up")
for ax in axes:
    ax.set_xscale("log", base=2)
    ax.set_xlabel("batch size m")
    ax.legend(fontsize=8)
axes[0].set_ylabel(f"stable eta_base range (octaves, tol {TOL:.2f})")
axes[1].set_ylabel("fraction of runs trained stably")
axes[1].set_ylim(-0.02, 1.02)
axes[2].set_ylabel(f"octaves within {TOL:.2f} of the best over all m")
sec.figure("stable_range", fig, f"Left: width of the stable eta_base range (grid points one octave apart; every seed "
           f"stable and mean accuracy within {TOL:.2f} of the best at that m; the test of M2). Middle: fraction of "
           "all (eta_base, seed) runs at that m that trained stably (no NaN/inf, final train loss not above the "
           "initial; the test of M3). Right (secondary, not a claim's test): octaves whose cell is stable and "
           f"within {TOL:.2f} of the best cell over every m.")

# %%
tab = summary.assign(best=lambda d: [mean_std(a) for a in d.best_accs],
                     best_eta_base=lambda d: [f"2^{int(k)}" if np.isfinite(k) else "n/a" for k in d.best_lr_log2],
                     max_stable_eta_base=lambda d: [f"2^{int(k)}" if np.isfinite(k) else "none"
                                                    for k in d.max_stable_lr_log2])[
    ["dataset", "norm", "m", "best", "best_eta_base", "width_octaves", "width_global", "stable_frac",
     "diverged_frac", "max_stable_eta_base"]]
sec.table("per_batch_size", tab, "Per batch size: best cell (test accuracy mean ± std over seeds) and its eta_base, "
          f"width of the stable range (octaves; width_global: cells within {TOL:.2f} of the best over all m), fraction "
          "of runs that trained stably and that diverged, and the largest eta_base at which every seed trained stably.")

# %%
lines = []
for (ds, norm), s in summary.groupby(["dataset", "norm"], sort=False):
    lines.append(
        f"{NORM_NAME.get(norm, norm)}" + (f" ({ds})" if len(datasets) > 1 else "") + ": largest eta_base at which "
        "every seed trained stably, by m: " + ", ".join(
            f"{m}: " + (f"2^{int(k)}" if np.isfinite(k) else "none") for m, k in zip(s.m, s.max_stable_lr_log2))
        + "; octaves within the tolerance of the best over all m: "
        + ", ".join(f"{m}: {w}" for m, w in zip(s.m, s.width_global)) + ".")
sec.text(" ".join(lines), heading="Stability limits")

# %%
bnr = runs[runs.part == "bn_batch"].copy()
bn_cells = pd.DataFrame()
if len(bnr):
    bc = cell_table(bnr, ["m", "m_bn", "lr_log2"])
    # per (m, m_BN): the best eta_base of the sub-grid (by mean over seeds)
    best_rows = []
    for (m, b), g in bc.groupby(["m", "m_bn"]):
        ok = g[g.acc_mean.notna()]
        if len(ok):
            r = ok.loc[ok.acc_mean.idxmax()]
            best_rows.append({"m": m, "m_bn": b, "acc": r.acc_mean, "std": r.acc_std, "lr_log2": r.lr_log2,
                              "accs": r.accs, "n_diverged": int(g.n_diverged.sum())})
        else:
            best_rows.append({"m": m, "m_bn": b, "acc": float("nan"), "std": float("nan"), "lr_log2": float("nan"),
                              "accs": [], "n_diverged": int(g.n_diverged.sum())})
    bn_cells = pd.DataFrame(best_rows)
    fig, axes = plt.subplots(1, 2, figsize=(11.5, 3.9))
    for m, color in zip(sorted(bn_cells.m.unique()), sns.color_palette("rocket", n_colors=bn_cells.m.nunique())):
        s = bn_cells[bn_cells.m == m]
        axes[0].errorbar(s.m_bn, s.acc, yerr=s["std"].fillna(0), marker="o", color=color, capsize=3, label=f"m = {m}")
    axes[0].set_xscale("log", base=2)
    axes[0].set_xlabel("BN batch size m_BN")
    axes[0].set_ylabel("test accuracy (best eta_base of the sub-grid)")
    axes[0].legend(fontsize=8)
    mat = bn_cells.pivot(index="m", columns="m_bn", values="acc")
    sns.heatmap(mat, ax=axes[1], annot=True, fmt=".2f", cmap="viridis", annot_kws={"fontsize": 7},
                cbar_kws={"label": "test accuracy"})
    axes[1].set_facecolor("white")
    axes[1].set_xlabel("BN batch size m_BN")
    axes[1].set_ylabel("SGD batch size m")
    sec.figure("bn_batch", fig, "BN batch size decoupled from the SGD batch size: ghost BN over m_BN samples "
               "(m_BN = m is ordinary BN). Test accuracy at the best eta_base of "
               f"2^{sorted(bnr.lr_log2.unique())} (mean ± std over seeds); blank cells: m_BN > m.")
    sec.table("bn_batch", bn_cells.assign(test_acc=[mean_std(a) for a in bn_cells.accs],
                                          eta_base=[f"2^{int(k)}" if np.isfinite(k) else "n/a"
                                                    for k in bn_cells.lr_log2])[
        ["m", "m_bn", "test_acc", "eta_base", "n_diverged"]],
        "BN batch study: test accuracy (mean ± std over seeds) at the best eta_base of the sub-grid per (m, m_BN).")
    best_bn = bn_cells[bn_cells.acc.notna()].sort_values("acc").groupby("m").tail(1).sort_values("m")
    sec.text("Best BN batch size per SGD batch size (mean over seeds, best eta_base of the sub-grid): "
             + ", ".join(f"m = {int(r.m)}: m_BN = {int(r.m_bn)} ({r.acc:.3f})" for r in best_bn.itertuples()) + ".",
             heading="BN batch size")
else:
    fig, ax = plt.subplots(figsize=(4, 2))
    ax.text(0.5, 0.5, "no BN-batch study at this scale", ha="center")
    ax.axis("off")
    sec.figure("bn_batch", fig, "No BN-batch study configured at this scale.")

# %%
if len(warm_summary):
    base = summary[summary.dataset == datasets[0]].set_index(["norm", "m"])
    wt = []
    for _, w in warm_summary.iterrows():
        b = base.loc[(w.norm, w.m)]
        wt.append({"norm": w.norm, "m": w.m, "best (no warm-up)": mean_std(b.best_accs),
                   "best (warm-up)": mean_std(w.best_accs), "width (no warm-up)": b.width_octaves,
                   "width (warm-up)": w.width_octaves, "stable frac (no warm-up)": round(b.stable_frac, 3),
                   "stable frac (warm-up)": round(w.stable_frac, 3)})
    sec.table("warmup", pd.DataFrame(wt), f"The larger batches without and with a linear warm-up over "
              f"{block['warmup']['epochs']} epoch(s): best test accuracy (mean ± std over seeds), stable-range width "
              "(octaves) and the fraction of runs that trained stably.")

# %% [markdown]
# ## Claims

# %%
claims = []
ABSTRACT = "[V] abstract"


def best_cell_accs(summary_rows: pd.DataFrame) -> tuple[list, int | None]:
    s = summary_rows[summary_rows.best_acc.notna()]
    if not len(s):
        return [], None
    r = s.loc[s.best_acc.idxmax()]
    return list(r.best_accs), int(r.m)


for ds, norm in [(ds, norm) for ds in datasets for norm in norms]:
    s = summary[(summary.norm == norm) & (summary.dataset == ds)]
    name = NORM_NAME.get(norm, norm) + (f", {ds}" if len(datasets) > 1 else "")
    tag = ("a" if norm == "batch" else "b") + (f"-{ds}" if len(datasets) > 1 else "")
    small, m_small = best_cell_accs(s[s.m <= SMALL_MAX])
    large, m_large = best_cell_accs(s[s.m > SMALL_MAX])
    s_ok = s[s.best_acc.notna()]
    m_star = int(s_ok.loc[s_ok.best_acc.idxmax()].m) if len(s_ok) else None
    v, p, test = welch_verdict(large, small, claim="less")
    claims.append(claim_row(
        f"M1{tag}", f"{name}: the best test accuracy is obtained with a batch size between 2 and 32.",
        "best-cell test accuracy per m (max over eta_base of the seed mean)",
        f"best m = {m_star}; best m <= 32: m = {m_small}, {mean_std(small)}; best m > 32: m = {m_large}, "
        f"{mean_std(large)} (p={p:.3g})",
        f"best for m = 2..32 {ABSTRACT}; no number", v,
        test + "; a = seeds of the best cell with m > 32, b = seeds of the best cell with m <= 32"))

    v, rho, p, test = trend_verdict(np.log2(s.m), s.width_octaves, "negative")
    claims.append(claim_row(
        f"M2{tag}", f"{name}: the range of base learning rates giving stable convergence and acceptable test "
        "accuracy narrows as m grows.",
        f"stable eta_base range width (octaves; tol {TOL:.2f}) vs log2 m",
        "widths " + ", ".join(f"m={m}: {w}" for m, w in zip(s.m, s.width_octaves)) + f"; rho={rho:.2f}, p={p:.3g}",
        f"range narrows with m {ABSTRACT}; no number", v, test))

    v, rho, p, test = trend_verdict(np.log2(s.m), s.stable_frac, "negative")
    claims.append(claim_row(
        f"M3{tag}", f"{name}: small batches train more stably (over the same eta_base grid, fewer runs diverge "
        "or end with a higher loss than they started).",
        "fraction of (eta_base, seed) runs trained stably vs log2 m",
        "stable fraction " + ", ".join(f"m={m}: {f:.2f}" for m, f in zip(s.m, s.stable_frac))
        + f"; rho={rho:.2f}, p={p:.3g}",
        f"small m more stable {ABSTRACT}; no number", v, test))

    if len(warm_summary) and ds == datasets[0]:
        w = warm_summary[warm_summary.norm == norm]
        wl, wm = best_cell_accs(w)
        v, p, test = welch_verdict(wl, small, claim="less")
        claims.append(claim_row(
            f"M4{tag}", f"{name}: with a gradual warm-up the larger batches still do not reach the best small-batch "
            "accuracy.",
            "best-cell test accuracy, warm-up runs (m >= %d) vs best no-warm-up cell with m <= 32" % w.m.min(),
            f"warm-up best: m = {wm}, {mean_std(wl)}; small best: m = {m_small}, {mean_std(small)} (p={p:.3g})",
            "warm-up studied for large m [M: not verified in the PDF]; no number", v,
            test + "; a = seeds of the best warm-up cell, b = seeds of the best cell with m <= 32"))

if len(bn_cells) and block.get("bn_batch", {}).get("reference"):
    ref = int(block["bn_batch"]["reference"])
    per, verdicts = [], []
    for m in sorted(bn_cells.m.unique()):
        if m <= ref:
            continue
        full = bn_cells[(bn_cells.m == m) & (bn_cells.m_bn == m)]
        small_bn = bn_cells[(bn_cells.m == m) & (bn_cells.m_bn == ref)]
        if not len(full) or not len(small_bn):
            continue
        v, p, _ = welch_verdict(list(full.accs.iloc[0]), list(small_bn.accs.iloc[0]), claim="less")
        verdicts.append(v)
        per.append(f"m={m}: m_BN={ref} {mean_std(small_bn.accs.iloc[0])} vs m_BN=m {mean_std(full.accs.iloc[0])} "
                   f"(p={p:.3g}, {v})")
    if verdicts:
        overall = (NOT_REPRODUCED if NOT_REPRODUCED in verdicts
                   else REPRODUCED if all(x == REPRODUCED for x in verdicts) else INCONCLUSIVE)
        claims.append(claim_row(
            "M5", f"BatchNorm: for batches larger than {ref}, computing BN statistics over m_BN = {ref} samples "
            "(ghost BN) gives a higher test accuracy than over the whole batch.",
            "test accuracy at the best eta_base of the sub-grid, m_BN = reference vs m_BN = m",
            "; ".join(per),
            "BN batch size studied separately [M: not verified in the PDF]; no number", overall,
            "Welch t-test per m, one-sided (m_BN = m < m_BN = reference), alpha=0.05; reproduced if every m is "
            "reproduced, not reproduced if any m points the other way, else inconclusive"))
sec.claims(claims)

# %%
# wall and CPU time of the jobs that trained this section's runs (Snakemake benchmark files)
bench_files = list(getattr(sm.input, "benchmarks", []))
timing = pd.DataFrame()
if bench_files:
    import os

    recs = []
    for f in bench_files:
        b = pd.read_csv(f, sep="\t")
        end = os.path.getmtime(f)
        recs.append({"job": os.path.basename(f).removesuffix(".tsv"), "wall_s": float(b.s.iloc[-1]),
                     "cpu_s": float(b.cpu_time.iloc[-1]) if "cpu_time" in b else float("nan"),
                     "start": end - float(b.s.iloc[-1]), "end": end})
    timing = pd.DataFrame(recs)
    per_job = runs.drop_duplicates("run").groupby("pack").size() if "pack" in runs else pd.Series(dtype=int)
    timing["runs"] = timing.job.map(lambda j: int(per_job.get(j.removeprefix("masters_luschi-"), 1)))
    analysis_s = time.perf_counter() - T0
    span = timing.end.max() - timing.start.min()
    sec.table("timing", timing[["job", "runs", "wall_s", "cpu_s"]].round(2).sort_values("job"),
              "Training jobs of this section (Snakemake benchmark files): wall and CPU seconds per job "
              "(each job pays the Python/torch start-up once).")
    sec.text(
        f"Compute: {len(timing)} training jobs for {runs.run.nunique()} runs took {timing.wall_s.sum():.1f} job-seconds "
        f"of wall time ({timing.cpu_s.sum():.1f} CPU-seconds); the first started and the last finished "
        f"{span:.1f} s apart in this build (jobs of other sections may interleave). This analysis took "
        f"{analysis_s:.1f} s up to this point. Timings on a shared machine are inflated by contention.",
        heading="Wall time")

# %%
if spec["model"] == "mlp":
    largest = runs[runs.part == "sweep"].sort_values("m").iloc[-1]
    sec.text(
        f"The MNIST-1D MLP is far smaller than the paper's ResNets and the budget is {spec['epochs']} epoch(s), so "
        f"the largest batch (m = {int(largest.m)}) makes only {int(largest.steps_per_epoch * spec['epochs'])} "
        "updates; with a fixed epoch budget this regime favours small batches more strongly than the paper's. "
        "Protocol items tagged [M] were not verified in the paper.",
        heading="Caveats")
sec.save(sm.output.section if hasattr(sm.output, "section") else None)
