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
# budget, in accuracy and in time (the engine's training-loop clock; Snakemake's job times
# beside it). Run by Snakemake (`script:`); in Jupyter, `context()` rebuilds the inputs.

# %%
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib import pyplot as plt

from largebatch.experiments.swap import decide_claims, phase1_sanity
from largebatch.notebook import context
from largebatch.report import Section, load_histories, load_runs
from largebatch.stats import finalize_claims
from largebatch.stats import mean_sd as ms

sm = context("swap", globals())
rows = sm.params.runs
block = sm.params.block if hasattr(sm.params, "block") else sm.params.scale
runs = load_runs(rows)
hist = load_histories(rows)
seeds = sorted(runs.seed.unique())
W = int(block["workers"])
sec = Section("swap", "SWAP (Gupta et al. 2020): stochastic weight averaging in parallel")
sns.set_theme(style="whitegrid")
DATA = {"mnist1d": "MNIST-1D", "mnist": "MNIST", "cifar10": "CIFAR-10", "cifar100": "CIFAR-100"}
NET = {"mlp": "an MLP with BatchNorm", "resnet": "a CIFAR ResNet"}
# the rule's inputs; opened in Jupyter (no snakemake object) the same files at their usual paths
inp = {
    "run_benchmarks": [f"results/benchmarks/train/{r}.tsv" for r in runs.run.unique()],
    "averages": [f"results/swap/average/{s}.json" for s in seeds],
    "average_benchmarks": [f"results/benchmarks/swap/average/{s}.tsv" for s in seeds],
    **{k: f"results/swap/analysis/{f}" for k, f in (("curve", "average_curve.csv"), ("plane", "plane.csv"),
                                                   ("points", "plane_points.csv"))},
}
inp.update({k: getattr(sm.input, k) for k in inp if hasattr(sm.input, k)})


def bench_s(path) -> float:
    """Wall seconds of one job from its Snakemake benchmark file (column s); NaN if absent."""
    p = Path(path)
    return float(pd.read_csv(p, sep="\t")["s"].iloc[0]) if p.exists() else float("nan")


# job time of every run from its benchmark file (the run's training-loop time where it has none)
job_of = {Path(b).stem: bench_s(b) for b in inp["run_benchmarks"]}
runs["job_s"] = runs.run.map(job_of).astype(float).fillna(runs.wall_s)
avg = pd.DataFrame([json.load(open(f)) for f in inp["averages"]])
avg["job_s"] = [bench_s(b) for b in inp["average_benchmarks"]]
avg["job_s"] = avg.job_s.fillna(avg.average_s)
curve = pd.read_csv(inp["curve"])
plane = pd.read_csv(inp["plane"])
points = pd.read_csv(inp["points"])
spec = dict(block["run"])
sb_rows, lb_rows = runs[runs.arm == "SB"], runs[runs.arm == "LB"]
p1_rows, wk_rows = runs[runs.arm == "phase1"], runs[runs.arm == "worker"]

# %%
per_seed = []
for s in seeds:
    p1 = p1_rows[p1_rows.seed == s].iloc[0]
    wk = wk_rows[wk_rows.seed == s]
    a = avg[avg.seed == s].iloc[0]
    sb = sb_rows[sb_rows.seed == s].iloc[0]
    lb = lb_rows[lb_rows.seed == s].iloc[0]
    per_seed.append({
        "seed": s, "sb_acc": 100 * sb.test_acc, "lb_acc": 100 * lb.test_acc, "p1_acc": 100 * p1.test_acc,
        "swap_acc": 100 * a.test_acc, "best_worker_acc": 100 * wk.test_acc.max(),
        "mean_worker_acc": 100 * wk.test_acc.mean(), "sb_train": 100 * sb.train_acc, "lb_train": 100 * lb.train_acc,
        "p1_stop": p1.stop_reason, "p1_epochs": p1.epochs, "p1_loop": p1.wall_s,
        "t_sb": sb.job_s, "t_lb": lb.job_s, "t_p1": p1.job_s, "t_worker_max": wk.job_s.max(), "t_avg": a.job_s,
        "t_parallel": p1.job_s + wk.job_s.max() + a.job_s, "t_sequential": p1.job_s + wk.job_s.sum() + a.job_s,
        "loop_sb": sb.wall_s, "loop_lb": lb.wall_s, "loop_parallel": p1.wall_s + wk.wall_s.max() + a.average_s,
    })
