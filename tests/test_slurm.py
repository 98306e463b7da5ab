"""The tiny scale run through a real single-node SLURM cluster (slurmctld + slurmd + munge on
localhost) with profiles/slurm, as a user on a cluster would run it."""

import os
import re
import shutil
import subprocess
import time

import pytest

from conftest import REPO, copy_workflow, run_snakemake

START, STOP = REPO / "tests" / "cluster" / "start_slurm.sh", REPO / "tests" / "cluster" / "stop_slurm.sh"
JOBCOMP = "/var/log/slurm/jobcomp.log"
LOCAL_CLUSTER = ["--slurm-no-account", "--slurm-status-command", "squeue",
                 "--slurm-init-seconds-before-status-checks", "2"]


@pytest.fixture(scope="module")
def cluster():
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip("the SLURM test needs root and apt-get to install and start slurm-wlm + munge; NOT run here")
    proc = subprocess.run(["bash", str(START)], capture_output=True, text=True, timeout=900)
    if proc.returncode == 77:
        pytest.skip(f"local SLURM cluster unavailable, NOT tested: {proc.stderr.strip()[-300:]}")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    yield
    subprocess.run(["bash", str(STOP)], capture_output=True, timeout=120)


def test_tiny_scale_through_slurm_builds_the_report(cluster, tmp_path):
    wd = copy_workflow(tmp_path)
    # training jobs ask for a GPU, as at paper scale; the local node has one fake GRES gpu
    (wd / "gpu.yaml").write_text("scales: {tiny: {gpu: true}}\n")
    plan = run_snakemake(wd, "-n", "--configfile", "config.yaml", "gpu.yaml", "--config", "scale=tiny")
    stats = dict(re.findall(r"^(train\S*)\s+(\d+)$", plan.stdout, re.M))
    n_train = sum(int(v) for v in stats.values())
    assert n_train > 0, plan.stdout[-2000:]
    offset = os.path.getsize(JOBCOMP) if os.path.exists(JOBCOMP) else 0
    t0 = time.time()
    proc = run_snakemake(wd, "--profile", "profiles/slurm", "--configfile", "config.yaml", "gpu.yaml",
                         "--config", "scale=tiny", "--jobs", "4", "--verbose", *LOCAL_CLUSTER, timeout=2400,
                         env=dict(os.environ))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-5000:]
    assert (wd / "results" / "report.html").exists()
    print(f"SLURM tiny run: {time.time() - t0:.0f} s, {n_train} training jobs")
    # SLURM's own record: every job it ran completed, at least one per training job
    with open(JOBCOMP) as f:
        f.seek(offset)
        records = [line for line in f if "JobId=" in line]
    artifacts = REPO / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    (artifacts / "slurm-jobcomp.log").write_text(f"tiny scale through SLURM: {time.time() - t0:.0f} s, "
                                                  f"{n_train} training jobs\n" + "".join(records))
    states = [re.search(r"JobState=(\S+)", r).group(1) for r in records]
    assert len(states) >= n_train and set(states) == {"COMPLETED"}, records[-5:]
    # the submitted sbatch calls: training jobs request the GPU, the report is not a cluster job
    calls = [line for line in out.splitlines() if "sbatch call:" in line]
    train_calls = [c for c in calls if re.search(r"--comment '?rule_train", c)]
    assert len(train_calls) == n_train and all("--gpus=1" in c for c in train_calls), train_calls[:2]
    assert not any("rule_report" in c for c in calls)
