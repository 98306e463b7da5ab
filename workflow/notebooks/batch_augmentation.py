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
# # Hoffer et al. 2019: Augment your batch (batch augmentation)
#
# Batch augmentation (BA): every step takes B distinct samples and trains on M independently
# augmented copies of each (a batch of M·B), with the baseline's steps per epoch and
# hyper-parameters. We compare every M with the M = 1 baseline at equal steps and at equal
# examples seen (B·M·steps), and measure the gradient variance of a BA batch against M·B
# distinct samples. Run by Snakemake (`script:`); in Jupyter, `context()` rebuilds the inputs
# from config.yaml.

# %%
import matplotlib

matplotlib.use("Agg")
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib import pyplot as plt
from scipy import stats as sps

from largebatch.ba import fit_variance_model, predicted_variance
from largebatch.notebook import context
from largebatch.report import Section, load_histories, load_runs
from largebatch.scaling import steps_to_threshold
from largebatch.stats import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED, claim_row, mean_std, welch_verdict

sm = context("batch_augmentation", globals())
block = sm.params.block if hasattr(sm.params, "block") else sm.params.scale
gradvar_path = sm.input.gradvar if hasattr(sm.input, "gradvar") else "results/batch_augmentation/gradient_variance.csv"
rows = sm.params.runs
runs = load_runs(rows)
hist = load_histories(rows)
sec = Section("batch_augmentation", "Hoffer et al. 2019: Augment your batch (batch augmentation)")
ALPHA = 0.05

# %%
spec = block["run"]
B = int(spec["batch_size"])
ms = sorted(int(m) for m in block["multiplicities"])
ms_big = [m for m in ms if m > 1]
ba = runs[runs.arm == "BA"].copy()
base = ba[ba.multiplicity == 1]
S = int(base.steps.max())  # every BA run has the baseline's step budget
n_seeds = ba.seed.nunique()
hist["examples"] = hist["samples"] * hist["multiplicity"]  # examples seen = B * M * steps
hist["label"] = np.where(hist.arm == "BA", "M=" + hist.multiplicity.astype(str), hist.arm)
milestones = spec.get("milestones", [])
sec.text(
    f"{spec['model'].upper()} (width {spec.get('width')}, depth {spec.get('depth')}) on {spec['dataset']}, "
    f"{spec['optimizer'].upper()} lr {spec['lr']}, momentum {spec.get('momentum', 0)}, weight decay "
    f"{spec.get('weight_decay', 0)}, {spec['epochs']} epochs with the learning rate divided by 10 at epoch(s) "
    f"{', '.join(f'{m:g}' for m in milestones) or 'none'}; augmentation '{spec.get('augment', 'none')}'. "
    f"Every step takes B = {B} distinct samples and trains on M augmented copies of each "
    f"(M in {ms}), so all M make the same {S} steps; {n_seeds} seeds per M. "
    f"'Examples seen' is B·M·steps (the samples column of history.csv counts the B distinct samples per step)."
)
sec.protocol([
    {"aspect": "data", "paper": "CIFAR-10 (50,000 train images); also CIFAR-100, ImageNet, PTB, WMT",
     "ours": f"{spec['dataset']}"},
    {"aspect": "network", "paper": "ResNet-44 (README headline run)",
     "ours": f"{spec['model']} width {spec.get('width')}, depth {spec.get('depth')}"},
    {"aspect": "augmentation", "paper": "random crop + flip + cutout (1 hole of 16 px)",
     "ours": str(spec.get("augment", "none"))},
    {"aspect": "batch", "paper": "B = 64 distinct samples, M up to 40 copies",
     "ours": f"B = {B}, M in {ms}"},
    {"aspect": "optimiser", "paper": "SGD lr 0.1, momentum 0.9, weight decay 1e-4, same for every M",
     "ours": f"{spec['optimizer'].upper()} lr {spec['lr']}, momentum {spec.get('momentum', 0)}, "
             f"weight decay {spec.get('weight_decay', 0)}, same for every M"},
    {"aspect": "schedule", "paper": "100 epochs, lr /10 at epoch 81",
     "ours": f"{spec['epochs']} epochs, lr /10 at {', '.join(f'{m:g}' for m in milestones) or 'never'}"},
    {"aspect": "gradient-norm adaptation", "paper": "optional (--adapt-grad-norm); not in the headline command",
     "ours": "not used"},
    {"aspect": "seeds", "paper": "not stated (code default --seed 123)", "ours": str(n_seeds)},
])

