rule report:
    input:
        sections=expand("results/{paper}/section.json", paper=PAPERS),
        benchmarks=[f"results/benchmarks/train/{run}.tsv" for run in RUNS],
        template="report/template.html.j2",
    output:
        "results/report.html",
    params:
        config=config,
    log:
        "results/logs/report.log",
    conda:
        ENV
    script:
        "../scripts/report.py"
