"""SWAP: Gupta, Akle Serrano & DeCoste 2020, "Stochastic Weight Averaging in Parallel".

Planning and declaration only (imported while Snakemake parses the workflow, so nothing
heavy here): the runs (``plan``), the two computations that are not training runs, and
the section's tables and figures.

* phase 3, one job per seed (``swap_average_<seed>``, ``workflow/scripts/swap_average.py``):
  average the phase-2 workers' weights and recompute the BatchNorm statistics on the
  training data (``largebatch.swap``, i.e. ``torch.optim.swa_utils``), then evaluate;
* the analysis (``swap_analysis``): test accuracy of the average of the first k workers
  and the loss on the plane through the phase-1 output, one worker and the average.

The section (``workflow/notebooks/swap.py``, analysis in ``largebatch.analysis.swap``)
also reads the job-time records (Snakemake benchmarks) of every run's training job and of
the averaging jobs, for the time claim.

Protocol (one experiment per seed):

* **SB** and **LB** baselines: the shared run settings with the small / the large
  batch for ``epochs`` epochs (the same total budget in epochs).
* **phase 1**: the LB run with ``stop_train_acc``: it stops at the first evaluation
  (once per epoch) whose training accuracy reaches the threshold, capped at the LB
  budget.  Same seed, data order and schedule as the LB baseline, so phase 1 is the
  LB baseline stopped early.
* **phase 2**: ``workers`` runs, initialised from phase 1's final weights
  (``init_from``), trained with the small batch for ``phase2_epochs`` epochs from
  ``phase2_lr`` down to 0 (cosine), each with its own data order (``data_seed``).
  Optimiser state (momentum) starts fresh in every worker.
* **phase 3**: the average of the workers (jobs ``swap_average_<seed>``).

Only weights pass between phases; the engine starts every run from ``init_from``'s
``model.pt``.
"""

from __future__ import annotations

from .. import paths
from ..spec import run_id
from .base import Figure, Job, Paper, Table, View, seeds_of

TITLE = "SWAP (Gupta et al. 2020): stochastic weight averaging in parallel"
KEY = "swap"

ARMS = ("SB", "LB", "phase1", "worker")

# --------------------------------------------------------------------------- the paper
#: where the claims S1-S3 are made (the claims table's paper_source). The paper is ICLR 2020
#: (OpenReview rygFWAEFwS), arXiv 2001.02312; no official code was published. Its accuracy
#: and time tables were not available to us, so no claim compares with a published number.
SOURCE = "Gupta, Akle Serrano & DeCoste 2020, abstract and Sec. 4 (claims; table values not available to us)"
#: where claim S4 comes from: the per-worker test-accuracy curves and the averaged model
SOURCE_FIG1 = "Gupta, Akle Serrano & DeCoste 2020, Fig. 1 (worker curves and the averaged model)"
#: the OpenReview reviews of the paper, which quote its experimental set-up
SOURCE_REVIEWS = "the OpenReview reviews of Gupta et al. 2020 (rygFWAEFwS), which quote its set-up"
#: facts we did not confirm from any copy of the paper (secondary notes on its tables)
UNCONFIRMED = "not confirmed from a copy of the paper"

#: the paper's protocol as the report's protocol table states it: aspect -> (the paper's
#: side, its source). Ours is filled in by the notebook from the config block.
PROTOCOL = {
    "data / network": ("CIFAR-10, CIFAR-100, ImageNet; DAWNBench ResNet-9 (CIFAR), ResNet-50",
                       f"data sets: abstract; networks: {UNCONFIRMED}"),
    "workers": ("8 (one per V100 GPU, Horovod)",
                f"{SOURCE_REVIEWS}: 'one machine with 8 NVIDIA Tesla V100 GPUs', Horovod"),
    "batch sizes": ("large batch in phase 1 on all GPUs, small batch per worker in phase 2",
                    f"abstract (large mini-batches first, then models trained independently); {SOURCE_REVIEWS}"),
    "optimiser": ("SGD with Nesterov momentum (DAWNBench ResNet-9 recipe)", UNCONFIRMED),
    "baselines": ("SGD small batch and SGD large batch", f"the accuracy and time tables, {UNCONFIRMED}"),
    "phase 1 stop": ("a training-accuracy threshold ('stopping accuracy', per data set)",
                     f"{SOURCE_REVIEWS}: the hyper-parameter tables' 'Stopping Accuracy (%)'"),
    "phase 2": ("independent small-batch SGD, own data order, fixed budget",
                f"abstract (independently and in parallel); data order: {SOURCE_REVIEWS}"),
    "phase 3": ("average the weights, recompute the BN statistics",
                f"abstract (averaging the weights); BN statistics: {SOURCE_REVIEWS}"),
    "time": ("wall time on 8 GPUs", f"hardware: {SOURCE_REVIEWS}; the time tables: {UNCONFIRMED}"),
    "seeds": ("not stated in what we could read", "-"),
}


