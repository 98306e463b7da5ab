rule baseline:
    input:
        paper_runs("baseline"),
        paper_runs("baseline", "history.csv"),
    output:
        section="results/baseline/section.json",
        claims="results/baseline/claims.csv",
        table="results/baseline/tables/summary.csv",
        figure=report(
            "results/baseline/figures/learning_curves.png",
            category="0 Batch-size baseline",
            caption="../../report/captions/baseline.rst",
            labels={"figure": "learning curves"},
        ),
    log:
        "results/logs/baseline.log",
    benchmark:
        "results/benchmarks/baseline/section.tsv"
    localrule: True
    conda:
        ENV
    params:
        runs=lambda wc: RUN_TABLES["baseline"],
        block=lambda wc: SCALE["baseline"],
        datasets=lambda wc: SCALE["datasets"],
        scale=config["scale"],
    script:
        "../notebooks/baseline.py"
