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
# # Golmant et al. 2018: the critical batch size
#
# Steps T(B) to fixed train- and test-loss thresholds for batch sizes B on a power-of-two
# grid, under a fixed learning rate, linear scaling with warm-up (LSR) and square-root
# scaling (SRSR); speed-up S(B) = T(B0)/T(B) against perfect scaling B/B0; the cost B·T(B);
# one critical-batch definition for every curve (`largebatch.scaling.critical_batch_size`).
# Beyond the paper: McCandlish et al.'s gradient noise scale B_simple as a prediction of
# the critical batch, and easier / harder / smaller variants of the data. Every claim is
# decided per seed by `largebatch.stats`, on curves whose threshold lies well below the
# chance loss; a run that did not learn is flagged and cuts its curve. The analysis is in
# `largebatch.analysis.golmant` (curves), `golmant_claims` and `golmant_evidence` (figures and
# tables). Run by Snakemake (`script:`); in Jupyter, `context()` builds the same inputs and
# outputs from config.yaml (`largebatch.notebook`).

# %%
import matplotlib

matplotlib.use("Agg")
import numpy as np
import pandas as pd
import seaborn as sns

from largebatch.analysis import golmant as A
from largebatch.analysis import golmant_claims as GC
from largebatch.analysis import golmant_evidence as E
from largebatch.experiments import golmant as G
from largebatch.notebook import context
from largebatch.stats import finalize_claims

ctx = context("golmant", globals())
sec = ctx.section()
block = ctx.block
S = A.setup(block, ctx.datasets)
hist = A.histories_by_run(ctx.histories(), ctx.rows)
sns.set_theme(style="whitegrid")

# %% thresholds: the lowest-quartile loss of each role's largest learning batch; eligible well below chance
sweep = A.sweep_runs(S, ctx.runs())
B0 = A.smallest_batches(sweep, S.roles)
thresholds = A.threshold_table(S, sweep, B0, hist)

# %% steps to every threshold, per run; a run that did not learn never reaches anything
st = A.steps_to_thresholds(S, sweep, hist, thresholds)
# per-seed curves, cut before the first batch size that did not learn
per_seed = A.seed_curves(st, thresholds, S.steps)
# seed-mean curves (geometric mean of T; never reached if any seed never got there), for figures
summary, curves = A.mean_curves(st, per_seed, thresholds, S.steps)

# %% noise scale at each threshold's B0 checkpoint, and the critical batch it predicts
nz = A.noise_summary(pd.read_csv(ctx.input.noise))
summary = A.with_prediction(summary, nz, B0, st)
R = A.Results(S, sweep, B0, hist, thresholds, st, per_seed, summary, curves, nz)
grid = R.grid

# %% [markdown]
# ## Claims
#
# G1 three regimes (LSR), G2 critical batch far below the data size, G3 LSR/SRSR help only at
# small-to-medium batches, G4 data complexity matters more than data size, G5 the architecture
# matters more than data size, GX1 (beyond the paper) the noise scale predicts the critical batch.

# %%
claims = GC.claims(R)
verdict = {r["id"]: r["verdict"] for r in finalize_claims(claims)}

# %%
lsr_std = summary[(summary.data == "standard") & (summary.strategy == S.lsr)]
budget_text = f"{S.epochs:g} epochs" if S.epochs is not None else f"{S.steps} steps"
ref_b = dict(zip(thresholds.drop_duplicates("data").data, thresholds.drop_duplicates("data").ref_batch))
fracs = ", ".join(f"{f:g}" for f in S.fracs)
sec.summary(
    f"Steps to fixed loss thresholds for B = {grid[0]}..{grid[-1]} on MNIST-1D ({S.n_std:,} training samples), "
    f"{R.n_seeds} seeds, {', '.join(S.slabel[s] for s in S.strats)}; every run trains {budget_text}. "
    f"Thresholds are the q = {fracs} quantiles of the loss curve of the largest batch at which every run learnt "
    f"(B = {', '.join(f'{r} {b}' for r, b in ref_b.items())}); claims are decided "
    f"only on thresholds below {S.maxf:g} x the chance loss (ln {np.exp(S.chance['standard']):.0f} = "
    f"{S.chance['standard']:.2f}): {GC.elig_text(R)}. "
    f"Under {S.slabel[S.lsr]} the critical batch of the seed-mean curves is "
    + ", ".join(A.fmt_b(b, lb) for b, lb in zip(lsr_std.b_crit, lsr_std.lower_bound))
    + " (per threshold). Verdicts: " + ", ".join(f"{k} {v}" for k, v in verdict.items()) + ".")
sec.scope("This scale tests the shape of steps-vs-batch curves of a small MLP and a small 1-D conv net on "
          "MNIST-1D at the paper's threshold definition; it cannot test the paper's CIFAR-10 ResNets, segmentation or "
          "language models.")

# %% [markdown]
# ## Evidence

# %% figure: where the thresholds lie (B0 loss curves, chance loss, eligibility bar)
sec.figure("threshold_curves", E.threshold_curves(R),
           alt="One panel per data set of training loss against step for the smallest batch, with horizontal lines "
               "for the loss thresholds, the chance loss and the eligibility bar.",
           supports=["G1", "G2", "G3", "G4", "GX1"])