# --------------------------------------------------------------------------- runs
def phase1_spec(block: dict, seed: int) -> dict:
    return {**block["run"], "batch_size": block["large_batch"], "epochs": block["epochs"], "seed": seed,
            "stop_train_acc": block["stop_train_acc"]}


def worker_spec(block: dict, seed: int, worker: int, parent: str) -> dict:
    """Phase-2 worker ``worker`` (0-based) of seed ``seed``, starting from run ``parent``."""
    spec = {**block["run"], "batch_size": block["small_batch"], "epochs": block["phase2_epochs"], "seed": seed,
            "init_from": parent, "data_seed": worker_data_seed(seed, worker), "warmup_epochs": 0.0,
            "schedule": "cosine", "lr": block.get("phase2_lr", block["run"]["lr"])}
    if spec.get("lr_scaling", "none") != "none":
        # the phase-2 learning rate is given for the small batch itself
        spec["lr_scaling"], spec["base_batch"] = "none", None
    return spec


def worker_data_seed(seed: int, worker: int) -> int:
    """Data order of a worker: distinct from every other worker's and from phase 1's (= seed)."""
    return 1_000_003 * (seed + 1) + worker + 1


def plan(block: dict, scale: dict) -> list[tuple[dict, dict]]:
    for key in ("small_batch", "large_batch", "epochs", "phase2_epochs", "workers", "stop_train_acc"):
        block[key]  # KeyError names a missing key
    if block["large_batch"] <= block["small_batch"]:
        raise ValueError(f"large_batch = {block['large_batch']} must be larger than small_batch = "
                         f"{block['small_batch']}")
    if block["workers"] < 1:
        raise ValueError(f"workers = {block['workers']} must be >= 1")
    if "epochs" in block["run"] or "steps" in block["run"]:
        raise ValueError("run must not set epochs/steps: the budget is `epochs` (SB, LB, phase-1 cap) "
                         "and `phase2_epochs` (workers)")
    defaults = scale.get("defaults", {})
    runs = []
    for seed in seeds_of(block):
        for arm, batch in (("SB", block["small_batch"]), ("LB", block["large_batch"])):
            runs.append(({"arm": arm, "seed": seed, "worker": -1, "batch_size": batch},
                         {**block["run"], "batch_size": batch, "epochs": block["epochs"], "seed": seed}))
        p1 = phase1_spec(block, seed)
        runs.append(({"arm": "phase1", "seed": seed, "worker": -1, "batch_size": block["large_batch"]}, p1))
        # the id build_registry will give phase 1 (scale defaults first, as it does)
        parent = run_id({**defaults, **p1})
        for w in range(block["workers"]):
            runs.append(({"arm": "worker", "seed": seed, "worker": w, "batch_size": block["small_batch"]},
                         worker_spec(block, seed, w, parent)))
    return runs


def run_of(rows: list[dict], arm: str, seed) -> str:
    """Run id of the one ``arm`` run (SB, LB, phase1) of ``seed`` in the paper's run table."""
    found = [r["run"] for r in rows if r["arm"] == arm and r["seed"] == int(seed)]
    if len(found) != 1:
        raise KeyError(f"swap: expected one {arm!r} run for seed {seed}, found {len(found)}")
    return found[0]


def worker_runs(rows: list[dict], seed) -> list[str]:
    """Run ids of the phase-2 workers of ``seed``, in worker order."""
    mine = [r for r in rows if r["arm"] == "worker" and r["seed"] == int(seed)]
    return [r["run"] for r in sorted(mine, key=lambda r: r["worker"])]


def seeds_in(rows: list[dict]) -> list[int]:
    """The seeds of the paper's run table, sorted (the section's and the jobs' order)."""
    return sorted({r["seed"] for r in rows})


# --------------------------------------------------------------------------- jobs
def average_job(seed: int) -> str:
    """Name of the phase-3 job of ``seed`` (also its benchmark file's name)."""
    return f"swap_average_{seed}"