per_seed = pd.DataFrame(per_seed)

# %% [markdown]
# ## Claims

# %%
claims = decide_claims(per_seed, block["claims"], block["preconditions"], block["stop_train_acc"])
decided = finalize_claims(claims)
verdicts = ", ".join(f"{c['id']} {c['verdict']}" for c in decided)
failed = [f"{c['id']}: {next(t for t in c['precondition'].split('; ') if 'NO' in t)}"
          for c in decided if not c["precondition_ok"]]
sec.summary(
    f"{len(seeds)} seed(s), {W} phase-2 workers each, on {DATA.get(spec['dataset'], spec['dataset'])} with "
    f"{NET.get(spec['model'], spec['model'])} (width {spec.get('width')}, depth {spec.get('depth')}; SB batch {block['small_batch']}, LB and phase-1 batch {block['large_batch']}). Verdicts: {verdicts}."
    + (f" Failed preconditions: {'; '.join(failed)}." if failed else "")
    + " Time is the training loop's own clock (phase 1 + slowest worker + averaging against SB); job wall "
    "time, which adds an interpreter start-up per job (three on SWAP's critical path, one on SB's), is shown "
    "beside it.")
sec.scope("The paper's accuracy and time tables were not available to us, so its claims are tested for "
          "direction (SWAP vs SB, LB and its own workers; time against SB) without its numbers; the workers "
          "run as separate jobs, in parallel only where the machine has free cores.")
sec.claims(claims)

# %% [markdown]
# ## Accuracy and time

# %%
def row(method, batch, epochs, train_acc, test_acc, loop_s, job_s):
    return {"method": method, "batch": batch, "epochs": ms(epochs, 1),
            "train accuracy (%)": ms(100 * np.asarray(train_acc, float), 2),
            "test accuracy (%)": ms(100 * np.asarray(test_acc, float), 2),
            "training-loop time (s)": ms(loop_s, 1), "job time (s)": ms(job_s, 1),
            "seeds": len(list(test_acc))}


table = [
    row("SB", block["small_batch"], sb_rows.epochs, sb_rows.train_acc, sb_rows.test_acc, sb_rows.wall_s,
        sb_rows.job_s),
    row("LB", block["large_batch"], lb_rows.epochs, lb_rows.train_acc, lb_rows.test_acc, lb_rows.wall_s,
        lb_rows.job_s),
    row("SWAP phase 1", block["large_batch"], p1_rows.epochs, p1_rows.train_acc, p1_rows.test_acc, p1_rows.wall_s,
        p1_rows.job_s),
    row(f"SWAP phase 2 (each of {W} workers)", block["small_batch"], wk_rows.epochs, wk_rows.train_acc,
        wk_rows.test_acc, wk_rows.wall_s, wk_rows.job_s),
    row("SWAP (average, phase 3)", "–", per_seed.p1_epochs + float(block["phase2_epochs"]), avg.train_acc,
        avg.test_acc, per_seed.loop_parallel, per_seed.t_parallel),
]
sec.table("summary", pd.DataFrame(table),
          "Final train and test accuracy and time, mean ± sd over seeds (phase 2: over every worker of every "
          "seed). For SWAP, epochs and times follow the critical path: phase 1 + slowest worker + averaging. "
          "Training-loop time: the engine's own clock (evaluations included, no start-up); job time: the "
          "Snakemake benchmark of each job, start-up and data load included. Other jobs shared the machine.",
          supports=["S1", "S2", "S3"])