# %% figure: steps to threshold
sec.figure("steps_to_threshold", E.steps_to_threshold(R), dataset=S.dname["standard"], epochs=budget_text,
           alt="Six log-log panels of steps to a loss threshold against batch size, one per learning-rate strategy "
               "and loss, with a perfect-scaling reference line and the step cap.", supports=["G1", "G3"])

# %% figure: speed-up
sec.figure("speedup", E.speedup(R),
           alt="Log-log panels of speed-up against batch size per learning-rate strategy, with a perfect-scaling "
               "diagonal and vertical lines at each curve's critical batch.", supports=["G1", "G2"])

# %% figure: cost
sec.figure("cost", E.cost(R),
           alt="Two log-log panels of the examples processed to reach each threshold against batch size, one line "
               "per strategy and threshold.")

# %% figure: data complexity and size
sec.figure("data_complexity", E.data_complexity(R), strategy=S.var_strat.upper(),
           alt="Log-log panels of speed-up against batch size, one line per data variant, with vertical lines at the "
               "measured and predicted critical batch.", supports=["G4", "G5", "GX1"])

# %% figure: noise scale vs measured critical batch
sec.figure("noise_prediction", E.noise_prediction(R, GC.prediction_points(R)),
           alt="Log-log scatter of measured against predicted critical batch size with the identity line and a "
               "shaded band for agreement within the stated factor.", supports="GX1")

# %% tables: summary first, then the details
sec.table("curve_summary", E.curve_summary_table(R), fracs=fracs, supports=["G1", "G2", "G4", "G5"])
sec.table("thresholds", E.thresholds_table(R), maxf=S.maxf, supports=["G1", "G2", "G3", "G4", "G5", "GX1"])
sec.table("final", E.final_table(R), supports=["G1", "G2", "G3", "G4", "G5", "GX1"])
sec.table("steps", E.steps_wide_table(R), dataset=S.dname["standard"], epochs=budget_text, supports="G3")
sec.table("noise_scale", E.noise_table(R), supports="GX1")
sec.claims(claims)
sec.table("critical_batch", E.critical_batch_table(R))

# %% protocol: the paper's (experiments.golmant.PROTOCOL, with its source) against ours
run_cfg, noise = block["run"], block["noise"]
ours = {
    "data": f"MNIST-1D '{S.dname['standard']}' ({S.n_std:,} train); easier / harder / smaller variants",
    "network": f"{run_cfg['model']} width {run_cfg.get('width')}, depth {run_cfg.get('depth')}, "
               f"norm {run_cfg.get('norm', 'batch')}" + "".join(
                   f"; role {r}: {block['datasets'][r]['run'].get('model')} width {block['datasets'][r]['run'].get('width')}"
                   for r in S.roles if block["datasets"][r].get("run")),
    "measure": f"steps to {len(S.fracs)} train- and {len(S.fracs)} test-loss thresholds, budget {budget_text} per run",
    "threshold": f"the q = {fracs} quantile of the loss curve of the largest batch at which every run learnt; "
                 f"decided only below {S.maxf:g} x chance",
    "batch sizes": f"{grid[0]}..{grid[-1]} ({grid[-1] / S.n_std:.0%} of the training set)",
    "lr strategies": ", ".join(S.slabel[s] for s in S.strats),
    "cost": "B·T(B) examples (in epochs)",
}
sec.protocol([{"aspect": k, "paper": f"{text} ({source})", "ours": ours[k]} for k, (text, source) in G.PROTOCOL.items()]
             + [{"aspect": "seeds", "paper": "not stated in the text we read", "ours": str(R.n_seeds)},
                {"aspect": "noise scale", "paper": "not in the paper (McCandlish et al. 2018)",
                 "ours": f"B_simple, two-batch estimator (b_small {noise['b_small']}, b_big {noise['b_big']}, "
                         f"{noise['n_estimates']} draws) on the B0 weights at the checkpoint nearest each threshold"}])

# %%
fell = A.collapsed_runs(S, sweep, hist)
fell_text = (
    f" {len(fell)} of them had gone below {S.maxf:g} x chance before ("
    + ", ".join(f"{d}: {n}" for d, n in fell.groupby("data").size().items())
    + "): they learnt, then fell back to chance at the constant learning rate; the flag still cuts their curves, "
    "though their steps to thresholds reached before the fall are measured."
    if len(fell) else "")
sec.caveats(
    f"Every run trains {budget_text} at a constant learning rate (the paper trains to convergence, and its "
    "threshold is the largest batch's, so the budget lets the largest batches converge; see the final table). "
    "McCandlish et al. find the critical batch grows as the loss falls, so lower thresholds would likely move B* "
    f"up. A run at chance loss at the end (final train loss >= {S.claims['no_learning']:g} x chance, or diverged) "
    f"is flagged as not learnt ({int((~sweep.drop_duplicates('run').learnt).sum())} runs) and cuts its curve rather "
    "than counting as the plateau." + fell_text + " The engine's warm-up ramps from 0 (Goyal et al. ramp from "
    "the base lr). T(B) is resolved only to the evaluation grid. The MLP has no BatchNorm; the paper's ResNets do. "
    "Claim X1 of earlier versions is GX1 (ids carry the paper's letter).")
sec.save(ctx.output.section)
