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
# # Keskar et al. 2017: large-batch training, generalization gap and sharp minima
#
# Small-batch (SB) vs large-batch (LB = 10% of the training set) Adam with the same
# learning rate, each trained until its training loss stops improving; ε-sharpness (Metric
# 2.1) and the Hessian's top eigenvalue of every minimiser; the 1-D parametric plot
# between an SB and an LB minimiser (Fig. 3); a batch-size sweep (Fig. 4); the distance
# travelled from the shared starting point. Every claim is decided by `largebatch.stats`
# (see `largebatch.experiments.keskar.sb_lb_claims`). Run by Snakemake (`script:`); in
# Jupyter, `context()` rebuilds the inputs from config.yaml.

# %%
import json

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import pandas as pd
from matplotlib import pyplot as plt
from matplotlib.lines import Line2D

from largebatch.experiments import dataset_sizes, scale_block
from largebatch.experiments import keskar as K
from largebatch.notebook import context
from largebatch.report import Section, load_histories, load_runs
from largebatch.stats import VERDICTS, mean_std

sm = context("keskar", globals())
rows = sm.params.runs
block = sm.params.block if hasattr(sm.params, "block") else sm.params.scale
scale_name = sm.params.scale if isinstance(getattr(sm.params, "scale", None), str) else sm.config["scale"]
# the scale's datasets as the run plan saw them (a rehearsal shrinks them)
datasets = sm.params.datasets if hasattr(sm.params, "datasets") else scale_block(sm.config)["datasets"]
runs = load_runs(rows)
hist = load_histories(rows)
sharp = pd.DataFrame(
    [{"run": r, **K.sharpness_columns(json.load(open(f"results/keskar/sharpness/{r}.json")))}
     for r in runs["run"].unique()]
)
runs = runs.merge(sharp, on="run", how="left")
curves = pd.read_csv("results/keskar/parametric.csv")
sec = Section("keskar", K.TITLE)
main = runs[runs["main"]].copy()
nets = list(block["networks"])
EPS = [float(e) for e in block["sharpness"]["epsilons"]]
E1, E2 = EPS[0], EPS[-1]
pct = lambda s: mean_std(s, 2, 100.0)
kinds = {n: datasets[c["dataset"]].get("kind", c["dataset"]) for n, c in block["networks"].items()}
CLASSES = {"mnist1d": 10, "mnist": 10, "cifar10": 10, "cifar100": 100}
n_train = dataset_sizes({"datasets": datasets})


def arm(n, a):
    return main[(main.network == n) & (main.arm == a)]


# the specs the runs were trained with (one SB run per network), for captions and the protocol
specs = {n: json.load(open(f"results/runs/{arm(n, 'SB').run.iloc[0]}/spec.json")) for n in nets}
run_cfg = specs[nets[0]]


def log_if_wide(ax, values, axis="y"):
    """Log scale where the values span more than a decade, else linear (ticks stay labelled); returns the label."""
    v = pd.Series(values, dtype=float)
    v = v[v > 0]
    wide = len(v) and v.max() / v.min() > 10
    if wide:
        getattr(ax, f"set_{axis}scale")("log")
        getattr(ax, f"{axis}axis").set_major_formatter(matplotlib.ticker.FormatStrFormatter("%.3g"))
    return " (log scale)" if wide else ""


def same_data_as_paper(n):
    """Draw the paper's values on our axes only where we trained on the paper's data."""
    return K.PAPER_DATASET.get(n) == kinds[n] and n in K.PUBLISHED["table2"]


# %% [markdown]
# ## Claims (decided before anything is drawn)

# %%
rises = []
for (n, s), c in curves.groupby(["network", "seed"]):
    sb_rise, lb_rise = K.endpoint_rise(c, block["parametric"]["delta"])
    rises.append({"network": n, "seed": s, "sb_rise": sb_rise, "lb_rise": lb_rise})
rises = pd.DataFrame(rises)
rises = rises.assign(order=rises.network.map(nets.index)).sort_values(["order", "seed"]).drop(columns="order")
ratios = K.distance_ratios(runs)
sweep = runs[runs["sweep"]].copy()
snet = block["sweep"]["network"]