times = pd.DataFrame({
    "seed": per_seed.seed, "SB": per_seed.t_sb, "LB": per_seed.t_lb, "phase 1": per_seed.t_p1,
    "slowest worker": per_seed.t_worker_max, "averaging": per_seed.t_avg, "SWAP, workers in parallel":
    per_seed.t_parallel, "SWAP, workers one after another": per_seed.t_sequential,
    "SB training loop": per_seed.loop_sb, "SWAP training loops": per_seed.loop_parallel,
}).map(lambda v: f"{v:.1f}" if isinstance(v, float) else v)
sec.table("times", times, "Time per seed in seconds: job times (Snakemake benchmarks) and, in the last two "
                          "columns, training-loop times. SWAP in parallel = phase 1 + slowest worker + averaging; "
                          "one after another = phase 1 + every worker + averaging (one machine).", supports="S3")
san = phase1_sanity(per_seed)
sec.table("sanity", pd.DataFrame([{
    "check": "SWAP average vs its phase-1 model",
    "SWAP (%)": ms(per_seed.swap_acc, 2), "phase 1 (%)": ms(per_seed.p1_acc, 2),
    "difference (points)": f"{san['effect']:+.2f}",
    "95% CI": f"{san['ci_low']:+.2f} to {san['ci_high']:+.2f}" if np.isfinite(san["ci_low"]) else "n/a (one seed)",
    "SWAP ahead in": f"{int((per_seed.swap_acc > per_seed.p1_acc).sum())} of {len(per_seed)} seeds",
}]), "A sanity check, not a claim: phase 1 stops part-way through its learning-rate schedule, at the "
    f"{100 * block['stop_train_acc']:g}% training-accuracy threshold, so phases 2 and 3 are expected to improve on "
    "it by construction; a loss here would mean the pipeline is broken.")

# %% [markdown]
# ## Figures

# %%
s0 = seeds[0]
h0 = hist[hist.seed == s0]
p1h = h0[h0.arm == "phase1"]
a0 = avg[avg.seed == s0].iloc[0]
palette = sns.color_palette("husl", W)
late = [h0[h0.arm == "worker"].test_acc.min(), a0.test_acc, p1h.test_acc.iloc[-1]]
late += [h0[h0.arm == arm].test_acc.iloc[-1] for arm in ("SB", "LB")]
ylim = (max(100 * min(late) - 8, 0), 100 * max(h0.test_acc.max(), a0.test_acc) + 1)


def draw(ax, xcol, p1_end, swap_x, xlabel):
    """Seed s0's curves against `xcol` (epoch or training-loop seconds); workers start at p1_end."""
    for arm, color, ls in (("SB", "0.35", "--"), ("LB", "0.55", ":")):
        h = h0[h0.arm == arm]
        ax.plot(h[xcol], 100 * h.test_acc, color=color, lw=1.4, ls=ls,
                label=f"{arm} baseline ({'dashed' if ls == '--' else 'dotted'})")
    ax.plot(p1h[xcol], 100 * p1h.test_acc, color="black", lw=2, label="SWAP phase 1, large batch (solid)")
    for w in range(W):
        h = h0[(h0.arm == "worker") & (h0.worker == w)]
        ax.plot(p1_end + h[xcol], 100 * h.test_acc, color=palette[w], lw=1,
                label=f"phase-2 workers (thin, one colour each)" if w == 0 else None)
    ax.scatter([swap_x], [100 * a0.test_acc], marker="*", s=220, color="crimson", zorder=5,
               label="SWAP average (phase 3)")
    ax.axvline(p1_end, color="0.3", lw=0.8, ls="-.", label="end of phase 1")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(*ylim)