def jobs(view: View) -> list[Job]:
    """Phase 3 per seed, then the analysis of the averaged models (k-worker curve, loss plane)."""
    rows, block = view.rows, view.block
    seeds = seeds_in(rows)
    workers = {s: worker_runs(rows, s) for s in seeds}
    data = view.data_file(workers[seeds[0]][0])
    bn_batch = block.get("bn_batch", block["small_batch"])
    models = lambda ids: [paths.run_file(r, "model.pt") for r in ids]  # noqa: E731
    averages = [Job(
        name=average_job(s), script="swap_average.py",
        input={"data": data, "workers": models(workers[s])},
        output={"metrics": paths.paper_file(KEY, "average", f"{s}.json"),
                "model": paths.paper_file(KEY, "average", f"{s}.pt")},
        params={"seed": s, "workers": workers[s], "phase1": run_of(rows, "phase1", s),
                "spec": view.runs[workers[s][0]], "bn_batch": bn_batch},
    ) for s in seeds]
    analysis = Job(
        name="swap_analysis", script="swap_analysis.py",
        input={"data": data, "phase1": models(run_of(rows, "phase1", s) for s in seeds),
               "workers": models(r for s in seeds for r in workers[s]),
               "averages": [j.output["model"] for j in averages]},
        output={name: paths.paper_file(KEY, "analysis", f"{stem}.csv")
                for name, stem in (("curve", "average_curve"), ("plane", "plane"), ("points", "plane_points"))},
        params={"seeds": seeds, "workers": workers, "spec": view.runs[workers[seeds[0]][0]],
                "bn_batch": bn_batch, "plane": block.get("plane", {})},
    )
    return [*averages, analysis]


def inputs(view: View) -> dict:
    """The section's inputs besides the runs: phase 3's metrics and job times, every run's
    training-job time (one file per run id, in plan order: SWAP's runs are never packed) and
    the analysis tables."""
    *averages, analysis = jobs(view)
    runs = [view.train_benchmark(r) for r in view.ids]
    return {
        "averages": [j.output["metrics"] for j in averages],
        "average_benchmarks": [paths.benchmark_file(KEY, j.name) for j in averages],
        "run_benchmarks": runs,
        **analysis.output,
    }


# --------------------------------------------------------------------------- the section
OUTPUTS = [
    Table("summary", "Final train and test accuracy and time, mean ± sd over seeds (phase 2: over every worker of "
          "every seed), with the runs' stop reasons (with count): 'budget', the protocol's own epochs (SB, LB, "
          "workers: cosine to 0); 'train_acc', phase 1 reached its threshold; 'cap', phase 1 reached the LB budget "
          "first (not SWAP's protocol). For SWAP, epochs and times follow the critical path: phase 1 + slowest "
          "worker + averaging. "
          "Training-loop time: the engine's own clock (evaluations included, no start-up); job time: the "
          "Snakemake benchmark of each run's own job, start-up and data load included (where a record is missing, "
          "the training-loop time stands in). Other jobs shared the machine."),
    Table("times", "Time per seed in seconds: job times (Snakemake benchmarks) and, in the last two columns, "
          "training-loop times. SWAP in parallel = phase 1 + slowest worker + averaging; one after another = "
          "phase 1 + every worker + averaging (one machine)."),
    Table("sanity", "A sanity check, not a claim: phase 1 stops part-way through its learning-rate schedule, at the "
          "{stop_pct:g}% training-accuracy threshold, so phases 2 and 3 are expected to improve on it by "
          "construction; a loss here would mean the pipeline is broken."),
    Figure("test_accuracy", "Left: test accuracy over training for one seed (y axis zoomed on the end of training): "
           "phase 1 (the large-batch LB run stopped at the training-accuracy threshold), the phase-2 workers "
           "continuing from it with the small batch, and the averaged model of phase 3 (star), with the small- and "
           "large-batch (SB, LB) baselines (phase 1 is the LB run stopped early, so the two curves coincide until "
           "phase 1 ends). Right: test accuracy of the average of the first k workers (BN statistics recomputed), "
           "mean ± sd over seeds; k = 1 is worker 1 with recomputed statistics.",
           label="test accuracy over training"),
    Figure("accuracy_time", "Test accuracy against training-loop time (the engine's clock, no start-up): the SB and "
           "LB baselines, SWAP phase 1 and its workers (started together when phase 1 ends, as on parallel "
           "machines), the averaged model at phase 1 + slowest worker + averaging; markers: where the other seeds' "
           "SB and SWAP runs ended. The paper's time values were not available to us, so none are drawn."),
    Figure("loss_plane", "Training loss and test error on the plane through the phase-1 model, one phase-2 worker "
           "(worker 1) and the SWAP average (seed {seed}), as the paper's loss-plane plots; at each grid point the "
           "BatchNorm statistics are recomputed on the training data before evaluating. Axes in units of "
           "weight-space distance.", label="loss plane"),
]

# S3 compares wall-clock times of runs (phase 1 + the slowest worker vs SB), so every run trains
# alone in its own job (packable=False), as the paper's workers each run on their own device.
PAPER = Paper(key=KEY, title=TITLE, category="5 SWAP (Gupta et al. 2020)", plan=plan, outputs=OUTPUTS,
              jobs=jobs, inputs=inputs, packable=False)
