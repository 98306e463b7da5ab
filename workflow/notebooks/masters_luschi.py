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
# # Masters & Luschi 2018: revisiting small batch training
#
# Batch size m x base learning rate eta_base (eta = m * eta_base, a constant average weight
# update per gradient computation), a fixed epoch budget, with and without BatchNorm; the BN
# batch size decoupled from m (ghost BN); warm-up for the larger batches. Best cells are
# selected on one set of seeds and tested on another. The analysis is in
# `largebatch.analysis.masters_luschi` (cells, selection, tables), `..._claims` (M1-M5) and
# `..._figures`. Run by Snakemake (`script:`); in Jupyter, `context()` builds the same inputs
# and outputs from config.yaml (`largebatch.notebook`).

# %%
import time

T0 = time.perf_counter()

import matplotlib

matplotlib.use("Agg")

from largebatch.analysis import masters_luschi as A
from largebatch.analysis import masters_luschi_claims as C
from largebatch.analysis import masters_luschi_figures as F
from largebatch.experiments.masters_luschi import CLASSES, PROTOCOL
from largebatch.notebook import context
from largebatch.stats import finalize_claims

ctx = context("masters_luschi", globals())
sec = ctx.section()
block = ctx.block
spec = block["run"]
TOL = float(block["stable_tolerance_pp"])
ids = list(dict.fromkeys(r["run"] for r in ctx.rows))

# %% [markdown]
# Every run is marked stable or not (not diverged, final training loss below 95% of the loss
# at initialisation: the first history row), and the sweep's cells are built per seed role;
# at each batch size the best eta_base is selected on the selection seeds.

# %%
st = A.study(ctx.runs(), A.initial_losses(dict(zip(ids, ctx.input.histories))))
bn = A.bn_study(st.runs)

# %% [markdown]
# ## Claims (decided before the evidence is laid out, so the summary can state them)

# %%
claims, facts = C.sweep_claims(st, block)
claims += C.bn_claim(bn, block)
verdict = {r["id"]: r["verdict"] for r in finalize_claims(claims)}


def supported(*prefixes: str) -> list[str]:
    """The ids of the claims an item is evidence for (M1 -> M1a, M1b, ...)."""
    return [c["id"] for c in claims if c["id"][:2] in prefixes]


sec.summary(C.summary(st, facts, verdict, spec["epochs"]))
sec.scope("This scale can test the shape of the (m, eta_base) landscape of a small MLP in a short fixed budget; it "
          "cannot test the paper's convolutional networks trained for 82 epochs.")

# %% [markdown]
# ## Evidence

# %%
sec.figure("accuracy_heatmap", F.heatmap(st), seeds=st.n_sel + st.n_test,
           alt=f"Heat maps, one per normalisation, of test accuracy over {len(st.ms)} batch sizes and {len(st.grid)} "
               "base learning rates; diverged cells are grey; the selected learning rate per batch size is outlined.",
           supports=supported("M1", "M2", "M3"))

# %%
chance = F.chance_levels(st.datasets, ctx.datasets, CLASSES)
sec.figure("best_vs_m", F.best_vs_m(st, chance), n_test=st.n_test,
           alt="Line plot of test accuracy against batch size on a log2 axis, one line per normalisation, with the "
               "warm-up runs dashed and the paper's best range m = 2 to 32 shaded.",
           supports=supported("M1", "M4"))

# %%
sec.figure("stable_range", F.stable_range(st, TOL), tol=TOL,
           alt="Two line plots against batch size on a log2 axis: width of the acceptable learning-rate range in "
               "octaves, and the fraction of learning rates that trained stably, one line per normalisation.",
           supports=supported("M2", "M3"))

# %%
sec.table("per_batch_size", A.per_batch_size_table(st), n_sel=st.n_sel, n_test=st.n_test,
          supports=supported("M1", "M3"))
sec.table("sweep_cells", A.sweep_cells_table(st))

