rule train:
    input:
        unpack(train_inputs),
    output:
        metrics="results/runs/{run}/metrics.json",
        history="results/runs/{run}/history.csv",
        model="results/runs/{run}/model.pt",
        spec="results/runs/{run}/spec.json",
    log:
        "results/logs/train/{run}.log",
    benchmark:
        "results/benchmarks/train/{run}.tsv"
    conda:
        ENV
    threads: config["threads"]
    resources:
        gpu=gpu_count,
        mem_mb=lambda wc, attempt: 4000 * attempt,
        runtime=lambda wc, attempt: (240 if SCALE["gpu"] else 60) * attempt,
    params:
        spec=lambda wc: RUNS[wc.run],
        device=config["device"],
        checkpoint_every_s=config["checkpoint_every_s"],
    script:
        "../scripts/train.py"
