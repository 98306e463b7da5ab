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
# travelled from the shared starting point. Run by Snakemake (`script:`); in Jupyter,
# `context()` rebuilds the inputs from config.yaml.

# %%
import json

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib import pyplot as plt

from largebatch.experiments import keskar as K
from largebatch.notebook import context
from largebatch.report import Section, load_histories, load_runs
from largebatch.stats import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED, claim_row, mean_std, welch_verdict

sm = context("keskar", globals())
rows = sm.params.runs
block = sm.params.block if hasattr(sm.params, "block") else sm.params.scale
scale_name = sm.params.scale if isinstance(getattr(sm.params, "scale", None), str) else sm.config["scale"]
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
col = lambda space, eps: f"sharp_{space}_{eps:g}"
pct = lambda s: mean_std(s, 2, 100.0)

# %%
# the specs the runs were trained with (one SB run per network), for the protocol text
specs = {n: json.load(open(f"results/runs/{main[(main.network == n) & (main.arm == 'SB')].run.iloc[0]}/spec.json"))
         for n in nets}
run_cfg = specs[nets[0]]
sb_size = block["small_batch"]
caps = ", ".join(f"{n}: {specs[n]['steps']}" for n in nets)
lb_sizes = {n: int(main[(main.network == n) & (main.arm == "LB")].batch_size.iloc[0]) for n in nets}
net_desc = "; ".join(
    f"{n}: {cfg['model']} on {cfg['dataset']}"
    + (f", width {cfg['width']}" if "width" in cfg else "")
    + (f", depth {cfg['depth']}" if "depth" in cfg and cfg["model"] == "mlp" else "")
    + (f", dropout {cfg['dropout']}" if cfg.get("dropout") else "")
    for n, cfg in block["networks"].items()
)
sh = block["sharpness"]
sec.text(
    f"Scale '{scale_name}'. Networks: {net_desc}. Adam (lr {run_cfg.get('lr', 0.001)}) for both batch sizes, "
    f"no learning-rate scaling. SB = {sb_size}, LB = {block['large_batch_fraction']:.0%} of the training set "
    f"({', '.join(f'{n}: {b}' for n, b in lb_sizes.items())}). Every run trains until its training loss "
    f"(mean cross-entropy on the first {run_cfg.get('eval_train_samples') or 'all'} training samples, evaluated "
    f"once per epoch) has not improved by a relative {run_cfg.get('min_delta', 1e-4):g} for "
    f"{run_cfg.get('patience')} epochs, or until its network's cap on updates ({caps}). "
    f"{main.seed.nunique()} seeds; the SB and LB runs of a seed start from the same initial weights x0 "
    f"(spec seed), as in the authors' code. BatchNorm is evaluated with "
    + ("each evaluation batch's own statistics (Keras BN mode 2, as in the authors' code; "
       f"evaluation batch {run_cfg['eval_batch']})" if block["eval_bn"] == "batch"
       else "its running statistics (PyTorch eval mode; the authors' code used batch statistics)")
    + f": config key eval_bn = {block['eval_bn']}; the sharpness objective and the parametric plot use the "
    f"same mode. Sharpness: L-BFGS-B, {sh['max_iter']} iterations, ε ∈ {{{', '.join(f'{e:g}' for e in EPS)}}}, "
    f"full space (A = I) and a random {sh['subspace_dim']}-dimensional subspace (A seeded with the run's seed), "
    f"on the training loss over the first {sh['samples'] or 'all'} training samples; the Hessian's top "
    f"eigenvalue by {sh['hessian_iters']} power iterations on the same objective. F2 (TIMIT) is not run: "
    f"TIMIT is licensed and not available to this workflow."
    + (" The published numbers below (REFERENCE.md §1, confirmed from the paper: [V]) come from MNIST, TIMIT "
       "and CIFAR with the full-size networks; ours from MNIST-1D with narrow networks, so only the direction "
       "and rough size of effects compare."
       if scale_name != "paper" else "")
)
stops = main.groupby(["network", "arm"]).agg(epochs=("epochs", "mean"), stop=("stop_reason", lambda s: ", ".join(sorted(set(s)))))
sec.protocol([
    {"aspect": "optimizer", "paper": "Adam, same lr for SB and LB (Keras default 1e-3)",
     "ours": f"Adam lr {run_cfg.get('lr', 0.001)}, no scaling"},
    {"aspect": "batch sizes", "paper": "SB 256; LB 10% of the training set (6,000 MNIST, 5,000 CIFAR)",
     "ours": f"SB {sb_size}; LB {block['large_batch_fraction']:.0%}: " + ", ".join(f"{n} {b}" for n, b in lb_sizes.items())},
    {"aspect": "stopping", "paper": "until the loss ceased to improve, no budget",
     "ours": f"patience {run_cfg.get('patience')} epochs on the train loss, update cap {caps}; "
             + "; ".join(f"{n} {a}: {r.epochs:.0f} epochs ({r.stop})" for (n, a), r in stops.iterrows())},
    {"aspect": "trials", "paper": "5 starting points; SB and LB share x0 (code)",
     "ours": f"{main.seed.nunique()} seeds; SB and LB share x0"},
    {"aspect": "networks", "paper": "F1 (MNIST), F2 (TIMIT), C1-C4 (CIFAR-10/100)",
     "ours": net_desc + "; F2 not run (no TIMIT)"},
    {"aspect": "BatchNorm at evaluation", "paper": "Keras mode 2: batch statistics (eval batch 5,000)",
     "ours": f"eval_bn = {block['eval_bn']}"},
    {"aspect": "sharpness objective", "paper": "training loss (whole training set), 10 L-BFGS-B iterations",
     "ours": f"training loss on the first {sh['samples'] or 'all'} training samples, {sh['max_iter']} iterations"},
])

