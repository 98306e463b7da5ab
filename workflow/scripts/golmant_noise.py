"""Snakemake job: gradient noise scale B_simple (McCandlish et al. 2018) of the smallest-batch
runs' weights at each loss threshold of Golmant et al., one row per checkpoint
(``largebatch.analysis.golmant_noise``; the job is declared in ``experiments.golmant.jobs``)."""

import torch

from largebatch.analysis.golmant_noise import measure_noise
from largebatch.logs import job_logger
from largebatch.train import resolve_device

log = job_logger(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
p = snakemake.params
table = measure_noise(p.points, dict(zip(p.datasets, snakemake.input.data)), list(snakemake.input.models), p.specs,
                      p.noise, device=resolve_device(p.device), log=log.info)
table.to_csv(snakemake.output.noise, index=False)
