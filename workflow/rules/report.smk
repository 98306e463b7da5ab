from largebatch.report.provenance import analysis_benchmarks, training_benchmarks

# section -> benchmark files of the jobs that trained its runs (single runs and packs), plus
# its own analysis jobs without wildcards: the report's compute time per paper
PAPER_BENCHMARKS = {
    paper: files
    + [f for f in analysis_benchmarks(workflow.rules, paper) if f not in files]
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
