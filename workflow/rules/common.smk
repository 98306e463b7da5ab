import os
import sys

sys.path.insert(0, os.path.join(workflow.basedir, "src"))
# Jobs (local scripts, cluster jobs, conda envs) import the library from this checkout.
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (os.path.join(workflow.basedir, "src"), os.environ.get("PYTHONPATH")) if p
)

from largebatch.experiments import ConfigError, build_registry, scale_block

try:
    SCALE = scale_block(config)
    RUNS, RUN_TABLES = build_registry(config)
except ConfigError as err:
    raise WorkflowError(str(err)) from None

DATASETS = SCALE["datasets"]
PAPERS = config["papers"]
ENV = os.path.join(workflow.basedir, "envs", "largebatch.yaml")


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
