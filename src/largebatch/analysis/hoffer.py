"""Hoffer, Hubara & Soudry 2017: the analysis behind its section (``workflow/notebooks/hoffer.py``).

The Fig. 2 fits (the weight distance ||w_t - w_0|| against ln t in one run's high-LR phase,
with the random-walk fit against sqrt(t) as the alternative), the non-inferiority test of
H4 (also SWAP's), the section's tables and the text built from the numbers (summary,
protocol, caveats). The claims are decided in
``hoffer_claims``, the figures drawn in ``hoffer_figures``; the plan and the published values
are in ``largebatch.experiments.hoffer``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..experiments.hoffer import ARM_NAMES, ARMS, PROTOCOL, PUBLISHED, PUBLISHED_DATASET, SOURCE, ra_factor
from ..stats import mean_sd as ms, signed_difference
from ..stopping import arm_problems


# ----------------------------------------------------------------------------- fits
def _linear_fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) < 3 or np.ptp(x) == 0:
        return float("nan"), float("nan"), float("nan")
    b, a = np.polyfit(x, y, 1)
    resid = y - (a + b * x)
    ss_tot = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - float((resid ** 2).sum()) / ss_tot if ss_tot > 0 else float("nan")
    return float(a), float(b), r2


def log_fit(t, d) -> tuple[float, float, float]:
    """Least-squares d = a + b ln t; returns (a, b, R^2).  Needs t >= 1 and >= 3 points."""
    t = np.asarray(t, dtype=float)
    if np.any(t <= 0):
        raise ValueError("log_fit: steps must be positive")
    return _linear_fit(np.log(t), d)


def sqrt_fit(t, d) -> tuple[float, float, float]:
    """Least-squares d = a + b sqrt(t) (the random-walk alternative); returns (a, b, R^2)."""
    return _linear_fit(np.sqrt(np.asarray(t, dtype=float)), d)


def high_lr_phase(history, min_step: int = 1):
    """Rows of a run's history during the first (highest) learning-rate phase, step >= min_step.

    A row's ``lr`` is the rate of the last update before it, so the rows whose lr is the
    run's peak are exactly the updates 1..t_drop of the high-LR phase.
    """
    h = history[history["step"] >= min_step]
    peak = h["lr"].max()
    return h[np.isclose(h["lr"], peak, rtol=1e-9, atol=0)]


def log_grid(total: int, points: int) -> list[int]:
    """The log-spaced steps the engine evaluates for ``log_points = points`` (see
    ``largebatch.train.eval_steps``), in order, without the per-epoch evaluations."""
    if points <= 0 or total < 1:
        return []
    return sorted({int(round(s)) for s in np.geomspace(1, total, points)})


def distance_fits(history, log_points: int, total: int, min_step: int = 1) -> dict:
    """Fits of ||w_t - w_0|| in one run's high-LR phase, on its log-grid evaluations at
    updates t >= `min_step` (e.g. after momentum's build-up, 1/(1 - momentum) updates).

    Returns t_drop (last update of the phase), the number of points fitted, d at t_drop,
    and (a, b, R^2) of d = a + b ln t and of the random-walk alternative d = a + b sqrt(t)
    (NaN with fewer than 3 points).
    """
    phase = high_lr_phase(history)
    grid = set(log_grid(total, log_points))
    pts = phase[phase["step"].isin(grid) & (phase["step"] >= min_step)]
    t, d = pts["step"].to_numpy(float), pts["w_dist"].to_numpy(float)
    a, b, r2 = log_fit(t, d) if len(t) else (float("nan"),) * 3
    _, _, r2_sqrt = sqrt_fit(t, d) if len(t) else (float("nan"),) * 3
    return {"t_drop": int(phase["step"].max()) if len(phase) else 0, "points": len(t),
            "d_drop": float(phase["w_dist"].iloc[-1]) if len(phase) else float("nan"),
            "intercept": a, "slope": b, "r2_log": r2, "r2_sqrt": r2_sqrt}


def run_fits(runs: pd.DataFrame, hist: pd.DataFrame, dist: dict) -> pd.DataFrame:
    """``distance_fits`` of every run of the Fig. 2 network (``dist``: the ``distance`` block),
    one row per (panel, run): SB's run fits both panels (it is the same run before and after
    the adaptations), LB runs fit panel (a) "before", +RA runs panel (b) "after"; the other
    arms and diverged runs are not fitted (a run that did not learn is fitted: its arm fails
    the claims' precondition through ``stopping.arm_problems``, and the fit is still shown)."""
    fits = []
    for _, r in runs[runs.network == dist["network"]].iterrows():
        conds = {"SB": ["before", "after"], "LB": ["before"], "+RA": ["after"]}.get(r.arm, [])
        if not conds or r.status == "diverged":
            continue
        h = hist[hist.run == r.run].sort_values("step")
        f = distance_fits(h, dist["log_points"], int(r.steps), dist["fit_min_step"])
        for c in conds:
            fits.append({"condition": c, "batch_size": int(r.batch_size), "seed": int(r.seed), "run": r.run, **f})
    return pd.DataFrame(fits)


# ----------------------------------------------------------------------------- tests
# ----------------------------------------------------------------------------- tables
def table_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs of the table (at each network's large batch), arms ordered as the table's columns."""
    out = runs[runs.table.astype(bool)].copy()
    out["arm"] = pd.Categorical(out.arm, categories=list(ARMS), ordered=True)
    return out


def per_seed(tab: pd.DataFrame, name: str, arm: str, col: str) -> pd.Series:
    """Per-seed values of `col` (in %) of one arm of one network's table, indexed by seed."""
    r = tab[(tab.network == name) & (tab.arm == arm)]
    return 100 * r.set_index("seed")[col].astype(float)


def same_data(name: str, net: dict) -> bool:
    """Whether network `name` (its config entry `net`) trains on the data of its published row
    (then its accuracy levels are comparable with the poster's)."""
    pub = PUBLISHED.get(name)
    return bool(pub) and PUBLISHED_DATASET.get(pub["data"]) == net["run"]["dataset"]


DIFFERENCE_SOURCE = "difference: ours − published (means, points)"


def accuracy_table(nets: dict, tab: pd.DataFrame) -> pd.DataFrame:
    """The paper's Table 1 layout: per network our row (test accuracy mean ± sd per arm) and,
    where the poster has the network, its published row below, and where we train on the poster's
    data, ours − published below that. Where the arms of a row have different numbers of seeds
    (``arm_seeds``), every cell of it gives its n."""
    wide = []
    for name, net in nets.items():
        acc = {arm: per_seed(tab, name, arm, "test_acc") for arm in ARMS}
        show_n = len({len(v) for v in acc.values()}) > 1
        row = {"network": net.get("label", name),
               "source": "ours, mean ± sd over seeds" + (" (n: seeds with a value)" if show_n else ""),
               "SB / LB batch": f"{net['small_batch']} / {net['large_batch']}"}
        for arm in ARMS:
            row[ARM_NAMES[arm]] = ms(acc[arm], 2) + (f" (n={int(acc[arm].notna().sum())})" if show_n else "")
        wide.append(row)
        if name in PUBLISHED:
            pub = PUBLISHED[name]
            wide.append({"network": f"{name} ({pub['data']})", "source": SOURCE, "SB / LB batch": "not printed",
                         **{ARM_NAMES[a]: f"{pub[a]:.2f}" for a in ARMS}})
            if same_data(name, net):  # comparable levels: ours − published (shown; no verdict uses it)
                wide.append({"network": f"{name} ({pub['data']})", "source": DIFFERENCE_SOURCE,
                             "SB / LB batch": "–",
                             **{ARM_NAMES[a]: signed_difference(acc[a].mean(), pub[a]) for a in ARMS}})
    return pd.DataFrame(wide)


def stop_counts(g: pd.DataFrame) -> str:
    """'budget 5' / 'budget 4, diverged 1': how a group's runs ended (metrics.json stop_reason)."""
    if "stop_reason" not in g:
        return "not recorded"
    counts = g.stop_reason.fillna("not recorded").value_counts()
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))


