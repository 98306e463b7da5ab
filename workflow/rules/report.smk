from largebatch.report.provenance import training_benchmarks


def analysis_benchmarks(paper):
    """Benchmark files of a paper's own analysis rules (named <paper> or <paper>_...), except
    those with wildcards, whose instances are not known when the workflow is parsed."""
    return [
        str(r.benchmark)
        for r in workflow.rules
        if r.benchmark is not None
        and (r.name == paper or r.name.startswith(paper + "_"))
        and not r.benchmark.get_wildcard_names()
    ]


# section -> benchmark files of the jobs that trained its runs, plus its analysis jobs
PAPER_BENCHMARKS = {
    paper: files + [f for f in analysis_benchmarks(paper) if f not in files]
    for paper, files in training_benchmarks(
        {p: RUN_TABLES.get(p, []) for p in PAPERS}, PACKS
    ).items()
}
# SHA-256 files of the datasets the runs use
DATA_CHECKSUMS = sorted(
    {f"results/data/{spec['dataset']}.pt.sha256" for spec in RUNS.values()}
)


rule report:
    input:
        sections=expand("results/{paper}/section.json", paper=PAPERS),
        benchmarks=sorted(set(BENCHMARKS).union(*PAPER_BENCHMARKS.values())),
        checksums=DATA_CHECKSUMS,
        template="report/template.html.j2",
    output:
        "results/report.html",
    log:
        "results/logs/report.log",
    conda:
        ENV
    params:
        config=config,
        runs=len(RUNS),
        paper_benchmarks=PAPER_BENCHMARKS,
        training_benchmarks=BENCHMARKS,
    script:
        "../scripts/report.py"
