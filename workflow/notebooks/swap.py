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
# # SWAP (Gupta, Akle Serrano & DeCoste 2020): stochastic weight averaging in parallel
#
# Phase 1 trains one model with a large batch until a training-accuracy threshold; phase 2
# trains W copies of it independently with a small batch and their own data order (one
# job each); phase 3 averages the copies' weights and recomputes the BatchNorm statistics.
# Compared with the small-batch (SB) and large-batch (LB) baselines of the same epoch
# budget, in accuracy and in time (from Snakemake's benchmark files). Run by Snakemake
# (`script:`); in Jupyter, `context()` rebuilds the inputs from config.yaml.

# %%
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib import pyplot as plt

from largebatch.notebook import context
from largebatch.report import Section, load_histories, load_runs
from largebatch.stats import claim_row, mean_std, welch_verdict

sm = context("swap", globals())
rows = sm.params.runs
block = sm.params.block if hasattr(sm.params, "block") else sm.params.scale
runs = load_runs(rows)
hist = load_histories(rows)
seeds = sorted(runs.seed.unique())
W = int(block["workers"])
sec = Section("swap", "SWAP (Gupta et al. 2020): stochastic weight averaging in parallel")


def bench_s(path: str) -> float:
    """Wall seconds of one job from its Snakemake benchmark file (column s); NaN if absent."""
    p = Path(path)
    if not p.exists():
        return float("nan")
    return float(pd.read_csv(p, sep="\t")["s"].iloc[0])


# job time of every run (benchmark file; the run's own training-loop time when it has none)
runs["job_s"] = [bench_s(f"results/benchmarks/train/{r}.tsv") for r in runs.run]
runs["job_s"] = runs.job_s.fillna(runs.wall_s)
avg = pd.DataFrame([json.load(open(f"results/swap/average/{s}.json")) for s in seeds])
avg["job_s"] = [bench_s(f"results/benchmarks/swap/average/{s}.tsv") for s in avg.seed]
avg["job_s"] = avg.job_s.fillna(avg.average_s)
curve = pd.read_csv("results/swap/analysis/average_curve.csv")
plane = pd.read_csv("results/swap/analysis/plane.csv")
points = pd.read_csv("results/swap/analysis/plane_points.csv")

# %% [markdown]
# ## Protocol

# %%
spec = dict(block["run"])
sb_rows, lb_rows = runs[runs.arm == "SB"], runs[runs.arm == "LB"]
p1_rows, wk_rows = runs[runs.arm == "phase1"], runs[runs.arm == "worker"]
margin = float(block.get("equivalence_margin", 0.01))
sec.text(
    f"{spec['model']} (width {spec.get('width', '-')}, depth {spec.get('depth', '-')}) on {spec['dataset']}, "
    f"{spec['optimizer']} (momentum {spec.get('momentum', 0)}, Nesterov {spec.get('nesterov', False)}, "
    f"weight decay {spec.get('weight_decay', 0)}), learning rate {spec['lr']} at batch {block['small_batch']} "
    f"scaled {spec.get('lr_scaling', 'none')} with the batch, {spec.get('warmup_epochs', 0)} warm-up epoch(s), "
    f"{spec.get('schedule', 'constant')} schedule. SB: batch {block['small_batch']}, LB: batch "
    f"{block['large_batch']}, both {block['epochs']} epochs. SWAP phase 1 is the LB run stopped at "
    f"{100 * block['stop_train_acc']:.0f}% training accuracy (capped at the LB budget); phase 2 is {W} workers, "
    f"each its own job, batch {block['small_batch']} for {block['phase2_epochs']} epochs from learning rate "
    f"{block.get('phase2_lr', spec['lr'])} to 0 (cosine), each with its own data order; phase 3 averages the "
    f"workers' weights and recomputes the BatchNorm statistics on the training data "
    f"(torch.optim.swa_utils). {len(seeds)} seed(s)."
)
sec.protocol([
    {"aspect": "data / network", "paper": "CIFAR-10, CIFAR-100, ImageNet; DAWNBench ResNet-9 (CIFAR), ResNet-50",
     "ours": f"{spec['dataset']}; {spec['model']} width {spec.get('width')} depth {spec.get('depth')} "
             "(ResNet-9 is not in our model zoo)"},
    {"aspect": "workers", "paper": "8 (one per V100 GPU, Horovod)",
     "ours": f"{W}, each a separate Snakemake job (run in parallel on a cluster)"},
    {"aspect": "batch sizes", "paper": "large batch in phase 1 on all GPUs, small batch per worker in phase 2",
     "ours": f"phase 1 / LB {block['large_batch']}, phase 2 / SB {block['small_batch']}"},
    {"aspect": "phase 1 stop", "paper": "training-accuracy threshold (values not retrieved)",
     "ours": f"training accuracy >= {block['stop_train_acc']} (checked once per epoch), cap {block['epochs']} epochs"},
    {"aspect": "phase 2", "paper": "independent small-batch SGD, different data order, fixed budget",
     "ours": f"{block['phase2_epochs']} epochs, cosine decay to 0, fresh momentum, own data seed"},
    {"aspect": "phase 3", "paper": "average weights, recompute BN statistics",
     "ours": f"mean of the {W} workers (AveragedModel), BN statistics over the training set in batches of "
             f"{block.get('bn_batch', block['small_batch'])} (update_bn)"},
    {"aspect": "time", "paper": "wall time on 8 GPUs",
     "ours": "Snakemake benchmark wall time per job (incl. ~2-3 s start-up); SWAP parallel time = phase 1 + "
             "slowest worker + averaging; one CPU core per job, shared with other jobs"},
])