def arm_table(nets: dict, runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (network, arm, batch): whether the runs are the table's or Fig. 2's only, batch,
    updates, epochs, peak lr, final train and test accuracy and their difference (mean ± sd over
    seeds), how the runs stopped and what makes any of them no evidence
    (``stopping.arm_problems``: a safety cap, no learning, divergence)."""
    detail, keys = [], []
    runs = runs.assign(arm=pd.Categorical(runs.arm, categories=list(ARMS), ordered=True))
    for (name, arm, b), g in runs.groupby(["network", "arm", "batch_size"], observed=True, sort=True):
        keys.append((list(nets).index(name), ARMS.index(arm), int(b)))
        detail.append({
            "network": nets[name].get("label", name), "arm": ARM_NAMES[arm],
            "in": "table" if bool(g.table.astype(bool).iloc[0]) else "Fig. 2 only", "batch": int(b),
            "updates": int(g.steps.iloc[0]), "epochs": f"{float(g.epochs.iloc[0]):g}",
            "peak learning rate": f"{float(g.lr_peak.iloc[0]):.3g}",
            "train accuracy (%)": ms(100 * g.train_acc, 2), "test accuracy (%)": ms(100 * g.test_acc, 2),
            "train - test (points)": ms(100 * (g.train_acc - g.test_acc), 2),
            "stop (runs)": stop_counts(g),
            "problems": "; ".join(arm_problems(g.to_dict("records"))) or "none", "seeds": len(g),
        })
    # the table's arms first (in the table's order), then Fig. 2's other batch sizes, per network
    order = sorted(range(len(detail)), key=lambda i: (keys[i][0], detail[i]["in"] != "table", keys[i][1:]))
    return pd.DataFrame([detail[i] for i in order])


def fit_table(fits: pd.DataFrame) -> pd.DataFrame:
    """The Fig. 2 fits per (panel, batch size): mean ± sd over seeds of slope, intercept, both R²
    and the distance at the end of the high-LR phase."""
    rows = []
    for (c, b), g in fits.groupby(["condition", "batch_size"], sort=True):
        rows.append({"panel": "(a) before" if c == "before" else "(b) after", "batch": b,
                     "updates in the phase": int(g.t_drop.iloc[0]), "points fitted": int(g.points.iloc[0]),
                     "slope b": ms(g.slope, 3), "intercept a": ms(g.intercept, 3),
                     "R² (a + b ln t)": ms(g.r2_log, 4), "R² (a + b √t)": ms(g.r2_sqrt, 4),
                     "distance at phase end": ms(g.d_drop, 3), "seeds": len(g)})
    return pd.DataFrame(rows).sort_values(["panel", "batch"])


# ----------------------------------------------------------------------------- text
def arm_seeds_note(nets: dict) -> str:
    """' (+RA of F1 (MNIST): seed 0 only)' for the arms a network gives their own seeds
    (``arm_seeds``), '' where none does."""
    parts = [f"{arm} of {net.get('label', name)}: seed{'s' if len(s) > 1 else ''} {', '.join(map(str, s))} only"
             for name, net in nets.items() for arm, s in (net.get("arm_seeds") or {}).items()]
    return f" ({'; '.join(parts)})" if parts else ""


def summary_text(nets: dict, seeds, decided: list[dict]) -> str:
    """The section's opening paragraph: what was trained and the verdicts (``decided``: the
    claims after ``stats.finalize_claims``), naming the failed precondition of each
    inconclusive claim."""
    counts = pd.Series([c["verdict"] for c in decided]).value_counts()
    failed = [c for c in decided if not c["precondition_ok"]]
    return (
        f"Each arm trained with {len(seeds)} seeds{arm_seeds_note(nets)} on "
        + "; ".join(f"{n.get('label', k)} (SB {n['small_batch']}, LB {n['large_batch']})" for k, n in nets.items())
        + f". Of {len(decided)} claims: " + ", ".join(f"{v} {k}" for k, v in counts.items()) + "."
        + (" Inconclusive for a failed precondition: "
           + "; ".join(f"{c['id']} ({next(t for t in c['precondition'].split('; ') if 'NO' in t)})" for c in failed)
           + "." if failed else ""))


def scope_text(nets: dict) -> str:
    """What this scale can test: the published levels only where every network trains on the
    poster's data."""
    return (("The published values (authors' poster) are for the paper's networks on their own data; ours differ, "
             "so this scale tests the direction and size of each adaptation's effect and the shape of Fig. 2, not "
             "the published accuracy levels." if not all(same_data(k, n) for k, n in nets.items()) else
             "Same networks and data as the published rows: the accuracy levels are comparable.")
            + " Comparisons with SB need SB to fit its training set first.")


