"""Masters & Luschi 2018: the section's figures (each function returns a matplotlib figure;
the notebook adds it to the section with the declared caption)."""

from __future__ import annotations

import numpy as np
import seaborn as sns
from matplotlib import pyplot as plt
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle

from ..experiments.masters_luschi import SMALL_MAX
from .masters_luschi import NORM_NAME, BNStudy, Study, stable_fraction_per_seed, warmup_best_per_m, widths_per_seed

#: line style per (dataset, network) (the first solid)
DATASET_STYLES = ["-", ":", "-.", (0, (5, 1, 1, 1))]


def lines_of(st: Study) -> list[tuple[str, str, object]]:
    """(dataset, network, line style) of every line of a per-m plot."""
    combos = [(ds, net) for ds in st.datasets for net in st.nets]
    return [(ds, net, DATASET_STYLES[i % len(DATASET_STYLES)]) for i, (ds, net) in enumerate(combos)]


def line_label(st: Study, ds: str, net: str) -> str:
    return " ".join(([net] if len(st.nets) > 1 else []) + ([ds] if len(st.datasets) > 1 else []))


def norm_colors(norms: list[str]) -> dict:
    return dict(zip(norms, sns.color_palette(n_colors=len(norms))))


def heatmap(st: Study):
    """Test accuracy over (m, eta_base), one panel per (dataset, network, norm): mean over all seeds,
    grey 'div k/n' where seeds diverged, '*' / 'x' where some / no seed trained stably, the
    cell selected per m outlined in red."""
    sns.set_theme(style="whitegrid")
    ms, grid, all_cells, per_m = st.ms, st.grid, st.all_cells, st.per_m
    panels = st.panels()
    cols = min(2, len(panels))
    rows_n = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows_n, cols, figsize=(6.8 * cols, (0.42 * len(ms) + 2.2) * rows_n), squeeze=False)
    fig.subplots_adjust(wspace=0.25, hspace=0.45)
    vmax = float(np.nanmax(all_cells.acc_mean)) if all_cells.acc_mean.notna().any() else 100.0
    for ax, (ds, net, norm) in zip(axes.ravel(), panels):
        c = st.panel(all_cells, ds, net, norm)
        mat = c.pivot(index="m", columns="lr_log2", values="acc_mean").reindex(index=ms, columns=grid)
        div = c.pivot(index="m", columns="lr_log2", values="n_diverged").reindex(index=ms, columns=grid)
        n_of = c.pivot(index="m", columns="lr_log2", values="n").reindex(index=ms, columns=grid)
        sfrac = c.pivot(index="m", columns="lr_log2", values="stable_frac").reindex(index=ms, columns=grid)
        annot = np.where(div.to_numpy() > 0, "", np.vectorize(
            lambda v, f: "" if not np.isfinite(v) else f"{v:.0f}" + ("" if f == 1 else "*" if f > 0 else "x"))(
                mat, sfrac))
        ax.set_facecolor("0.55")
        sns.heatmap(mat, ax=ax, annot=annot, fmt="", cmap="viridis", vmin=10, vmax=vmax,
                    cbar_kws={"label": "test accuracy (%), mean over all seeds"}, annot_kws={"fontsize": 7})
        chosen = st.panel(per_m, ds, net, norm)
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
        ax.set_title(", ".join([ds] + ([net] if len(st.nets) > 1 else []) + [NORM_NAME.get(norm, norm)]))
    axes[0, -1].legend(handles=[Patch(facecolor="none", edgecolor="red", label="selected at this m (selection seeds)"),
                                Patch(facecolor="0.55", label="div k/n: k of n seeds diverged"),
                                Patch(facecolor="none", label="*: some seeds unstable, x: no seed stable")],
                       loc="upper left", bbox_to_anchor=(1.25, 1.0), fontsize=8, frameon=False)
    return fig