# %% [markdown]
# ## Accuracy and time

# %%
per_seed = []
for s in seeds:
    p1 = p1_rows[p1_rows.seed == s].iloc[0]
    wk = wk_rows[wk_rows.seed == s]
    a = avg[avg.seed == s].iloc[0]
    sb = sb_rows[sb_rows.seed == s].iloc[0]
    lb = lb_rows[lb_rows.seed == s].iloc[0]
    per_seed.append({
        "seed": s, "sb_acc": sb.test_acc, "lb_acc": lb.test_acc, "p1_acc": p1.test_acc,
        "swap_acc": a.test_acc, "swap_train_acc": a.train_acc, "best_worker_acc": wk.test_acc.max(),
        "mean_worker_acc": wk.test_acc.mean(), "p1_epochs": p1.epochs,
        "t_sb": sb.job_s, "t_lb": lb.job_s, "t_p1": p1.job_s, "t_worker_max": wk.job_s.max(),
        "t_avg": a.job_s, "t_parallel": p1.job_s + wk.job_s.max() + a.job_s,
        "t_sequential": p1.job_s + wk.job_s.sum() + a.job_s,
        "loop_sb": sb.wall_s, "loop_parallel": p1.wall_s + wk.wall_s.max() + a.average_s,
    })
per_seed = pd.DataFrame(per_seed)


def row(method, batch, epochs, train_acc, test_acc, job_s, loop_s):
    return {"method": method, "batch": batch, "epochs": mean_std(epochs, 1), "train acc (%)": mean_std(train_acc, 2, 100),
            "test acc (%)": mean_std(test_acc, 2, 100), "job time (s)": mean_std(job_s, 1),
            "training-loop time (s)": mean_std(loop_s, 1), "n": len(list(test_acc))}


table = [
    row("SB", block["small_batch"], sb_rows.epochs, sb_rows.train_acc, sb_rows.test_acc, sb_rows.job_s, sb_rows.wall_s),
    row("LB", block["large_batch"], lb_rows.epochs, lb_rows.train_acc, lb_rows.test_acc, lb_rows.job_s, lb_rows.wall_s),
    row("SWAP phase 1", block["large_batch"], p1_rows.epochs, p1_rows.train_acc, p1_rows.test_acc, p1_rows.job_s,
        p1_rows.wall_s),
]
for w in range(W):
    g = wk_rows[wk_rows.worker == w]
    table.append(row(f"SWAP worker {w + 1}", block["small_batch"], g.epochs, g.train_acc, g.test_acc, g.job_s, g.wall_s))
table.append(row("SWAP (average, phase 3)", "-", per_seed.p1_epochs + float(block["phase2_epochs"]), avg.train_acc,
                 avg.test_acc, per_seed.t_parallel, per_seed.loop_parallel))
table = pd.DataFrame(table)
sec.table("summary", table,
          "Final train/test accuracy (mean ± std over seeds) and time. Job time: Snakemake benchmark wall time "
          "(s column) of the job; for SWAP the parallel time = phase 1 + slowest worker + averaging job, and "
          "epochs = phase-1 epochs + phase-2 epochs (the critical path). Training-loop time: the engine's own "
          "clock (no start-up), for SWAP phase 1 + slowest worker + averaging and BN pass. Timings are inflated "
          "by other jobs sharing the machine.")
