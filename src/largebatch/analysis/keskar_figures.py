"""Keskar et al. 2017: the section's figures (analogues of the paper's Figs. 2, 3 and 4).

Each builder takes the section's data frames and returns a matplotlib figure; the
notebook adds it to the section with its declared caption. Drawing only: every number
a figure shows is also in a table or a claim.
"""

from __future__ import annotations

import matplotlib
import matplotlib.ticker
import pandas as pd
from matplotlib import pyplot as plt
from matplotlib.lines import Line2D

from ..experiments.keskar import DATASET_NAMES, PUBLISHED, PUBLISHED_THRESHOLD
from .keskar import CLASSES, same_data_as_paper, sharp_col

COLORS = {"SB": "C0", "LB": "C3"}


def log_if_wide(ax, values, axis: str = "y") -> str:
    """Log scale where the values span more than a decade, else linear (ticks stay labelled);
    returns the axis-label suffix."""
    v = pd.Series(values, dtype=float)
    v = v[v > 0]
    wide = len(v) and v.max() / v.min() > 10
    if wide:
        getattr(ax, f"set_{axis}scale")("log")
        getattr(ax, f"{axis}axis").set_major_formatter(matplotlib.ticker.FormatStrFormatter("%.3g"))
    return " (log scale)" if wide else ""