# %% [markdown]
# ## Equal steps: the final budget

# %%
def welch_greater(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 2 or len(b) < 2:
        return float("nan")
    if np.all(a == a[0]) and np.all(b == b[0]):
        return 0.0 if a.mean() > b.mean() else 1.0
    return float(sps.ttest_ind(a, b, equal_var=False, alternative="greater").pvalue)


final_rows = []
for m in ms:
    g = ba[ba.multiplicity == m]
    final_rows.append({
        "M": m, "batch seen (B·M)": B * m, "steps": int(g.steps.max()),
        "examples seen": int(g.steps.max()) * B * m,
        "test acc": mean_std(g.test_acc), "train acc": mean_std(g.train_acc),
        "test loss": mean_std(g.test_loss),
        "Δ test acc vs M=1": f"{g.test_acc.mean() - base.test_acc.mean():+.4f}",
        "p (M > 1 better)": "" if m == 1 else f"{welch_greater(g.test_acc, base.test_acc):.3g}",
        "wall s per run": mean_std(g.wall_s, 1), "n": len(g),
    })
final = pd.DataFrame(final_rows)
sec.table("final_budget", final,
          f"Every M after the same {S} steps: mean ± std over seeds. p: one-sided Welch t-test of test accuracy "
          f"against M = 1. Wall time per run is measured on a shared 2-core machine (inflated by contention); "
          f"it shows the extra compute per step that BA pays.")

# %%
sns.set_theme(style="whitegrid")
ba_labels = [f"M={m}" for m in ms]
extra = sorted(set(hist.label) - set(ba_labels))  # the longer M = 1 baselines
order = ba_labels + extra
palette = {**dict(zip(ba_labels, sns.color_palette("viridis", len(ms)))),
           **dict(zip(extra, sns.color_palette("autumn", max(len(extra), 1))))}
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
hb = hist[hist.arm == "BA"]
sns.lineplot(hb, x="step", y="test_acc", hue="label", hue_order=ba_labels, palette=palette,
             errorbar="sd", ax=axes[0])
axes[0].set_xlabel("steps")
axes[0].set_ylabel("test accuracy")
sns.lineplot(hist[hist.step > 0], x="examples", y="test_acc", hue="label", hue_order=order, palette=palette,
             errorbar="sd", ax=axes[1])
axes[1].set_xscale("log")
axes[1].set_xlabel("examples seen (B·M·steps)")
axes[1].set_ylabel("test accuracy")
for ax in axes:
    ax.legend(fontsize=8, title=None)
fig.tight_layout()
sec.figure("accuracy_vs_steps", fig,
           "Test accuracy of every M against steps (left) and against examples seen, B·M·steps (right); "
           "band: ± one std over seeds. Longer M = 1 baselines (if any) on the right only.")

# %% [markdown]
# ## Steps to the baseline's final accuracy

# %%
tau = float(base.test_acc.mean())


def steps_to_tau(run_id):
    h = hist[hist.run == run_id]
    return steps_to_threshold(h, "test_acc", tau, mode="max")


ba["steps_to_tau"] = [steps_to_tau(r) for r in ba.run]
ba["steps_to_tau_censored"] = ba.steps_to_tau.fillna(S)  # never reached: counted at the budget S
tt_rows = []
for m in ms:
    g = ba[ba.multiplicity == m]
    reached = g.steps_to_tau.dropna()
    tt_rows.append({
        "M": m, "reached": f"{len(reached)}/{len(g)}",
        "steps to τ (reached runs)": mean_std(reached, 0),
        "steps to τ (unreached = S)": mean_std(g.steps_to_tau_censored, 0),
        "fraction of S": mean_std(g.steps_to_tau_censored / S, 3),
        "examples seen to τ": mean_std(g.steps_to_tau_censored * B * m, 0),
    })
sec.table("steps_to_baseline", pd.DataFrame(tt_rows),
          f"Steps until the test accuracy first reaches τ = {tau:.4f}, the M = 1 baseline's mean final test "
          f"accuracy (first evaluation at or above τ; evaluations once per epoch plus a log-spaced grid). "
          f"A run that never reaches τ is counted at the budget S = {S}, which can only understate its steps.")

# %% [markdown]
# ## Equal examples seen

# %%
def acc_at_step(run_id, step):
    h = hist[hist.run == run_id].sort_values("step")
    return float(np.interp(step, h.step, h.test_acc))


eq_rows = []
base_final = base.test_acc.to_numpy()
for m in ms_big:
    g = ba[ba.multiplicity == m]
    at = np.array([acc_at_step(r, S / m) for r in g.run])
    p = sps.ttest_ind(at, base_final, equal_var=False).pvalue if len(at) > 1 and len(base_final) > 1 else np.nan
    eq_rows.append({"examples seen": S * B, "arm": f"M={m} at step {S / m:g}", "test acc": mean_std(at),
                    "vs": f"M=1 at step {S}", "vs test acc": mean_std(base_final),
                    "Δ": f"{at.mean() - base_final.mean():+.4f}", "p (two-sided Welch)": f"{p:.3g}"})
longer = runs[runs.arm != "BA"]
for k in sorted(longer.epoch_factor.unique()):
    lk = longer[longer.epoch_factor == k]
    g = ba[ba.multiplicity == k]
    if g.empty:
        continue
    p = sps.ttest_ind(g.test_acc, lk.test_acc, equal_var=False).pvalue if min(len(g), len(lk)) > 1 else np.nan
    eq_rows.append({"examples seen": int(g.steps.max()) * B * k, "arm": f"M={k} at step {int(g.steps.max())}",
                    "test acc": mean_std(g.test_acc), "vs": f"M=1, {k}x epochs (step {int(lk.steps.max())})",
                    "vs test acc": mean_std(lk.test_acc), "Δ": f"{g.test_acc.mean() - lk.test_acc.mean():+.4f}",
                    "p (two-sided Welch)": f"{p:.3g}"})
sec.table("equal_examples", pd.DataFrame(eq_rows),
          "Equal examples seen (B·M·steps). Upper rows: each M read off its curve at the M = 1 budget's examples "
          "(step S/M, linear interpolation between evaluations; the M > 1 runs have not had their learning-rate "
          "drop there, the baseline has). Lower rows: M = k at its budget against the M = 1 baseline trained k "
          "times longer with the schedule stretched by k: the compute-matched control.")

# %% [markdown]
# ## Gradient variance

# %%
gv = pd.read_csv(gradvar_path)
n_train = int(gv.n_train.iloc[0])
fits = []
for (which, seed), g in gv.groupby(["model", "seed"]):
    f = fit_variance_model(g.to_dict("records"), n_train)
    fits.append({"model": which, "seed": seed, **f})
fits = pd.DataFrame(fits)
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharex=True)
gv["scheme label"] = gv.scheme.map({"ba": "BA: M copies of B samples", "distinct": "M·B distinct samples"})
for ax, which in zip(axes, ["initial", "final"]):
    g = gv[gv.model == which]
    sns.lineplot(g, x="multiplicity", y="trace_cov", hue="scheme label", marker="o", errorbar="sd", ax=ax)
    fw = fits[fits.model == which]
    a, b = fw.a.mean(), fw.b.mean()
    grid = np.array(ms)
    for scheme, color in (("ba", sns.color_palette()[0]), ("distinct", sns.color_palette()[1])):
        ax.plot(grid, [predicted_variance(a, b, B, int(m), n_train, scheme) for m in grid], "--", color=color,
                lw=1, alpha=0.8)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(ms, [str(m) for m in ms])
    ax.set_xlabel("M")
    ax.set_ylabel("gradient variance  tr Cov(g)" if which == "initial" else "")
    ax.set_title(f"{which} weights of the M = 1 runs")
    ax.legend(fontsize=8, title=None)
