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

from largebatch.experiments.hoffer import (ARMS, PUBLISHED, PUBLISHED_DATASET, SOURCE, distance_claims,
                                           distance_fits, ra_factor, table_claims)
from largebatch.notebook import context
from largebatch.report import Section, load_histories, load_runs
from largebatch.stats import finalize_claims
from largebatch.stats import mean_sd as ms

sm = context("hoffer", globals())
rows = sm.params.runs
block = getattr(sm.params, "block", None) or sm.params.scale
runs = load_runs(rows)
hist = load_histories(rows)
sec = Section("hoffer", "Hoffer, Hubara & Soudry 2017: train longer, generalize better")
sns.set_theme(style="whitegrid")
CLASSES = {"cifar100": 100}  # number of classes where not 10 (chance accuracy = 1 / classes)
ARM_NAMES = {"SB": "SB", "LB": "LB", "+LR": "LB +LR", "+GBN": "LB +LR +GBN", "+RA": "LB +LR +GBN +RA"}
nets = block["networks"]
dist = block["distance"]
pre = block["preconditions"]
seeds = sorted(runs.seed.unique())
table_runs = runs[runs.table.astype(bool)].copy()
table_runs["arm"] = pd.Categorical(table_runs.arm, categories=list(ARMS), ordered=True)


def per_seed(name, arm, col):
    """Per-seed values of `col` (in %) of one arm of one network's table."""
    r = table_runs[(table_runs.network == name) & (table_runs.arm == arm)]
    return 100 * r.set_index("seed")[col].astype(float)


def same_data(name):
    """Whether our network trains on the data of its published row (then its values are comparable)."""
    pub = PUBLISHED.get(name)
    return bool(pub) and PUBLISHED_DATASET.get(pub["data"]) == nets[name]["run"]["dataset"]


# %% [markdown]
# ## Fig. 2 fits: weight distance in the high-LR phase

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

# %% [markdown]
# ## Claims

# %%
claims = distance_claims(fits, sb_b, block["claims"], pre["min_fit_points"])
for name, net in nets.items():
    acc = {arm: per_seed(name, arm, "test_acc") for arm in ARMS}
    train = {arm: per_seed(name, arm, "train_acc") for arm in ARMS}
    claims += table_claims(name, net.get("label", name), acc, train, net["claims"], pre, multi=len(nets) > 1)
claims.sort(key=lambda r: (r["id"].split("-")[0], r["id"]))  # H0, H1, ... in the paper's order
decided = finalize_claims(claims)
counts = pd.Series([c["verdict"] for c in decided]).value_counts()
failed = [c for c in decided if not c["precondition_ok"]]
first = next(iter(nets.values()))
sec.summary(
    f"Each arm trained with {len(seeds)} seeds on "
    + "; ".join(f"{n.get('label', k)} (SB {n['small_batch']}, LB {n['large_batch']})" for k, n in nets.items())
    + f". Of {len(decided)} claims: " + ", ".join(f"{v} {k}" for k, v in counts.items()) + "."
    + (" Inconclusive for a failed precondition: "
       + "; ".join(f"{c['id']} ({next(t for t in c['precondition'].split('; ') if 'NO' in t)})" for c in failed)
       + "." if failed else ""))
sec.scope(
    ("The published values (authors' poster) are for the paper's networks on their own data; ours differ, so "
     "this scale tests the direction and size of each adaptation's effect and the shape of Fig. 2, not the "
     "published accuracy levels." if not all(same_data(k) for k in nets) else
     "Same networks and data as the published rows: the accuracy levels are comparable.")
    + " Comparisons with SB need SB to fit its training set first.")
sec.claims(claims)
ids = {c: [r["id"] for r in claims if r["id"].split("-")[0] == c] for c in ("H0", "H1", "H2", "H3", "H4", "H5", "H6")}
TABLE_IDS = ids["H0"] + ids["H4"] + ids["H5"] + ids["H6"]
FIG2_IDS = ids["H1"] + ids["H2"] + ids["H3"]

# %% [markdown]
# ## The table