def protocol_rows(nets: dict, dist: dict, seeds) -> list[dict]:
    """The protocol table: the paper's side (``experiments.hoffer.PROTOCOL``) beside ours, the
    single-network rows from the first network of the table."""
    first = next(iter(nets.values()))
    spec = first["run"]
    ours = {
        "networks / data": "; ".join(f"{n.get('label', k)}: {n['run']['model']} width {n['run'].get('width')}"
                                     f" depth {n['run'].get('depth')}" for k, n in nets.items()),
        "optimiser (F1)": f"{spec['optimizer'].upper()} lr {spec['lr']}, momentum {spec.get('momentum', 0)}, weight "
                          f"decay {spec.get('weight_decay', 0)}, clip {spec.get('max_grad_norm')}",
        "regime (F1)": f"lr x{spec.get('gamma', 0.1)} at epochs {', '.join(f'{m:g}' for m in spec['milestones'])}; "
                       f"{spec['epochs']:g} epochs",
        "batch sizes (F1)": f"SB {first['small_batch']}, LB {first['large_batch']} "
                            f"(B_L/B_S = {first['large_batch'] / first['small_batch']:g})",
        "+LR": "lr x √(B_L / B_S) (ghost size = B_S)",
        "+GBN": "GhostBatchNorm layer, ghost batches of B_S samples in one forward pass",
        "+RA": "epochs and LR-drop epochs x ceil(B_L/B_S)",
        "weight distance": f"all trainable weights, {dist['log_points']} evaluations on a log-spaced step grid, "
                           f"batch sizes {', '.join(map(str, dist['batch_sizes']))}",
        "test accuracy": "test accuracy of the final weights (BatchNorm running statistics)",
        "seeds": f"{len(seeds)} ({', '.join(map(str, seeds))}){arm_seeds_note(nets)}",
    }
    return [{"aspect": aspect, "paper": paper, "ours": ours[aspect]} for aspect, paper in PROTOCOL]