# %% [markdown]
# ## Table 2: accuracy

# %%
src_ours = "ours" if scale_name == "paper" else f"ours ({scale_name} scale, {', '.join(sorted({c['dataset'] for c in block['networks'].values()}))})"
src_paper = "paper [V]" if scale_name == "paper" else "paper [V] (MNIST/TIMIT/CIFAR, full-size nets: different data and scale)"


def side_by_side(table: str, columns: list[str], ours: dict[str, list[str]]) -> pd.DataFrame:
    out = []
    for n in nets:
        out.append({"network": n, "source": src_ours, **dict(zip(columns, ours[n]))})
        out.append({"network": n, "source": src_paper,
                    **{c: K.published_cell(table, n, i) for i, c in enumerate(columns)}})
    out.append({"network": "F2", "source": "not run (TIMIT not available)", **{c: "–" for c in columns}})
    out.append({"network": "F2", "source": src_paper, **{c: K.published_cell(table, "F2", i) for i, c in enumerate(columns)}})
    return pd.DataFrame(out)


def arm(n, a):
    return main[(main.network == n) & (main.arm == a)]


t2_cols = ["train acc SB (%)", "train acc LB (%)", "test acc SB (%)", "test acc LB (%)"]
t2 = side_by_side("table2", t2_cols, {
    n: [pct(arm(n, "SB").train_acc), pct(arm(n, "LB").train_acc), pct(arm(n, "SB").test_acc), pct(arm(n, "LB").test_acc)]
    for n in nets})
sec.table("table2_accuracy", t2, "Table 2: final train and test accuracy of SB and LB Adam, mean ± std over seeds. "
          "Train accuracy is measured on the first eval_train_samples training samples.")

# %% [markdown]
# ## Tables 3 and 4: ε-sharpness

# %%
t_cols = [f"ε={E1:g} SB", f"ε={E1:g} LB", f"ε={E2:g} SB", f"ε={E2:g} LB"]
for table, space, title in (("table3", "full", "Table 3: ε-sharpness in full space (A = I)"),
                            ("table4", "subspace", f"Table 4: ε-sharpness in random {sh['subspace_dim']}-dim subspaces")):
    t = side_by_side(table, t_cols, {
        n: [mean_std(arm(n, a)[col(space, e)], 2) for e in (E1, E2) for a in K.ARMS]
        for n in nets})
    sec.table(f"{table}_sharpness_{space}", t, f"{title}, mean ± std over seeds (Metric 2.1, ×100 scale).")

# %%
ratios = K.distance_ratios(runs)
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
          "Top Hessian eigenvalue of the training loss, distance travelled from the shared start x0 over all "
          "trainable weights, their SB/LB ratio (paper: 3–10) and epochs trained; mean ± std over seeds.")

# %% [markdown]
# ## Fig. 2 analogue: learning curves

# %%
sns.set_theme(style="whitegrid")
mh = hist[hist["main"]].copy()
mh = mh.melt(id_vars=["network", "arm", "seed", "epoch"], value_vars=["train_acc", "test_acc"],
             var_name="split", value_name="accuracy")
