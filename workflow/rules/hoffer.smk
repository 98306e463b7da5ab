rule hoffer:
    input:
        paper_runs("hoffer"),
        paper_runs("hoffer", "history.csv"),
    output:
        section="results/hoffer/section.json",
        claims="results/hoffer/claims.csv",
        table="results/hoffer/tables/table1.csv",
        fits="results/hoffer/tables/distance_fits.csv",
        distance=report(
            "results/hoffer/figures/distance.png",
            category="2 Hoffer 2017",
            caption="../../report/captions/hoffer_distance.rst",
            labels={"figure": "weight distance (Fig. 2)"},
        ),
        arms=report(
            "results/hoffer/figures/arms.png",
            category="2 Hoffer 2017",
            caption="../../report/captions/hoffer_arms.rst",
            labels={"figure": "table arms"},
        ),
        curves="results/hoffer/figures/curves.png",
    log:
        "results/logs/hoffer.log",
    benchmark:
        "results/benchmarks/hoffer.tsv"
    localrule: True
    conda:
        ENV
    params:
        runs=lambda wc: RUN_TABLES["hoffer"],
        block=lambda wc: SCALE["hoffer"],
    script:
        "../notebooks/hoffer.py"
