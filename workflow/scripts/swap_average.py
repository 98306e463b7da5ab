"""Snakemake job (swap_average_<seed>): SWAP phase 3 for one seed -- average the phase-2
workers' weights, recompute the BatchNorm statistics on the training data, evaluate, save the
model. Paths and settings come from the job (largebatch.experiments.swap.jobs)."""

import json
import logging

import torch

from largebatch.data import load_dataset
from largebatch.logs import job_logger
from largebatch.swap import swap_average
from largebatch.train import load_weights, resolve_device

log = job_logger(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
device = resolve_device(snakemake.params.device)
data = load_dataset(snakemake.input.data, device)
states = [load_weights(path, device) for path in snakemake.input.workers]
model, metrics = swap_average(
    states, dict(snakemake.params.spec), data, bn_batch=snakemake.params.bn_batch, device=device
)
metrics.update(
    seed=int(snakemake.params.seed),
    phase1=snakemake.params.phase1,
    worker_runs=list(snakemake.params.workers),
    device=str(device),
)
torch.save(model.state_dict(), snakemake.output.model)
with open(snakemake.output.metrics, "w") as f:
    json.dump(metrics, f, indent=2)
log.info(
    "seed %s: average of %d workers, test acc %.4f (averaging + BN %.2fs)",
    metrics["seed"], metrics["workers"], metrics["test_acc"], metrics["average_s"],
)
logging.shutdown()
