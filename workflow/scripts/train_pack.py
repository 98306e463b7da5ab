"""Snakemake job: train several runs in one process (a pack), one after another.

Each run keeps its final checkpoint, so if the job dies part-way a rerun rebuilds the
finished runs' outputs from their checkpoints instead of training them again.
"""

import torch

from largebatch.data import load_dataset
from largebatch.logs import job_logger
from largebatch.train import load_weights, resolve_device, train_run

log = job_logger(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
device = resolve_device(snakemake.params.device)
datasets = {}
for run, spec in zip(snakemake.params.runs, snakemake.params.specs):
    name = spec["dataset"]
    if name not in datasets:
        datasets[name] = load_dataset(f"results/data/{name}.pt", device)
    init = None
    if spec["init_from"]:
        init = load_weights(f"results/runs/{spec['init_from']}/model.pt", device)
    train_run(
        dict(spec),
        datasets[name],
        f"results/runs/{run}",
        device=device,
        init_state=init,
        checkpoint_every_s=snakemake.params.checkpoint_every_s,
        log=log.info,
        keep_checkpoint=True,
    )
