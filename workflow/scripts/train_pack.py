"""Snakemake job: train several runs in one process (a pack; see largebatch.packing).

Runs of one batch size that may share a stack (``largebatch.vtrain``) are trained together,
vectorised with torch.func, where the documented rule ``vtrain.prefer_vectorised`` says it
is faster (small MLP batches); every other run is trained with ``train_run``, one after
another.  Either way every run writes its own results/runs/{run}/ files as soon as it
finishes and keeps its final checkpoint, so if the job dies part-way a rerun rebuilds the
finished runs' outputs from their checkpoints instead of training them again (and resumes
interrupted runs from their last periodic checkpoint).
"""

import functools

import torch

from largebatch.data import load_dataset
from largebatch.logs import job_logger
from largebatch.train import job_options, load_weights, resolve_device
from largebatch.vtrain import train_many

log = job_logger(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
device = resolve_device(snakemake.params.device)
specs = [dict(spec) for spec in snakemake.params.specs]
data_files, init_files = snakemake.params.data_files, snakemake.params.init_files
# each dataset and each starting point is read once, however many runs use it
dataset = functools.cache(lambda name: load_dataset(data_files[name], device))
weights = functools.cache(lambda run: load_weights(init_files[run], device))
inits = [weights(spec["init_from"]) if spec["init_from"] else None for spec in specs]
train_many(
    specs,
    dataset,
    snakemake.params.out_dirs,
    device=device,
    init_states=inits,
    keep_checkpoint=True,
    **job_options(snakemake.params, log.info),
)
