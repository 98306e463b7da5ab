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
# # Hoffer, Hubara & Soudry 2017: train longer, generalize better
#
# The table: a small-batch baseline (SB), the large batch (LB) with the same epochs, then
# LB with three cumulative adaptations: learning rate x sqrt(B_L/B_S) (+LR), Ghost Batch
# Normalization with ghost batches of the small-batch size (+GBN), and regime adaptation
# (+RA: epochs and every LR drop x B_L/B_S, so LB makes as many updates as SB). Fig. 2:
# the distance of the weights from their initialisation in the high-LR phase against the
# number of updates (log scale), for several batch sizes, before and after the
# adaptations. Run by Snakemake (`script:`); in Jupyter, `context()` rebuilds the inputs.

# %%
import matplotlib

matplotlib.use("Agg")
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib import pyplot as plt

from largebatch.experiments.hoffer import ARMS, distance_fits, ra_factor
from largebatch.notebook import context
from largebatch.report import Section, load_histories, load_runs
from largebatch.stats import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED, claim_row, mean_std, welch_verdict

sm = context("hoffer", globals())
rows = sm.params.runs
block = getattr(sm.params, "block", None) or sm.params.scale
runs = load_runs(rows)
hist = load_histories(rows)
sec = Section("hoffer", "Hoffer, Hubara & Soudry 2017: train longer, generalize better")
sns.set_theme(style="whitegrid")
ARM_NAMES = {"SB": "SB", "LB": "LB", "+LR": "LB +LR", "+GBN": "LB +LR +GBN", "+RA": "LB +LR +GBN +RA"}
nets = block["networks"]
dist = block["distance"]
margin = block["equivalence_margin"]
seeds = sorted(runs.seed.unique())

# %%
first = next(iter(nets.values()))
spec0 = first["run"]
sec.text(
    f"{len(nets)} network(s), {len(seeds)} seeds each: "
    + "; ".join(f"{n.get('label', k)}: SB {n['small_batch']}, LB {n['large_batch']} "
                f"(B_L/B_S = {n['large_batch'] / n['small_batch']:g})" for k, n in nets.items())
    + ". Every arm uses SGD with the network's small-batch regime (step drops of the learning rate); "
    "+LR scales the rate by sqrt(B_L/B_S), +GBN normalises ghost batches of B_S samples, +RA multiplies "
    f"the epochs and every LR-drop epoch by ceil(B_L/B_S). Test accuracy is that of the final weights "
    "(BatchNorm running statistics). The paper's table values were not retrieved (REFERENCE.md section 2), "
    "so its claims are stated, not its numbers."
)
sec.protocol([
    {"aspect": "networks / data", "paper": "F1 (MNIST), C1/C3 shallow conv (CIFAR-10/100), ResNet-44 (CIFAR-10), "
     "WRN-16-4 (CIFAR-100)", "ours": "; ".join(f"{n.get('label', k)}: {n['run']['model']} width {n['run'].get('width')}"
                                              f" depth {n['run'].get('depth')}" for k, n in nets.items())},
    {"aspect": "optimiser (F1)", "paper": "SGD lr 0.1, momentum 0.9, weight decay 1e-4, gradient clipped at 5 (code)",
     "ours": f"{spec0['optimizer'].upper()} lr {spec0['lr']}, momentum {spec0.get('momentum', 0)}, weight decay "
             f"{spec0.get('weight_decay', 0)}, clip {spec0.get('max_grad_norm')}"},
    {"aspect": "regime (F1)", "paper": "lr x0.1 at epochs 10, 20, 30; 50 epochs (code)",
     "ours": f"lr x{spec0.get('gamma', 0.1)} at epochs {spec0['milestones']}; {spec0['epochs']} epochs"},
    {"aspect": "batch sizes (F1)", "paper": "SB 128, LB 4096 (B_L/B_S = 32)",
     "ours": f"SB {first['small_batch']}, LB {first['large_batch']} "
             f"(B_L/B_S = {first['large_batch'] / first['small_batch']:g})"},
    {"aspect": "+LR", "paper": "lr x sqrt(B_L / ghost size)", "ours": "lr x sqrt(B_L / B_S) (ghost size = B_S)"},
    {"aspect": "+GBN", "paper": "ghost batches of 128, by chunked forward/backward (code)",
     "ours": "GhostBatchNorm layer, ghost batches of B_S samples in one forward pass"},
    {"aspect": "+RA", "paper": "epochs and LR-drop epochs x B_L/B_S", "ours": "epochs and LR-drop epochs x ceil(B_L/B_S)"},
    {"aspect": "weight distance", "paper": "||w_t - w_0|| vs iterations (log), high-LR phase; the code logs the "
     "first layer only, once per epoch", "ours": f"all trainable weights, {dist['log_points']} evaluations on a "
     f"log-spaced step grid, batch sizes {dist['batch_sizes']}"},
    {"aspect": "seeds", "paper": "1 (seed 123)", "ours": f"{len(seeds)} ({', '.join(map(str, seeds))})"},
])

