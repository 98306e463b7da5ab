"""Snakemake job (swap_analysis): test accuracy of the average of the first k workers (every
seed), and the loss on the plane through phase 1, worker 1 and the average (first seed).
Paths and settings come from the job (largebatch.experiments.swap.jobs)."""

import logging

import pandas as pd
import torch

from largebatch.data import load_dataset
from largebatch.logs import job_logger
from largebatch.swap import average_curve, loss_plane
from largebatch.train import load_weights, resolve_device

log = job_logger(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
device = resolve_device(snakemake.params.device)
data = load_dataset(snakemake.input.data, device)
spec = dict(snakemake.params.spec)
bn_batch = snakemake.params.bn_batch
seeds = list(snakemake.params.seeds)
# the job lists every seed's worker models seed by seed, in worker order
models = iter(snakemake.input.workers)
worker_models = {seed: [next(models) for _ in snakemake.params.workers[seed]] for seed in seeds}

rows = []
for seed in seeds:
    states = [load_weights(path, device) for path in worker_models[seed]]
    for row in average_curve(states, spec, data, bn_batch=bn_batch, device=device):
        rows.append({"seed": seed, **row})
    log.info("seed %s: k-worker averages done", seed)
pd.DataFrame(rows).to_csv(snakemake.output.curve, index=False)

plane = dict(snakemake.params.plane)
first = seeds[0]
states = {
    "phase 1": load_weights(snakemake.input.phase1[0], device),
    "worker 1": load_weights(worker_models[first][0], device),
    "SWAP average": load_weights(snakemake.input.averages[0], device),
}
grid, points = loss_plane(
    states,
    spec,
    data,
    grid=plane.get("grid", 11),
    margin=plane.get("margin", 0.25),
    samples=plane.get("samples"),
    bn_batch=bn_batch,
    device=device,
)
pd.DataFrame(grid).assign(seed=first).to_csv(snakemake.output.plane, index=False)
pd.DataFrame(points).assign(seed=first).to_csv(snakemake.output.points, index=False)
log.info("loss plane: %d points (seed %s)", len(grid), first)
logging.shutdown()