fig.tight_layout()
sec.figure("gradient_variance", fig,
           f"Trace of the covariance of the mini-batch gradient (train-mode forward, {int(gv.draws.iloc[0])} "
           f"draws per point; mean ± std over the {gv.seed.nunique()} seeds' models) for M augmented copies of "
           f"B = {B} samples and for M·B distinct samples. Dashed: the variance model a·f(B)/B + b/(MB) (BA) and "
           f"a·f(MB)/(MB) + b/(MB) (distinct) with the fitted between-sample variance a and augmentation "
           f"variance b (seed means).")

var_rows = []
for which in ("initial", "final"):
    g = gv[gv.model == which]
    v1 = g[(g.scheme == "ba") & (g.multiplicity == 1)].set_index("seed").trace_cov
    for m in ms:
        vb = g[(g.scheme == "ba") & (g.multiplicity == m)].set_index("seed").trace_cov
        vd = g[(g.scheme == "distinct") & (g.multiplicity == m)].set_index("seed").trace_cov
        var_rows.append({"weights": which, "M": m, "BA variance": mean_std(vb, 4),
                         "distinct variance": mean_std(vd, 4),
                         "BA / M=1": mean_std(vb / v1, 3), "distinct / M=1": mean_std(vd / v1, 3),
                         "1/M": f"{1 / m:.3f}"})
