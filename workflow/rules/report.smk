from largebatch.report.provenance import training_benchmarks

# section -> benchmark files of the jobs that trained its runs (single runs and packs), plus
# its own analysis jobs and section: the report's compute time per paper
PAPER_BENCHMARKS = {
    paper: files
    + [paths.benchmark_file(paper, job.name) for job in PLAN.jobs[paper]]
    + [paths.benchmark_file(paper, "section")]
    for paper, files in training_benchmarks(
        {p: PLAN.tables[p] for p in PAPERS}, PACKS
    ).items()
}
# SHA-256 files of the datasets the runs use
DATA_CHECKSUMS = sorted(
    {paths.checksum_file(spec["dataset"]) for spec in RUNS.values()}
)


rule report:
    input:
        sections=[paths.section_file(p) for p in PAPERS],
        benchmarks=sorted(set(BENCHMARKS).union(*PAPER_BENCHMARKS.values())),
        checksums=DATA_CHECKSUMS,
        template="report/template.html.j2",
    output:
        paths.REPORT,
    log:
        paths.log_file("report"),
    conda:
        ENV
    params:
        config=config,
        runs=len(RUNS),
        paper_benchmarks=PAPER_BENCHMARKS,
        training_benchmarks=BENCHMARKS,
    script:
        "../scripts/report.py"