fig, axes = plt.subplots(1, 2, figsize=(11, 3.9), gridspec_kw={"width_ratios": [3, 2]})
p1_end = float(p1h.epoch.max())
draw(axes[0], "epoch", p1_end, p1_end + float(block["phase2_epochs"]), "epoch (phase 2 continues from phase 1)")
axes[0].set_title(f"seed {s0}")
axes[0].legend(fontsize=7, loc="lower right")
ax = axes[1]
sns.lineplot(curve.assign(test_pct=100 * curve.test_acc), x="k", y="test_pct", marker="o", errorbar="sd",
             ax=ax, color="crimson", label="average of the first k workers (mean ± sd)")
for label, values, ls in (("SB", per_seed.sb_acc, "--"), ("LB", per_seed.lb_acc, ":"),
                          ("single worker", per_seed.mean_worker_acc, "-.")):
    ax.axhline(values.mean(), color="0.4", ls=ls, lw=1, label=f"{label}, mean over seeds")
ax.set_xlabel("workers averaged (k)")
ax.set_ylabel("test accuracy (%)")
ax.set_xticks(range(1, W + 1))
ax.set_title(f"mean ± sd over {len(seeds)} seed(s)")
ax.legend(fontsize=7)
fig.tight_layout()
sec.figure("test_accuracy", fig,
           "Left: test accuracy over training for one seed (y axis zoomed on the end of training): phase 1 (the LB "
           "run stopped at the training-accuracy threshold), the phase-2 workers continuing from it, and the "
           "averaged model (star), with the SB and LB baselines (phase 1 is the LB run stopped early, so the two "
           "curves coincide until phase 1 ends). Right: test accuracy of the average of the first "
           "k workers (BN statistics recomputed), mean ± sd over seeds; k = 1 is worker 1 with recomputed "
           "statistics.",
           alt="Left: test-accuracy curves by epoch of the SB and LB baselines, SWAP phase 1 and the phase-2 "
               "workers for one seed, with the averaged model as a star. Right: accuracy of the average of k "
               "workers for k = 1 to W.", supports=["S1", "S2", "S4"])

# %%
fig, ax = plt.subplots(figsize=(8, 4.2))
p1_loop = float(per_seed.p1_loop[per_seed.seed == s0].iloc[0])
draw(ax, "wall_s", p1_loop, float(per_seed.loop_parallel[per_seed.seed == s0].iloc[0]),
     "training-loop time (s); workers run in parallel after phase 1")
others = per_seed[per_seed.seed != s0]
if len(others):
    ax.scatter(others.loop_sb, others.sb_acc, marker="s", s=25, color="0.35", label="SB end, other seeds")
    ax.scatter(others.loop_parallel, others.swap_acc, marker="*", s=80, color="crimson", alpha=0.5,
               label="SWAP end, other seeds")
ax.set_title(f"test accuracy against time (curves: seed {s0})")
ax.legend(fontsize=7, loc="lower right")
sec.figure("accuracy_time", fig,
           "Test accuracy against training-loop time (the engine's clock, no start-up): the SB and LB baselines, "
           "SWAP phase 1 and its workers (started together when phase 1 ends, as on parallel machines), the "
           "averaged model at phase 1 + slowest worker + averaging; markers: where the other seeds' SB and SWAP "
           "runs ended. The paper's time values were not available to us, so none are drawn.",
           alt="Test accuracy against seconds of training for one seed's SB and LB baselines, SWAP phase 1 and its "
               "workers, with the SWAP average as a star at the time SWAP finishes.", supports="S3")

# %%
xs, ys = np.sort(plane.x.unique()), np.sort(plane.y.unique())
fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
for ax, col, title, log in ((axes[0], "train_loss", "training loss (log10)", True),
                            (axes[1], "test_err", "test error (%)", False)):
    z = plane.pivot(index="y", columns="x", values=col).loc[ys, xs].to_numpy()
    z = np.log10(np.maximum(z, 1e-12)) if log else 100 * z
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
           f"(seed {int(points.seed.iloc[0])}), as the paper's loss-plane plots; at each grid point the BN "
           "statistics are recomputed on the training data before evaluating. Axes in units of weight-space distance.",
           alt="Two contour maps, training loss and test error, over the plane through phase 1, one worker and the "
               "average, with the three models marked.")

