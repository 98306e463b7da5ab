"""Hoffer, Hubara & Soudry 2017: the section's figures (each returns a matplotlib Figure; the
notebook hands it to ``Section.figure``, whose caption is declared in
``largebatch.experiments.hoffer.PAPER``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib import pyplot as plt

from ..experiments.hoffer import ARM_NAMES, ARMS, PUBLISHED
from .hoffer import same_data

#: number of classes where not 10, by dataset name (chance accuracy = 1 / classes)
CLASSES = {"cifar100": 100}


def arm_accuracy_figure(nets: dict, tab: pd.DataFrame):
    """One panel per network: final test accuracy per arm, one dot per seed, mean ± sd in black,
    and the poster's values (red diamonds) where the network trains on the poster's data."""
    fig, axes = plt.subplots(1, len(nets), figsize=(4.8 * len(nets), 3.8), squeeze=False)
    for ax, (name, net) in zip(axes[0], nets.items()):
        r = tab[tab.network == name].assign(test_pct=lambda d: 100 * d.test_acc,
                                            arm_name=lambda d: d.arm.map(ARM_NAMES))
        sns.stripplot(r, x="arm", y="test_pct", order=list(ARMS), color="0.55", ax=ax, size=4, alpha=0.7,
                      label="one seed")
        sns.pointplot(r, x="arm", y="test_pct", order=list(ARMS), errorbar="sd", color="k", ax=ax,
                      linestyle="none", label="mean ± sd")
        if same_data(name, net):
            ax.scatter(range(len(ARMS)), [PUBLISHED[name][a] for a in ARMS], marker="D", color="crimson", zorder=5,
                       label="published (poster)")
        ax.set_title(net.get("label", name))
        ax.set_xlabel("arm (each adds one adaptation)")
        ax.set_ylabel("final test accuracy (%)")
        handles, labels = ax.get_legend_handles_labels()
        keep = dict(zip(labels, handles))  # one entry per label
        ax.legend(keep.values(), keep.keys(), fontsize=8)
    return fig


def published_note(nets: dict) -> str:
    """The end of the arm figure's caption: whether the published values are drawn."""
    if any(same_data(k, n) for k, n in nets.items()):
        return "; published values (red diamonds) where our data is the paper's."
    return "; the published values are on other data (Table 1) and are not drawn."


def curves_figure(nets: dict, hist: pd.DataFrame):
    """One panel per network: test accuracy of each table arm against updates (log scale), mean
    ± sd over seeds, with chance accuracy dotted."""
    th = hist[hist.table.astype(bool) & (hist.step > 0)]
    fig, axes = plt.subplots(1, len(nets), figsize=(4.8 * len(nets), 3.8), squeeze=False)
    for ax, (name, net) in zip(axes[0], nets.items()):
        h = th[th.network == name].assign(test_pct=lambda d: 100 * d.test_acc,
                                          arm_name=lambda d: d.arm.map(ARM_NAMES))
        sns.lineplot(h, x="step", y="test_pct", hue="arm_name", hue_order=[ARM_NAMES[a] for a in ARMS],
                     errorbar="sd", ax=ax)
        ax.axhline(100 / CLASSES.get(net["run"]["dataset"], 10), color="0.5", ls=":", lw=1)
        ax.set_xscale("log")
        ax.set_title(net.get("label", name))
        ax.set_xlabel("updates (log scale)")
        ax.set_ylabel("test accuracy (%)")
        ax.legend(title="arm (line: mean, band: ± sd)", fontsize=8, title_fontsize=8)
    return fig


def distance_figure(fits: pd.DataFrame, hist: pd.DataFrame, fit_min_step: int):
    """The paper's Fig. 2: panels (a) before and (b) after the adaptations; per batch size every
    seed's evaluations in the high-LR phase (dots) and the seed-averaged fit d = a + b ln t."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    batches = sorted(fits.batch_size.unique())
    palette = dict(zip(batches, sns.color_palette("viridis", len(batches))))
    for ax, cond, title in zip(axes, ["before", "after"], ["(a) before: same lr, BN, same epochs",
                                                              "(b) after: +LR +GBN +RA"]):
        for b in batches:
            f = fits[(fits.condition == cond) & (fits.batch_size == b)]
            if f.empty:
                continue
            pts = pd.concat([hist[(hist.run == fr.run) & (hist.step >= 1) & (hist.step <= fr.t_drop)][["step", "w_dist"]]
                             for _, fr in f.iterrows()])
            ax.scatter(pts.step, pts.w_dist, s=9, alpha=0.35, color=palette[b])
            if f.slope.isna().all():
                continue
            t = np.geomspace(fit_min_step, f.t_drop.max(), 50)
            ax.plot(t, f.intercept.mean() + f.slope.mean() * np.log(t), color=palette[b], lw=2,
                    label=f"B={b}: b={f.slope.mean():.2f}, R²={f.r2_log.mean():.3f}")
        ax.set_xscale("log")
        ax.set_xlabel("updates t (log scale)")
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=8, title="dots: evaluations; lines: fit d = a + b ln t", title_fontsize=8)
    axes[0].set_ylabel("||w_t - w_0||")
    return fig
