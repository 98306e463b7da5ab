import os
import sys

# The workflow reads its plan with the library in src/ (installed in the venv with
# `pip install -e .`; conda envs install it with envs/largebatch.post-deploy.sh).
sys.path.insert(0, os.path.join(workflow.basedir, "src"))


from largebatch import paths
from largebatch.experiments import PAPERS as DECLARATIONS
from largebatch.experiments import ConfigError, build_plan, papers_of, scale_block

try:
    SCALE = scale_block(config)
    # each paper's block of the scale is checked against its own schema before any job starts
    for _paper in papers_of(config):
        if _paper in SCALE:
            try:
                validate(SCALE[_paper], f"../schemas/{_paper}.schema.yaml")
            except WorkflowError as err:
                raise ConfigError(
                    f"config.yaml: scales.{config['scale']}.{_paper} is invalid: {err}"
                ) from None
    # every run, training pack, analysis job and section of the requested papers
    # (src/largebatch/experiments/__init__.py); the rules below are generated from it
    PLAN = build_plan(config)
except ConfigError as err:
    raise WorkflowError(str(err)) from None

RUNS = PLAN.runs
PACKS = PLAN.packs
DATASETS = SCALE["datasets"]
# the sections this run builds: the scale's own `papers` where it has one, narrowed by
# the top-level `papers` (largebatch.experiments.papers_of)
PAPERS = papers_of(config)
ENV = os.path.join(workflow.basedir, "envs", "largebatch.yaml")
PACKED = {run for ids in PACKS.values() for run in ids}
SINGLE = [run for run in RUNS if run not in PACKED]
# job benchmark files: one per single-run job and one per pack
BENCHMARKS = [paths.train_benchmark(run) for run in SINGLE] + [
    paths.pack_benchmark(pack) for pack in PACKS
]
# the options every training and analysis job passes to the library
JOB_PARAMS = {
    "device": config["device"],
    "checkpoint_every_s": config["checkpoint_every_s"],
    "autocast": config["autocast"],
    "channels_last": config["channels_last"],
}


def resources(minutes=None):
    """The one resources block of the jobs that use torch: a GPU where the scale asks for
    one, memory and (for training) a time limit that grow with each retry."""
    res = {
        "gpu": 1 if SCALE["gpu"] else 0,
        "mem_mb": lambda wc, attempt: 4000 * attempt,
    }
    if minutes:
        res["runtime"] = (
            lambda wc, attempt: minutes * (4 if SCALE["gpu"] else 1) * attempt
        )
    return res


def train_inputs(wildcards):
    spec = RUNS[wildcards.run]
    inputs = {"data": paths.data_file(spec["dataset"])}
    if spec["init_from"]:
        inputs["init"] = paths.run_file(spec["init_from"], "model.pt")
    return inputs


def pack_files(ids):
    """A pack's datasets and the weights its runs start from (trained by other jobs)."""
    data = sorted({paths.data_file(RUNS[r]["dataset"]) for r in ids})
    init = sorted(
        {
            paths.run_file(RUNS[r]["init_from"], "model.pt")
            for r in ids
            if RUNS[r]["init_from"]
        }
    )
    return data, init


# the script of every generated rule, by its name. Snakemake evaluates a `script` directive
# again when the job runs, when the loop variables that generated it hold their last values;
# there the rule's name (`rule` in the job's scope) picks the right one
SCRIPTS = {
    **{job.name: f"../scripts/{job.script}" for p in PAPERS for job in PLAN.jobs[p]},
    **{p: f"../notebooks/{p}.py" for p in PAPERS},
}


def script_of(scope, name):
    """The script of generated rule `name`, or of the running job's rule (see SCRIPTS)."""
    return SCRIPTS[scope.get("rule", name)]


def section_outputs(paper):
    outs = dict(PLAN.sections[paper].output)
    for item in PLAN.outputs[paper]:
        if item.kind == "figure" and item.label:
            outs[item.name] = report(
                outs[item.name],
                category=DECLARATIONS[paper].category,
                caption=f"../../{paths.caption_file(paper, item.name)}",
                labels={"figure": item.label},
            )
    return outs


wildcard_constraints:
    run="[A-Za-z0-9_.-]+",
    dataset="|".join(DATASETS),
