"""Golmant et al. 2018: the section's figures and tables, built from
``largebatch.analysis.golmant.Results`` (captions are declared in ``experiments.golmant``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib import pyplot as plt
from matplotlib.lines import Line2D

from ..stats import mean_std
from .golmant import METRICS, Results, fmt_b


def fracs_palette(R: Results) -> dict:
    """One colour per threshold fraction f."""
    return dict(zip(R.setup.fracs, sns.color_palette("viridis", len(R.setup.fracs))))


def variant_roles(R: Results) -> list[str]:
    """The data roles the variants' strategy runs on, in config order."""
    S = R.setup
    return [r for r in S.roles if S.var_strat in S.block["datasets"][r]["strategies"]]


def roles_palette(R: Results) -> dict:
    roles = variant_roles(R)
    return dict(zip(roles, sns.color_palette("tab10", len(roles))))


def threshold_curves(R: Results):
    """Where the thresholds lie: train-loss curves of each role's reference batch (the largest
    that learnt, whose curve sets the thresholds), thresholds, chance loss, eligibility bar."""
    S, pal = R.setup, fracs_palette(R)
    sweep, thresholds = R.sweep, R.thresholds
    fig, axes = plt.subplots(1, len(S.roles), figsize=(3.9 * len(S.roles), 3.6), sharey=True, squeeze=False)
    for ax, role in zip(axes[0], S.roles):
        bref = int(thresholds[thresholds.data == role].ref_batch.iloc[0])
        ref = sweep[(sweep.data == role) & (sweep.batch_size == bref)].drop_duplicates("run")
        for r in ref.run:
            h = R.hist[r]
            ax.plot(h.step.clip(lower=1), h.train_loss, color="0.45", lw=0.8)
        for t in thresholds[(thresholds.data == role) & (thresholds.metric == "train_loss")].itertuples():
            ax.axhline(t.threshold, color=pal[t.frac], lw=1.2, ls="-" if t.eligible else "--")
        ax.axhline(S.chance[role], color="black", ls=":", lw=1.2)
        ax.axhline(S.maxf * S.chance[role], color="red", ls="-.", lw=1)
        ax.set_xscale("log")
        ax.set_ylim(0, S.chance[role] * 1.12)
        ax.set_xlabel("step")
        ax.set_title(f"{role} ({S.sizes[S.dname[role]]:,} train), B = {bref}", fontsize=10)
    axes[0, 0].set_ylabel("train loss")
    handles = [Line2D([], [], color="0.45", label="reference-batch runs (seeds x strategies)"),
               Line2D([], [], color="black", ls=":", label="chance loss ln(classes)"),
               Line2D([], [], color="red", ls="-.", label=f"{S.maxf:g} x chance: claims use thresholds below")]
    handles += [Line2D([], [], color=pal[f], label=f"threshold q = {f:g} (dashed: above the bar)") for f in S.fracs]
    axes[0, -1].legend(handles=handles, fontsize=7, loc="lower left")
    return fig


def _thr_label(R: Results, metric: str, frac: float, data: str = "standard") -> str:
    t = R.thresholds
    v = t[(t.data == data) & (t.metric == metric) & (t.frac == frac)].iloc[0]
    return f"{METRICS[metric]} {v.threshold:.2f} ({v.vs_chance:.2f} x chance)"


def _curve(R: Results, data: str, strategy: str, metric: str, frac: float) -> pd.DataFrame:
    c = R.curves
    return c[(c.data == data) & (c.strategy == strategy) & (c.metric == metric) & (c.frac == frac)]