sec.table("gradient_variance", pd.DataFrame(var_rows),
          "Gradient variance per M (mean ± std over seeds) and relative to the M = 1 value of the same model.")
fit_table = fits.groupby("model", sort=False).agg(
    a=("a", lambda v: mean_std(v, 4)), b=("b", lambda v: mean_std(v, 4)),
    aug_share=("aug_share", lambda v: mean_std(v, 3)),
    max_rel_residual=("max_rel_residual", lambda v: mean_std(v, 3))).reset_index()
fit_table.columns = ["weights", "a (between samples)", "b (augmentation)", "b/(a+b)", "max relative residual"]
sec.table("variance_model", fit_table,
          "Least-squares fit (relative residuals) of the variance model per model; b/(a+b) is the share of a "
          "single sample's gradient variance that comes from the augmentation, the only part BA can average out.")

# %% [markdown]
# ## Claims

# %%
claims = []
rho, p_rho = sps.spearmanr(ba.multiplicity, ba.test_acc, alternative="greater")
if not np.isfinite(rho) or rho <= 0:
    v_trend = NOT_REPRODUCED if np.isfinite(rho) else INCONCLUSIVE
else:
    v_trend = REPRODUCED if p_rho < ALPHA else INCONCLUSIVE
claims.append(claim_row(
    "C1", "Larger M reaches higher accuracy at equal steps (same steps and hyper-parameters as the baseline).",
    f"final test accuracy vs M after {S} steps", f"Spearman rho = {rho:.3f} (p = {p_rho:.3g}) over "
    f"{len(ba)} runs; " + ", ".join(f"M={m}: {ba[ba.multiplicity == m].test_acc.mean():.4f}" for m in ms),
    "claim (figures; numbers not retrieved)", v_trend,
    f"Spearman rank correlation of M with final test accuracy over all runs, one-sided (rho > 0), alpha={ALPHA}: "
    f"reproduced p < alpha; not reproduced rho <= 0; else inconclusive"))
for m in ms_big:
    g = ba[ba.multiplicity == m]
    verdict, p, test = welch_verdict(g.test_acc, base.test_acc, claim="greater")
    claims.append(claim_row(
        f"C1.{m}", f"M = {m} reaches higher test accuracy than M = 1 after the same steps.",
        "final test accuracy", f"M={m} {mean_std(g.test_acc)} vs M=1 {mean_std(base.test_acc)} (p={p:.3g})",
        "claim (numbers not retrieved)", verdict, test))