g = sns.relplot(mh, x="epoch", y="accuracy", hue="arm", style="split", col="network", kind="line",
                errorbar=None, units="seed", estimator=None, height=3.2, aspect=1.3, facet_kws={"sharex": False},
                alpha=0.8, lw=1)
for ax in g.axes.flat:
    ax.set_xscale("symlog", linthresh=1)
sec.figure("learning_curves", g.figure, "Fig. 2 analogue: train (solid) and test (dashed) accuracy per epoch, "
           "every seed. A generalization gap without a test-accuracy peak followed by decay is not over-fitting.")

# %% [markdown]
# ## Fig. 3: parametric plot

# %%
pair_seed = block["parametric"]["pair_seed"]
fig, axes = plt.subplots(1, len(nets), figsize=(5.2 * len(nets), 3.6), squeeze=False)
for ax, n in zip(axes[0], nets):
    c = curves[(curves.network == n) & (curves.seed == pair_seed)].sort_values("alpha")
    ax.plot(c.alpha, c.train_loss, "b-", label="train loss")
    ax.plot(c.alpha, c.test_loss, "b--", label="test loss")
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%.3g"))
    ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("α  (0 = SB minimiser, 1 = LB minimiser)")
    ax.set_ylabel("cross-entropy", color="b")
    ax2 = ax.twinx()
    ax2.plot(c.alpha, 100 * c.train_acc, "r-", label="train acc")
    ax2.plot(c.alpha, 100 * c.test_acc, "r--", label="test acc")
    ax2.set_ylabel("accuracy (%)", color="r")
    ax2.grid(False)
    ax.set_title(f"{n}, seed {pair_seed}")
    for a in (0, 1):
        ax.axvline(a, color="grey", lw=0.6)
axes[0][0].legend(loc="upper left", fontsize=7)
ax2.legend(loc="lower right", fontsize=7)
fig.tight_layout()
sec.figure("parametric", fig, "Fig. 3: loss (blue, log scale) and accuracy (red) on the training subset (solid) and "
           "the test set (dashed) along α·x_LB + (1−α)·x_SB, α ∈ [−1, 2], for one SB/LB pair sharing x0.")

# %%
rises = []
for (n, s), c in curves.groupby(["network", "seed"]):
    sb_rise, lb_rise = K.endpoint_rise(c, block["parametric"]["delta"])
    rises.append({"network": n, "seed": s, "sb_rise": sb_rise, "lb_rise": lb_rise})
rises = pd.DataFrame(rises)
rises = rises.assign(order=rises.network.map(nets.index)).sort_values(["order", "seed"]).drop(columns="order")
sec.table("parametric_rise", rises.groupby("network", sort=False).agg(
    **{"rise at SB end": ("sb_rise", lambda v: mean_std(v, 4)), "rise at LB end": ("lb_rise", lambda v: mean_std(v, 4)),
       "pairs": ("seed", "count")}).reset_index(),
    f"Rise of the training loss {block['parametric']['delta']:g} outward from each end of the SB–LB line: "
    f"f(−δ) − f(0) at the SB end, f(1+δ) − f(1) at the LB end; mean ± std over SB/LB pairs (seeds).")

# %% [markdown]
# ## Fig. 4 analogue: batch-size sweep

# %%
sweep = runs[runs["sweep"]].copy()
snet = block["sweep"]["network"]
sweep_sharp = col("full", E1)
fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
sns.lineplot(sweep, x="batch_size", y="test_acc", marker="o", errorbar="sd", ax=axes[0])
sns.lineplot(sweep, x="batch_size", y=sweep_sharp, marker="o", errorbar="sd", ax=axes[1], color="C3",
             label=f"ε-sharpness ε={E1:g}")
ax_h = axes[1].twinx()
sns.lineplot(sweep, x="batch_size", y="hessian_max_eig", marker="s", errorbar="sd", ax=ax_h, color="C2",
             label="Hessian λmax")
ax_h.grid(False)
for ax in axes:
    ax.set_xscale("log")
    ax.set_xticks(sorted(sweep.batch_size.unique()))
    ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%d"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("batch size")
