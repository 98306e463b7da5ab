# Golmant et al. 2018: steps to a loss threshold vs batch size, the gradient noise scale of
# the smallest-batch runs' weights, and the section.
from largebatch.experiments.golmant import noise_points as golmant_noise_points

GOLMANT_CATEGORY = "4 Golmant 2018"
# the B0 weights whose noise scale is measured (one per dataset, seed and threshold)
GOLMANT_NOISE = golmant_noise_points(RUN_TABLES["golmant"])


rule golmant_noise:
    input:
        models=[run_file(p["run"], "model.pt") for p in GOLMANT_NOISE],
        data=sorted({f"results/data/{p['dataset']}.pt" for p in GOLMANT_NOISE}),
    output:
        "results/golmant/noise.csv",
    log:
        "results/logs/golmant/noise.log",
    benchmark:
        "results/benchmarks/golmant/noise.tsv"
    conda:
        ENV
    threads: config["threads"]
    resources:
        gpu=gpu_count,
        mem_mb=4000,
    params:
        points=GOLMANT_NOISE,
        specs={p["run"]: RUNS[p["run"]] for p in GOLMANT_NOISE},
        noise=SCALE["golmant"]["noise"],
        device=config["device"],
    script:
        "../scripts/golmant_noise.py"


rule golmant:
    input:
        metrics=paper_runs("golmant"),
        histories=paper_runs("golmant", "history.csv"),
        noise="results/golmant/noise.csv",
    output:
        section="results/golmant/section.json",
        claims="results/golmant/claims.csv",
        critical="results/golmant/tables/critical_batch.csv",
        thresholds="results/golmant/figures/thresholds.png",
        steps=report(
            "results/golmant/figures/steps_to_threshold.png",
            category=GOLMANT_CATEGORY,
            caption="../../report/captions/golmant_steps.rst",
            labels={"figure": "steps to threshold vs batch size"},
        ),
        speedup=report(
            "results/golmant/figures/speedup.png",
            category=GOLMANT_CATEGORY,
            caption="../../report/captions/golmant_speedup.rst",
            labels={"figure": "speed-up vs batch size"},
        ),
        cost=report(
            "results/golmant/figures/cost.png",
            category=GOLMANT_CATEGORY,
            caption="../../report/captions/golmant_cost.rst",
            labels={"figure": "total cost vs batch size"},
        ),
        data=report(
            "results/golmant/figures/data_complexity.png",
            category=GOLMANT_CATEGORY,
            caption="../../report/captions/golmant_data.rst",
            labels={"figure": "data complexity and size"},
        ),
        noise=report(
            "results/golmant/figures/noise_scale.png",
            category=GOLMANT_CATEGORY,
            caption="../../report/captions/golmant_noise.rst",
            labels={"figure": "noise scale vs critical batch"},
        ),
    log:
        "results/logs/golmant.log",
    benchmark:
        "results/benchmarks/golmant/section.tsv"
    localrule: True
    conda:
        ENV
    params:
        runs=lambda wc: RUN_TABLES["golmant"],
        block=lambda wc: SCALE["golmant"],
        scale=config["scale"],
    script:
        "../notebooks/golmant.py"
