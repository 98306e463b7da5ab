# Training. A run is trained by the generic `train` rule (one job per run) unless the
# packing policy (src/largebatch/packing.py; config key `packing`) put it in a pack: then
# its `train_pack_<pack>` rule trains it with the pack's other runs in one process (vectorised
# where they stack). Which job trains a run: `python -m largebatch.packing <run id>`.


rule train:
    input:
        unpack(train_inputs),
    output:
        **{
            name.split(".")[0]: paths.run_file("{run}", name)
            for name in paths.RUN_OUTPUTS
        },
    log:
        paths.log_file("train", "{run}"),
    benchmark:
        paths.train_benchmark("{run}")
    conda:
        ENV
    threads: config["threads"]
    resources:
        **resources(minutes=60),
    params:
        **JOB_PARAMS,
        spec=lambda wc: RUNS[wc.run],
    script:
        "../scripts/train.py"


# Packed runs match `train`'s patterns too; Snakemake prefers a rule without wildcards
# (the pack's) for the same file, so no regex has to list the single runs.
for _pack, _ids in PACKS.items():

    rule:
        name:
            f"train_pack_{_pack}"
        input:
            data=pack_files(_ids)[0],
            init=pack_files(_ids)[1],
        output:
            [paths.run_file(r, name) for r in _ids for name in paths.RUN_OUTPUTS],
        log:
            paths.log_file("packs", _pack),
        benchmark:
            paths.pack_benchmark(_pack)
        conda:
            ENV
        threads: config["threads"]
        resources:
            **resources(minutes=120),
        params:
            **JOB_PARAMS,
            # run ids only: a run's id is the hash of its spec, so they capture every change;
            # the script looks the specs up in the plan (Snakemake stores a job's params with
            # each of its outputs, so the specs here would grow as runs x runs)
            runs=_ids,
        script:
            "../scripts/train_pack.py"