claim_rows = [r for n in nets for r in K.sb_lb_claims(n, arm(n, "SB"), arm(n, "LB"), rises, ratios, block)]
claim_rows.append(K.sweep_claim(sweep, block))
claims = pd.read_csv(sec.claims(claim_rows))

# %% [markdown]
# ## Summary

# %%
counts = claims.verdict.value_counts()
decided = {v: ", ".join(claims[claims.verdict == v].id) for v in VERDICTS[:2]}
blocked = claims[~claims.precondition_ok.astype(bool)]
blocked_nets = sorted({i.split("-", 1)[1] for i in blocked.id}, key=lambda n: nets.index(n) if n in nets else len(nets))
sec.summary(
    f"{len(claims)} claims: " + "; ".join(f"{counts.get(v, 0)} {v}" + (f" ({decided[v]})" if decided.get(v) else "")
                                           for v in VERDICTS) + ". "
    + (f"{len(blocked)} inconclusive verdicts come from a failed precondition, not from the tests "
       f"({', '.join(blocked_nets)}: a run stopped before converging or the arms' train accuracies too far apart; "
       "see Caveats)." if len(blocked) else ""))
our_data = ", ".join(sorted({K.DATASET_NAMES.get(k, k) for k in kinds.values()}))
paper_data = all(same_data_as_paper(n) for n in nets)  # our values compare with the published ones directly
sec.scope(
    f"Networks {', '.join(nets)} on the paper's own data ({our_data}), beside the published rows; F2 (TIMIT) and "
    "the networks not listed are not run." if paper_data else
    f"This scale trains narrow F1- and C1-style networks on {our_data}: it tests the direction of each effect, not "
    "the published magnitudes, which come from MNIST, TIMIT and CIFAR with the full-size networks.")

# %% [markdown]
# ## Table 2: accuracy

# %%
src_ours = f"ours ({scale_name} scale, {our_data})"
src_paper = "Keskar et al. 2017" + ("" if paper_data else " (MNIST, TIMIT, CIFAR; full-size networks)")


def side_by_side(table: str, columns: list[str], ours: dict[str, list[str]]) -> pd.DataFrame:
    out = []
    for n in nets:
        out.append({"network": n, "source": src_ours, **dict(zip(columns, ours[n]))})
        out.append({"network": n, "source": src_paper,
                    **{c: K.published_cell(table, n, i) for i, c in enumerate(columns)}})
    out.append({"network": "F2", "source": "ours: not run (TIMIT not available)", **{c: "–" for c in columns}})
    out.append({"network": "F2", "source": src_paper, **{c: K.published_cell(table, "F2", i) for i, c in enumerate(columns)}})
    return pd.DataFrame(out)


t2_cols = ["train acc SB (%)", "train acc LB (%)", "test acc SB (%)", "test acc LB (%)"]
t2 = side_by_side("table2", t2_cols, {
    n: [pct(arm(n, "SB").train_acc), pct(arm(n, "LB").train_acc), pct(arm(n, "SB").test_acc), pct(arm(n, "LB").test_acc)]
    for n in nets})
train_n = run_cfg.get("eval_train_samples")
sec.table("table2_accuracy", t2,
          "Table 2 accuracy: final train and test accuracy of SB and LB Adam, mean ± sd over seeds, beside "
          f"{K.SOURCES['table2']}. Our train accuracy is measured on "
          + (f"the first {int(train_n):,} training samples." if train_n else "the whole training set."),
          supports=[f"K1-{n}" for n in nets])

# %% [markdown]
# ## Tables 3 and 4: ε-sharpness

# %%
t_cols = [f"ε={E1:g} SB", f"ε={E1:g} LB", f"ε={E2:g} SB", f"ε={E2:g} LB"]
for table, space, title in (("table3", "full", "Table 3 sharpness: ε-sharpness in full space (A = I)"),
                            ("table4", "subspace",
                             f"Table 4 sharpness: ε-sharpness in random {block['sharpness']['subspace_dim']}-dim subspaces")):
    t = side_by_side(table, t_cols, {
        n: [mean_std(arm(n, a)[K.sharp_col(space, e)], 3) for e in (E1, E2) for a in K.ARMS] for n in nets})
    sec.table(f"{table}_sharpness_{space}", t, f"{title}, mean ± sd over seeds (Metric 2.1, ×100 scale), beside "
              f"{K.SOURCES[table]}.", supports=[f"{'K2' if space == 'full' else 'K3'}-{n}" for n in nets])