# %%
wide = []
for name, net in nets.items():
    row = {"network": net.get("label", name), "source": "ours, mean ± sd over seeds",
           "SB / LB batch": f"{net['small_batch']} / {net['large_batch']}"}
    for arm in ARMS:
        row[ARM_NAMES[arm]] = ms(per_seed(name, arm, "test_acc"), 2)
    wide.append(row)
    if name in PUBLISHED:
        pub = PUBLISHED[name]
        wide.append({"network": f"{name} ({pub['data']})", "source": SOURCE, "SB / LB batch": "not printed",
                     **{ARM_NAMES[a]: f"{pub[a]:.2f}" for a in ARMS}})
sec.table("table1", pd.DataFrame(wide),
          "Final test accuracy (%) as the paper's Table 1 lays it out: each column adds one adaptation to the "
          "previous one (+LR: learning rate x √(B_L/B_S); +GBN: ghost batch normalization; +RA: regime "
          "adaptation). Ours: mean ± sd over seeds; the published row: one run per cell.", supports=TABLE_IDS)

detail = []
for (name, arm), g in table_runs.groupby(["network", "arm"], observed=True, sort=True):
    detail.append({
        "network": nets[name].get("label", name), "arm": ARM_NAMES[arm], "batch": int(g.batch_size.iloc[0]),
        "updates": int(g.steps.iloc[0]), "epochs": f"{float(g.epochs.iloc[0]):g}",
        "peak learning rate": f"{float(g.lr_peak.iloc[0]):.3g}",
        "train accuracy (%)": ms(100 * g.train_acc, 2), "test accuracy (%)": ms(100 * g.test_acc, 2),
        "train - test (points)": ms(100 * (g.train_acc - g.test_acc), 2),
        "diverged runs": int((g.status != "ok").sum()), "seeds": len(g),
    })
sec.table("arms", pd.DataFrame(detail),
          "Every arm: batch size, number of updates, epochs, peak learning rate, final train and test accuracy "
          "and their difference (mean ± sd over seeds), diverged runs; the train accuracies decide the "
          "preconditions.", supports=TABLE_IDS)

# %%
fig, axes = plt.subplots(1, len(nets), figsize=(4.8 * len(nets), 3.8), squeeze=False)
for ax, (name, net) in zip(axes[0], nets.items()):
    r = table_runs[table_runs.network == name].assign(test_pct=lambda d: 100 * d.test_acc,
                                                      arm_name=lambda d: d.arm.map(ARM_NAMES))
    sns.stripplot(r, x="arm", y="test_pct", order=list(ARMS), color="0.55", ax=ax, size=4, alpha=0.7,
                  label="one seed")
    sns.pointplot(r, x="arm", y="test_pct", order=list(ARMS), errorbar="sd", color="k", ax=ax, linestyle="none",
                  label="mean ± sd")
    if same_data(name):
        ax.scatter(range(len(ARMS)), [PUBLISHED[name][a] for a in ARMS], marker="D", color="crimson", zorder=5,
                   label="published (poster)")
    ax.set_title(net.get("label", name))
    ax.set_xlabel("arm (each adds one adaptation)")
    ax.set_ylabel("final test accuracy (%)")
    handles, labels = ax.get_legend_handles_labels()
    keep = dict(zip(labels, handles))  # one entry per label
    ax.legend(keep.values(), keep.keys(), fontsize=8)
sec.figure("arms", fig, "Final test accuracy per arm: seeds (grey dots), mean ± sd (black)"
           + ("; published values (red diamonds) where our data is the paper's." if any(map(same_data, nets)) else
              "; the published values are on other data (Table 1) and are not drawn."),
           alt="Dot plot of final test accuracy for the arms SB, LB, +LR, +GBN and +RA of each network, one dot per "
               "seed with the mean and standard deviation.", supports=TABLE_IDS)

