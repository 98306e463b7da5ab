# Keskar et al. 2017: SB vs LB Adam runs are ordinary runs of the train rules
# (src/largebatch/experiments/keskar.py plans them); here: the sharpness of every run (one
# JSON per run; one job per pack, or per run when unpacked), the parametric plot of every
# SB/LB pair, and the section.
from largebatch.experiments import keskar as keskar_exp

KESKAR_ROWS = RUN_TABLES.get("keskar", [])
KESKAR_IDS = list(dict.fromkeys(row["run"] for row in KESKAR_ROWS))
KESKAR_PAIRS = keskar_exp.sb_lb_pairs(KESKAR_ROWS, RUNS)
KESKAR_SHARP_PACKS = keskar_exp.sharpness_packs(KESKAR_ROWS)
KESKAR_SHARP_PACKED = {r for ids in KESKAR_SHARP_PACKS.values() for r in ids}
# the one-run sharpness rule builds only the keskar runs no pack claims
KESKAR_SHARP_SINGLE = (
    "|".join(re.escape(r) for r in KESKAR_IDS if r not in KESKAR_SHARP_PACKED) or "(?!)"
)


rule keskar_sharpness:
    input:
        data=lambda wc: f"results/data/{RUNS[wc.run]['dataset']}.pt",
        models=lambda wc: [run_file(wc.run, "model.pt")],
        specs=lambda wc: [run_file(wc.run, "spec.json")],
    output:
        "results/keskar/sharpness/{run}.json",
    log:
        "results/logs/keskar/sharpness/{run}.log",
    benchmark:
        "results/benchmarks/keskar/sharpness/{run}.tsv"
    wildcard_constraints:
        run=KESKAR_SHARP_SINGLE,
    conda:
        ENV
    threads: config["threads"]
    resources:
        gpu=gpu_count,
        mem_mb=4000,
    params:
        cfg=lambda wc: SCALE["keskar"]["sharpness"],
        device=config["device"],
    script:
        "../scripts/keskar_sharpness.py"


for _pack, _ids in KESKAR_SHARP_PACKS.items():

    rule:
        name:
            f"keskar_sharpness_{_pack}"
        input:
            data=sorted({f"results/data/{RUNS[r]['dataset']}.pt" for r in _ids}),
            models=[run_file(r, "model.pt") for r in _ids],
            specs=[run_file(r, "spec.json") for r in _ids],
        output:
            [f"results/keskar/sharpness/{r}.json" for r in _ids],
        log:
            f"results/logs/keskar/sharpness/pack-{_pack}.log",
        benchmark:
            f"results/benchmarks/keskar/sharpness/pack-{_pack}.tsv"
        conda:
            ENV
        threads: config["threads"]
        resources:
            gpu=gpu_count,
            mem_mb=4000,
        params:
            cfg=SCALE["keskar"]["sharpness"],
            device=config["device"],
        script:
            "../scripts/keskar_sharpness.py"


rule keskar_parametric:
    input:
        models=[
            run_file(p[arm], "model.pt") for p in KESKAR_PAIRS for arm in ("sb", "lb")
        ],
        data=sorted({p["data"] for p in KESKAR_PAIRS}),
    output:
        "results/keskar/parametric.csv",
    log:
        "results/logs/keskar/parametric.log",
    benchmark:
        "results/benchmarks/keskar/parametric.tsv"
    conda:
        ENV
    threads: config["threads"]
    resources:
        gpu=gpu_count,
        mem_mb=4000,
    params:
        cfg=lambda wc: SCALE["keskar"]["parametric"],
        runs=KESKAR_PAIRS,
        device=config["device"],
    script:
        "../scripts/keskar_parametric.py"


rule keskar:
    input:
        metrics=paper_runs("keskar"),
        histories=paper_runs("keskar", "history.csv"),
        sharpness=expand("results/keskar/sharpness/{run}.json", run=KESKAR_IDS),
        parametric="results/keskar/parametric.csv",
    output:
        section="results/keskar/section.json",
        claims="results/keskar/claims.csv",
        table2="results/keskar/tables/table2_accuracy.csv",
        parametric=report(
            "results/keskar/figures/parametric.png",
            category="1 Keskar 2017",
            caption="../../report/captions/keskar_parametric.rst",
            labels={"figure": "Fig. 3 parametric plot"},
        ),
        sweep=report(
            "results/keskar/figures/batch_sweep.png",
            category="1 Keskar 2017",
            caption="../../report/captions/keskar_sweep.rst",
            labels={"figure": "Fig. 4 batch-size sweep"},
        ),
        curves=report(
            "results/keskar/figures/learning_curves.png",
            category="1 Keskar 2017",
            caption="../../report/captions/keskar_curves.rst",
            labels={"figure": "Fig. 2 learning curves"},
        ),
    log:
        "results/logs/keskar.log",
    benchmark:
        "results/benchmarks/keskar/section.tsv"
    localrule: True
    conda:
        ENV
    params:
        runs=lambda wc: RUN_TABLES["keskar"],
        block=lambda wc: SCALE["keskar"],
        datasets=lambda wc: SCALE["datasets"],
        scale=config["scale"],
    script:
        "../notebooks/keskar.py"