def steps_to_threshold(R: Results):
    """T(B) per strategy (columns) and loss (rows): seed means, single seeds, perfect scaling."""
    S, pal, grid = R.setup, fracs_palette(R), R.grid
    std_st = R.st[R.st.data == "standard"]
    budget = {int(b): S.budget("standard", int(b)) for b in grid}
    fig, axes = plt.subplots(2, len(S.strats), figsize=(4.3 * len(S.strats), 7.2), sharex=True, sharey=True,
                             squeeze=False)
    for j, s in enumerate(S.strats):
        for i, m in enumerate(METRICS):
            ax = axes[i, j]
            for f in S.fracs:
                c = _curve(R, "standard", s, m, f)
                fin = c[np.isfinite(c.steps)]
                ax.plot(fin.batch_size, fin.steps, "o-", color=pal[f], label=_thr_label(R, m, f))
                miss = c[~np.isfinite(c.steps)]
                ax.plot(miss.batch_size, [budget[int(b)] * 1.4 for b in miss.batch_size], "x", color=pal[f], ms=8)
                dead = c[~c.learnt.astype(bool)]
                ax.plot(dead.batch_size, [budget[int(b)] * 1.8 for b in dead.batch_size], "s", color="0.3", ms=6)
                if len(c) and np.isfinite(c.steps.iloc[0]):
                    bb = np.array(grid, dtype=float)
                    ax.plot(bb, c.steps.iloc[0] * bb[0] / bb, ":", color=pal[f], lw=1)
                pts = std_st[(std_st.strategy == s) & (std_st.metric == m) & (std_st.frac == f)
                             & np.isfinite(std_st.steps)]
                ax.scatter(pts.batch_size, pts.steps, s=8, color=pal[f], alpha=0.5)
            ax.plot(list(budget), list(budget.values()), color="grey", lw=0.8, ls="--")
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_title(f"{S.slabel[s]}: {METRICS[m]}", fontsize=10)
            ax.set_xlabel("batch size B")
            ax.set_ylabel("steps to threshold T(B)")
            h, _ = ax.get_legend_handles_labels()
            if i == 0 and j == 0:
                h += [Line2D([], [], color="0.3", ls=":", label="perfect scaling T(B0)·B0/B"),
                      Line2D([], [], color="grey", ls="--", label="step budget of the run"),
                      Line2D([], [], color="0.3", marker="x", ls="", label="never reached (some seed)"),
                      Line2D([], [], color="0.3", marker="s", ls="", label="did not learn (some seed)"),
                      Line2D([], [], color="0.3", marker="o", ls="", ms=3, alpha=0.5, label="single seeds")]
            ax.legend(handles=h, fontsize=6.5, loc="lower left")
    return fig


def speedup(R: Results):
    """S(B) per strategy, with perfect scaling and each curve's critical batch."""
    S, pal, summary = R.setup, fracs_palette(R), R.summary
    fig, axes = plt.subplots(1, len(S.strats), figsize=(4.3 * len(S.strats), 3.9), sharey=True, squeeze=False)
    for j, s in enumerate(S.strats):
        ax = axes[0, j]
        for m, ls in zip(METRICS, ("-", "--")):
            for f in S.fracs:
                c = _curve(R, "standard", s, m, f)
                c = c[np.isfinite(c.steps) & c.learnt.astype(bool)]
                ax.plot(c.batch_size, c.speedup, ls, marker="o", ms=3, color=pal[f])
        bb = np.array(R.grid, dtype=float)
        ax.plot(bb, bb / bb[0], color="black", lw=1)
        for r in summary[(summary.data == "standard") & (summary.strategy == s)].itertuples():
            if np.isfinite(r.b_crit):
                ax.axvline(r.b_crit, color=pal[r.frac], ls="-" if r.metric == "train_loss" else "--", lw=0.6,
                           alpha=0.6)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log", base=2)
        ax.set_title(S.slabel[s], fontsize=10)
        ax.set_xlabel("batch size B")
        ax.set_ylabel("speed-up S(B) = T(B0)/T(B)")
    handles = [Line2D([], [], color="0.3", ls="-", label="train-loss threshold"),
               Line2D([], [], color="0.3", ls="--", label="test-loss threshold"),
               Line2D([], [], color="black", lw=1, label="perfect scaling B/B0"),
               Line2D([], [], color="0.3", lw=0.6, label="critical batch B* (vertical)")]
    handles += [Line2D([], [], color=pal[f], label=f"q = {f:g}") for f in S.fracs]
    axes[0, -1].legend(handles=handles, fontsize=7, loc="upper left")
    return fig


def cost(R: Results):
    """B·T(B) in epochs per strategy and threshold, one panel per loss."""
    S, curves = R.setup, R.curves
    fig, axes = plt.subplots(1, 2, figsize=(10.5, 3.9), sharey=True)
    std = curves[(curves.data == "standard") & np.isfinite(curves.steps) & curves.learnt.astype(bool)].copy()
    std["epochs"] = std.examples / S.n_std
    std["strategy"] = std.strategy.map(S.slabel)
    std["threshold"] = [f"q = {f:g}" for f in std.frac]
    for ax, m in zip(axes, METRICS):
        d = std[std.metric == m]
        sns.lineplot(d, x="batch_size", y="epochs", hue="strategy", style="threshold", markers=True, ax=ax,
                     estimator=None)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("batch size B")
        ax.set_ylabel("cost B·T(B) to threshold (epochs)")
        ax.set_title(METRICS[m])
        ax.legend(fontsize=6.5, title="colour: strategy; line style: threshold", title_fontsize=6.5)
    return fig


