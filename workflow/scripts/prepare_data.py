"""Snakemake job: prepare one dataset into a tensor file with a checksum."""

import logging

from largebatch.data import prepare_dataset
from largebatch.logs import job_logger

log = job_logger(snakemake.log[0])
digest = prepare_dataset(
    snakemake.wildcards.dataset,
    dict(snakemake.params.cfg),
    snakemake.output.data,
    root=snakemake.params.root,
    download=snakemake.params.download,
)
log.info("prepared %s, sha256 %s", snakemake.output.data, digest)
logging.shutdown()