base_t = ba[ba.multiplicity == 1].steps_to_tau_censored
for m in ms_big:
    g = ba[ba.multiplicity == m]
    verdict, p, test = welch_verdict(g.steps_to_tau_censored, base_t, claim="less")
    claims.append(claim_row(
        f"C2.{m}", f"M = {m} reaches the baseline's final accuracy in fewer steps than M = 1.",
        f"steps to τ = {tau:.4f} (M = 1 mean final test acc; unreached = budget {S})",
        f"M={m} {mean_std(g.steps_to_tau_censored, 0)} ({g.steps_to_tau.notna().sum()}/{len(g)} reached) vs "
        f"M=1 {mean_std(base_t, 0)} (p={p:.3g})",
        "claim: BA reduces the SGD updates needed for the same accuracy", verdict, test))
m_top = max(ms)
fin = gv[gv.model == "final"]
v1 = fin[(fin.scheme == "ba") & (fin.multiplicity == 1)].sort_values("seed").trace_cov.to_numpy()
vb = fin[(fin.scheme == "ba") & (fin.multiplicity == m_top)].sort_values("seed").trace_cov.to_numpy()
vd = fin[(fin.scheme == "distinct") & (fin.multiplicity == m_top)].sort_values("seed").trace_cov.to_numpy()
verdict, p, test = welch_verdict(vb, v1, claim="less")
claims.append(claim_row(
    "G1", f"BA lowers the gradient variance: M = {m_top} augmented copies of B samples give a less noisy gradient "
    "than the B samples alone.", f"tr Cov(g), final weights of the M = 1 runs",
    f"M={m_top} BA {mean_std(vb, 4)} vs M=1 {mean_std(v1, 4)} (ratio {np.mean(vb / v1):.3f}; p={p:.3g})",
    "claim (analysis of gradient variance; numbers not retrieved)", verdict, test))
verdict, p, test = welch_verdict(vb, vd, claim="greater")
claims.append(claim_row(
    "G2", f"The copies are correlated: M = {m_top} copies of B samples reduce the variance less than M·B distinct "
    "samples would.", "tr Cov(g), final weights of the M = 1 runs",
    f"BA {mean_std(vb, 4)} vs distinct {mean_std(vd, 4)} (p={p:.3g})",
    "follows from the paper's variance analysis (correlated instances)", verdict, test))
sec.claims(claims)

# %%
verdicts = {c["id"]: c["verdict"] for c in claims}
c2_ok = [m for m in ms_big if verdicts[f"C2.{m}"] == REPRODUCED]
c1_ok = [m for m in ms_big if verdicts[f"C1.{m}"] == REPRODUCED]
share = fits[fits.model == "final"].aug_share.mean()
gap = {m: (ba[ba.multiplicity == m].train_acc - ba[ba.multiplicity == m].test_acc).mean() for m in ms}
sec.text(
    f"Train minus test accuracy at the budget: "
    + ", ".join(f"M={m}: {gap[m]:+.4f}" for m in ms)
    + (". The network does not overfit at this scale (train and test accuracy within 0.05 for every M), so "
       "a gain at equal steps here is faster optimisation, not the regularisation the paper also reports"
       if max(abs(v) for v in gap.values()) < 0.05 else "")
    + ". At equal steps, M > 1 beats the baseline significantly for M in "
    f"{c1_ok or 'none'}; it reaches the "
    f"baseline's final accuracy in fewer steps for M in {c2_ok or 'none'}. BA pays for this with M times the "
    f"examples per step: the equal-examples table shows the accuracy per example seen. On the final weights, "
    f"the fitted variance model puts a share b/(a+b) = {share:.2f} of a single sample's gradient variance on the "
    f"augmentation, the only part that M copies can average out (G1: {verdicts['G1']}; G2: {verdicts['G2']}).",
    heading="Reading",
)
sec.save(sm.output.section if hasattr(sm.output, "section") else None)
