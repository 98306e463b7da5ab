# Batch augmentation (Hoffer et al. 2019). The runs (every M x seed, the longer M = 1
# baselines and the M*B distinct-sample controls) are ordinary runs of the train rules
# (src/largebatch/experiments/batch_augmentation.py plans them). One analysis rule measures the gradient variance on the M = 1 runs' weights;
# the section rule writes the report section.
BA_CATEGORY = "6 Batch augmentation (Hoffer et al. 2019)"
BA_BLOCK = SCALE["batch_augmentation"]
BA_ROWS = RUN_TABLES["batch_augmentation"]
# the M = 1 baseline run of every seed (standard epochs), in seed order
BA_BASE = sorted(
    (r for r in BA_ROWS if r["arm"] == "BA" and r["multiplicity"] == 1),
    key=lambda r: r["seed"],
)


rule batch_augmentation_gradient_variance:
    input:
        data=f"results/data/{RUNS[BA_BASE[0]['run']]['dataset']}.pt",
        specs=[run_file(r["run"], "spec.json") for r in BA_BASE],
        models=[run_file(r["run"], "model.pt") for r in BA_BASE],
    output:
        "results/batch_augmentation/gradient_variance.csv",
    log:
        "results/logs/batch_augmentation/gradient_variance.log",
    benchmark:
        "results/benchmarks/batch_augmentation/gradient_variance.tsv"
    conda:
        ENV
    threads: config["threads"]
    resources:
        gpu=gpu_count,
        mem_mb=4000,
    params:
        runs=BA_BASE,
        multiplicities=BA_BLOCK["multiplicities"],
        draws=BA_BLOCK.get("gradient_variance", {}).get("draws", 32),
        device=config["device"],
    script:
        "../scripts/batch_augmentation_gradvar.py"


rule batch_augmentation:
    input:
        metrics=paper_runs("batch_augmentation"),
        histories=paper_runs("batch_augmentation", "history.csv"),
        gradvar="results/batch_augmentation/gradient_variance.csv",
    output:
        section="results/batch_augmentation/section.json",
        claims="results/batch_augmentation/claims.csv",
        final="results/batch_augmentation/tables/final_budget.csv",
        curves=report(
            "results/batch_augmentation/figures/accuracy_vs_m.png",
            category=BA_CATEGORY,
            caption="../../report/captions/batch_augmentation_curves.rst",
            labels={"figure": "test accuracy vs M, with the controls"},
        ),
        examples=report(
            "results/batch_augmentation/figures/accuracy_vs_examples.png",
            category=BA_CATEGORY,
            caption="../../report/captions/batch_augmentation_examples.rst",
            labels={"figure": "test accuracy vs examples seen"},
        ),
        gradvar=report(
            "results/batch_augmentation/figures/gradient_variance.png",
            category=BA_CATEGORY,
            caption="../../report/captions/batch_augmentation_gradvar.rst",
            labels={"figure": "gradient variance"},
        ),
    log:
        "results/logs/batch_augmentation.log",
    benchmark:
        "results/benchmarks/batch_augmentation/section.tsv"
    localrule: True
    conda:
        ENV
    params:
        runs=BA_ROWS,
        block=BA_BLOCK,
    script:
        "../notebooks/batch_augmentation.py"