# %% [markdown]
# ## The table

# %%
table_runs = runs[runs.table.astype(bool)].copy()
table_runs["arm"] = pd.Categorical(table_runs.arm, categories=list(ARMS), ordered=True)
wide = []
for name, net in nets.items():
    r = table_runs[table_runs.network == name]
    row = {"network": net.get("label", name), "SB / LB": f"{net['small_batch']} / {net['large_batch']}"}
    for arm in ARMS:
        row[arm] = mean_std(r[r.arm == arm].test_acc, 2, 100)
    wide.append(row)
sec.table("table1", pd.DataFrame(wide),
          "Final test accuracy (%), mean ± std over seeds, as the paper's Table 1 lays it out: each column adds "
          "one adaptation to the previous one (+LR: sqrt lr scaling; +GBN: ghost batch norm; +RA: regime adaptation).")

detail = []
for (name, arm), g in table_runs.groupby(["network", "arm"], observed=True, sort=True):
    detail.append({
        "network": nets[name].get("label", name), "arm": ARM_NAMES[arm], "batch": int(g.batch_size.iloc[0]),
        "updates": int(g.steps.iloc[0]), "epochs": round(float(g.epochs.iloc[0]), 2),
        "peak lr": round(float(g.lr_peak.iloc[0]), 4),
        "train acc (%)": mean_std(g.train_acc, 2, 100), "test acc (%)": mean_std(g.test_acc, 2, 100),
        "train - test (%)": mean_std(g.train_acc - g.test_acc, 2, 100),
        "diverged": int((g.status != "ok").sum()), "n": len(g),
    })
sec.table("arms", pd.DataFrame(detail),
          "Every arm: batch size, number of updates, epochs, peak learning rate, final train/test accuracy "
          "and their gap (mean ± std over seeds), diverged runs.")

# %%
fig, axes = plt.subplots(1, len(nets), figsize=(4.6 * len(nets), 3.6), squeeze=False)
for ax, (name, net) in zip(axes[0], nets.items()):
    r = table_runs[table_runs.network == name].assign(test_pct=lambda d: 100 * d.test_acc)
    sns.pointplot(r, x="arm", y="test_pct", order=list(ARMS), errorbar="sd", color="k", ax=ax, linestyle="none")
    sns.stripplot(r, x="arm", y="test_pct", order=list(ARMS), hue="seed", palette="deep", ax=ax, size=5, alpha=0.7)
    ax.set_title(net.get("label", name))
    ax.set_xlabel("")
    ax.set_ylabel("test accuracy (%)")
    ax.legend(title="seed", fontsize=8)
sec.figure("arms", fig, "Final test accuracy per arm (dots: seeds; black: mean ± std).")

# %%
th = hist[hist.table.astype(bool) & (hist.step > 0)]
fig, axes = plt.subplots(1, len(nets), figsize=(4.6 * len(nets), 3.6), squeeze=False)
for ax, (name, net) in zip(axes[0], nets.items()):
    h = th[th.network == name].assign(test_pct=lambda d: 100 * d.test_acc)
    sns.lineplot(h, x="step", y="test_pct", hue="arm", hue_order=list(ARMS), errorbar="sd", ax=ax)
    ax.set_xscale("log")
    ax.set_title(net.get("label", name))
    ax.set_xlabel("updates")
    ax.set_ylabel("test accuracy (%)")
