"""Batch augmentation (Hoffer et al. 2019): the section's figures.

Each builder takes the prepared :class:`~largebatch.analysis.batch_augmentation.Study` (and
the gradient-variance table) and returns a matplotlib figure; the captions are declared
with the paper (``experiments.batch_augmentation.outputs``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib import pyplot as plt

from ..ba import predicted_variance
from .batch_augmentation import Study


def chance_pp(dataset_kind: str) -> float:
    """Chance accuracy (%) of the dataset: 1 % for CIFAR-100, else 10 % (ten classes)."""
    return 100 / {"cifar100": 100}.get(dataset_kind, 10)


def _palette(ms: list[int]) -> dict[str, tuple]:
    return dict(zip([f"BA, M = {m}" for m in ms], sns.color_palette("viridis", len(ms))))


def accuracy_vs_m(st: Study, chance: float):
    """Left: final test accuracy against M (seeds, mean) with the control arms; right: test
    accuracy during training for every M and the distinct-sample controls."""
    ba, runs, hist, ms = st.ba, st.runs, st.hist, st.ms
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    ax = axes[0]
    rng = np.random.default_rng(0)
    ax.scatter(np.log2(ba.multiplicity) + rng.uniform(-0.08, 0.08, len(ba)), ba.test_pp, s=12, color="0.45",
               label="BA, one seed")
    ax.plot(np.log2(ms), [st.at(m).test_pp.mean() for m in ms], "o-", color="C0", label="BA, mean over seeds")
    for arm, marker, color, dx in (("distinct", "s", "C3", 0.2), ("longer", "^", "C2", -0.2)):
        for k, g in runs[runs.arm == arm].groupby("compare_m"):
            ax.errorbar(np.log2(k) + dx, g.test_pp.mean(), yerr=g.test_pp.std(ddof=1) if len(g) > 1 else None,
                        fmt=marker, color=color, capsize=3, label=g.label.iloc[0])
    ax.axhline(st.tau, ls=":", color="0.3", lw=1, label="M = 1 mean")
    ax.set_xticks(np.log2(ms), [str(m) for m in ms])
    ax.set_xlabel("M (copies per sample, log scale)")
    ax.set_ylabel("final test accuracy (%)")
    handles, labels = ax.get_legend_handles_labels()
    keep = dict(zip(labels, handles))
    ax.legend(keep.values(), keep.keys(), fontsize=7)
    ax = axes[1]
    palette = _palette(ms)
    sns.lineplot(hist[hist.arm == "BA"], x="step", y="test_pp", hue="label", hue_order=list(palette),
                 palette=palette, errorbar="sd", ax=ax)
    for k, g in hist[hist.arm == "distinct"].groupby("compare_m"):
        sns.lineplot(g, x="step", y="test_pp", color=palette[f"BA, M = {k}"], ls="--", errorbar=None, ax=ax,
                     label=g.label.iloc[0] + ", dashed")
    ax.axhline(chance, ls=":", color="0.5", lw=1, label=f"chance ({chance:g}%)")
    ax.set_xlabel("steps")
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=7, title=None)
    fig.tight_layout()
    return fig


def accuracy_vs_examples(st: Study):
    """Test accuracy against examples seen (log scale): every M and the longer M = 1 baselines."""
    hist, palette = st.hist, _palette(st.ms)
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    sel = hist[(hist.step > 0) & ((hist.arm == "BA") | (hist.arm == "longer"))]
    labels = list(palette) + sorted(set(sel.label) - set(palette))
    pal = {**palette, **{lab: "C3" for lab in labels if lab not in palette}}
    sns.lineplot(sel, x="examples", y="test_pp", hue="label", hue_order=labels, palette=pal, errorbar="sd", ax=ax)
    ax.set_xscale("log")
    ax.set_xlabel("examples seen (batch seen per step × steps)")
    ax.set_ylabel("test accuracy (%)")
    ax.legend(fontsize=7, title=None)
    fig.tight_layout()
    return fig


def variance_vs_m(gv: pd.DataFrame, fits: pd.DataFrame, batch: int, ms: list[int]):
    """Gradient variance against M (log-log) for BA and M·B distinct samples, initial and final
    weights, with the fitted variance model (dashed)."""
    n_train = int(gv.n_train.iloc[0])
    gv = gv.assign(sampling=gv.scheme.map({"ba": "BA: M copies of B samples", "distinct": "M·B distinct samples"}))
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharex=True)
    for ax, which in zip(axes, ["initial", "final"]):
        g = gv[gv.model == which]
        sns.lineplot(g, x="multiplicity", y="trace_cov", hue="sampling", marker="o", errorbar="sd", ax=ax)
        fw = fits[fits.model == which]
        for scheme, color in (("ba", sns.color_palette()[0]), ("distinct", sns.color_palette()[1])):
            ax.plot(ms, [predicted_variance(fw.a.mean(), fw.b.mean(), batch, m, n_train, scheme) for m in ms], "--",
                    color=color, lw=1, alpha=0.8,
                    label=f"model fit, {'BA' if scheme == 'ba' else 'distinct'} (dashed)")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(ms, [str(m) for m in ms])
        ax.set_xlabel("M")
        ax.set_ylabel("gradient variance, tr Cov(g)")
        ax.set_title(f"{which} weights of the M = 1 runs")
        ax.legend(fontsize=7, title=None)
    fig.tight_layout()
    return fig
