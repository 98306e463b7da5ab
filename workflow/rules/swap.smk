# SWAP (Gupta et al. 2020). Phases 1 and 2 and the SB/LB baselines are ordinary runs of the
# `train` rule (src/largebatch/experiments/swap.py plans them; every phase-2 worker is its own
# job, started from phase 1's model.pt). Phase 3 averages each seed's workers; the analysis
# rule computes the k-worker averages and the loss plane; the section rule writes the report.
from largebatch.experiments import swap as swap_exp

SWAP_ROWS = RUN_TABLES.get("swap", [])
SWAP_SEEDS = sorted({row["seed"] for row in SWAP_ROWS})
SWAP_DATA = (
    [f"results/data/{RUNS[SWAP_ROWS[0]['run']]['dataset']}.pt"] if SWAP_ROWS else []
)
# job-time records of every SWAP run (single-run jobs; a packed run has none)
SWAP_BENCHMARKS = [
    f"results/benchmarks/train/{run}.tsv"
    for run in dict.fromkeys(row["run"] for row in SWAP_ROWS)
    if run not in PACKED
]


rule swap_average:
    input:
        data=SWAP_DATA,
        workers=lambda wc: [
            run_file(r, "model.pt") for r in swap_exp.worker_runs(SWAP_ROWS, wc.seed)
        ],
    output:
        metrics="results/swap/average/{seed}.json",
        model="results/swap/average/{seed}.pt",
    log:
        "results/logs/swap/average/{seed}.log",
    benchmark:
        "results/benchmarks/swap/average/{seed}.tsv"
    wildcard_constraints:
        seed=r"\d+",
    conda:
        ENV
    threads: config["threads"]
    resources:
        gpu=gpu_count,
        mem_mb=4000,
    params:
        workers=lambda wc: swap_exp.worker_runs(SWAP_ROWS, wc.seed),
        phase1=lambda wc: swap_exp.run_of(SWAP_ROWS, "phase1", wc.seed),
        spec=lambda wc: RUNS[swap_exp.worker_runs(SWAP_ROWS, wc.seed)[0]],
        bn_batch=lambda wc: SCALE["swap"].get("bn_batch", SCALE["swap"]["small_batch"]),
        device=config["device"],
    script:
        "../scripts/swap_average.py"


rule swap_analysis:
    input:
        data=SWAP_DATA,
        phase1=[
            run_file(swap_exp.run_of(SWAP_ROWS, "phase1", s), "model.pt")
            for s in SWAP_SEEDS
        ],
        workers=[
            run_file(r, "model.pt")
            for s in SWAP_SEEDS
            for r in swap_exp.worker_runs(SWAP_ROWS, s)
        ],
        averages=expand("results/swap/average/{seed}.pt", seed=SWAP_SEEDS),
    output:
        curve="results/swap/analysis/average_curve.csv",
        plane="results/swap/analysis/plane.csv",
        points="results/swap/analysis/plane_points.csv",
    log:
        "results/logs/swap/analysis.log",
    benchmark:
        "results/benchmarks/swap/analysis.tsv"
    conda:
        ENV
    threads: config["threads"]
    resources:
        gpu=gpu_count,
        mem_mb=4000,
    params:
        seeds=SWAP_SEEDS,
        workers={s: swap_exp.worker_runs(SWAP_ROWS, s) for s in SWAP_SEEDS},
        spec=lambda wc: RUNS[swap_exp.worker_runs(SWAP_ROWS, SWAP_SEEDS[0])[0]],
        bn_batch=lambda wc: SCALE["swap"].get("bn_batch", SCALE["swap"]["small_batch"]),
        plane=lambda wc: SCALE["swap"].get("plane", {}),
        device=config["device"],
    script:
        "../scripts/swap_analysis.py"


rule swap:
    input:
        metrics=paper_runs("swap"),
        histories=paper_runs("swap", "history.csv"),
        averages=expand("results/swap/average/{seed}.json", seed=SWAP_SEEDS),
        average_benchmarks=expand(
            "results/benchmarks/swap/average/{seed}.tsv", seed=SWAP_SEEDS
        ),
        run_benchmarks=SWAP_BENCHMARKS,
        curve="results/swap/analysis/average_curve.csv",
        plane="results/swap/analysis/plane.csv",
        points="results/swap/analysis/plane_points.csv",
    output:
        section="results/swap/section.json",
        claims="results/swap/claims.csv",
        table="results/swap/tables/summary.csv",
        curves=report(
            "results/swap/figures/test_accuracy.png",
            category="5 SWAP (Gupta et al. 2020)",
            caption="../../report/captions/swap_curves.rst",
            labels={"figure": "test accuracy over training"},
        ),
        plane=report(
            "results/swap/figures/loss_plane.png",
            category="5 SWAP (Gupta et al. 2020)",
            caption="../../report/captions/swap_plane.rst",
            labels={"figure": "loss plane"},
        ),
        accuracy_time="results/swap/figures/accuracy_time.png",
    log:
        "results/logs/swap/section.log",
    benchmark:
        "results/benchmarks/swap/section.tsv"
    localrule: True
    conda:
        ENV
    params:
        runs=SWAP_ROWS,
        block=lambda wc: SCALE["swap"],
    script:
        "../notebooks/swap.py"