# %%
th = hist[hist.table.astype(bool) & (hist.step > 0)]
fig, axes = plt.subplots(1, len(nets), figsize=(4.8 * len(nets), 3.8), squeeze=False)
for ax, (name, net) in zip(axes[0], nets.items()):
    h = th[th.network == name].assign(test_pct=lambda d: 100 * d.test_acc,
                                      arm_name=lambda d: d.arm.map(ARM_NAMES))
    sns.lineplot(h, x="step", y="test_pct", hue="arm_name", hue_order=[ARM_NAMES[a] for a in ARMS], errorbar="sd",
                 ax=ax)
    ax.axhline(100 / CLASSES.get(net["run"]["dataset"], 10), color="0.5", ls=":", lw=1)
    ax.set_xscale("log")
    ax.set_title(net.get("label", name))
    ax.set_xlabel("updates (log scale)")
    ax.set_ylabel("test accuracy (%)")
    ax.legend(title="arm (line: mean, band: ± sd)", fontsize=8, title_fontsize=8)
sec.figure("curves", fig, "Test accuracy against the number of updates (log scale), mean ± sd over seeds: "
           "with regime adaptation LB makes as many updates as SB. Dotted grey: chance accuracy.",
           alt="Test accuracy against updates on a log axis for the five arms; the +RA curve runs as long as SB's.",
           supports=ids["H4"])

# %%
fit_table = []
for (c, b), g in fits.groupby(["condition", "batch_size"], sort=True):
    fit_table.append({"panel": "(a) before" if c == "before" else "(b) after", "batch": b,
                      "updates in the phase": int(g.t_drop.iloc[0]), "points fitted": int(g.points.iloc[0]),
                      "slope b": ms(g.slope, 3), "intercept a": ms(g.intercept, 3),
                      "R² (a + b ln t)": ms(g.r2_log, 4), "R² (a + b √t)": ms(g.r2_sqrt, 4),
                      "distance at phase end": ms(g.d_drop, 3), "seeds": len(g)})
