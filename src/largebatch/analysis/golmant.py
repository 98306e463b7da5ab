"""Golmant et al. 2018 analysis: loss thresholds, steps to them, and every curve's regimes and
critical batch.

The section notebook (``workflow/notebooks/golmant.py``) runs the pipeline in order:
:func:`setup` (what the config block fixes), :func:`sweep_runs`, :func:`threshold_table`,
:func:`steps_to_thresholds`, :func:`seed_curves`, :func:`mean_curves`, :func:`noise_summary`
and :func:`with_prediction`, and hands the :class:`Results` to the claims
(``golmant_claims``) and the figures and tables (``golmant_evidence``).

Conventions (as in ``largebatch.scaling``): ``+inf`` steps mean a run never reached the
threshold within its budget; a run that did not learn (diverged, or final train loss at
chance) reaches nothing and cuts its curve (:func:`learning_curve`), so it is never counted as
the plateau.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from ..experiments.base import dataset_sizes
from ..experiments.golmant import RULE_LABELS
from ..scaling import speedup_table
from ..stats import mean_std
# one curve's functions (re-exported: the notebook, claims and tests call them from here)
from .golmant_curves import (  # noqa: F401
    LINEAR_ALPHA, PLATEAU_ALPHA, censored, chance_loss, curve_quantile, curve_stats, exponent_summary, fmt_b, gmean,
    learning_curve, learnt, mean_curve, reference_thresholds, regimes, scaling_exponents, steps_table)

#: the losses a threshold is set on, and their names in tables and figures
METRICS = {"train_loss": "train loss", "test_loss": "test loss"}
#: a curve: one data role, strategy, loss and threshold fraction
KEY = ["data", "strategy", "metric", "frac"]


# ----------------------------------------------------------------------------- the section's pipeline


@dataclass(frozen=True)
class Setup:
    """What the config block fixes before any result: budget, thresholds, data roles and their
    chance losses, the strategies and which of them the claims use."""

    block: dict
    sizes: dict[str, int]  # training samples per dataset name
    steps: int  # the longest budget of any sweep run (the standard data's B0), in steps
    fracs: list[float]  # threshold quantiles q of the largest learning batch's loss curve
    roles: list[str]  # data roles: standard (+ easy, hard, small)
    dname: dict[str, str]  # role -> dataset name
    chance: dict[str, float]  # role -> chance loss ln(classes)
    strats: list[str]  # the standard data's strategies
    scaled: list[str]  # ... those that scale the lr
    fixed: str | None  # ... the one that does not (G3's reference)
    epochs: float | None  # the budget in epochs at every batch size (None: ``steps`` for every run)
    lsr: str  # the linear-scaling strategy (G1, G2)
    var_strat: str  # the strategy run on the data variants (G4, GX1)
    slabel: dict[str, str]  # strategy -> label
    maxf: float  # a threshold is decided on only at <= maxf x chance

    def budget(self, role: str, batch_size: int) -> int:
        """The step budget of a sweep run of this role and batch size (the protocol's own)."""
        n = self.sizes[self.dname[role]]
        return max(1, int(round(self.epochs * (n // batch_size)))) if self.epochs is not None else self.steps

    @property
    def claims(self) -> dict:
        return self.block["claims"]

    @property
    def n_std(self) -> int:
        return self.sizes[self.dname["standard"]]


def setup(block: dict, datasets: dict) -> Setup:
    """The Setup of a config block; ``datasets``: the scale's dataset definitions."""
    sizes = dataset_sizes({"datasets": datasets})
    roles = list(block["datasets"])
    dname = {role: block["datasets"][role]["name"] for role in roles}
    strats = list(block["datasets"]["standard"]["strategies"])
    rule = {s: block["strategies"][s]["lr_scaling"] for s in block["strategies"]}
    epochs = float(block["epochs"]) if "epochs" in block else None
    if epochs is not None:
        b0 = min(block["batch_sizes"])
        steps = int(round(epochs * (sizes[dname["standard"]] // b0)))
    else:
        steps = int(block["steps"])
    return Setup(
        block=block, sizes=sizes, steps=steps, epochs=epochs, fracs=sorted(float(f) for f in block["thresholds"]),
        roles=roles, dname=dname, chance={role: chance_loss(datasets[dname[role]]["kind"]) for role in roles},
        strats=strats, scaled=[s for s in strats if rule[s] != "none"],
        fixed=next((s for s in strats if rule[s] == "none"), None),
        lsr=next((s for s in strats if rule[s] == "linear"), strats[0]),
        var_strat=next(iter(block["datasets"].get("hard", block["datasets"]["standard"])["strategies"]), strats[0]),
        slabel={s: RULE_LABELS[rule[s]] for s in rule}, maxf=float(block["claims"]["max_threshold_vs_chance"]))


def histories_by_run(long: pd.DataFrame, rows: list[dict]) -> dict[str, pd.DataFrame]:
    """Each run's history once, from the long table of ``Context.histories()``, which repeats a
    run's history for every row of the plan that names it (the B0 run is every strategy's)."""
    count: dict[str, int] = {}
    for row in rows:
        count[row["run"]] = count.get(row["run"], 0) + 1
    return {run: g.iloc[: len(g) // count[run]].reset_index(drop=True) for run, g in long.groupby("run", sort=False)}


def sweep_runs(S: Setup, runs: pd.DataFrame) -> pd.DataFrame:
    """The sweep's runs with ``learnt``: False for a run that diverged or ended at chance loss."""
    sweep = runs[runs.kind == "sweep"].copy()
    if "stop_reason" not in sweep:  # metrics.json before stop reasons were recorded
        sweep["stop_reason"] = None
    sweep["learnt"] = [learnt(s, float(loss), S.chance[r], S.claims["no_learning"])
                       for s, loss, r in zip(sweep.status, pd.to_numeric(sweep.train_loss, errors="coerce"),
                                             sweep.data)]
    return sweep


def collapsed_runs(S: Setup, sweep: pd.DataFrame, hist: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Sweep runs flagged as not learnt (final loss at chance) whose training loss had gone
    below ``S.maxf`` x chance before: they learnt and then fell back (constant lr, no decay).
    Their steps to a threshold reached before the fall are measured; the flag still cuts
    their curve. One row per run: data, strategy, batch_size, seed, best and final loss."""
    rows = []
    for r in sweep[~sweep.learnt].drop_duplicates("run").itertuples():
        h = hist.get(r.run)
        if h is None or h.empty:
            continue
        best, final = float(h.train_loss.min()), float(h.train_loss.iloc[-1])
        if best <= S.maxf * S.chance[r.data]:
            rows.append({"data": r.data, "strategy": r.strategy, "batch_size": int(r.batch_size), "seed": r.seed,
                         "best_train_loss": best, "final_train_loss": final})
    return pd.DataFrame(rows, columns=["data", "strategy", "batch_size", "seed", "best_train_loss",
                                       "final_train_loss"])


def smallest_batches(sweep: pd.DataFrame, roles: Sequence[str]) -> dict[str, int]:
    """B0 of each data role."""
    return {role: int(sweep[sweep.data == role].batch_size.min()) for role in roles}


def reference_batch(sweep: pd.DataFrame, role: str) -> int:
    """The largest batch size of a role at which every run (every strategy and seed) learnt:
    the paper's "largest batch"; a batch size where some run sat at chance or diverged cannot
    set a loss threshold (it reached none).  B0 when no larger batch qualifies."""
    g = sweep[sweep.data == role]
    ok = g.groupby("batch_size").learnt.all()
    good = [int(b) for b, v in ok.items() if v]
    return max(good) if good else int(g.batch_size.min())


def threshold_table(S: Setup, sweep: pd.DataFrame, b0: dict[str, int], hist: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Every role's thresholds (:func:`reference_thresholds` on the runs of its largest learning
    batch, ``ref_batch``), with the chance loss, their ratio to it and ``eligible``: at most
    ``S.maxf`` x chance (claims decide only on those)."""
    parts = []
    for role in S.roles:
        bref = reference_batch(sweep, role)
        ref = sweep[(sweep.data == role) & (sweep.batch_size == bref)].drop_duplicates("run")
        t = reference_thresholds([(hist[r], S.budget(role, bref)) for r in ref.run], S.fracs)
        parts.append(t.assign(data=role, dataset=S.dname[role], chance=S.chance[role], ref_batch=bref,
                              ref_step=S.budget(role, bref)))
    thresholds = pd.concat(parts, ignore_index=True)
    thresholds["vs_chance"] = thresholds.threshold / thresholds.chance
    thresholds["eligible"] = thresholds.vs_chance <= S.maxf
    return thresholds


def _eligible(thresholds: pd.DataFrame) -> pd.Series:
    return thresholds.set_index(["data", "metric", "frac"]).eligible


def steps_to_thresholds(S: Setup, sweep: pd.DataFrame, hist: dict[str, pd.DataFrame],
                        thresholds: pd.DataFrame) -> pd.DataFrame:
    """Steps of every sweep run to its own data's thresholds; a run that did not learn never
    reaches anything (+inf); ``eligible`` from its threshold."""
    cols = ["run", "data", "dataset", "strategy", "batch_size", "seed", "status", "stop_reason", "learnt"]
    st = steps_table(sweep[cols], hist, thresholds[["data", "dataset", "metric", "frac", "threshold"]])
    st["budget"] = [S.budget(d, int(b)) for d, b in zip(st.data, st.batch_size)]
    st.loc[~st.learnt, "steps"] = np.inf
    elig = _eligible(thresholds)
    st["eligible"] = [bool(elig[(d, m, f)]) for d, m, f in zip(st.data, st.metric, st.frac)]
    return st


def _curve(b, t, cap) -> tuple[dict, dict]:
    cs = curve_stats(b, t) if b.size >= 2 else {"b_crit": np.nan, "lower_bound": False}
    return cs, exponent_summary(b, t, cap)


def _caps(g: pd.DataFrame, b) -> np.ndarray:
    """The step budget of each batch size ``b`` of a curve (column ``budget`` of ``g``)."""
    if "budget" not in g:
        return np.full(len(b), np.nan)
    cap = g.groupby("batch_size").budget.first()
    return cap.reindex(np.asarray(b, dtype=float)).to_numpy(dtype=float)


def seed_curves(st: pd.DataFrame, thresholds: pd.DataFrame, steps: int) -> pd.DataFrame:
    """One row per curve and seed: its critical batch, where it was cut (first batch size that
    did not learn), its points and first/last/every local exponent."""
    elig = _eligible(thresholds)
    rows = []
    for key, g in st.groupby(KEY + ["seed"]):
        b, t, cut = learning_curve(g.batch_size, g.steps, g.learnt)
        cs, ex = _curve(b, t, _caps(g, b) if "budget" in g else steps)
        rows.append({**dict(zip(KEY + ["seed"], key)), **cs, "cut": cut, "n_points": int(b.size),
                     "alpha_first": ex["alpha_first"], "alpha_last": ex["alpha_last"],
                     "mid_log2": ex["mid_log2"], "alpha": ex["alpha"], "eligible": bool(elig[key[:1] + key[2:4]])})
    return pd.DataFrame(rows)


def mean_curves(st: pd.DataFrame, per_seed: pd.DataFrame, thresholds: pd.DataFrame,
                steps: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(summary, curves): the seed-mean curve of every KEY (geometric mean of T; never reached if
    any seed never got there) with its speed-up table, and one summary row per curve (critical
    batch, exponents, largest speed-up, the per-seed critical batches, its threshold)."""
    rows, curves = [], []
    for key, g in st.groupby(KEY):
        mc = mean_curve(g)
        learnt_all = g.groupby("batch_size").learnt.all().reindex(mc.batch_size).to_numpy()
        b, t, cut = learning_curve(mc.batch_size, mc.steps, learnt_all)
        cs, ex = _curve(b, t, _caps(g, b) if "budget" in g else steps)
        mc = speedup_table(mc, "batch_size", "steps").assign(**dict(zip(KEY, key)))
        mc["learnt"] = learnt_all
        curves.append(mc)
        fin = mc[np.isfinite(mc.steps) & mc.learnt]
        rows.append({**dict(zip(KEY, key)), **cs, "cut": cut, "alpha_first": ex["alpha_first"],
                     "alpha_last": ex["alpha_last"], "max_speedup": fin.speedup.max() if len(fin) else np.nan,
                     "b_crit_seeds": mean_std(per_seed.merge(pd.DataFrame([dict(zip(KEY, key))]), on=KEY).b_crit, 0)})
    summary = pd.DataFrame(rows).merge(thresholds[["data", "metric", "frac", "threshold", "vs_chance", "eligible"]],
                                       on=["data", "metric", "frac"])
    return summary, pd.concat(curves, ignore_index=True)


def noise_summary(noise: pd.DataFrame) -> pd.DataFrame:
    """B_simple per data role and threshold fraction: geometric mean and sd over seeds, the B0
    step and the train loss there."""
    return noise.groupby(["data", "frac"], as_index=False).agg(
        b_simple=("b_simple", lambda v: gmean(v)), b_simple_sd=("b_simple", "std"), n=("b_simple", "size"),
        step=("step", "first"), loss=("train_loss_sample", "mean"))


def nearest_snapshot(nz: pd.DataFrame, st: pd.DataFrame, b0: dict[str, int]) -> pd.DataFrame:
    """For each (data, metric, q) threshold: the B0 checkpoint (``nz`` row: data, frac = its share
    of B0's budget, step) nearest in log steps to where the B0 runs reach the threshold
    (geometric mean over seeds); NaN where B0 never reaches it."""
    rows = []
    for (d, m, q), g in st[st.batch_size == st.data.map(b0)].groupby(["data", "metric", "frac"]):
        t0 = gmean(g.drop_duplicates("run").steps)
        cand = nz[nz.data == d]
        if not np.isfinite(t0) or not len(cand):
            rows.append({"data": d, "metric": m, "frac": q, "snap": np.nan, "b_simple": np.nan})
            continue
        i = np.argmin(np.abs(np.log(np.maximum(cand.step.to_numpy(float), 1)) - np.log(max(t0, 1))))
        rows.append({"data": d, "metric": m, "frac": q, "snap": float(cand.frac.iloc[i]),
                     "b_simple": float(cand.b_simple.iloc[i])})
    return pd.DataFrame(rows, columns=["data", "metric", "frac", "snap", "b_simple"])


def with_prediction(summary: pd.DataFrame, nz: pd.DataFrame, b0: dict[str, int],
                    st: pd.DataFrame | None = None) -> pd.DataFrame:
    """``b_pred`` = B_simple + 2·B0: the critical batch (efficiency 0.5) that McCandlish et al.'s
    model predicts (``largebatch.scaling.critical_batch_size``), B_simple measured at the B0
    checkpoint nearest to the threshold (:func:`nearest_snapshot`; without ``st``, the
    checkpoint whose ``frac`` equals the threshold's)."""
    if st is None:
        out = summary.merge(nz[["data", "frac", "b_simple"]], on=["data", "frac"], how="left")
    else:
        out = summary.merge(nearest_snapshot(nz, st, b0), on=["data", "metric", "frac"], how="left")
    out["b_pred"] = out.b_simple + 2 * out.data.map(b0)
    return out


@dataclass
class Results:
    """Everything the claims, figures and tables read."""

    setup: Setup
    sweep: pd.DataFrame
    b0: dict[str, int]
    hist: dict[str, pd.DataFrame]
    thresholds: pd.DataFrame
    st: pd.DataFrame  # steps to every threshold, per run
    per_seed: pd.DataFrame
    summary: pd.DataFrame
    curves: pd.DataFrame
    nz: pd.DataFrame  # noise scale per role and fraction

    @property
    def grid(self) -> list[int]:
        """The standard data's batch sizes."""
        return sorted(self.sweep[self.sweep.data == "standard"].batch_size.unique())

    @property
    def n_seeds(self) -> int:
        return self.sweep.seed.nunique()

    def elig(self, key) -> bool:
        """Whether threshold (data, metric, frac) is decided on."""
        return bool(_eligible(self.thresholds)[key])
