"""Snakemake job: one self-contained HTML report from every paper section."""

from glob import glob
from pathlib import Path

from largebatch.logs import job_logger
from largebatch.report import build_report

log = job_logger(snakemake.log[0])
out = build_report(
    list(snakemake.input.sections),
    snakemake.output[0],
    dict(snakemake.params.config),
    # every job that keeps a benchmark record (training, packs, per-paper analyses)
    benchmarks=sorted(glob("results/benchmarks/**/*.tsv", recursive=True)),
    runs=snakemake.params.runs,
    template_dir=Path(snakemake.input.template).parent,
)
log.info("wrote %s", out)
