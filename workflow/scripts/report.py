"""Snakemake job: one self-contained HTML report from every paper section."""

from pathlib import Path

from largebatch.logs import job_logger
from largebatch.report import build_report

log = job_logger(snakemake.log[0])
out = build_report(
    list(snakemake.input.sections),
    snakemake.output[0],
    dict(snakemake.params.config),
    # only the benchmark records this job declares as inputs (no leftovers of earlier runs):
    # totals over the training jobs and packs, per paper over its training and analysis jobs
    benchmarks=list(snakemake.params.training_benchmarks),
    paper_benchmarks={k: list(v) for k, v in snakemake.params.paper_benchmarks.items()},
    data_checksums=list(snakemake.input.checksums),
    runs=snakemake.params.runs,
    template_dir=Path(snakemake.input.template).parent,
)
log.info("wrote %s", out)