axes[0].set_ylabel("test accuracy")
axes[1].set_ylabel(f"ε-sharpness, full space, ε={E1:g}")
ax_h.set_ylabel("Hessian λmax")
axes[1].legend(loc="upper left", fontsize=7)
ax_h.legend(loc="lower right", fontsize=7)
fig.suptitle(f"{snet}: test accuracy and sharpness against batch size")
fig.tight_layout()
sec.figure("batch_sweep", fig, f"Fig. 4 analogue for {snet}: test accuracy (left) and sharpness (right) "
           "against batch size; points are means, bands ± one std where a size has several seeds.")
sweep_tab = sweep.groupby("batch_size").agg(
    test_acc=("test_acc", lambda v: mean_std(v, 2, 100.0)), train_acc=("train_acc", lambda v: mean_std(v, 2, 100.0)),
    sharpness=(sweep_sharp, lambda v: mean_std(v, 3)), hessian=("hessian_max_eig", lambda v: mean_std(v, 3)),
    epochs=("epochs", lambda v: mean_std(v, 1)), n=("seed", "count")).reset_index()
sweep_tab.columns = ["batch size", "test acc (%)", "train acc (%)", f"ε-sharpness ε={E1:g}", "Hessian λmax",
                     "epochs", "n"]
sec.table("batch_sweep", sweep_tab, f"Batch-size sweep of {snet}: mean ± std over seeds.")

# %% [markdown]
# ## Claims

# %%
claims = []


def fmt_p(p):
    return "n/a" if not np.isfinite(p) else f"{p:.3g}"


for n in nets:
    sb, lb = arm(n, "SB"), arm(n, "LB")
    pub = K.PUBLISHED["table2"].get(n)
    # K1: LB test accuracy below SB at similar train accuracy
    v, p, test = welch_verdict(lb.test_acc, sb.test_acc, claim="less")
    dtrain = 100 * (lb.train_acc.mean() - sb.train_acc.mean())
    tol = block["similar_train_acc_pp"]
    if abs(dtrain) > tol:  # the claim is about minimisers of similar training accuracy
        v = INCONCLUSIVE
    claims.append(claim_row(
        f"K1-{n}", "LB reaches lower test accuracy than SB at similar training accuracy (Table 2).",
        f"{n}: final test accuracy; train accuracy difference",
        f"test SB {pct(sb.test_acc)} vs LB {pct(lb.test_acc)} % (p={fmt_p(p)}); train LB−SB {dtrain:+.2f} pp",
        f"test SB {pub[2][0]}% vs LB {pub[3][0]}%; train {pub[0][0]}% vs {pub[1][0]}%" if pub else "–",
        v, test + f" on test accuracy (LB < SB), decisive only if |train acc LB−SB| <= {tol} pp, else inconclusive"))
    # K2/K3: epsilon-sharpness larger for LB, both epsilons
    for cid, space, what, table in (("K2", "full", "full space", "table3"),
                                    ("K3", "subspace", f"random {sh['subspace_dim']}-dim subspace", "table4")):
        parts, texts = [], []
        for e in EPS:
            v_e, p_e, test = welch_verdict(lb[col(space, e)], sb[col(space, e)], claim="greater")
            parts.append(v_e)
            texts.append(f"ε={e:g}: SB {mean_std(sb[col(space, e)], 3)} vs LB {mean_std(lb[col(space, e)], 3)} "
                         f"(p={fmt_p(p_e)})")
        pubrow = K.PUBLISHED[table].get(n)
        claims.append(claim_row(
            f"{cid}-{n}", f"LB minimisers are sharper than SB ones: ε-sharpness in {what} ({'Table 3' if space == 'full' else 'Table 4'}).",
            f"{n}: ε-sharpness, {what}", "; ".join(texts),
            f"ε={E1:g}: {pubrow[0][0]} vs {pubrow[1][0]}; ε={E2:g}: {pubrow[2][0]} vs {pubrow[3][0]}" if pubrow else "–",
            K.combine_verdicts(parts), test + " per ε (LB > SB); reproduced only if every ε is"))
    v, p, test = welch_verdict(lb.hessian_max_eig, sb.hessian_max_eig, claim="greater")
    claims.append(claim_row(
        f"K4-{n}", "LB minimisers are sharper than SB ones: largest Hessian eigenvalue (second measure).",
        f"{n}: top Hessian eigenvalue of the training loss",
        f"SB {mean_std(sb.hessian_max_eig, 3)} vs LB {mean_std(lb.hessian_max_eig, 3)} (p={fmt_p(p)})",
        "qualitative (Sec. 2.2: sharpness relates to the largest eigenvalue)", v, test))
    # K5: steeper loss around the LB end of the interpolation
    r = rises[rises.network == n]
    v, p, test = welch_verdict(r.lb_rise, r.sb_rise, claim="greater")
    claims.append(claim_row(
        f"K5-{n}", "Along the SB–LB line the training loss is steeper around the LB minimiser (Fig. 3).",
        f"{n}: train-loss rise {block['parametric']['delta']:g} outward from each end",
        f"SB end {mean_std(r.sb_rise, 4)} vs LB end {mean_std(r.lb_rise, 4)} (p={fmt_p(p)})",
        "qualitative (Fig. 3)", v, test + " over SB/LB pairs"))
    # K6/K7: SB travels further from x0; the ratio is 3-10
    rr = ratios[ratios.network == n]
    v, p, test = welch_verdict(rr.sb_dist, rr.lb_dist, claim="greater")
    claims.append(claim_row(
        f"K6-{n}", "SB iterates travel further from the shared starting point x0 than LB iterates.",
        f"{n}: ‖x − x0‖ over all trainable weights",
        f"SB {mean_std(rr.sb_dist, 2)} vs LB {mean_std(rr.lb_dist, 2)} (p={fmt_p(p)})",
        "ratio 3–10", v, test))
    lo, hi = K.PUBLISHED_DISTANCE_RATIO
    m = rr.ratio.mean()
    v = INCONCLUSIVE if not np.isfinite(m) else REPRODUCED if lo <= m <= hi else NOT_REPRODUCED
    claims.append(claim_row(
        f"K7-{n}", "The ratio ‖x_SB − x0‖ / ‖x_LB − x0‖ lies between 3 and 10.",
        f"{n}: mean distance ratio over seeds", f"{mean_std(rr.ratio, 2)}", "3–10", v,
        "range criterion: mean ratio inside [3, 10]"))