def caveats_text(nets: dict, tab: pd.DataFrame, fits: pd.DataFrame, pre: dict) -> str:
    """Per network: how far SB and +RA fitted the training set and how many samples +RA saw;
    then the Fig. 2 slopes and the number of points each fit had."""
    notes = []
    for name, net in nets.items():
        sb_r = tab[(tab.network == name) & (tab.arm == "SB")]
        ra_r = tab[(tab.network == name) & (tab.arm == "+RA")]
        k = ra_factor(net["large_batch"], net["small_batch"])
        notes.append(
            f"{net.get('label', name)}: SB ends its {sb_r.epochs.mean():g}-epoch budget at train accuracy "
            f"{100 * sb_r.train_acc.mean():.1f}% and +RA at {100 * ra_r.train_acc.mean():.1f}%. +RA makes as many "
            f"updates as SB ({int(sb_r.steps.mean())} vs {int(ra_r.steps.mean())}) but, with {k}x the batch, sees "
            f"{ra_r.epochs.mean() / sb_r.epochs.mean():g}x as many samples; where SB is short of convergence +RA "
            f"can exceed SB, so the comparisons with SB require SB to reach {pre['sb_train_acc_min_pp']:g}% train "
            f"accuracy and generalisation comparisons require train accuracies within {pre['max_train_gap_pp']:g} "
            "points.")
    for name, net in nets.items():
        for arm, s in (net.get("arm_seeds") or {}).items():
            note = (f"{net.get('label', name)}: {arm} trained with {len(s)} seed{'s' if len(s) > 1 else ''} "
                    f"({', '.join(map(str, s))}), the other arms with the section's seeds (arm_seeds: this scale's "
                    "cut of its budget, stated in config.yaml).")
            if len(s) < 2:
                note += (" A claim whose test needs this arm is inconclusive by its precondition (a t-test needs "
                         "2 values per arm)" + ("; its value is shown beside the published one." if name in PUBLISHED
                                                else "."))
            notes.append(note)
    fb = fits[fits.condition == "before"].groupby("batch_size")
    notes.append(
        "Fig. 2 slopes b (per unit of ln t), before: " + ", ".join(f"B={b}: {s:.2f}" for b, s in fb.slope.mean().items())
        + "; after: " + ", ".join(f"B={b}: {s:.2f}" for b, s in
                                    fits[fits.condition == "after"].groupby("batch_size").slope.mean().items())
        + ". Points fitted per run, before: " + ", ".join(f"B={b}: {p:g}" for b, p in fb.points.mean().items())
        + " (a large batch makes few updates in its high-LR phase, so its fit spans a short range of ln t).")
    return "\n\n".join(notes)