# %%
extra = []
for n in nets:
    r = ratios[ratios.network == n]
    extra.append({
        "network": n,
        "Hessian λmax SB": mean_std(arm(n, "SB").hessian_max_eig, 3),
        "Hessian λmax LB": mean_std(arm(n, "LB").hessian_max_eig, 3),
        "‖x−x0‖ SB": mean_std(r.sb_dist, 2), "‖x−x0‖ LB": mean_std(r.lb_dist, 2),
        "ratio SB/LB": mean_std(r.ratio, 2), "paper ratio": "3–10",
        "epochs SB": mean_std(arm(n, "SB").epochs, 1), "epochs LB": mean_std(arm(n, "LB").epochs, 1),
    })
sec.table("hessian_distance", pd.DataFrame(extra),
          "Hessian and distance: top Hessian eigenvalue of the training loss, distance travelled from the shared "
          "start x0 over all trainable weights, their SB/LB ratio (paper ratio: "
          f"{K.SOURCES['distance']}) and epochs trained; mean ± sd over seeds.",
          supports=[f"{c}-{n}" for c in ("K4", "K6", "K7") for n in nets])

# %% [markdown]
# ## Fig. 2 analogue: learning curves

# %%
colors = {"SB": "C0", "LB": "C3"}
mh = hist[hist["main"]]
fig, axes = plt.subplots(1, len(nets), figsize=(5.4 * len(nets), 3.6), squeeze=False)
for ax, n in zip(axes[0], nets):
    for (a, s), h in mh[mh.network == n].groupby(["arm", "seed"]):
        ax.plot(h.epoch, 100 * h.train_acc, "-", color=colors[a], lw=0.9, alpha=0.8)
        ax.plot(h.epoch, 100 * h.test_acc, "--", color=colors[a], lw=0.9, alpha=0.8)
    ax.axhline(100 / CLASSES.get(kinds[n], 10), color="grey", ls=":", lw=1)
    if same_data_as_paper(n):
        for i, a in ((2, "SB"), (3, "LB")):
            ax.axhline(K.PUBLISHED["table2"][n][i][0], color=colors[a], ls="-.", lw=0.8)
    ax.set_xscale("symlog", linthresh=1)
    ax.set_xlim(left=0)
    ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    ax.set_xlabel("epoch (linear to 1, log beyond)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(f"{n} ({K.DATASET_NAMES.get(kinds[n], kinds[n])})")
handles = [Line2D([], [], color=colors["SB"], label="SB"), Line2D([], [], color=colors["LB"], label="LB"),
           Line2D([], [], color="k", ls="-", label="train"), Line2D([], [], color="k", ls="--", label="test"),
           Line2D([], [], color="grey", ls=":", label="chance")]
if any(same_data_as_paper(n) for n in nets):
    handles.append(Line2D([], [], color="k", ls="-.", label="paper test (Table 2)"))
axes[0][-1].legend(handles=handles, fontsize=7, loc="lower right")
fig.tight_layout()
sec.figure("learning_curves", fig,
           "Fig. 2 analogue: train (solid) and test (dashed) accuracy per epoch of every SB (blue) and LB (red) "
           "run; grey dotted: chance. A generalisation gap without a test-accuracy peak followed by decay is not "
           "over-fitting.",
           alt=f"Accuracy against epoch for {', '.join(nets)}: one solid (train) and one dashed (test) line per "
               "SB and LB run, with a chance line.",
           supports=[f"K1-{n}" for n in nets])

# %% [markdown]
# ## Fig. 3: parametric plot

# %%
pair_seed = block["parametric"]["pair_seed"]
fig, axes = plt.subplots(1, len(nets), figsize=(5.4 * len(nets), 3.6), squeeze=False)
for ax, n in zip(axes[0], nets):
    c = curves[(curves.network == n) & (curves.seed == pair_seed)].sort_values("alpha")
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
    ax.set_title(f"{n}, seed {pair_seed}")
    for a in (0, 1):
        ax.axvline(a, color="grey", lw=0.6)
handles = [Line2D([], [], color="b", label="loss"), Line2D([], [], color="r", label="accuracy"),
           Line2D([], [], color="k", ls="-", label="train"), Line2D([], [], color="k", ls="--", label="test"),
           Line2D([], [], color="grey", ls=":", label="chance accuracy")]
axes[0][0].legend(handles=handles, fontsize=7, loc="upper center")
fig.tight_layout()
sec.figure("parametric", fig, "Fig. 3: loss (blue) and accuracy (red) on the training subset (solid) and "
           "the test set (dashed) along α·x_LB + (1−α)·x_SB, α ∈ [−1, 2], for one SB/LB pair sharing x0.",
           alt=f"Parametric plots for {', '.join(nets)}: training and test loss and accuracy along the line from "
               "the SB minimiser (alpha 0) to the LB minimiser (alpha 1) and beyond.",
           supports=[f"K5-{n}" for n in nets])

# %%
sec.table("parametric_rise", rises.groupby("network", sort=False).agg(
    **{"rise at SB end": ("sb_rise", lambda v: mean_std(v, 4)), "rise at LB end": ("lb_rise", lambda v: mean_std(v, 4)),
       "pairs": ("seed", "count")}).reset_index(),
    f"Parametric rise: how much the training loss rises {block['parametric']['delta']:g} outward from each end of "
    f"the SB–LB line, f(−δ) − f(0) at the SB end and f(1+δ) − f(1) at the LB end; mean ± sd over SB/LB pairs.",
    supports=[f"K5-{n}" for n in nets])

# %% [markdown]
# ## Fig. 4 analogue: batch-size sweep

# %%
sweep_sharp = K.sharp_col("full", E1)
g = sweep.groupby("batch_size").agg(acc=("test_acc", "mean"), acc_sd=("test_acc", "std"),
                                    sh=(sweep_sharp, "mean"), sh_sd=(sweep_sharp, "std"),
                                    hess=("hessian_max_eig", "mean")).reset_index().fillna({"acc_sd": 0, "sh_sd": 0})
fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
axes[0].errorbar(g.batch_size, 100 * g.acc, yerr=100 * g.acc_sd, marker="o", capsize=3, label="test accuracy")
axes[1].errorbar(g.batch_size, g.sh, yerr=g.sh_sd, marker="o", capsize=3, color="C3",
                 label=f"ε-sharpness (full space, ε={E1:g})")
sharp_scale = log_if_wide(axes[1], g.sh)
ax_h = axes[1].twinx()
ax_h.plot(g.batch_size, g.hess, marker="s", color="C2", label="Hessian λmax")
ax_h.grid(False)
paper_b, paper_n = K.PUBLISHED_THRESHOLD["C1"]
thr_here = paper_b / paper_n * n_train[block["networks"][snet]["dataset"]]
for ax in axes:
    ax.set_xscale("log")
    ax.set_xticks(sorted(sweep.batch_size.unique()))
    ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%d"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("batch size (log scale)")
    if g.batch_size.min() <= thr_here <= g.batch_size.max():
        ax.axvline(thr_here, color="grey", ls=":", lw=1,
                   label=f"paper's C1 threshold, same fraction of the training set ({100 * paper_b / paper_n:.0f}%)")
axes[0].set_ylabel("test accuracy (%)")
axes[1].set_ylabel(f"ε-sharpness, ε={E1:g}{sharp_scale}")
ax_h.set_ylabel("Hessian λmax")
axes[0].legend(loc="best", fontsize=7)
h1, l1 = axes[1].get_legend_handles_labels()
h2, l2 = ax_h.get_legend_handles_labels()
axes[1].legend(h1 + h2, l1 + l2, loc="best", fontsize=7)
fig.suptitle(f"{snet}: test accuracy and sharpness against batch size")
fig.tight_layout()
sec.figure("batch_sweep", fig, f"Fig. 4 analogue for {snet}: test accuracy (left) and sharpness (right) against "
           "batch size; points are means, bars ± one sd over seeds; dotted, where inside the sweep: the batch size "
           f"that is the same fraction of our training set as the paper's C1 threshold ({K.SOURCES['threshold']}).",
           alt=f"Test accuracy, epsilon-sharpness and Hessian top eigenvalue of {snet} against batch size on a log "
               "axis, with the paper's threshold fraction marked.",
           supports=[f"K8-{snet}"])
sweep_tab = sweep.groupby("batch_size").agg(
    test_acc=("test_acc", lambda v: mean_std(v, 2, 100.0)), train_acc=("train_acc", lambda v: mean_std(v, 2, 100.0)),
    sharpness=(sweep_sharp, lambda v: mean_std(v, 3)), hessian=("hessian_max_eig", lambda v: mean_std(v, 3)),
    epochs=("epochs", lambda v: mean_std(v, 1)), n=("seed", "count")).reset_index()
sweep_tab.columns = ["batch size", "test acc (%)", "train acc (%)", f"ε-sharpness ε={E1:g}", "Hessian λmax",
                     "epochs", "seeds"]
sec.table("batch_sweep", sweep_tab, f"Batch-size sweep of {snet}: mean ± sd over seeds.", supports=[f"K8-{snet}"])

# %% [markdown]
# ## Protocol

# %%
sb_size = block["small_batch"]
caps = ", ".join(f"{n}: {specs[n]['steps']:,}" for n in nets)
lb_sizes = {n: int(arm(n, "LB").batch_size.iloc[0]) for n in nets}
net_desc = "; ".join(
    f"{n}: {cfg['model']} on {cfg['dataset']}"
    + (f", width {cfg['width']}" if "width" in cfg else "")
    + (f", depth {cfg['depth']}" if "depth" in cfg and cfg["model"] == "mlp" else "")
    + (f", dropout {cfg['dropout']}" if cfg.get("dropout") else "")
    for n, cfg in block["networks"].items()
)
sh = block["sharpness"]
tol_kind = "an absolute" if run_cfg.get("min_delta_mode") == "abs" else "a relative"
sec.text(
    f"Scale '{scale_name}'. Networks: {net_desc}. Adam (lr {run_cfg.get('lr', 0.001)}) for both batch sizes, "
    f"no learning-rate scaling. SB = {sb_size}, LB = {block['large_batch_fraction']:.0%} of the training set "
    f"({', '.join(f'{n}: {b:,}' for n, b in lb_sizes.items())}). Every run trains until its training loss "
    f"(mean cross-entropy on the first {run_cfg.get('eval_train_samples') or 'all'} training samples, evaluated "
    f"once per epoch) has not improved by {tol_kind} {run_cfg.get('min_delta', 1e-4):g} for "
    f"{run_cfg.get('patience')} epochs, or until its network's cap on updates ({caps}); a run stopped by the cap "
    f"has not converged and fails the claims' precondition. {main.seed.nunique()} seeds per arm; the SB and LB "
    "runs of a seed start from the same initial weights x0 (spec seed), as in the authors' code. BatchNorm is "
    "evaluated with "
    + ("each evaluation batch's own statistics (Keras BN mode 2, as in the authors' code; "
       f"evaluation batch {run_cfg['eval_batch']:,})" if block["eval_bn"] == "batch"
       else "its running statistics (PyTorch eval mode; the authors' code used batch statistics)")
    + "; the sharpness objective and the parametric plot use the same mode. Sharpness: L-BFGS-B, "
    f"{sh['max_iter']} iterations, ε ∈ {{{', '.join(f'{e:g}' for e in EPS)}}}, full space (A = I) and a random "
    f"{sh['subspace_dim']}-dimensional subspace (A seeded with the run's seed), on the training loss over the first "
    f"{sh['samples'] or 'all'} training samples; the Hessian's top eigenvalue by {sh['hessian_iters']} power "
    "iterations on the same objective. Batch-size sweep: "
    f"{snet} at {', '.join(str(b) for b in sorted(sweep.batch_size.unique()))} "
    f"({len(block['sweep']['seeds'])} seed{'s' if len(block['sweep']['seeds']) > 1 else ''} for the extra sizes, "
    "every seed for SB and LB).",
    heading="Protocol details")
STOP_WORDS = {"budget": "update cap", "cap": "update cap", "diverged": "divergence"}
stops = main.groupby(["network", "arm"]).agg(
    epochs=("epochs", "mean"), stop=("stop_reason", lambda s: ", ".join(sorted({STOP_WORDS.get(r, r) for r in s}))))
sec.protocol([
    {"aspect": "optimizer", "paper": "Adam, same lr for SB and LB [V]; Keras default lr 1e-3 [C]",
     "ours": f"Adam lr {run_cfg.get('lr', 0.001)}, no scaling"},
    {"aspect": "batch sizes", "paper": "SB 256; LB 10% of the training set (6,000 MNIST, 5,000 CIFAR) [V]",
     "ours": f"SB {sb_size}; LB {block['large_batch_fraction']:.0%}: " + ", ".join(f"{n} {b:,}" for n, b in lb_sizes.items())},
    {"aspect": "stopping", "paper": "until the loss ceased to improve, no budget [V]",
     "ours": f"patience {run_cfg.get('patience')} epochs on the train loss, update cap {caps}; "
             + "; ".join(f"{n} {a}: {r.epochs:.0f} epochs (stopped by {r.stop})" for (n, a), r in stops.iterrows())},
    {"aspect": "trials", "paper": "5 starting points [V]; SB and LB share x0 [C]",
     "ours": f"{main.seed.nunique()} seeds; SB and LB share x0"},
    {"aspect": "networks", "paper": "F1 (MNIST), F2 (TIMIT), C1-C4 (CIFAR-10/100) [V]",
     "ours": net_desc + "; F2 not run (no TIMIT)"},
    {"aspect": "BatchNorm at evaluation", "paper": "Keras mode 2: batch statistics, eval batch 5,000 [C]",
     "ours": "batch statistics" if block["eval_bn"] == "batch" else "running statistics"},
    {"aspect": "sharpness objective", "paper": "training loss (whole training set), 10 L-BFGS-B iterations [V]",
     "ours": f"training loss on the first {sh['samples'] or 'all'} training samples, {sh['max_iter']} iterations"},
    {"aspect": "batch-size sweep (Fig. 4)", "paper": "F2 and C1, 100 epochs per batch size [V]",
     "ours": f"{snet}, trained to the same patience rule, {sweep.batch_size.nunique()} sizes"},
])

# %% [markdown]
# ## Caveats

# %%
caveats = []
for n in nets:
    ok, found = K.arm_check({"SB": arm(n, "SB"), "LB": arm(n, "LB")})
    if not ok:
        caveats.append(f"{n}: not every run converged ({found.split('failed: ', 1)[-1]}); its SB-vs-LB claims "
                       "compare iterates cut short, not minimisers, and are inconclusive whatever their tests say.")
    gap = 100 * abs(arm(n, "LB").train_acc.mean() - arm(n, "SB").train_acc.mean())
    if gap > block["similar_train_acc_pp"]:
        caveats.append(f"{n}: SB and LB end {gap:.2f} percentage points apart in train accuracy (limit "
                       f"{block['similar_train_acc_pp']:g}); its test-accuracy gap (K1-{n}) mixes fit and "
                       "generalisation and is inconclusive.")
if not paper_data:
    caveats.append("The published numbers come from MNIST, TIMIT and CIFAR with the full-size networks; ours from "
                   "narrow networks on other data, so only the direction and rough size of effects compare.")
caveats.append("The equivalence margins are the smallest effects the paper reports (K1: its smallest Table 2 gap; "
               "K2/K3: its smallest LB/SB sharpness ratios; K6: the low end of its distance ratios), so 'not "
               "reproduced' means an effect shown to be smaller than any the paper found."
               + (" K4, K5 and K8 have no published size (margin 0): only a significant effect the other way refutes "
                  "them." if not any([block["claims"]["K4"]["margin"], block["claims"]["K5"]["margin"],
                                      *block["claims"]["K8"].values()]) else ""))
caveats.append("F2 (TIMIT) is not run: TIMIT is licensed and not available to this workflow.")
if sh["samples"]:
    caveats.append(f"Sharpness and the Hessian are measured on the first {sh['samples']:,} training samples, not the "
                   "whole training set as in the paper.")
sec.caveats(" ".join(caveats))
sec.save(sm.output.section if hasattr(sm.output, "section") else None)