times = pd.DataFrame({
    "seed": per_seed.seed, "SB": per_seed.t_sb, "LB": per_seed.t_lb, "phase 1": per_seed.t_p1,
    "slowest worker": per_seed.t_worker_max, "averaging": per_seed.t_avg, "SWAP parallel": per_seed.t_parallel,
    "SWAP sequential": per_seed.t_sequential,
}).round(2)
sec.table("times", times, "Job wall time per seed in seconds (Snakemake benchmark files). SWAP parallel = phase 1 "
                          "+ slowest worker + averaging; SWAP sequential = phase 1 + all workers + averaging "
                          "(one machine).")

# %% [markdown]
# ## Test accuracy over training

# %%
sns.set_theme(style="whitegrid")
s0 = seeds[0]
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), gridspec_kw={"width_ratios": [3, 2]})
ax = axes[0]
h0 = hist[hist.seed == s0]
for arm, color, ls in (("SB", "0.45", "--"), ("LB", "0.6", ":")):
    h = h0[h0.arm == arm]
    ax.plot(h.epoch, 100 * h.test_acc, color=color, lw=1.4, ls=ls, label=f"{arm} baseline")
p1h = h0[h0.arm == "phase1"]
p1_end = float(p1h.epoch.max())
ax.plot(p1h.epoch, 100 * p1h.test_acc, color="black", lw=2, label="SWAP phase 1 (LB)")
palette = sns.color_palette("husl", W)
for w in range(W):
    h = h0[(h0.arm == "worker") & (h0.worker == w)]
    ax.plot(p1_end + h.epoch, 100 * h.test_acc, color=palette[w], lw=1, label="phase-2 workers" if w == 0 else None)
a0 = avg[avg.seed == s0].iloc[0]
ax.scatter([p1_end + float(block["phase2_epochs"])], [100 * a0.test_acc], marker="*", s=220, color="crimson",
           zorder=5, label="SWAP average (phase 3)")
ax.axvline(p1_end, color="0.3", lw=0.8, ls=":")
ax.set_xlabel("epoch (phase 2 continues from the end of phase 1)")
ax.set_ylabel("test accuracy (%)")
ax.set_title(f"seed {s0}")
# zoom on the end of training: the range of the phase-2 workers, the baselines' ends and the average
late = [h0[h0.arm == "worker"].test_acc.min(), a0.test_acc, p1h.test_acc.iloc[-1]]
late += [h0[h0.arm == arm].test_acc.iloc[-1] for arm in ("SB", "LB")]
ax.set_ylim(max(100 * min(late) - 8, 0), 100 * max(h0.test_acc.max(), a0.test_acc) + 1)
ax.legend(fontsize=8, loc="lower right")
ax = axes[1]
sns.lineplot(curve.assign(test_pct=100 * curve.test_acc), x="k", y="test_pct", marker="o", errorbar="sd",
             ax=ax, color="crimson", label="average of first k workers")
for label, values, ls in (("SB", per_seed.sb_acc, "--"), ("LB", per_seed.lb_acc, ":"),
                          ("mean single worker", per_seed.mean_worker_acc, "-.")):
    ax.axhline(100 * values.mean(), color="0.4", ls=ls, lw=1, label=f"{label} (mean)")
ax.set_xlabel("workers averaged (k)")
ax.set_ylabel("test accuracy (%)")
ax.set_xticks(range(1, W + 1))
ax.set_title(f"mean ± sd over {len(seeds)} seed(s)")
ax.legend(fontsize=8)
fig.tight_layout()
sec.figure("test_accuracy", fig,
           "Left: test accuracy over training for one seed (y axis zoomed on the end of training): phase 1 (the LB run stopped at the training-accuracy "
           "threshold), the phase-2 workers continuing from it, and the averaged model (star); SB and LB "
           "baselines dashed/dotted (phase 1 follows the LB baseline until it stops). Right: test accuracy of the average of the first k workers (BN statistics "
           "recomputed), mean ± sd over seeds; k = 1 is worker 1 with recomputed statistics.")

# %% [markdown]
# ## Loss on the plane through phase 1, a worker and the average

