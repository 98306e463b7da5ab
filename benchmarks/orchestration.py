"""Orchestration: how long Snakemake takes to plan the paper-scale workflow, and what each
job pays before it trains (interpreter, imports, data load).

* ``snakemake -n --config scale=paper papers=[...]`` in a temporary copy of the workflow
  (Snakefile, config.yaml, workflow/, report/, envs/), for every paper whose block exists
  under ``scales.paper``; wall time (and CPU time of the child) against the job count.
  On a machine that has SLURM's client tools but no reachable controller, the SLURM
  executor plugin's import-time probe (``scontrol show config``) waits for a timeout on
  every Snakemake start; a second row stubs ``scontrol`` with a command that fails at once,
  to show Snakemake's own planning time.
* Per-job fixed cost: a fresh interpreter importing what a training job imports
  (torch, largebatch.train / vtrain / data / logs, snakemake.script) and loading a prepared
  cpu-scale dataset; its share of the default run is (jobs x fixed cost) / (sum of the
  jobs' benchmark times) when ``results/`` holds a cpu-scale run, else an estimate from the
  cpu-scale job count and the 15-minute x 2-core budget (stated in the row).
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

from .common import Result, scratch

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
BUDGET_JOB_S = 15 * 60 * 2  # the default run's budget: 15 minutes wall on 2 cores
FIXED_COST_CODE = (
    "import torch, snakemake.script; from largebatch.data import load_dataset; "
    "from largebatch.logs import job_logger; from largebatch.train import train_run; "
    "from largebatch.vtrain import train_many; load_dataset({path!r})"
)


def copy_workflow(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("Snakefile", "config.yaml"):
        shutil.copy(REPO / name, dest / name)
    for name in ("workflow", "report", "envs"):
        shutil.copytree(REPO / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def papers_with_blocks(scale: str) -> list[str]:
    from largebatch.experiments import PAPERS

    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    block = cfg["scales"][scale]
    return [p for p in PAPERS if p in block and (REPO / "src/largebatch/experiments" / f"{PAPERS[p]}.py").exists()]


def dry_run(workdir: Path, scale: str, papers: list[str], env: dict | None = None,
            configfile: Path | None = None) -> tuple[float, float, int]:
    """(wall s, child CPU s, job count) of one `snakemake -n`."""
    extra = ["--configfile", str(configfile)] if configfile else []
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run([SNAKEMAKE, "-n", *extra, "--config", f"scale={scale}", f"papers=[{','.join(papers)}]"],
                          cwd=workdir, capture_output=True, text=True, env=env, timeout=600)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        raise RuntimeError(f"snakemake -n failed:\n{proc.stderr[-3000:]}")
    m = re.search(r"^total\s+(\d+)", proc.stdout + proc.stderr, re.M)
    return wall, cpu, int(m.group(1)) if m else 0


def more_seeds(dest: Path, scale: str, papers: list[str]) -> Path:
    """A config file giving every paper block at ``scale`` one more seed (Snakemake merges
    it over config.yaml), so the paper-scale DAG passes 2,000 jobs."""
    block = yaml.safe_load((REPO / "config.yaml").read_text())["scales"][scale]
    overlay = {p: {"seeds": [*block[p]["seeds"], max(block[p]["seeds"]) + 1]}
               for p in papers if "seeds" in block.get(p, {})}
    dest.write_text(yaml.safe_dump({"scales": {scale: overlay}}))
    return dest


def stub_env(tmp: Path) -> dict | None:
    """PATH with an `scontrol` that fails at once, if the machine has one."""
    if not shutil.which("scontrol"):
        return None
    bindir = tmp / "stub-bin"
    bindir.mkdir(exist_ok=True)
    stub = bindir / "scontrol"
    stub.write_text("#!/bin/sh\nexit 1\n")
    stub.chmod(0o755)
    return {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}"}


def fixed_cost(data_path: Path, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", FIXED_COST_CODE.format(path=str(data_path))], check=True,
                       capture_output=True, cwd=REPO)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def cpu_run_records(results: Path) -> tuple[int, float] | None:
    """(job records, sum of their seconds) if `results` holds a cpu-scale run of the configured papers."""
    from largebatch.experiments import build_registry

    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    runs, _ = build_registry({**cfg, "scale": "cpu"})
    have = {p.name for p in (results / "runs").glob("*")} if (results / "runs").exists() else set()
    if not runs or len(have & set(runs)) < 0.9 * len(runs):
        return None
    import pandas as pd

    files = list((results / "benchmarks").glob("**/*.tsv"))
    if not files:
        return None
    return len(files), float(sum(pd.read_csv(f, sep="\t")["s"].sum() for f in files))


def run(quick: bool = False, device: str = "cpu", repeats: int = 3, results: str | os.PathLike = "results"
        ) -> list[Result]:
    rows = []
    tmp = scratch("orch-")
    wd = copy_workflow(tmp / "wd")
    env = stub_env(tmp)
    if quick:  # one small dry run: checks the code path, measures nothing of interest
        scale, papers = "tiny", ["baseline"]
        wall, cpu, jobs = dry_run(wd, scale, papers, env=env)
    else:
        scale, papers = "paper", papers_with_blocks("paper") or ["baseline"]
        wall, cpu, jobs = dry_run(wd, scale, papers)
    rows.append(Result(f"orchestration: snakemake -n, scale={scale}, {len(papers)} papers", wall, 10.0, "s",
                       wall, 10.0, higher_is_better=False, ratio_unit="s",
                       note=f"{jobs} jobs ({'>=' if jobs >= 2000 else '<'} 2,000); child CPU {cpu:.1f} s; "
                            f"papers: {', '.join(papers)}",
                       extra={"jobs": jobs, "cpu_s": cpu, "papers": papers}))
    if env is not None and not quick:
        wall2, cpu2, jobs2 = dry_run(wd, scale, papers, env=env)
        rows.append(Result(f"orchestration: snakemake -n, scale={scale}, scontrol probe stubbed", wall2, 10.0, "s",
                           wall2, 10.0, higher_is_better=False, ratio_unit="s",
                           note=f"{jobs2} jobs; child CPU {cpu2:.1f} s; this machine has SLURM client tools but "
                                f"no controller, and the SLURM plugin probes `scontrol` at every start",
                           extra={"jobs": jobs2, "cpu_s": cpu2}))
    if not quick:
        overlay = more_seeds(tmp / "more-seeds.yaml", scale, papers)
        wall3, cpu3, jobs3 = dry_run(wd, scale, papers, env=env, configfile=overlay)
        rows.append(Result(f"orchestration: snakemake -n, scale={scale}, one more seed per paper"
                           f"{', probe stubbed' if env is not None else ''}", wall3, 10.0, "s",
                           wall3, 10.0, higher_is_better=False, ratio_unit="s",
                           note=f"{jobs3} jobs ({'>=' if jobs3 >= 2000 else '<'} 2,000); child CPU {cpu3:.1f} s",
                           extra={"jobs": jobs3, "cpu_s": cpu3}))

    # per-job fixed cost, on the cpu-scale dataset
    data_path = REPO / "results" / "data" / "mnist1d.pt"
    from largebatch.data import prepare_dataset

    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    if quick or not data_path.exists() or os.path.getsize(data_path) < 1_000_000:
        data_path = tmp / "mnist1d.pt"
        spec = {"kind": "mnist1d", "num_samples": 600 if quick else
                cfg["scales"]["cpu"]["datasets"]["mnist1d"]["num_samples"], "seed": 42}
        prepare_dataset("mnist1d", spec, data_path)
    fixed = fixed_cost(data_path, repeats=1 if quick else repeats)
    records = cpu_run_records(Path(results))
    if records is not None:
        n_jobs, job_s = records
        how = f"{n_jobs} jobs of the cpu-scale run in {results}/benchmarks, {job_s:.0f} job-s in all"
    else:
        n_jobs = jobs if quick else dry_run(wd, "cpu", papers_with_blocks("cpu") or ["baseline"], env=env)[2]
        job_s = BUDGET_JOB_S
        how = (f"ESTIMATE: no cpu-scale run in {results}/; {n_jobs} jobs at {'tiny' if quick else 'cpu'} scale "
               f"(snakemake -n) against the "
               f"15 min x 2 cores budget ({BUDGET_JOB_S} job-s); a faster run makes the share larger")
    share = 100 * n_jobs * fixed / job_s
    rows.append(Result("orchestration: per-job fixed cost, share of the default run", fixed, job_s / n_jobs,
                       "s/job", share, 10.0, higher_is_better=False, ratio_unit="%",
                       note=f"interpreter + imports + data load {fixed:.2f} s/job (fresh python, wall); {how}",
                       extra={"fixed_s": fixed, "jobs": n_jobs, "job_s": job_s, "estimated": records is None}))
    return rows