fit_table = pd.DataFrame(fit_table).sort_values(["panel", "batch"])
sec.table("distance_fits", fit_table,
          f"Fits of the weight distance d = ||w_t - w_0|| against the update count t over the high-LR phase "
          f"(log-grid evaluations from update {dist['fit_min_step']} to the first LR drop), mean ± sd over seeds. "
          "(a) before: same learning rate, BatchNorm, same epochs; (b) after: +LR +GBN +RA (the small batch is "
          "the same run in both panels).", supports=FIG2_IDS)

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
        t = np.geomspace(dist["fit_min_step"], f.t_drop.max(), 50)
        ax.plot(t, f.intercept.mean() + f.slope.mean() * np.log(t), color=palette[b], lw=2,
                label=f"B={b}: b={f.slope.mean():.2f}, R²={f.r2_log.mean():.3f}")
    ax.set_xscale("log")
    ax.set_xlabel("updates t (log scale)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, title="dots: evaluations; lines: fit d = a + b ln t", title_fontsize=8)
axes[0].set_ylabel("||w_t - w_0||")
sec.figure("distance", fig, "Weight distance from initialisation during the high-LR phase (dots: evaluations of "
           f"every seed) with the least-squares fit d = a + b ln t over updates >= {dist['fit_min_step']} (lines; "
           "slope b and R² averaged over seeds), as the paper's Fig. 2.",
           alt="Two panels of weight distance against updates on a log axis, one colour per batch size, before and "
               "after the adaptations, with straight-line fits in log t.", supports=FIG2_IDS)

# %% [markdown]
# ## Protocol

# %%
spec0 = first["run"]
sec.protocol([
    {"aspect": "networks / data", "paper": "F1 (MNIST), C1/C3 shallow conv (CIFAR-10/100), ResNet-44 (CIFAR-10), "
     "WRN-16-4 (CIFAR-100), VGG, AlexNet (ImageNet)",
     "ours": "; ".join(f"{n.get('label', k)}: {n['run']['model']} width {n['run'].get('width')}"
                       f" depth {n['run'].get('depth')}" for k, n in nets.items())},
    {"aspect": "optimiser (F1)", "paper": "SGD lr 0.1, momentum 0.9, weight decay 1e-4, gradient norm clipped at 5 "
     "(authors' code, bigBatch)",
     "ours": f"{spec0['optimizer'].upper()} lr {spec0['lr']}, momentum {spec0.get('momentum', 0)}, weight decay "
             f"{spec0.get('weight_decay', 0)}, clip {spec0.get('max_grad_norm')}"},
    {"aspect": "regime (F1)", "paper": "lr x0.1 at epochs 10, 20, 30; 50 epochs (authors' code)",
     "ours": f"lr x{spec0.get('gamma', 0.1)} at epochs {', '.join(f'{m:g}' for m in spec0['milestones'])}; "
             f"{spec0['epochs']:g} epochs"},
    {"aspect": "batch sizes (F1)", "paper": "SB 128, LB 4096 (B_L/B_S = 32; authors' scripts)",
     "ours": f"SB {first['small_batch']}, LB {first['large_batch']} "
             f"(B_L/B_S = {first['large_batch'] / first['small_batch']:g})"},
    {"aspect": "+LR", "paper": "lr x √(B_L / ghost size)", "ours": "lr x √(B_L / B_S) (ghost size = B_S)"},
    {"aspect": "+GBN", "paper": "ghost batches of 128, by chunked forward/backward (authors' code)",
     "ours": "GhostBatchNorm layer, ghost batches of B_S samples in one forward pass"},
    {"aspect": "+RA", "paper": "epochs and LR-drop epochs x B_L/B_S", "ours": "epochs and LR-drop epochs x ceil(B_L/B_S)"},
    {"aspect": "weight distance", "paper": "||w_t - w_0|| against iterations (log), high-LR phase; the authors' code "
     "logs the first layer only, once per epoch",
     "ours": f"all trainable weights, {dist['log_points']} evaluations on a log-spaced step grid, batch sizes "
             f"{', '.join(map(str, dist['batch_sizes']))}"},
    {"aspect": "test accuracy", "paper": "validation accuracy (poster's table)",
     "ours": "test accuracy of the final weights (BatchNorm running statistics)"},
    {"aspect": "seeds", "paper": "1 (seed 123, authors' code)", "ours": f"{len(seeds)} ({', '.join(map(str, seeds))})"},
])

# %% [markdown]
# ## Caveats

# %%
notes = []
for name, net in nets.items():
    sb_r = table_runs[(table_runs.network == name) & (table_runs.arm == "SB")]
    ra_r = table_runs[(table_runs.network == name) & (table_runs.arm == "+RA")]
    k = ra_factor(net["large_batch"], net["small_batch"])
    notes.append(
        f"{net.get('label', name)}: SB ends its {sb_r.epochs.mean():g}-epoch budget at train accuracy "
        f"{100 * sb_r.train_acc.mean():.1f}% and +RA at {100 * ra_r.train_acc.mean():.1f}%. +RA makes as many "
        f"updates as SB ({int(sb_r.steps.mean())} vs {int(ra_r.steps.mean())}) but, with {k}x the batch, sees "
        f"{ra_r.epochs.mean() / sb_r.epochs.mean():g}x as many samples; where SB is short of convergence +RA can "
        f"exceed SB, so the comparisons with SB require SB to reach {pre['sb_train_acc_min_pp']:g}% train accuracy "
        f"and generalisation comparisons require train accuracies within {pre['max_train_gap_pp']:g} points.")
fb = fits[fits.condition == "before"].groupby("batch_size")
notes.append(
    "Fig. 2 slopes b (per unit of ln t), before: " + ", ".join(f"B={b}: {s:.2f}" for b, s in fb.slope.mean().items())
    + "; after: " + ", ".join(f"B={b}: {s:.2f}" for b, s in
                                fits[fits.condition == "after"].groupby("batch_size").slope.mean().items())
    + ". Points fitted per run, before: " + ", ".join(f"B={b}: {p:g}" for b, p in fb.points.mean().items())
    + " (a large batch makes few updates in its high-LR phase, so its fit spans a short range of ln t).")
sec.caveats("\n\n".join(notes))
sec.save(sm.output.section if hasattr(sm.output, "section") else None)