def learning_curves(hist: pd.DataFrame, nets: list[str], kinds: dict[str, str]):
    """Fig. 2 analogue: train and test accuracy per epoch of every main SB and LB run, one
    panel per network, with chance and (on the paper's data) the paper's test accuracy."""
    mh = hist[hist["main"]]
    fig, axes = plt.subplots(1, len(nets), figsize=(5.4 * len(nets), 3.6), squeeze=False)
    for ax, n in zip(axes[0], nets):
        for (a, s), h in mh[mh.network == n].groupby(["arm", "seed"]):
            ax.plot(h.epoch, 100 * h.train_acc, "-", color=COLORS[a], lw=0.9, alpha=0.8)
            ax.plot(h.epoch, 100 * h.test_acc, "--", color=COLORS[a], lw=0.9, alpha=0.8)
        ax.axhline(100 / CLASSES.get(kinds[n], 10), color="grey", ls=":", lw=1)
        if same_data_as_paper(n, kinds[n]):
            for i, a in ((2, "SB"), (3, "LB")):
                ax.axhline(PUBLISHED["table2"][n][i][0], color=COLORS[a], ls="-.", lw=0.8)
        ax.set_xscale("symlog", linthresh=1)
        ax.set_xlim(left=0)
        ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.set_xlabel("epoch (linear to 1, log beyond)")
        ax.set_ylabel("accuracy (%)")
        ax.set_title(f"{n} ({DATASET_NAMES.get(kinds[n], kinds[n])})")
    handles = [Line2D([], [], color=COLORS["SB"], label="SB"), Line2D([], [], color=COLORS["LB"], label="LB"),
               Line2D([], [], color="k", ls="-", label="train"), Line2D([], [], color="k", ls="--", label="test"),
               Line2D([], [], color="grey", ls=":", label="chance")]
    if any(same_data_as_paper(n, kinds[n]) for n in nets):
        handles.append(Line2D([], [], color="k", ls="-.", label="paper test (Table 2)"))
    axes[0][-1].legend(handles=handles, fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def parametric(curves: pd.DataFrame, nets: list[str], kinds: dict[str, str], seed: int):
    """Fig. 3 analogue: loss (left axis) and accuracy (right axis) along the SB-LB line of the
    pair of ``seed``, one panel per network."""
    fig, axes = plt.subplots(1, len(nets), figsize=(5.4 * len(nets), 3.6), squeeze=False)
    for ax, n in zip(axes[0], nets):
        c = curves[(curves.network == n) & (curves.seed == seed)].sort_values("alpha")
        ax.plot(c.alpha, c.train_loss, "b-")
        ax.plot(c.alpha, c.test_loss, "b--")
        ax.set_xlabel("α  (0 = SB minimiser, 1 = LB minimiser)")
        ax.set_ylabel("cross-entropy" + log_if_wide(ax, pd.concat([c.train_loss, c.test_loss])), color="b")
        ax2 = ax.twinx()
        ax2.plot(c.alpha, 100 * c.train_acc, "r-")
        ax2.plot(c.alpha, 100 * c.test_acc, "r--")
        ax2.axhline(100 / CLASSES.get(kinds[n], 10), color="grey", ls=":", lw=1)
        ax2.set_ylabel("accuracy (%)", color="r")
        ax2.set_ylim(0, 100)
        ax2.grid(False)
        ax.set_title(f"{n}, seed {seed}")
        for a in (0, 1):
            ax.axvline(a, color="grey", lw=0.6)
    handles = [Line2D([], [], color="b", label="loss"), Line2D([], [], color="r", label="accuracy"),
               Line2D([], [], color="k", ls="-", label="train"), Line2D([], [], color="k", ls="--", label="test"),
               Line2D([], [], color="grey", ls=":", label="chance accuracy")]
    axes[0][0].legend(handles=handles, fontsize=7, loc="upper center")
    fig.tight_layout()
    return fig


def paper_threshold_here(n_train: int) -> float:
    """The batch size that is the same fraction of ``n_train`` as the paper's C1 threshold."""
    b, n = PUBLISHED_THRESHOLD["C1"]
    return b / n * n_train


def sweep(runs: pd.DataFrame, eps: float, net: str, n_train: int):
    """Fig. 4 analogue: test accuracy (left) and full-space ε-sharpness with the Hessian's top
    eigenvalue (right) against batch size, means ± sd over seeds; the paper's C1 threshold,
    as a fraction of our training set of ``n_train`` samples, where it falls in the sweep."""
    col = sharp_col("full", eps)
    g = runs.groupby("batch_size").agg(acc=("test_acc", "mean"), acc_sd=("test_acc", "std"),
                                       sh=(col, "mean"), sh_sd=(col, "std"),
                                       hess=("hessian_max_eig", "mean")).reset_index().fillna({"acc_sd": 0, "sh_sd": 0})
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    axes[0].errorbar(g.batch_size, 100 * g.acc, yerr=100 * g.acc_sd, marker="o", capsize=3, label="test accuracy")
    axes[1].errorbar(g.batch_size, g.sh, yerr=g.sh_sd, marker="o", capsize=3, color="C3",
                     label=f"ε-sharpness (full space, ε={eps:g})")
    sharp_scale = log_if_wide(axes[1], g.sh)
    ax_h = axes[1].twinx()
    ax_h.plot(g.batch_size, g.hess, marker="s", color="C2", label="Hessian λmax")
    ax_h.grid(False)
    paper_b, paper_n = PUBLISHED_THRESHOLD["C1"]
    thr_here = paper_threshold_here(n_train)
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xticks(sorted(runs.batch_size.unique()))
        ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%d"))
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel("batch size (log scale)")
        if g.batch_size.min() <= thr_here <= g.batch_size.max():
            ax.axvline(thr_here, color="grey", ls=":", lw=1,
                       label=f"paper's C1 threshold, same fraction of the training set ({100 * paper_b / paper_n:.0f}%)")
    axes[0].set_ylabel("test accuracy (%)")
    axes[1].set_ylabel(f"ε-sharpness, ε={eps:g}{sharp_scale}")
    ax_h.set_ylabel("Hessian λmax")
    axes[0].legend(loc="best", fontsize=7)
    h1, l1 = axes[1].get_legend_handles_labels()
    h2, l2 = ax_h.get_legend_handles_labels()
    axes[1].legend(h1 + h2, l1 + l2, loc="best", fontsize=7)
    fig.suptitle(f"{net}: test accuracy and sharpness against batch size")
    fig.tight_layout()
    return fig
