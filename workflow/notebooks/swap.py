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
# trains W copies of it independently with a small batch and their own data order; phase 3
# averages the copies' weights and recomputes the BatchNorm statistics. Compared with the
# small-batch (SB) and large-batch (LB) baselines of the same epoch budget, in accuracy and in
# time (the engine's training-loop clock; Snakemake's job times beside it). The analysis is in
# `largebatch.analysis.swap` (figures: `swap_figures`). Run by Snakemake (`script:`); in
# Jupyter, `context()` builds the same inputs and outputs from config.yaml
# (`largebatch.notebook`).

# %%
import matplotlib

matplotlib.use("Agg")
import pandas as pd
import seaborn as sns

from largebatch.analysis import swap as A
from largebatch.analysis.swap_figures import SeedCurves, accuracy_time_figure, curves_figure, loss_plane_figure
from largebatch.notebook import context
from largebatch.stats import finalize_claims
from largebatch.stats import mean_sd as ms

ctx = context("swap", globals())
sec = ctx.section()
block = ctx.block
runs = ctx.runs()
hist = ctx.histories()
seeds = sorted(runs.seed.unique())
W = int(block["workers"])
spec = dict(block["run"])
sns.set_theme(style="whitegrid")
DATA = {"mnist1d": "MNIST-1D", "mnist": "MNIST", "cifar10": "CIFAR-10", "cifar100": "CIFAR-100"}
NET = {"mlp": "an MLP with BatchNorm", "resnet": "a CIFAR ResNet"}

# %% [markdown]
# Time of every job: its Snakemake benchmark record (SWAP's runs are never packed: each
# trains in its own job), and phase 3's metrics per seed.

# %%
runs["job_s"] = A.job_seconds(runs, ctx.input.run_benchmarks)
avg = A.load_averages(ctx.input.averages, ctx.input.average_benchmarks)
curve = pd.read_csv(ctx.input.curve)
plane = pd.read_csv(ctx.input.plane)
points = pd.read_csv(ctx.input.points)
per_seed = A.per_seed(runs, avg)

# %% [markdown]
# ## Claims
#
# S1 (as well as SB: non-inferiority), S2 (better than LB), S3 (less time than SB, on the
# training-loop clock) and S4 (better than every single worker), from one row per seed.

# %%
claims = A.decide_claims(per_seed, block["claims"], block["preconditions"], block["stop_train_acc"],
                         A.run_problems(runs))
decided = finalize_claims(claims)
verdicts = ", ".join(f"{c['id']} {c['verdict']}" for c in decided)
failed = A.failed_preconditions(decided)
sec.summary(
    f"{len(seeds)} seed(s), {W} phase-2 workers each, on {DATA.get(spec['dataset'], spec['dataset'])} with "
    f"{NET.get(spec['model'], spec['model'])} (width {spec.get('width')}, depth {spec.get('depth')}; SB batch "
    f"{block['small_batch']}, LB and phase-1 batch {block['large_batch']}). Verdicts: {verdicts}."
    + (f" Failed preconditions: {'; '.join(failed)}." if failed else "")
    + " Time is the training loop's own clock (phase 1 + slowest worker + averaging against SB); job wall "
    "time, which adds an interpreter start-up per job (three on SWAP's critical path, one on SB's), is shown "
    "beside it.")
sec.scope("The paper's accuracy and time tables were not available to us, so its claims are tested for "
          "direction (SWAP vs SB, LB and its own workers; time against SB) without its numbers; the workers "
          + "run as separate jobs, in parallel only where the machine has free cores.")
sec.claims(claims)

# %% [markdown]
# ## Accuracy and time

# %%
sec.table("summary", A.summary_table(runs, avg, per_seed, block), supports=["S1", "S2", "S3"])
sec.table("times", A.times_table(per_seed), supports="S3")
sec.table("sanity", A.sanity_table(per_seed), stop_pct=100 * block["stop_train_acc"])

# %% [markdown]
# ## Figures
#
# Curves of the first seed; the k-worker averages and the end markers of every seed.

# %%
curves = SeedCurves(hist, avg, seeds[0], W)
sec.figure("test_accuracy", curves_figure(curves, curve, per_seed, block["phase2_epochs"]),
           alt="Left: test-accuracy curves by epoch of the SB and LB baselines, SWAP phase 1 and the phase-2 "
               "workers for one seed, with the averaged model as a star. Right: accuracy of the average of k "
               "workers for k = 1 to W.", supports=["S1", "S2", "S4"])
sec.figure("accuracy_time", accuracy_time_figure(curves, per_seed),
           alt="Test accuracy against seconds of training for one seed's SB and LB baselines, SWAP phase 1 and its "
               "workers, with the SWAP average as a star at the time SWAP finishes.", supports="S3")
sec.figure("loss_plane", loss_plane_figure(plane, points), seed=int(points.seed.iloc[0]),
           alt="Two contour maps, training loss and test error, over the plane through phase 1, one worker and the "
               "average, with the three models marked.")

# %% [markdown]
# ## Protocol and caveats

# %%
sec.protocol(A.protocol_rows(block, len(seeds)))
ratio = A.time_ratios(per_seed)
sec.caveats(
    f"Phase 1 stopped after {ms(per_seed.p1_epochs, 1)} epochs (cap {block['epochs']}). In training-loop "
    f"time SWAP takes {ratio['loop']:.2f}x SB's time (mean of per-seed ratios); in job time {ratio['job']:.2f}x, "
    f"and with all workers one after another on one machine {ratio['sequential']:.2f}x. Job time adds the "
    "interpreter and torch start-up and the data load (a few seconds per job), which SWAP pays three times on its "
    "critical path and SB once; on a small network that start-up is a large share of the job. Jobs shared the "
    "machine's cores with other jobs, so times carry that noise. S4 compares with the best worker of each seed "
    "chosen on the test set, which favours the workers.")
sec.save(ctx.output.section)
