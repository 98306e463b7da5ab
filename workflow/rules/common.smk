import os
import sys

# The workflow reads its run table with the library in src/ (installed in the venv with
# `pip install -e .`; conda envs install it with envs/largebatch.post-deploy.sh).
sys.path.insert(0, os.path.join(workflow.basedir, "src"))


from largebatch.experiments import ConfigError, build_registry, packs_of, scale_block

try:
    SCALE = scale_block(config)
    # each paper's block of the scale is checked against its own schema before any job starts
    for _paper in config["papers"]:
        if _paper in SCALE:
            try:
                validate(SCALE[_paper], f"../schemas/{_paper}.schema.yaml")
            except WorkflowError as err:
                raise ConfigError(
                    f"config.yaml: scales.{config['scale']}.{_paper} is invalid: {err}"
                ) from None
    RUNS, RUN_TABLES = build_registry(config)
    PACKS = packs_of(RUN_TABLES, RUNS)
except ConfigError as err:
    raise WorkflowError(str(err)) from None

DATASETS = SCALE["datasets"]
PAPERS = config["papers"]
ENV = os.path.join(workflow.basedir, "envs", "largebatch.yaml")
PACKED = {run for ids in PACKS.values() for run in ids}
SINGLE = [run for run in RUNS if run not in PACKED]
RUN_OUTPUTS = ("metrics.json", "history.csv", "model.pt", "spec.json")
# job benchmark files: one per single-run job and one per pack
BENCHMARKS = [f"results/benchmarks/train/{run}.tsv" for run in SINGLE] + [
    f"results/benchmarks/packs/{pack}.tsv" for pack in PACKS
]


wildcard_constraints:
    run="[A-Za-z0-9_.-]+",
    dataset="|".join(DATASETS),
    paper="|".join(PAPERS),


def run_file(run, name="metrics.json"):
    return f"results/runs/{run}/{name}"


def paper_runs(paper, name="metrics.json"):
    """Files of every run a paper needs (one per run id, shared runs once)."""
    ids = dict.fromkeys(row["run"] for row in RUN_TABLES[paper])
    return [run_file(r, name) for r in ids]


def gpu_count(wildcards=None):
    return 1 if SCALE["gpu"] else 0


def train_inputs(wildcards):
    spec = RUNS[wildcards.run]
    inputs = {"data": f"results/data/{spec['dataset']}.pt"}
    if spec["init_from"]:
        inputs["init"] = run_file(spec["init_from"], "model.pt")
    return inputs


# A run id as `spec.run_id` writes it. Packed runs match too: their `train_pack_<pack>` rule
# has no wildcards, and Snakemake prefers such a rule over `train` for the same file (a
# regex listing every single run would be rescanned for each job: seconds at paper scale).
RUN_ID_PATTERN = "[A-Za-z0-9_.-]+"


def pack_inputs(ids):
    data = sorted({f"results/data/{RUNS[r]['dataset']}.pt" for r in ids})
    parents = sorted(
        {
            run_file(RUNS[r]["init_from"], "model.pt")
            for r in ids
            if RUNS[r]["init_from"]
        }
    )
    return data + parents
