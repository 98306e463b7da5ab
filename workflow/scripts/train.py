"""Snakemake job: train one run (resumes from its checkpoint if one exists)."""

import os

import torch

from largebatch.data import load_dataset
from largebatch.logs import job_logger
from largebatch.train import job_options, load_weights, resolve_device, train_run

log = job_logger(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
device = resolve_device(snakemake.params.device)
data = load_dataset(snakemake.input.data, device)
init = load_weights(snakemake.input.init, device) if "init" in snakemake.input.keys() else None
train_run(
    dict(snakemake.params.spec),
    data,
    os.path.dirname(snakemake.output.metrics),
    device=device,
    init_state=init,
    **job_options(snakemake.params, log.info),
)