def data_complexity(R: Results):
    """The variants' speed-up curves per train-loss threshold, measured and predicted B*."""
    S, summary = R.setup, R.summary
    roles, dpal, vs = variant_roles(R), roles_palette(R), R.setup.var_strat
    fig, axes = plt.subplots(1, len(S.fracs), figsize=(4.3 * len(S.fracs), 3.9), sharey=True, squeeze=False)
    for j, f in enumerate(S.fracs):
        ax = axes[0, j]
        for role in roles:
            c = _curve(R, role, vs, "train_loss", f)
            c = c[np.isfinite(c.steps) & c.learnt.astype(bool)]
            r = summary[(summary.data == role) & (summary.strategy == vs) & (summary.metric == "train_loss")
                        & (summary.frac == f)].iloc[0]
            ax.plot(c.batch_size, c.speedup, "o-" if r.eligible else "o--", ms=3, color=dpal[role],
                    label=f"{role} ({S.sizes[S.dname[role]]:,}): B* {fmt_b(r.b_crit, r.lower_bound)}")
            if np.isfinite(r.b_crit):
                ax.axvline(r.b_crit, color=dpal[role], lw=0.8)
            if np.isfinite(r.b_pred):
                ax.axvline(r.b_pred, color=dpal[role], lw=0.8, ls=":")
        bb = np.array(sorted(R.sweep.batch_size.unique()), dtype=float)
        ax.plot(bb, bb / bb[0], color="black", lw=1, label="perfect scaling")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log", base=2)
        ax.set_title(f"train-loss threshold q = {f:g} ({vs.upper()})", fontsize=10)
        ax.set_xlabel("batch size B")
        ax.set_ylabel("speed-up S(B)")
        h, _ = ax.get_legend_handles_labels()
        if j == 0:
            h += [Line2D([], [], color="0.3", lw=0.8, label="measured B*"),
                  Line2D([], [], color="0.3", lw=0.8, ls=":", label="predicted B_simple + 2·B0"),
                  Line2D([], [], color="0.3", ls="--", label="threshold above the bar")]
        ax.legend(handles=h, fontsize=6.5, loc="upper left")
    return fig


def noise_prediction(R: Results, points: pd.DataFrame):
    """Measured vs predicted critical batch (``points``: ``golmant_claims.prediction_points``)."""
    S, dpal = R.setup, roles_palette(R)
    within = float(S.claims["GX1"]["within"])
    fig, ax = plt.subplots(figsize=(5.4, 4.4))
    for role in variant_roles(R):
        d = points[points.data == role]
        for lb, mk in ((False, "o"), (True, "^")):
            e = d[d.lower_bound == lb]
            ax.scatter(e.b_pred, e.b_crit, color=dpal[role], s=[20 + 40 * f for f in e.frac], marker=mk,
                       facecolors=[dpal[role] if el else "none" for el in e.eligible])
    if len(points):
        lo = min(points.b_pred.min(), points.b_crit.min()) / 2
        hi = max(points.b_pred.max(), points.b_crit.max()) * 2
        xx = np.geomspace(lo, hi, 10)
        ax.plot(xx, xx, "k-", lw=1)
        ax.fill_between(xx, xx / within, xx * within, color="grey", alpha=0.15)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log", base=2)
    else:
        ax.text(0.5, 0.5, "no curve with a finite critical batch and noise scale", ha="center", transform=ax.transAxes)
    ax.set_xlabel("predicted B* = B_simple + 2·B0")
    ax.set_ylabel(f"measured B* ({S.var_strat.upper()}, train loss)")
    handles = [Line2D([], [], color=dpal[r], marker="o", ls="", label=r) for r in variant_roles(R)]
    handles += [Line2D([], [], color="k", label="measured = predicted"),
                plt.Rectangle((0, 0), 1, 1, color="grey", alpha=0.15, label=f"within {within:g}x"),
                Line2D([], [], color="0.3", marker="^", ls="", label="measured B* a lower bound"),
                Line2D([], [], color="0.3", marker="o", ls="", markerfacecolor="none", label="threshold above the bar")]
    ax.legend(handles=handles, fontsize=7)
    return fig


# ----------------------------------------------------------------------------- tables