sec.figure("curves", fig, "Test accuracy against the number of updates (log scale), mean ± std over seeds: "
           "with regime adaptation LB makes as many updates as SB.")

# %% [markdown]
# ## Fig. 2: weight distance in the high-LR phase

# %%
dnet = dist["network"]
sb_b = nets[dnet]["small_batch"]
fits = []
for _, r in runs[runs.network == dnet].iterrows():
    conds = {"SB": ["before", "after"], "LB": ["before"], "+RA": ["after"]}.get(r.arm, [])
    if not conds or r.status != "ok":
        continue
    h = hist[hist.run == r.run].sort_values("step")
    f = distance_fits(h, dist["log_points"], int(r.steps), dist["fit_min_step"])
    for c in conds:
        fits.append({"condition": c, "batch_size": int(r.batch_size), "seed": int(r.seed), "run": r.run, **f})
fits = pd.DataFrame(fits)
fit_table = []
for (c, b), g in fits.groupby(["condition", "batch_size"], sort=True):
    fit_table.append({"condition": c, "batch": b, "updates in phase": int(g.t_drop.iloc[0]),
                      "points": int(g.points.iloc[0]), "slope b": mean_std(g.slope, 3),
                      "intercept a": mean_std(g.intercept, 3), "R² (a + b ln t)": mean_std(g.r2_log, 4),
                      "R² (a + b √t)": mean_std(g.r2_sqrt, 4), "d at phase end": mean_std(g.d_drop, 3),
                      "n": len(g)})
