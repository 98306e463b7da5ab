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
# # Batch-size baseline: small vs large batch
#
# The smallest experiment behind all six papers: one network, one optimiser and one
# epoch budget, trained with a small and a large batch (10% of the training set, as in
# Keskar et al.) over several seeds. Claims are decided by `largebatch.stats`
# (`largebatch.analysis.baseline.claims`). Run by Snakemake (`script:`); in Jupyter,
# `context()` builds the same inputs and outputs from config.yaml (`largebatch.notebook`).

# %%
import matplotlib

matplotlib.use("Agg")
import pandas as pd
from matplotlib import pyplot as plt
from matplotlib.lines import Line2D

from largebatch.analysis import baseline as B
from largebatch.notebook import context
from largebatch.stats import VERDICTS, mean_std

ctx = context("baseline", globals())
block = ctx.block
runs = ctx.runs()
hist = ctx.histories()
sec = ctx.section()
spec = block["run"]
sb, lb = runs[runs.arm == "SB"], runs[runs.arm == "LB"]
kind = ctx.datasets[spec["dataset"]].get("kind", spec["dataset"])
chance = 100 / {"cifar100": 100}.get(kind, 10)

# %% [markdown]
# ## Claims

# %%
claims = pd.read_csv(sec.claims(B.claims(runs, block)))
counts = claims.verdict.value_counts()
blocked = claims[~claims.precondition_ok.astype(bool)]
sec.summary(
    f"{len(claims)} claims: " + "; ".join(f"{counts.get(v, 0)} {v}" for v in VERDICTS) + ". "
    + (f"{', '.join(blocked.id)} inconclusive because a precondition failed: "
       f"{blocked.precondition.iloc[0].split('failed: ', 1)[-1]}."
       + (f" The large batch made {sb.steps.mean() / lb.steps.mean():.0f}× fewer updates; a test-accuracy gap "
          "between arms that do not fit the training set equally well is an optimisation gap, not the "
          "generalisation gap the papers study."
          if 100 * abs(lb.train_acc.mean() - sb.train_acc.mean()) > block["similar_train_acc_pp"] else "")
       if len(blocked) else
       f"Train accuracies: SB {mean_std(sb.train_acc, 2, 100.0)} %, LB {mean_std(lb.train_acc, 2, 100.0)} %."))

sec.scope(f"One {spec['model'].upper()} on {spec['dataset']}, a small and a large batch: it shows whether the "
          "large batch generalises worse at equal training accuracy here, not why.")

# %% [markdown]
# ## Evidence

# %%
table = pd.DataFrame([{
    "arm": a, "batch size": int(d.batch_size.iloc[0]),
    "train acc (%)": mean_std(d.train_acc, 2, 100.0), "test acc (%)": mean_std(d.test_acc, 2, 100.0),
    "train − test (pp)": mean_std(d.train_acc - d.test_acc, 2, 100.0),
    "train loss": mean_std(d.train_loss, 4), "test loss": mean_std(d.test_loss, 4),
    "updates": mean_std(d.steps), "epochs": mean_std(d.epochs, 1),
    "stopped by": ", ".join(f"{r} {n}" for r, n in sorted(d.stop_reason.astype(str).value_counts().items())),
    "seeds": len(d)} for a, d in (("SB", sb), ("LB", lb))])
sec.table("summary", table, supports=["B1", "B2"])

# %%
colors = {"SB": "C0", "LB": "C3"}
fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), layout="constrained")
for (a, s), h in hist.groupby(["arm", "seed"]):
    axes[0].plot(h.epoch, 100 * h.train_acc, "-", color=colors[a], lw=0.9, alpha=0.8)
    axes[0].plot(h.epoch, 100 * h.test_acc, "--", color=colors[a], lw=0.9, alpha=0.8)
    axes[1].plot(h.epoch, h.train_loss, "-", color=colors[a], lw=0.9, alpha=0.8)
    axes[1].plot(h.epoch, h.test_loss, "--", color=colors[a], lw=0.9, alpha=0.8)
axes[0].axhline(chance, color="grey", ls=":", lw=1)
axes[0].set_ylabel("accuracy (%)")
losses = pd.concat([hist.train_loss, hist.test_loss])
wide = losses.max() / losses[losses > 0].min() > 10  # log scale only where the loss spans a decade
if wide:
    axes[1].set_yscale("log")
axes[1].set_ylabel("cross-entropy" + (" (log scale)" if wide else ""))
for ax in axes:
    ax.set_xlabel("epoch")
    ax.set_xlim(left=0)
handles = [Line2D([], [], color=colors["SB"], label=f"SB ({int(sb.batch_size.iloc[0])})"),
           Line2D([], [], color=colors["LB"], label=f"LB ({int(lb.batch_size.iloc[0])})"),
           Line2D([], [], color="k", ls="-", label="train"), Line2D([], [], color="k", ls="--", label="test")]
axes[0].legend(handles=handles + [Line2D([], [], color="grey", ls=":", label="chance")], fontsize=7)
sec.figure("learning_curves", fig,
           alt="Train and test accuracy and loss against epoch, one line per seed of the small and the large "
               "batch, with a chance line.",
           supports=["B1", "B2"])

# %% [markdown]
# ## Protocol and caveats

# %%
budget = (f"{spec['epochs']:g} epochs for both arms" if spec.get("epochs") else
          f"until the training loss stops improving (patience {spec.get('patience')} epochs; safety cap "
          f"{spec.get('steps') or 'none'} updates, which no run may reach)")
sec.text(
    f"{spec['model'].upper()} (width {spec['width']}, depth {spec['depth']}) on {spec['dataset']}, "
    f"{spec['optimizer']} with learning rate {spec['lr']} for both batch sizes (no scaling), {budget}, "
    f"{runs.seed.nunique()} seeds per arm. Small batch {int(sb.batch_size.iloc[0])}, large batch "
    f"{int(lb.batch_size.iloc[0])} (10% of the training set, as in Keskar et al. 2017).",
    heading="Protocol details")
sec.caveats("Not one of the six papers. "
         + ("A fixed epoch budget for both arms, so the large batch makes far fewer updates. " if spec.get("epochs")
            else "")
         + "The claims need both arms to fit the training set about equally well "
         f"(within {block['similar_train_acc_pp']:g} percentage points); where they do not, the verdict is "
         "inconclusive.")
sec.save(ctx.output.section)