def curve_summary_table(R: Results) -> pd.DataFrame:
    """One row per data set, strategy and loss (thresholds, B*, largest speed-up, exponents, cut)."""
    S, rows = R.setup, []
    for (role, s, m), g in R.summary.groupby(["data", "strategy", "metric"], sort=False):
        g = g.sort_values("frac")
        rows.append({
            "data": f"{role} ({S.sizes[S.dname[role]]:,})", "strategy": S.slabel[s], "loss": METRICS[m],
            "thresholds (x chance)": " / ".join(f"{v:.2f}" for v in g.vs_chance),
            "critical batch B*": " / ".join(fmt_b(b, lb) for b, lb in zip(g.b_crit, g.lower_bound)),
            "largest speed-up": f"{g.max_speedup.max():.1f}x" if g.max_speedup.notna().any() else "n/a",
            "first / last exponent": " / ".join(f"{a:.2f}" if np.isfinite(a) else "n/a"
                                                for a in (g.alpha_first.mean(), g.alpha_last.mean())),
            "did not learn from": fmt_b(g.cut.min()) if g.cut.notna().any() else "-"})
    return pd.DataFrame(rows)


def thresholds_table(R: Results) -> pd.DataFrame:
    t = R.thresholds
    return pd.DataFrame({
        "data": t.data, "loss": t.metric.map(METRICS), "q": t.frac.map(lambda f: f"{f:g}"),
        "reference batch": t.ref_batch, "its budget (steps)": t.ref_step, "threshold": t.threshold.round(3),
        "chance loss": t.chance.round(3), "x chance": t.vs_chance.round(2),
        "decided on": t.eligible.map({True: "yes", False: "no (above the bar)"})})


def steps_wide_table(R: Results) -> pd.DataFrame:
    """Steps to each threshold on the standard data, mean ± sd over seeds, one column per B."""
    std_st, S = R.st[R.st.data == "standard"], R.setup
    wide = (std_st.assign(T=std_st.steps.replace(np.inf, np.nan))
            .groupby(["metric", "frac", "strategy", "batch_size"]).T.agg(lambda v: mean_std(v, 0) if v.notna().all()
                                                                         else f"{v.notna().sum()}/{len(v)} reached")
            .unstack("batch_size").reset_index())
    wide.columns = [f"B = {c}" if isinstance(c, (int, np.integer)) else c for c in wide.columns]
    return wide.assign(metric=wide.metric.map(METRICS), strategy=wide.strategy.map(S.slabel),
                       frac=wide.frac.map(lambda f: f"{f:g}")).rename(columns={"metric": "loss", "frac": "q"})


def noise_table(R: Results) -> pd.DataFrame:
    nz = R.nz
    return pd.DataFrame({"data": nz.data, "share of B0's budget": nz.frac.map(lambda f: f"{f:g}"), "B0 step": nz.step,
                         "B_simple (geometric mean)": nz.b_simple.round(0), "sd over seeds": nz.b_simple_sd.round(0),
                         "seeds": nz.n, "train loss there": nz.loss.round(3)})


def critical_batch_table(R: Results) -> pd.DataFrame:
    full, S = R.summary.sort_values(["data", "strategy", "metric", "frac"]), R.setup
    return pd.DataFrame({
        "data": full.data, "strategy": full.strategy.map(S.slabel), "loss": full.metric.map(METRICS),
        "q": full.frac.map(lambda f: f"{f:g}"), "x chance": full.vs_chance.round(2),
        "B* (mean curve)": [fmt_b(b, lb) for b, lb in zip(full.b_crit, full.lower_bound)],
        "B* per seed": full.b_crit_seeds, "predicted B*": full.b_pred.map(lambda v: fmt_b(v))})


def final_table(R: Results) -> pd.DataFrame:
    """Every arm's end of training: final train loss and accuracy beside test loss and accuracy
    (mean over seeds), per data role, strategy and batch size, with the runs' status and stop
    reasons, so that convergence and runs that did not learn are visible."""
    sw, S = R.sweep.drop_duplicates(["data", "strategy", "run"]), R.setup
    rows = []
    for (role, s, b), g in sw.groupby(["data", "strategy", "batch_size"], sort=False):
        num = {c: pd.to_numeric(g[c], errors="coerce").mean() for c in ("train_loss", "train_acc", "test_loss", "test_acc")}
        rows.append({"data": role, "strategy": S.slabel[s], "B": int(b), "steps": S.budget(role, int(b)),
                     "train loss": round(num["train_loss"], 3), "train acc %": round(100 * num["train_acc"], 1),
                     "test loss": round(num["test_loss"], 3), "test acc %": round(100 * num["test_acc"], 1),
                     "status": ", ".join(f"{k} {v}" for k, v in g.status.value_counts().items()),
                     "stop": ", ".join(f"{k} {v}" for k, v in g.stop_reason.fillna("n/a").value_counts().items())})
    return pd.DataFrame(rows).sort_values(["data", "strategy", "B"]).reset_index(drop=True)
