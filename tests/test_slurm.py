"""The tiny scale run through a real single-node SLURM cluster (slurmctld + slurmd + munge on
localhost) with profiles/slurm, as a user on a cluster would run it."""

import os
import re
import shutil
import subprocess
import time

import pytest

from conftest import REPO, SNAKEMAKE, copy_workflow, run_snakemake

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


def _slurm_train_jobs() -> list[str]:
    """Ids of this cluster's queued or running training jobs (the plugin's --comment names the rule)."""
    out = subprocess.run(["squeue", "-h", "-o", "%i|%k"], capture_output=True, text=True, timeout=30).stdout
    return [line.split("|")[0] for line in out.splitlines() if "rule_train" in line]


def test_requeued_training_job_resumes_from_its_checkpoint(cluster, tmp_path):
    """A preemption as SLURM does it (`scontrol requeue`): the running training job is killed and
    put back in the queue; the rerun resumes from checkpoint.pt and ends with the numbers of an
    uninterrupted run. SLURM holds a requeued job for about 2 minutes before it is eligible
    again (its EligibleTime), so this test takes about 5-7 minutes."""
    import json

    import pandas as pd

    # one single-run training job long enough (300 epochs, ~40 s on a loaded 2-core machine) to
    # be requeued after its first checkpoint (every second); it asks for the fake GPU
    overlay = ("checkpoint_every_s: 1\npacking: {job_seconds: 0}\npapers: [baseline]\n"
               "scales: {tiny: {gpu: true, baseline: {run: {epochs: 300}}}}\n")
    (tmp_path / "slurm").mkdir()
    (tmp_path / "ref").mkdir()
    wd, ref = copy_workflow(tmp_path / "slurm"), copy_workflow(tmp_path / "ref")
    for d in (wd, ref):
        (d / "requeue.yaml").write_text(overlay)
    args = ["--configfile", "config.yaml", "requeue.yaml", "--config", "scale=tiny"]
    plan = run_snakemake(wd, "-n", *args)
    run = sorted(set(re.findall(r"results/runs/(mnist1d-mlp-adam-b32-s0-[0-9a-f]+)/metrics\.json", plan.stdout)))
    assert len(run) == 1, plan.stdout[-2000:]
    run = run[0]
    target = f"results/runs/{run}/metrics.json"
    offset = os.path.getsize(JOBCOMP) if os.path.exists(JOBCOMP) else 0
    t0 = time.time()
    proc = subprocess.Popen([SNAKEMAKE, target, "--profile", "profiles/slurm", *args, "--jobs", "1", "--verbose",
                             *LOCAL_CLUSTER], cwd=wd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        ckpt, job = wd / "results" / "runs" / run / "checkpoint.pt", None
        while time.time() - t0 < 600 and proc.poll() is None and not ckpt.exists():
            time.sleep(0.5)
        assert ckpt.exists(), "no checkpoint appeared while the training job ran"
        jobs = _slurm_train_jobs()
        assert len(jobs) == 1, jobs
        job = jobs[0]
        req = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True, timeout=30)
        assert req.returncode == 0, req.stderr
        out, _ = proc.communicate(timeout=1200)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out[-5000:]
    elapsed = time.time() - t0
    shown = subprocess.run(["scontrol", "show", "job", job], capture_output=True, text=True, timeout=30).stdout
    assert re.search(r"\bRestarts=1\b", shown), shown  # SLURM ran it twice
    log = (wd / "results" / "logs" / "train" / f"{run}.log").read_text()
    resumed = re.search(rf"resumed {run} from \S+ at step (\d+)/(\d+)", log)
    assert resumed and 0 < int(resumed.group(1)) < int(resumed.group(2)), log[:2000]
    # the uninterrupted reference: the same job, run locally in one go
    proc_ref = run_snakemake(ref, "--cores", "1", target, *args, timeout=1200)
    assert proc_ref.returncode == 0, proc_ref.stderr[-3000:]
    got, want = (json.loads((d / target).read_text()) for d in (wd, ref))
    for m in (got, want):
        m.pop("wall_s"), m.pop("steps_per_s")
    assert got == want
    hist = [pd.read_csv(d / "results" / "runs" / run / "history.csv").drop(columns="wall_s") for d in (wd, ref)]
    pd.testing.assert_frame_equal(*hist)
    with open(JOBCOMP) as f:
        f.seek(offset)
        records = [line for line in f if f"JobId={job} " in line]
    artifacts = REPO / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    (artifacts / "slurm-requeue.log").write_text(
        f"requeue of training job {job} ({run}) through SLURM: {elapsed:.0f} s; resumed at step "
        f"{resumed.group(1)}/{resumed.group(2)}; metrics equal an uninterrupted run\n" + "".join(records))
