"""Snakemake job: gradient noise scale B_simple (McCandlish et al. 2018) of the smallest-batch
runs' weights at each loss threshold of Golmant et al., one row per checkpoint."""

import torch

from largebatch.experiments.golmant import measure_noise
from largebatch.logs import job_logger
from largebatch.train import resolve_device

log = job_logger(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
points = snakemake.params.points
files = {p["dataset"]: f"results/data/{p['dataset']}.pt" for p in points}
table = measure_noise(points, files, snakemake.params.specs, snakemake.params.noise,
                      device=resolve_device(snakemake.params.device), log=log.info)
table.to_csv(snakemake.output[0], index=False)
