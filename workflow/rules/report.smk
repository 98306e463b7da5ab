rule report:
    input:
        sections=expand("results/{paper}/section.json", paper=PAPERS),
        benchmarks=BENCHMARKS,
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
    script:
        "../scripts/report.py"