# %%
xs, ys = np.sort(plane.x.unique()), np.sort(plane.y.unique())
fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
for ax, col, title, log in ((axes[0], "train_loss", "training loss", True),
                            (axes[1], "test_err", "test error (%)", False)):
    z = plane.pivot(index="y", columns="x", values=col).loc[ys, xs].to_numpy()
    if log:
        z = np.log10(np.maximum(z, 1e-12))
        title = "training loss (log10)"
    else:
        z = 100 * z
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
sec.figure("loss_plane", fig,
           f"Training loss and test error on the plane through the phase-1 model, worker 1 and the SWAP average "
           f"(seed {int(points.seed.iloc[0])}); at each grid point the BN statistics are recomputed on the "
           f"training data before evaluating. Axes in units of weight-space distance.")

# %% [markdown]
# ## Claims

# %%
v1, p1v, t1 = welch_verdict(per_seed.swap_acc + margin, per_seed.sb_acc, claim="greater")
v2, p2v, t2 = welch_verdict(per_seed.swap_acc, per_seed.lb_acc, claim="greater")
v3, p3v, t3 = welch_verdict(per_seed.t_parallel, per_seed.t_sb, claim="less")
v4, p4v, t4 = welch_verdict(per_seed.swap_acc, per_seed.best_worker_acc, claim="greater")
v5, p5v, t5 = welch_verdict(per_seed.swap_acc, per_seed.p1_acc, claim="greater")
wins = int((per_seed.swap_acc > per_seed.best_worker_acc).sum())
pct = lambda v: mean_std(v, 2, 100)  # noqa: E731
sec.claims([
    claim_row("S1", "SWAP generalises as well as small-batch training (SB).", "final test accuracy (%)",
              f"SWAP {pct(per_seed.swap_acc)} vs SB {pct(per_seed.sb_acc)} (p={p1v:.3g})",
              "claim: 'generalize equally well as those trained with small mini-batches' (no number retrieved)",
              v1, f"non-inferiority, margin {100 * margin:g} points: {t1} on SWAP + margin vs SB"),
    claim_row("S2", "SWAP generalises better than large-batch training (LB) of the same budget.",
              "final test accuracy (%)", f"SWAP {pct(per_seed.swap_acc)} vs LB {pct(per_seed.lb_acc)} (p={p2v:.3g})",
              "claim (no number retrieved)", v2, t2),
    claim_row("S3", "SWAP takes less time than SB when the workers run in parallel.",
              "job wall time (s): phase 1 + slowest worker + averaging vs SB",
              f"SWAP {mean_std(per_seed.t_parallel, 1)} s vs SB {mean_std(per_seed.t_sb, 1)} s (p={p3v:.3g}); "
              f"training loop only: {mean_std(per_seed.loop_parallel, 1)} s vs {mean_std(per_seed.loop_sb, 1)} s; "
              f"LB {mean_std(per_seed.t_lb, 1)} s",
              "claim: 'substantially shorter time' (no number retrieved)", v3, t3),
    claim_row("S4", "The averaged model beats every single worker.", "test accuracy (%): SWAP vs best worker per seed",
              f"SWAP {pct(per_seed.swap_acc)} vs best worker {pct(per_seed.best_worker_acc)}; SWAP ahead in "
              f"{wins}/{len(seeds)} seeds (p={p4v:.3g})", "claim (Fig. 1; no number retrieved)", v4, t4),
    claim_row("S5", "Phases 2-3 improve on the phase-1 (large-batch) model.", "test accuracy (%): SWAP vs phase 1",
              f"SWAP {pct(per_seed.swap_acc)} vs phase 1 {pct(per_seed.p1_acc)} (p={p5v:.3g})",
              "claim (tables list SWAP phase 1 separately; no number retrieved)", v5, t5),
])
sec.text(
    f"Phase 1 stopped after {mean_std(per_seed.p1_epochs, 1)} epochs (of a cap of {block['epochs']}). "
    f"SWAP's parallel job time is {np.mean(per_seed.t_parallel / per_seed.t_sb):.2f}x SB's and "
    f"{np.mean(per_seed.t_parallel / per_seed.t_lb):.2f}x LB's (means of per-seed ratios); run on one machine "
    f"(all workers one after another) it takes {np.mean(per_seed.t_sequential / per_seed.t_sb):.2f}x SB's time. "
    "Each job's time includes the interpreter and torch start-up and the data load (a few seconds), which "
    "SWAP pays three times on its critical path and SB once; the training-loop column of the table leaves "
    "that out.", heading="Time")
sec.save(sm.output.section if hasattr(sm.output, "section") else None)
