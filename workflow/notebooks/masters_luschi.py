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
# update per gradient computation), plain SGD for the paper's 82 epochs (lr /10 at 50% and
# 75%), on 1-D conv nets (AlexNet- and ResNet-8-style) with and without BatchNorm; the BN
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
from largebatch.experiments.masters_luschi import CLASSES, PROTOCOL, networks_of
from largebatch.notebook import context
from largebatch.stats import finalize_claims

ctx = context("masters_luschi", globals())
sec = ctx.section()
block = ctx.block
spec = block["run"]
TOL = float(block["stable_tolerance_pp"])
NETS = networks_of(block)
ids = list(dict.fromkeys(r["run"] for r in ctx.rows))

# %% [markdown]
# Every run is marked stable or not (not diverged, final training loss below 95% of the loss
# at initialisation: the first history row; a no-learning run is trained, not diverged, and not
# stable), its accuracy is the paper's median test accuracy of the last 5 epochs, and the
# sweep's cells are built per seed role; at each batch size the best eta_base is selected on the
# selection seeds.

# %%
hist = A.history_summary(dict(zip(ids, ctx.input.histories)))
st = A.study(ctx.runs(), hist.init_loss, hist.test_median)
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
sec.scope("This scale tests the paper's protocol (plain SGD, 82 epochs, eta = m·eta_base over the paper's grid, "
          "median of the last 5 epochs) on small 1-D conv nets and a 1,024-sample training set; it cannot test "
          "CIFAR-sized data, ImageNet, or the paper's deeper ResNets.")

# %% [markdown]
# ## Evidence

# %%
sec.figure("accuracy_heatmap", F.heatmap(st), seeds=st.n_sel + st.n_test,
           alt=f"Heat maps, one per network and normalisation, of test accuracy over {len(st.ms)} batch sizes and {len(st.grid)} "
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
    ("network", PROTOCOL["network"], "; ".join(
        f"{name}: {k.get('model', spec.get('model'))} width {k.get('width', spec.get('width'))}"
        + (f" depth {k['depth']}" if 'depth' in k else "") for name, k in NETS.items())),
    ("optimiser", PROTOCOL["optimiser"],
     f"SGD, momentum {spec.get('momentum', 0)}, weight decay "
     + ", ".join(f"{k.get('weight_decay', spec.get('weight_decay', 0))} ({name})" for name, k in NETS.items())),
    ("learning rate", PROTOCOL["learning rate"], f"eta = m·eta_base, eta_base = 2^{st.grid[0]}..2^{st.grid[-1]}"),
    ("batch sizes", PROTOCOL["batch sizes"], f"m = {st.ms[0]}..{st.ms[-1]}"),
    ("budget", PROTOCOL["budget"], f"{spec['epochs']} epoch(s), lr x0.1 at epochs {spec.get('milestones', [])}"),
    ("metric", PROTOCOL["metric"], f"median test accuracy of the last {A.LAST_EPOCHS} epochs (one evaluation per epoch)"),
    ("normalisation", PROTOCOL["normalisation"], "BN / none; ghost BN over m_BN samples"),
    ("warm-up", PROTOCOL["warm-up"],
     f"linear from eta x {block['warmup'].get('start', 0):g} over {block['warmup']['epochs']} epoch(s) for m = "
     f"{block['warmup']['batch_sizes']}"
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
    f"The networks are small 1-D conv nets on MNIST-1D ({', '.join(st.nets)}), narrower and shallower than the "
    f"paper's, trained on {int(sweep.steps_per_epoch.max() * sweep.m.min()):,} samples: the largest batch (m = "
    f"{int(largest.m)}) makes {int(largest.steps_per_epoch * spec['epochs'])} updates over the paper's "
    f"{spec['epochs']} epochs. No data augmentation (the paper reports runs with and without). The warm-up "
    f"starts from eta x {(block.get('warmup') or {}).get('start', 0):g} (the paper: eta/32). Selection uses one "
    "seed per cell; every claim is decided on separate test seeds. A selected learning rate at the edge of the grid, a grid that never reaches the "
    "stability limit at some m, or a run of a claim's arm that diverged, did not learn or stopped at a cap makes "
    "the claims that depend on it inconclusive (their precondition).")
sec.save(ctx.output.section)
