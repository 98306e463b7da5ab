"""Snakemake job: train several runs in one process (a pack; see largebatch.packing).

Runs of one batch size that may share a stack (``largebatch.vtrain``) are trained together,
vectorised with torch.func, where the documented rule ``vtrain.prefer_vectorised`` says it
is faster (small MLP batches); every other run is trained with ``train_run``, one after
another.  Either way every run writes its own results/runs/{run}/ files as soon as it
finishes and keeps its final checkpoint, so if the job dies part-way a rerun rebuilds the
finished runs' outputs from their checkpoints instead of training them again (and resumes
interrupted runs from their last periodic checkpoint).

The rule passes run ids only; the specs come from the plan of the job's config (the run id
is the hash of the spec, so the ids are checked against it).
"""

import functools
import os

import torch

from largebatch import paths
from largebatch.data import load_dataset
from largebatch.experiments import build_plan
from largebatch.logs import job_logger
from largebatch.spec import run_id
from largebatch.train import job_options, load_weights, resolve_device
from largebatch.vtrain import train_many

log = job_logger(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
device = resolve_device(snakemake.params.device)
ids = list(snakemake.params.runs)
plan = build_plan(dict(snakemake.config))
specs = [dict(plan.runs[r]) for r in ids]
assert all(run_id(s) == r for s, r in zip(specs, ids)), "a pack's run ids do not match the plan's specs"
# every file comes from the job's inputs/outputs: datasets and starting weights by their path,
# each run's folder from its outputs (paths.RUN_OUTPUTS per run, in run order)
inputs = set(snakemake.input.data) | set(snakemake.input.init)
dataset = functools.cache(lambda name: load_dataset(_input(paths.data_file(name)), device))
weights = functools.cache(lambda run: load_weights(_input(paths.run_file(run, "model.pt")), device))


def _input(path: str) -> str:
    if path not in inputs:
        raise RuntimeError(f"{path} is not an input of this pack job")
    return path


per_run = len(paths.RUN_OUTPUTS)
out_dirs = [os.path.dirname(snakemake.output[per_run * i]) for i in range(len(ids))]
inits = [weights(spec["init_from"]) if spec["init_from"] else None for spec in specs]
train_many(
    specs,
    dataset,
    out_dirs,
    device=device,
    init_states=inits,
    keep_checkpoint=True,
    **job_options(snakemake.params, log.info),
)