# networks whose SB and LB runs end at different training accuracy compare different stages of training
tol = block["similar_train_acc_pp"]
unlike = {n: 100 * (arm(n, "LB").train_acc.mean() - arm(n, "SB").train_acc.mean()) for n in nets}
unlike = {n: d for n, d in unlike.items() if abs(d) > tol}
if unlike:
    sec.text("; ".join(
        f"{n}: the SB and LB runs end {abs(d):.1f} percentage points apart in training accuracy "
        f"(SB {arm(n, 'SB').epochs.mean():.0f} epochs, stopped by {', '.join(sorted(set(arm(n, 'SB').stop_reason)))}; "
        f"LB {arm(n, 'LB').epochs.mean():.0f} epochs, stopped by {', '.join(sorted(set(arm(n, 'LB').stop_reason)))})"
        for n, d in unlike.items())
        + ". The paper compares minimisers that both fit the training set; for these networks our SB-vs-LB "
        "sharpness, steepness and distance comparisons set a less-trained iterate against a more-trained one. "
        "The verdicts below still follow the stated tests; K1 is inconclusive by its own premise.",
        heading="Caveat")

# K8: past a threshold, accuracy falls and sharpness rises with the batch size
v_acc, rho_a, p_a, test = K.trend_test(np.log(sweep.batch_size), sweep.test_acc, "decreasing")
v_sh, rho_s, p_s, _ = K.trend_test(np.log(sweep.batch_size), sweep[sweep_sharp], "increasing")
thr = K.threshold_batch(sweep, drop=block["sweep"]["threshold_drop"])
claims.append(claim_row(
    f"K8-{snet}", "Test accuracy falls and sharpness rises as the batch size grows past a threshold (Fig. 4).",
    f"{snet}: test accuracy and ε-sharpness (full, ε={E1:g}) against log batch size "
    f"({sweep.batch_size.nunique()} sizes)",
    f"accuracy ρ={rho_a:.2f} (p={fmt_p(p_a)}); sharpness ρ={rho_s:.2f} (p={fmt_p(p_s)}); first size "
    f"{block['sweep']['threshold_drop']:.0%} below the smallest batch's accuracy: "
    + ("none" if thr is None else f"{thr:.0f} ({thr / sweep.batch_size.min():.0f}× the smallest)"),
    "C1 threshold ≈ 500 of 50,000 (1%), F2 ≈ 15,000", K.combine_verdicts([v_acc, v_sh]),
    test + " for accuracy (decreasing) and for sharpness (increasing); reproduced only if both are; "
    "the threshold itself is descriptive"))
sec.claims(claims)
sec.save(sm.output.section if hasattr(sm.output, "section") else None)
