"""SWAP (Gupta, Akle Serrano & DeCoste 2020): the section's figures.

Each function returns a matplotlib figure; the notebook adds it to the section with its
declared caption (``largebatch.experiments.swap.OUTPUTS``). Curves are drawn for the first
seed (``seed``); the k-worker curve and the end markers use every seed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib import pyplot as plt


class SeedCurves:
    """One seed's histories (``ctx.histories()``) and phase-3 result, drawn against epochs or
    training-loop seconds by :meth:`draw` (both curve figures share it)."""

    def __init__(self, hist: pd.DataFrame, avg: pd.DataFrame, seed, workers: int):
        self.seed, self.workers = seed, workers
        self.h = hist[hist.seed == seed]
        self.p1 = self.h[self.h.arm == "phase1"]
        self.avg = avg[avg.seed == seed].iloc[0]
        self.palette = sns.color_palette("husl", workers)
        h, a = self.h, self.avg
        late = [h[h.arm == "worker"].test_acc.min(), a.test_acc, self.p1.test_acc.iloc[-1]]
        late += [h[h.arm == arm].test_acc.iloc[-1] for arm in ("SB", "LB")]
        # zoom on the end of training: from 8 points below the lowest final accuracy
        self.ylim = (max(100 * min(late) - 8, 0), 100 * max(h.test_acc.max(), a.test_acc) + 1)

    def draw(self, ax, xcol: str, p1_end: float, swap_x: float, xlabel: str) -> None:
        """The curves against ``xcol`` (epoch or wall_s); the workers start at ``p1_end``, the
        average is a star at ``swap_x``."""
        h = self.h
        for arm, color, ls in (("SB", "0.35", "--"), ("LB", "0.55", ":")):
            b = h[h.arm == arm]
            ax.plot(b[xcol], 100 * b.test_acc, color=color, lw=1.4, ls=ls,
                    label=f"{arm} baseline ({'dashed' if ls == '--' else 'dotted'})")
        ax.plot(self.p1[xcol], 100 * self.p1.test_acc, color="black", lw=2, label="SWAP phase 1, large batch (solid)")
        for w in range(self.workers):
            wk = h[(h.arm == "worker") & (h.worker == w)]
            ax.plot(p1_end + wk[xcol], 100 * wk.test_acc, color=self.palette[w], lw=1,
                    label="phase-2 workers (thin, one colour each)" if w == 0 else None)
        ax.scatter([swap_x], [100 * self.avg.test_acc], marker="*", s=220, color="crimson", zorder=5,
                   label="SWAP average (phase 3)")
        ax.axvline(p1_end, color="0.3", lw=0.8, ls="-.", label="end of phase 1")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("test accuracy (%)")
        ax.set_ylim(*self.ylim)


def curves_figure(curves: SeedCurves, curve: pd.DataFrame, per_seed: pd.DataFrame,
                         phase2_epochs: float):
    """Left: one seed's test accuracy against epochs; right: the average of the first k workers
    (``curve``, the analysis job's k-worker table), mean ± sd over seeds, against the baselines."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.9), gridspec_kw={"width_ratios": [3, 2]})
    p1_end = float(curves.p1.epoch.max())
    curves.draw(axes[0], "epoch", p1_end, p1_end + float(phase2_epochs), "epoch (phase 2 continues from phase 1)")
    axes[0].set_title(f"seed {curves.seed}")
    axes[0].legend(fontsize=7, loc="lower right")
    ax = axes[1]
    sns.lineplot(curve.assign(test_pct=100 * curve.test_acc), x="k", y="test_pct", marker="o", errorbar="sd",
                 ax=ax, color="crimson", label="average of the first k workers (mean ± sd)")
    for label, values, ls in (("SB", per_seed.sb_acc, "--"), ("LB", per_seed.lb_acc, ":"),
                              ("single worker", per_seed.mean_worker_acc, "-.")):
        ax.axhline(values.mean(), color="0.4", ls=ls, lw=1, label=f"{label}, mean over seeds")
    ax.set_xlabel("workers averaged (k)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_xticks(range(1, curves.workers + 1))
    ax.set_title(f"mean ± sd over {len(per_seed)} seed(s)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def accuracy_time_figure(curves: SeedCurves, per_seed: pd.DataFrame):
    """One seed's test accuracy against training-loop seconds, the workers started together
    when phase 1 ends; markers where the other seeds' SB and SWAP ended."""
    s0 = curves.seed
    fig, ax = plt.subplots(figsize=(8, 4.2))
    p1_loop = float(per_seed.p1_loop[per_seed.seed == s0].iloc[0])
    curves.draw(ax, "wall_s", p1_loop, float(per_seed.loop_parallel[per_seed.seed == s0].iloc[0]),
                "training-loop time (s); workers run in parallel after phase 1")
    others = per_seed[per_seed.seed != s0]
    if len(others):
        ax.scatter(others.loop_sb, others.sb_acc, marker="s", s=25, color="0.35", label="SB end, other seeds")
        ax.scatter(others.loop_parallel, others.swap_acc, marker="*", s=80, color="crimson", alpha=0.5,
                   label="SWAP end, other seeds")
    ax.set_title(f"test accuracy against time (curves: seed {s0})")
    ax.legend(fontsize=7, loc="lower right")
    return fig


def loss_plane_figure(plane: pd.DataFrame, points: pd.DataFrame):
    """Training loss (log10) and test error (%) on the plane (the analysis job's grid), with
    the three models (phase 1, worker 1, average) marked."""
    xs, ys = np.sort(plane.x.unique()), np.sort(plane.y.unique())
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, col, title, log in ((axes[0], "train_loss", "training loss (log10)", True),
                                (axes[1], "test_err", "test error (%)", False)):
        z = plane.pivot(index="y", columns="x", values=col).loc[ys, xs].to_numpy()
        z = np.log10(np.maximum(z, 1e-12)) if log else 100 * z
        cs = ax.contourf(xs, ys, z, levels=20, cmap="viridis")
        fig.colorbar(cs, ax=ax)
        for (_, p), marker in zip(points.iterrows(), ("s", "o", "*")):
            ax.scatter(p.x, p.y, marker=marker, s=140 if marker == "*" else 60, color="white", edgecolor="black",
                       zorder=5)
            ax.annotate(p.label, (p.x, p.y), textcoords="offset points", xytext=(6, 6), fontsize=9,
                        bbox={"boxstyle": "round,pad=0.2", "fc": "white", "alpha": 0.8, "lw": 0})
        ax.set_title(title)
        ax.set_xlabel("direction phase 1 → worker 1 (weight-space distance)")
        ax.set_ylabel("orthogonal direction towards the average")
    fig.tight_layout()
    return fig
