# Masters & Luschi 2018: the sweep, BN-batch and warm-up runs train in packs (train.smk);
# this rule analyses them. The benchmark file of every job that trained one of the paper's
# runs is an input, so the section can report its own training time.
_ML_PACK_OF = {run: pack for pack, ids in PACKS.items() for run in ids}
ML_BENCHMARKS = sorted(
    {
        (
            f"results/benchmarks/packs/{_ML_PACK_OF[row['run']]}.tsv"
            if row["run"] in _ML_PACK_OF
            else f"results/benchmarks/train/{row['run']}.tsv"
        )
        for row in RUN_TABLES["masters_luschi"]
    }
)


rule masters_luschi:
    input:
        metrics=paper_runs("masters_luschi"),
        histories=paper_runs("masters_luschi", "history.csv"),
        benchmarks=ML_BENCHMARKS,
    output:
        section="results/masters_luschi/section.json",
        claims="results/masters_luschi/claims.csv",
        table="results/masters_luschi/tables/sweep_cells.csv",
        heatmap=report(
            "results/masters_luschi/figures/accuracy_heatmap.png",
            category="3 Masters & Luschi 2018",
            caption="../../report/captions/masters_luschi_heatmap.rst",
            labels={"figure": "test accuracy over (m, base lr)"},
        ),
        best=report(
            "results/masters_luschi/figures/best_vs_m.png",
            category="3 Masters & Luschi 2018",
            caption="../../report/captions/masters_luschi_best.rst",
            labels={"figure": "best test accuracy vs m"},
        ),
        width=report(
            "results/masters_luschi/figures/stable_range.png",
            category="3 Masters & Luschi 2018",
            caption="../../report/captions/masters_luschi_range.rst",
            labels={"figure": "stable base-lr range vs m"},
        ),
        bn=report(
            "results/masters_luschi/figures/bn_batch.png",
            category="3 Masters & Luschi 2018",
            caption="../../report/captions/masters_luschi_bn.rst",
            labels={"figure": "BN batch size"},
        ),
    log:
        "results/logs/masters_luschi.log",
    benchmark:
        "results/benchmarks/masters_luschi/section.tsv"
    localrule: True
    conda:
        ENV
    params:
        runs=lambda wc: RUN_TABLES["masters_luschi"],
        block=lambda wc: SCALE["masters_luschi"],
    script:
        "../notebooks/masters_luschi.py"
