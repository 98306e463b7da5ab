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
# (`largebatch.analysis.keskar_claims`); the tables, figures and texts are built by
# `largebatch.analysis.keskar*`. Run by Snakemake (`script:`); in Jupyter, `context()`
# builds the same inputs and outputs from config.yaml (`largebatch.notebook`).

# %%
import matplotlib

matplotlib.use("Agg")
import pandas as pd

from largebatch.analysis import keskar as A
from largebatch.analysis import keskar_figures as figures
from largebatch.analysis import keskar_text as text
from largebatch.analysis.keskar_claims import all_claims
from largebatch.experiments import dataset_sizes
from largebatch.notebook import context

ctx = context("keskar", globals())
sec = ctx.section()
block = ctx.block
nets = list(block["networks"])
EPS = [float(e) for e in block["sharpness"]["epsilons"]]
E1, E2 = EPS[0], EPS[-1]
kinds = A.network_kinds(block, ctx.datasets)  # the scale's datasets as the run plan saw them
paper_data = A.on_paper_data(nets, kinds)  # our values compare with the published ones

# every run's metrics joined with its sharpness (job keskar_sharpness_*), and every SB/LB
# pair's parametric curve (job keskar_parametric)
runs = A.with_sharpness(ctx.runs(), A.by_run(ctx.rows, ctx.input.sharpness))
hist = ctx.histories()
curves = pd.read_csv(ctx.input.parametric)
main = runs[runs["main"]].copy()
sweep = runs[runs["sweep"]].copy()
snet = block["sweep"]["network"]
# the specs the runs were trained with (one SB run per network), for captions and the protocol
specs = A.network_specs(main, nets, A.by_run(ctx.rows, ctx.input.specs))
train_n = specs[nets[0]].get("eval_train_samples")
train_set = f"the first {int(train_n):,} training samples" if train_n else "the whole training set"

# %% [markdown]
# ## Claims (decided before anything is drawn)
#
# K1-K7 per network compare its SB and LB runs: test accuracy at similar train accuracy
# (K1), ε-sharpness in full space and in random subspaces at every ε (K2, K3), the Hessian's
# top eigenvalue (K4), the rise of the training loss just outside each end of the SB-LB line
# (K5), and the distance travelled from x0 (K6, K7). K8 reads the sweep: accuracy falls and
# sharpness rises with the batch size. A claim whose runs did not all converge is inconclusive.

# %%
rises = A.parametric_rises(curves, block["parametric"]["delta"], nets)
ratios = A.distance_ratios(runs)
claims = pd.read_csv(sec.claims(all_claims(main, sweep, rises, ratios, block)))

# %% [markdown]
# ## Summary

# %%
sec.summary(A.summary_text(claims, nets))
sec.scope(A.scope_text(nets, kinds))

# %% [markdown]
# ## Table 2: accuracy

# %%
sources = A.row_sources(ctx.scale, nets, kinds)
sec.table("table2_accuracy", A.accuracy_table(main, nets, sources, paper_data), supports=[f"K1-{n}" for n in nets],
          train_set=train_set)

# %% [markdown]
# ## Tables 3 and 4: ε-sharpness

# %%
sec.table("table3_sharpness_full", A.sharpness_table(main, nets, "table3", "full", (E1, E2), sources, paper_data),
          supports=[f"K2-{n}" for n in nets])
sec.table("table4_sharpness_subspace", A.sharpness_table(main, nets, "table4", "subspace", (E1, E2), sources, paper_data),
          supports=[f"K3-{n}" for n in nets], subspace_dim=block["sharpness"]["subspace_dim"])

# %%
sec.table("hessian_distance", A.hessian_distance_table(main, ratios, nets),
          supports=[f"{c}-{n}" for c in ("K4", "K6", "K7") for n in nets])

# %% [markdown]
# ## Fig. 2 analogue: learning curves

# %%
sec.figure("learning_curves", figures.learning_curves(hist, nets, kinds),
           alt=f"Accuracy against epoch for {', '.join(nets)}: one solid (train) and one dashed (test) line per "
               "SB and LB run, with a chance line.",
           supports=[f"K1-{n}" for n in nets])

# %% [markdown]
# ## Fig. 3: parametric plot

# %%
par = block["parametric"]
sec.figure("parametric", figures.parametric(curves, nets, kinds, par["pair_seed"]),
           alt=f"Parametric plots for {', '.join(nets)}: training and test loss and accuracy along the line from "
               "the SB minimiser (alpha 0) to the LB minimiser (alpha 1) and beyond.",
           supports=[f"K5-{n}" for n in nets],
           train_set=train_set, alpha_min=par["alpha_min"], alpha_max=par["alpha_max"], seed=par["pair_seed"])

# %%
sec.table("parametric_rise", A.rise_table(rises), supports=[f"K5-{n}" for n in nets], delta=par["delta"])

# %% [markdown]
# ## Fig. 4 analogue: batch-size sweep

# %%
n_train = dataset_sizes({"datasets": ctx.datasets})[block["networks"][snet]["dataset"]]
sec.figure("sweep", figures.sweep(sweep, E1, snet, n_train),
           alt=f"Test accuracy, epsilon-sharpness and Hessian top eigenvalue of {snet} against batch size on a log "
               "axis, with the paper's threshold fraction marked.",
           supports=[f"K8-{snet}"], network=snet, epsilon=E1)
sec.table("batch_sweep", A.sweep_table(sweep, E1), supports=[f"K8-{snet}"], network=snet)

# %% [markdown]
# ## Protocol

# %%
sec.text(text.protocol_text(ctx.scale, block, specs, main, sweep), heading="Protocol details")
sec.protocol(text.protocol_rows(block, specs, main, sweep))

# %% [markdown]
# ## Caveats

# %%
sec.caveats(text.caveats(main, block, paper_data))
sec.save(ctx.output.section)