fit_table = pd.DataFrame(fit_table).sort_values(["condition", "batch"], ascending=[False, True])
sec.table("distance_fits", fit_table,
          f"Fits of the weight distance d = ||w_t - w_0|| against the update count t over the high-LR phase "
          f"(log-grid evaluations at updates {dist['fit_min_step']} to the first LR drop), mean ± std over seeds; "
          "'points' is the number fitted (fewer than 3: no fit). 'before': same lr, BatchNorm, same epochs; "
          "'after': +LR +GBN +RA (the small batch is the same run in both).")

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
batches = sorted(fits.batch_size.unique())
palette = dict(zip(batches, sns.color_palette("viridis", len(batches))))
for ax, cond, title in zip(axes, ["before", "after"], ["(a) before: same lr, BN, same epochs",
                                                          "(b) after: +LR +GBN +RA"]):
    for b in batches:
        f = fits[(fits.condition == cond) & (fits.batch_size == b)]
        if f.empty:
            continue
        pts = []
        for _, fr in f.iterrows():
            h = hist[hist.run == fr.run]
            pts.append(h[(h.step >= 1) & (h.step <= fr.t_drop)][["step", "w_dist"]])
        pts = pd.concat(pts)
        ax.scatter(pts.step, pts.w_dist, s=9, alpha=0.35, color=palette[b])
        if f.slope.isna().all():
            continue
        t = np.geomspace(dist["fit_min_step"], f.t_drop.max(), 50)
        ax.plot(t, f.intercept.mean() + f.slope.mean() * np.log(t), color=palette[b], lw=2,
                label=f"B={b}: b={f.slope.mean():.2f}, R²={f.r2_log.mean():.3f}")
    ax.set_xscale("log")
    ax.set_xlabel("updates t (log scale)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, title="fit d = a + b ln t")
axes[0].set_ylabel("||w_t - w_0||")
sec.figure("distance", fig, "Weight distance from initialisation during the high-LR phase (dots: evaluations of "
           f"every seed) with the least-squares fit d = a + b ln t over updates >= {dist['fit_min_step']} (lines; "
           "slope and R² averaged over seeds).")

# %% [markdown]
# ## Claims

# %%
claims = []
thr = dist["r2_threshold"]
g = fits.groupby(["condition", "batch_size"])
r2_log_all, r2_sqrt = g.r2_log.mean(), g.r2_sqrt.mean()
left_out = [f"{c} B={b}" for (c, b), v in r2_log_all.items() if np.isnan(v)]
r2_log, r2_sqrt = r2_log_all.dropna(), r2_sqrt[r2_log_all.notna()]
log_wins = (r2_log > r2_sqrt)
if len(r2_log) and (r2_log >= thr).all() and log_wins.all():
    v1 = REPRODUCED
elif not len(r2_log) or (r2_log < thr - 0.05).any() or log_wins.mean() < 0.5:
    v1 = NOT_REPRODUCED
else:
    v1 = INCONCLUSIVE
claims.append(claim_row(
    "H1", "In the high-LR phase the weight distance from initialisation grows logarithmically with the number "
    "of updates (d ≈ a + b ln t).", "R² of d = a + b ln t per (condition, batch), mean over seeds",
    f"R² {r2_log.min():.3f}–{r2_log.max():.3f} (random-walk fit a + b√t: {r2_sqrt.min():.3f}–{r2_sqrt.max():.3f}); "
    f"log fit better in {int(log_wins.sum())}/{len(log_wins)} groups"
    + (f"; left out (fewer than 3 points): {', '.join(left_out)}" if left_out else ""),
    "claim (Fig. 2); values not retrieved", v1,
    f"least squares over the log-grid evaluations of updates {dist['fit_min_step']}..first LR drop, per run; "
    f"groups: (before/after, batch size); reproduced if every group's mean "
    f"R² >= {thr} and beats the √t fit; not reproduced if a group's R² < {thr - 0.05:.2f} or the √t fit wins in "
    f"most groups; else inconclusive"))

lb_b = nets[dnet]["large_batch"]
sb_slope = fits[(fits.condition == "before") & (fits.batch_size == sb_b)].set_index("seed").slope
lb_before = fits[(fits.condition == "before") & (fits.batch_size == lb_b)].set_index("seed").slope
lb_after = fits[(fits.condition == "after") & (fits.batch_size == lb_b)].set_index("seed").slope
v2, p2, t2 = welch_verdict(lb_before, sb_slope, claim="less")
claims.append(claim_row(
    "H2", "Before adaptation each batch size has its own slope: the large batch's distance grows more slowly "
    "per update than the small batch's (Fig. 2a).", f"slope b of d = a + b ln t, B={lb_b} vs B={sb_b}",
    f"LB {mean_std(lb_before, 3)} vs SB {mean_std(sb_slope, 3)} (p={p2:.3g})",
    "claim (Fig. 2a); values not retrieved", v2, t2))
common = sb_slope.index.intersection(lb_before.index).intersection(lb_after.index)
gap_before = (lb_before[common] - sb_slope[common]).abs()
gap_after = (lb_after[common] - sb_slope[common]).abs()
v3, p3, t3 = welch_verdict(gap_after, gap_before, claim="less")
claims.append(claim_row(
    "H3", "After the adaptations (+LR +GBN +RA) the large batch's distance grows at about the small batch's "
    "rate: its slope moves towards the small batch's (Fig. 2b).", f"|b(B={lb_b}) - b(B={sb_b})| per seed",
    f"after {mean_std(gap_after, 3)} vs before {mean_std(gap_before, 3)} (p={p3:.3g})",
    "claim (Fig. 2b); values not retrieved", v3, t3 + "; |slope difference| per seed, after vs before"))


def arm_acc(name, arm):
    r = table_runs[(table_runs.network == name) & (table_runs.arm == arm)]
    return r.set_index("seed").test_acc


for name, net in nets.items():
    lab = net.get("label", name)
    sfx = f" [{lab}]" if len(nets) > 1 else ""
    acc = {arm: arm_acc(name, arm) for arm in ARMS}
    pct = {arm: mean_std(a, 2, 100) for arm, a in acc.items()}
    v0, p0, t0 = welch_verdict(acc["LB"], acc["SB"], claim="less")
    claims.append(claim_row(
        f"H0-{name}", "Precondition: with the same epochs the large batch reaches a lower test accuracy than the "
        "small batch (the generalization gap)." + sfx, "final test accuracy (%)",
        f"LB {pct['LB']} vs SB {pct['SB']} (p={p0:.3g})", "claim (abstract); values not retrieved", v0, t0))
    v4, p4, _ = welch_verdict(acc["+RA"] + margin, acc["SB"], claim="greater")
    claims.append(claim_row(
        f"H4-{name}", "The gap comes from the number of updates, not the batch size: LB with all adaptations, "
        "making as many updates as SB, matches SB within the seed spread." + sfx, "final test accuracy (%)",
        f"+RA {pct['+RA']} vs SB {pct['SB']} (difference {100 * (acc['+RA'].mean() - acc['SB'].mean()):+.2f} "
        f"points; non-inferiority p={p4:.3g})", "claim (abstract); values not retrieved", v4,
        f"one-sided Welch non-inferiority test: mean(+RA) > mean(SB) - {100 * margin:g} points, alpha=0.05, "
        f"n={len(acc['+RA'])}/{len(acc['SB'])}; not reproduced if +RA is more than {100 * margin:g} points below SB"))
    steps = [("+LR", "LB"), ("+GBN", "+LR"), ("+RA", "+GBN")]
    res = [(new, old, *welch_verdict(acc[new], acc[old], claim="greater")) for new, old in steps]
    verdicts = [r[2] for r in res]
    v5 = (REPRODUCED if all(v == REPRODUCED for v in verdicts)
          else NOT_REPRODUCED if NOT_REPRODUCED in verdicts else INCONCLUSIVE)
    claims.append(claim_row(
        f"H5-{name}", "Each adaptation (+LR, +GBN, +RA) closes part of the gap: each raises the test accuracy "
        "over the previous arm." + sfx, "final test accuracy (%), each arm vs the previous one",
        "; ".join(f"{new} {pct[new]} vs {old} {pct[old]} (p={p:.3g}, {v})" for new, old, v, p, _ in res),
        "claim; values not retrieved", v5,
        "one-sided Welch t-test per step (arm > previous arm), alpha=0.05; reproduced if all three steps are, "
        "not reproduced if any step lowers the mean, else inconclusive"))
    v6, p6, t6 = res[1][2], res[1][3], res[1][4]
    upd = table_runs[(table_runs.network == name) & table_runs.arm.isin(["+LR", "+GBN"])].groupby("arm",
                                                                                                  observed=True).steps
    claims.append(claim_row(
        f"H6-{name}", "Ghost Batch Normalization improves generalization without extra updates (+GBN vs +LR, same "
        "number of updates)." + sfx, "final test accuracy (%)",
        f"+GBN {pct['+GBN']} vs +LR {pct['+LR']} (p={p6:.3g}); updates {int(upd.max().min())} in both"
        if upd.max().nunique() == 1 else f"+GBN {pct['+GBN']} vs +LR {pct['+LR']} (p={p6:.3g})",
        "claim; values not retrieved", v6, t6))
sec.claims(claims)

# %%
notes = []
for name, net in nets.items():
    r = table_runs[table_runs.network == name]
    sb_r, ra_r = r[r.arm == "SB"], r[r.arm == "+RA"]
    k = ra_factor(net["large_batch"], net["small_batch"])
    notes.append(
        f"{net.get('label', name)}: SB ends its {sb_r.epochs.mean():g}-epoch budget at train accuracy "
        f"{100 * sb_r.train_acc.mean():.1f}% and +RA at {100 * ra_r.train_acc.mean():.1f}%. +RA makes as many updates "
        f"as SB ({int(sb_r.steps.mean())} vs {int(ra_r.steps.mean())}) but, with {k}x the batch, sees {ra_r.epochs.mean() / sb_r.epochs.mean():g}x as many samples; where SB "
        "is short of convergence, +RA can exceed SB, and the non-inferiority test (H4) then reads 'not worse than SB'.")
fb = fits[fits.condition == "before"].groupby("batch_size")
fa = fits[fits.condition == "after"].groupby("batch_size")
notes.append(
    "Fig. 2 slopes b (per unit of ln t): before "
    + ", ".join(f"B={b}: {s:.2f}" for b, s in fb.slope.mean().items())
    + "; after " + ", ".join(f"B={b}: {s:.2f}" for b, s in fa.slope.mean().items())
    + ". Points fitted per run, before: " + ", ".join(f"B={b}: {int(p)}" for b, p in fb.points.mean().items())
    + " (a large batch has few updates in its high-LR phase, so its fit spans a short range of ln t).")
sec.text("\n\n".join(notes), heading="Reading the results")
sec.save(sm.output.section if hasattr(sm.output, "section") else None)