# %% [markdown]
# ## Protocol

# %%
sec.protocol([
    {"aspect": "data / network", "paper": "CIFAR-10, CIFAR-100, ImageNet; DAWNBench ResNet-9 (CIFAR), ResNet-50",
     "ours": f"{spec['dataset']}; {spec['model']} width {spec.get('width')} depth {spec.get('depth')} "
             "(ResNet-9 is not in our model zoo)"},
    {"aspect": "workers", "paper": "8 (one per V100 GPU, Horovod)",
     "ours": f"{W}, each a separate Snakemake job (in parallel on a cluster)"},
    {"aspect": "batch sizes", "paper": "large batch in phase 1 on all GPUs, small batch per worker in phase 2",
     "ours": f"phase 1 / LB {block['large_batch']}, phase 2 / SB {block['small_batch']}"},
    {"aspect": "optimiser", "paper": "SGD with Nesterov momentum (DAWNBench ResNet-9 recipe)",
     "ours": f"{spec['optimizer'].upper()}, momentum {spec.get('momentum', 0)}, Nesterov {spec.get('nesterov', False)}, "
             f"weight decay {spec.get('weight_decay', 0)}; learning rate {spec['lr']} at batch {block['small_batch']} "
             f"scaled {spec.get('lr_scaling', 'none')} with the batch, {spec.get('warmup_epochs', 0)} warm-up "
             f"epoch(s), {spec.get('schedule', 'constant')} schedule"},
    {"aspect": "baselines", "paper": "SGD small batch and SGD large batch",
     "ours": f"SB batch {block['small_batch']} and LB batch {block['large_batch']}, {block['epochs']} epochs each"},
    {"aspect": "phase 1 stop", "paper": "a training-accuracy threshold ('stopping accuracy', per data set)",
     "ours": f"training accuracy >= {100 * block['stop_train_acc']:g}% (checked once per epoch), cap {block['epochs']} "
             "epochs"},
    {"aspect": "phase 2", "paper": "independent small-batch SGD, own data order, fixed budget",
     "ours": f"{block['phase2_epochs']} epochs from learning rate {block.get('phase2_lr', spec['lr'])} to 0 (cosine), "
             "fresh momentum, own data order"},
    {"aspect": "phase 3", "paper": "average the weights, recompute the BN statistics",
     "ours": f"mean of the {W} workers (torch.optim.swa_utils), BN statistics over the training set in batches "
             f"of {block.get('bn_batch', block['small_batch'])}"},
    {"aspect": "time", "paper": "wall time on 8 GPUs",
     "ours": "training-loop time (engine clock); SWAP = phase 1 + slowest worker + averaging; job wall times shown "
             "beside"},
    {"aspect": "seeds", "paper": "not stated in what we could read", "ours": f"{len(seeds)}"},
])

# %% [markdown]
# ## Caveats

# %%
sec.caveats(
    f"Phase 1 stopped after {ms(per_seed.p1_epochs, 1)} epochs (cap {block['epochs']}). In training-loop "
    f"time SWAP takes {np.mean(per_seed.loop_parallel / per_seed.loop_sb):.2f}x SB's time (mean of per-seed "
    f"ratios); in job time {np.mean(per_seed.t_parallel / per_seed.t_sb):.2f}x, and with all workers one after "
    f"another on one machine {np.mean(per_seed.t_sequential / per_seed.t_sb):.2f}x. Job time adds the interpreter "
    "and torch start-up and the data load (a few seconds per job), which SWAP pays three times on its critical "
    "path and SB once; on a small network that start-up is a large share of the job. Jobs shared the machine's "
    "cores with other jobs, so times carry that noise. S4 compares with the best worker of each seed chosen on "
    "the test set, which favours the workers.")
sec.save(sm.output.section if hasattr(sm.output, "section") else None)
