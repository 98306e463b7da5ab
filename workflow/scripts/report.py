"""Snakemake job: one self-contained HTML report from every paper section."""

from pathlib import Path

from largebatch.logs import job_logger
from largebatch.report import build_report

log = job_logger(snakemake.log[0])
declared = set(snakemake.input.benchmarks)


def records(paths):
    """Benchmark files, only those this job declares as inputs."""
    return [p for p in paths if p in declared]


out = build_report(
    list(snakemake.input.sections),
    snakemake.output[0],
    dict(snakemake.params.config),
    # only the benchmark records this job declares as inputs (no leftovers of earlier runs):
    # totals over the training jobs and packs, per paper over its training and analysis jobs
    benchmarks=records(snakemake.params.training_benchmarks),
    paper_benchmarks={k: records(v) for k, v in snakemake.params.paper_benchmarks.items()},
    data_checksums=list(snakemake.input.checksums),
    runs=snakemake.params.runs,
    template_dir=Path(snakemake.input.template).parent,
)
log.info("wrote %s", out)