def best_vs_m(st: Study, chance: set[float]):
    """Test-seed accuracy of the cell selected at each m, per norm (and dataset), the warm-up
    runs dashed, the paper's best range m = 2..SMALL_MAX shaded, chance levels dotted."""
    fig, ax = plt.subplots(figsize=(7.2, 4.2))
    colors = norm_colors(st.norms)
    per_m, runs = st.per_m, st.runs
    for norm in st.norms:
        for ds, net, ls in lines_of(st):
            s = st.panel(per_m, ds, net, norm)
            ax.errorbar(s.m, s.test_mean, yerr=s.test_sd.fillna(0), marker="o", ls=ls, color=colors[norm], capsize=3)
            wr = st.panel(runs[runs.part == "warmup"], ds, net, norm)
            if len(wr):
                pts = np.array(warmup_best_per_m(wr))
                ax.errorbar(pts[:, 0], pts[:, 1], yerr=pts[:, 2], marker="s", ls="--", color=colors[norm],
                            capsize=3, alpha=0.8)
    ax.axvspan(2, SMALL_MAX, color="0.88", zorder=0)
    for c in chance:
        ax.axhline(c, color="black", ls=":", lw=1)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("batch size m")
    ax.set_ylabel("test accuracy (%), test seeds")
    handles = [Line2D([], [], color=colors[n], marker="o", label=NORM_NAME.get(n, n)) for n in st.norms]
    handles += [Line2D([], [], color="0.3", ls="-", marker="o", label="no warm-up"),
                Line2D([], [], color="0.3", ls="--", marker="s", label="linear warm-up")]
    if len(lines_of(st)) > 1:
        handles += [Line2D([], [], color="0.3", ls=ls, label=line_label(st, ds, net)) for ds, net, ls in lines_of(st)]
    handles.append(Patch(color="0.88", label=f"m = 2..{SMALL_MAX}: the paper's best range (abstract)"))
    handles.append(Line2D([], [], color="black", ls=":", label="chance accuracy"))
    ax.legend(handles=handles, fontsize=8, loc="best")
    return fig


def stable_range(st: Study, tol: float):
    """Left: width of the acceptable eta_base range per test seed (claim M2); right: the
    fraction of the grid trained stably per seed (claim M3); mean ± sd against m."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.9))
    colors = norm_colors(st.norms)
    for norm in st.norms:
        for ds, net, ls in lines_of(st):
            panel = st.panel(st.sweep, ds, net, norm)
            sc = st.panel(st.sel_cells, ds, net, norm)
            wid = widths_per_seed(panel[panel.seed_role == "test"], float(sc.acc_mean.max()), tol)
            wid = wid.groupby("m").width.agg(["mean", "std"])
            axes[0].errorbar(wid.index, wid["mean"], yerr=wid["std"].fillna(0), marker="o", ls=ls,
                             color=colors[norm], capsize=3)
            fr = stable_fraction_per_seed(panel).groupby("m").stable_frac
            axes[1].errorbar(fr.mean().index, fr.mean(), yerr=fr.std().fillna(0), marker="o", ls=ls,
                             color=colors[norm], capsize=3)
    for ax in axes:
        ax.set_xscale("log", base=2)
        ax.set_xlabel("batch size m")
        ax.legend(handles=[Line2D([], [], color=colors[n], marker="o", label=NORM_NAME.get(n, n)) for n in st.norms]
                  + ([Line2D([], [], color="0.3", ls=ls, label=line_label(st, ds, net)) for ds, net, ls in lines_of(st)]
                     if len(lines_of(st)) > 1 else []), fontsize=8)
    axes[0].set_ylabel("acceptable eta_base range (octaves)")
    axes[0].set_ylim(bottom=0)
    axes[1].set_ylabel("fraction of the eta_base grid trained stably")
    axes[1].set_ylim(0, 1.02)
    return fig


def bn_batch(bn: BNStudy):
    """Accuracy against the BN batch size m_BN, one line per SGD batch m (selection seeds at
    the selected eta_base), stars at the test-seed means claim M5 compares."""
    best = bn.best
    fig, ax = plt.subplots(figsize=(6.8, 4))
    for m, color in zip(sorted(best.m.unique()), sns.color_palette("rocket", n_colors=best.m.nunique())):
        s = best[best.m == m]
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
    return fig


def chance_levels(datasets: list[str], scale_datasets: dict, classes: dict[str, int]) -> set[float]:
    """Chance accuracy (%) of each swept dataset (its kind's number of classes)."""
    return {100.0 / classes[scale_datasets[ds].get("kind", ds)] for ds in datasets}

