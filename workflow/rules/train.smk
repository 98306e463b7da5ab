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
    wildcard_constraints:
        run=RUN_ID_PATTERN,
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
        autocast=config["autocast"],
        channels_last=config["channels_last"],
    script:
        "../scripts/train.py"


# Runs a paper grouped with the label `pack` train in one job each pack (one process pays
# the start-up once); every run still gets its own results/runs/{run}/ files.
for _pack, _ids in PACKS.items():

    rule:
        name:
            f"train_pack_{_pack}"
        input:
            pack_inputs(_ids),
        output:
            [run_file(r, name) for r in _ids for name in RUN_OUTPUTS],
        log:
            f"results/logs/packs/{_pack}.log",
        benchmark:
            f"results/benchmarks/packs/{_pack}.tsv"
        conda:
            ENV
        threads: config["threads"]
        resources:
            gpu=gpu_count,
            mem_mb=lambda wc, attempt: 4000 * attempt,
            runtime=lambda wc, attempt: (480 if SCALE["gpu"] else 120) * attempt,
        params:
            runs=_ids,
            specs=[RUNS[r] for r in _ids],
            device=config["device"],
            checkpoint_every_s=config["checkpoint_every_s"],
            autocast=config["autocast"],
            channels_last=config["channels_last"],
        script:
            "../scripts/train_pack.py"