# %%
if bn is not None:
    ref = block["bn_batch"].get("reference")
    sec.figure("bn_batch_accuracy", F.bn_batch(bn), ref=ref,
               grid=", ".join(A.eta(k) for k in sorted(bn.runs.lr_log2.unique())),
               alt="Line plot of test accuracy against the BN batch size on a log2 axis, one line per SGD batch "
                   "size, with stars marking the test-seed means compared in claim M5.", supports=supported("M5"))
    sec.table("bn_batch", A.bn_batch_table(bn), ref=ref, supports=supported("M5"))

# %%
if block.get("warmup"):
    sec.table("warmup", C.warmup_table(st, facts), epochs=block["warmup"]["epochs"],
              batch_sizes=block["warmup"]["batch_sizes"], supports=supported("M4"))

# %%
sec.claims(claims)

# %%
sweep = st.sweep
sec.protocol([{"aspect": aspect, "paper": paper, "ours": ours} for aspect, paper, ours in [
    ("data", PROTOCOL["data"],
     f"{', '.join(st.datasets)} ({int(sweep.steps_per_epoch.max() * sweep.m.min()):,} training samples)"),
    ("network", PROTOCOL["network"], f"{spec['model']} width {spec['width']} depth {spec['depth']}"),
    ("optimiser", PROTOCOL["optimiser"],
     f"SGD, momentum {spec['momentum']}, weight decay {spec.get('weight_decay', 0)}"),
    ("learning rate", PROTOCOL["learning rate"], f"eta = m·eta_base, eta_base = 2^{st.grid[0]}..2^{st.grid[-1]}"),
    ("batch sizes", PROTOCOL["batch sizes"], f"m = {st.ms[0]}..{st.ms[-1]}"),
    ("budget", PROTOCOL["budget"], f"{spec['epochs']} epoch(s), lr x0.1 at epochs {spec.get('milestones', [])}"),
    ("metric", PROTOCOL["metric"], "final test accuracy"),
    ("normalisation", PROTOCOL["normalisation"], "BN / none; ghost BN over m_BN samples"),
    ("warm-up", PROTOCOL["warm-up"],
     f"linear from 0 over {block['warmup']['epochs']} epoch(s) for m = {block['warmup']['batch_sizes']}"
     if block.get("warmup") else "none"),
    ("augmentation", PROTOCOL["augmentation"], spec.get("augment", "none")),
    ("seeds", PROTOCOL["seeds"], f"{st.n_sel} selection + {st.n_test} test seeds per cell"),
]])

# %%
# wall and CPU time of the jobs that trained this section's runs (Snakemake benchmark files)
times = A.job_times(list(ctx.input.benchmarks), ids)
sec.table("timing", A.timing_table(times))
sec.text(f"Compute: {len(times)} training jobs for {st.runs.run.nunique()} runs took {times.wall.sum():.0f} "
         f"job-seconds of wall time ({times.cpu.sum():.0f} CPU-seconds); this analysis took "
         f"{time.perf_counter() - T0:.0f} s.", heading="Compute")

# %%
largest = sweep.sort_values("m").iloc[-1]
sec.caveats(
    f"The network is a {spec['depth']}-layer MLP of width {spec['width']} on MNIST-1D, far smaller than the paper's "
    f"convolutional networks, and BatchNorm in an MLP over 2 to 4 samples is more degenerate than in a conv net "
    f"(which also averages over positions). The budget is {spec['epochs']} epoch(s) instead of 82, so the largest "
    f"batch (m = {int(largest.m)}) makes only {int(largest.steps_per_epoch * spec['epochs'])} updates; a fixed "
    f"epoch budget this short favours small batches more strongly than the paper's. We use momentum 0.9 where the "
    "paper uses plain SGD, report the final test accuracy rather than the median of the last 5 epochs, and warm "
    "up from 0 rather than from eta/32. A selected learning rate at the edge of the grid, or a grid that never "
    "diverges at some m, makes the claims that depend on it inconclusive (their precondition).")
sec.save(ctx.output.section)
