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
# adaptations. The fits, tables and claims are `largebatch.analysis.hoffer*`; run by
# Snakemake (`script:`); in Jupyter, `context()` rebuilds the inputs from config.yaml.

# %%
import matplotlib

matplotlib.use("Agg")
import seaborn as sns

from largebatch.analysis import hoffer as A
from largebatch.analysis import hoffer_claims as C
from largebatch.analysis import hoffer_figures as F
from largebatch.notebook import context
from largebatch.stats import finalize_claims

ctx = context("hoffer", globals())
sec = ctx.section()
block = ctx.block
runs = ctx.runs()
hist = ctx.histories()
sns.set_theme(style="whitegrid")
nets, dist, pre = block["networks"], block["distance"], block["preconditions"]
seeds = sorted(runs.seed.unique())
table_runs = A.table_runs(runs)

# %% [markdown]
# ## Fig. 2 fits: weight distance in the high-LR phase
#
# One fit of d = a + b ln t per run of the distance network, over its log-grid evaluations
# in the high-LR phase (SB's run serves both panels; LB's panel (a), +RA's panel (b)).

# %%
fits = A.run_fits(runs, hist, dist)

# %% [markdown]
# ## Claims

# %%
claims = C.section_claims(block, table_runs, fits, runs)
sec.summary(A.summary_text(nets, seeds, finalize_claims(claims)))
sec.scope(A.scope_text(nets))
sec.claims(claims)
TABLE_IDS = C.claim_ids(claims, C.TABLE_CLAIMS)
FIG2_IDS = C.claim_ids(claims, C.FIG2_CLAIMS)

# %% [markdown]
# ## The table

# %%
sec.table("table1", A.accuracy_table(nets, table_runs), supports=TABLE_IDS)
sec.table("arms", A.arm_table(nets, runs), supports=TABLE_IDS + FIG2_IDS)

# %%
sec.figure("arm_accuracy", F.arm_accuracy_figure(nets, table_runs), published=F.published_note(nets),
           alt="Dot plot of final test accuracy for the arms SB, LB, +LR, +GBN and +RA of each network, one dot per "
               "seed with the mean and standard deviation.", supports=TABLE_IDS)

# %%
sec.figure("curves", F.curves_figure(nets, hist),
           alt="Test accuracy against updates on a log axis for the five arms; the +RA curve runs as long as SB's.",
           supports=C.claim_ids(claims, ("H4",)))

# %% [markdown]
# ## Fig. 2

# %%
sec.table("distance_fits", A.fit_table(fits), fit_min_step=dist["fit_min_step"], supports=FIG2_IDS)
sec.figure("distance", F.distance_figure(fits, hist, dist["fit_min_step"]), fit_min_step=dist["fit_min_step"],
           alt="Two panels of weight distance against updates on a log axis, one colour per batch size, before and "
               "after the adaptations, with straight-line fits in log t.", supports=FIG2_IDS)

# %% [markdown]
# ## Protocol and caveats

# %%
sec.protocol(A.protocol_rows(nets, dist, seeds))
sec.caveats(A.caveats_text(nets, table_runs, fits, pre))
sec.save(ctx.output.section)
