import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


@pytest.fixture(scope="session")
def tiny_data_path(tmp_path_factory):
    from largebatch.data import prepare_dataset

    path = tmp_path_factory.mktemp("data") / "mnist1d.pt"
    prepare_dataset("mnist1d", {"kind": "mnist1d", "num_samples": 600, "seed": 3}, path)
    return path


@pytest.fixture(scope="session")
def tiny_data(tiny_data_path):
    from largebatch.data import load_dataset

    return load_dataset(tiny_data_path)


def copy_workflow(dest: Path) -> Path:
    """A copy of the workflow sources (what a user's clone holds), without results."""
    for name in ("Snakefile", "config.yaml"):
        shutil.copy(REPO / name, dest / name)
    for name in ("workflow", "report", "envs", "profiles"):
        if (REPO / name).exists():
            shutil.copytree(REPO / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


# snakemake-executor-plugin-slurm asks `scontrol show config` at start-up; where SLURM is
# installed but no controller runs, that waits ~10 s per snakemake process. Local runs do
# not need SLURM, so point it at an empty config and let it fail at once.
LOCAL_ENV = {**os.environ, "SLURM_CONF": os.devnull}


def run_snakemake(workdir: Path, *args: str, timeout: int = 900, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([SNAKEMAKE, *args], cwd=workdir, capture_output=True, text=True, timeout=timeout,
                          env=LOCAL_ENV if env is None else env)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """One uninterrupted tiny-scale run of the whole workflow in a fresh directory."""
    wd = copy_workflow(tmp_path_factory.mktemp("wf"))
    proc = run_snakemake(wd, "--cores", "2", "--config", "scale=tiny")
    assert proc.returncode == 0, proc.stderr[-4000:]
    return wd
