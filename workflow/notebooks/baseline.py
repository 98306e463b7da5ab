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
# Keskar et al.) over several seeds. Run by Snakemake (`script:`); in Jupyter,
# `context()` rebuilds the inputs from config.yaml.

# %%
import matplotlib

matplotlib.use("Agg")
import seaborn as sns
from matplotlib import pyplot as plt

from largebatch.notebook import context
from largebatch.report import Section, load_histories, load_runs
from largebatch.stats import claim_row, mean_std, summarise, welch_verdict

sm = context("baseline", globals())
rows = sm.params.runs
runs = load_runs(rows)
hist = load_histories(rows)
sec = Section("baseline", "Batch-size baseline: small vs large batch")

# %%
spec = sm.params.spec
sb, lb = runs[runs.arm == "SB"], runs[runs.arm == "LB"]
sec.text(
    f"{spec['model'].upper()} (width {spec['width']}, depth {spec['depth']}) on {spec['dataset']}, "
    f"{spec['optimizer']} with learning rate {spec['lr']} for both batch sizes (no scaling), "
    f"{spec['epochs']} epochs, {runs.seed.nunique()} seeds. Small batch {int(sb.batch_size.iloc[0])}, "
    f"large batch {int(lb.batch_size.iloc[0])}."
)

# %%
table = summarise(runs, ["arm", "batch_size"], ["train_acc", "test_acc", "train_loss", "test_loss", "steps"])
sec.table("summary", table, "Final train/test accuracy and loss, mean ± std over seeds (n = seeds).")

# %%
sns.set_theme(style="whitegrid")
fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), layout="constrained")
sns.lineplot(hist, x="epoch", y="test_acc", hue="arm", ax=axes[0], errorbar="sd")
sns.lineplot(hist, x="epoch", y="train_loss", hue="arm", ax=axes[1], errorbar="sd")
axes[0].set_ylabel("test accuracy")
axes[1].set_ylabel("train loss")
axes[1].set_yscale("log")
sec.figure("learning_curves", fig, "Test accuracy and training loss per epoch; band: ± one std over seeds.")

# %%
verdict, p, test = welch_verdict(lb.test_acc, sb.test_acc, claim="less")
gap_verdict, p2, test2 = welch_verdict(lb.train_acc - lb.test_acc, sb.train_acc - sb.test_acc, claim="greater")
sec.claims([
    claim_row("B1", "The large batch reaches lower test accuracy than the small batch after the same epochs.",
              "final test accuracy", f"SB {mean_std(sb.test_acc)} vs LB {mean_std(lb.test_acc)} (p={p:.3g})",
              "(baseline; no published value)", verdict, test),
    claim_row("B2", "The large batch has the larger train-test gap (it generalises worse).",
              "train acc - test acc", f"SB {mean_std(sb.train_acc - sb.test_acc)} vs "
              f"LB {mean_std(lb.train_acc - lb.test_acc)} (p={p2:.3g})", "(baseline; no published value)",
              gap_verdict, test2),
])
sec.save(sm.output.section if hasattr(sm.output, "section") else None)
