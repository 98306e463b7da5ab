"""Snakemake job: one self-contained HTML report from every paper section."""

from pathlib import Path

from largebatch.logs import job_logger
from largebatch.report import build_report

log = job_logger(snakemake.log[0])
out = build_report(
    list(snakemake.input.sections),
    snakemake.output[0],
    dict(snakemake.params.config),
    benchmarks=list(snakemake.input.benchmarks),
    runs=snakemake.params.runs,
    template_dir=Path(snakemake.input.template).parent,
)
log.info("wrote %s", out)
