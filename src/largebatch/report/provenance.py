"""Where the report's numbers come from: commit and working-tree state, data hashes, job time
per paper (Snakemake benchmark records, only those the report rule declares as inputs), the
active scale's configuration and the paper-scale compute estimate."""

from __future__ import annotations

import copy
import logging
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

import pandas as pd
import yaml

from .. import paths
from ..experiments import papers_of

log = logging.getLogger(__name__)

PACKAGES = ["torch", "torchvision", "snakemake", "numpy", "scipy", "statsmodels", "pandas", "seaborn",
            "matplotlib", "mnist1d", "jupytext"]


def git_state(cwd: str | os.PathLike = ".") -> dict:
    """{'commit': short sha or None, 'dirty': bool or None, 'changed': [paths of tracked files
    with uncommitted changes]}; commit None outside a git checkout."""
    try:
        sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=cwd, capture_output=True, text=True,
                             check=True, timeout=10).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                                capture_output=True, text=True, check=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None, "changed": []}
    changed = [line[3:] for line in status.splitlines() if line.strip()]
    return {"commit": sha, "dirty": bool(changed), "changed": changed}


def git_commit(cwd: str | os.PathLike = ".") -> str:
    """The commit as one string, e.g. 'abc123 (with uncommitted changes)'."""
    g = git_state(cwd)
    if g["commit"] is None:
        return "unknown (not a git checkout)"
    return g["commit"] + (" (with uncommitted changes)" if g["dirty"] else "")


def hardware() -> str:
    cpu = platform.processor() or platform.machine()
    text = f"{platform.system()} {platform.machine()}, {os.cpu_count()} logical CPUs ({cpu})"
    try:
        import torch

        text += f"; GPU: {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else "; no GPU visible"
    except ImportError:
        pass
    return text


def versions() -> dict[str, str]:
    out = {}
    for p in PACKAGES:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = "not installed"
    out["python"] = platform.python_version()
    return out


def benchmark_record(path: str | os.PathLike) -> tuple[float, float] | None:
    """(wall s, CPU s) of one Snakemake benchmark record (columns ``s``, ``cpu_time``; CPU NaN
    where absent); None if missing or unreadable."""
    try:
        df = pd.read_csv(path, sep="\t")
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError):
        return None
    if "s" not in df or not len(df):
        return None
    cpu = float(df["cpu_time"].iloc[0]) if "cpu_time" in df else float("nan")
    return float(df["s"].iloc[0]), cpu


def benchmark_seconds(path: str | os.PathLike) -> float | None:
    """Wall-clock seconds of one Snakemake benchmark record (column ``s``); None if unreadable."""
    rec = benchmark_record(path)
    return None if rec is None else rec[0]


def benchmark_summary(paths: list[str]) -> dict:
    """Job count and time spent in jobs, from the given Snakemake benchmark files."""
    secs = [s for s in (benchmark_seconds(p) for p in paths) if s is not None]
    return {"jobs": len(secs), "seconds": float(sum(secs))}


def training_benchmarks(run_tables: dict[str, list[dict]], packs: dict[str, list[str]]) -> dict[str, list[str]]:
    """Paper -> benchmark files of the jobs that trained its runs (a single-run job's
    ``results/benchmarks/train/<run>.tsv`` or its pack's ``results/benchmarks/packs/<pack>.tsv``)."""
    pack_of = {run: pack for pack, ids in packs.items() for run in ids}
    out = {}
    for paper, rows in run_tables.items():
        files = []
        for run in dict.fromkeys(r["run"] for r in rows):
            f = paths.pack_benchmark(pack_of[run]) if run in pack_of else paths.train_benchmark(run)
            if f not in files:
                files.append(f)
        out[paper] = files
    return out


def compute_per_paper(paper_benchmarks: dict[str, list[str]]) -> list[dict]:
    """Per paper: jobs with a record and their hours (a job shared by papers counts for each)."""
    rows = []
    for paper, files in paper_benchmarks.items():
        b = benchmark_summary(files)
        rows.append({"paper": paper, "jobs": b["jobs"], "declared": len(files), "seconds": b["seconds"]})
    return rows


def data_hashes(checksum_files: list[str]) -> list[dict]:
    """Dataset name and sha256 from each ``results/data/<name>.pt.sha256`` written by prepare_data."""
    out = []
    for f in checksum_files:
        text = Path(f).read_text().split()
        name = Path(f).name.removesuffix(".sha256").removesuffix(".pt")
        out.append({"dataset": name, "sha256": text[0] if text else "(empty checksum file)"})
    return out


def scale_config(config: dict) -> dict:
    """The configuration the run used: top-level keys, and only the active scale's block."""
    scale = config.get("scale")
    top = {k: v for k, v in config.items() if k != "scales"}
    return {**top, "scales": {scale: (config.get("scales") or {}).get(scale)}}


def paper_scale_estimate(config: dict) -> dict:
    """GPU-hours per paper at the paper scale (``largebatch.estimate``), or the reason it is missing."""
    if "paper" not in (config.get("scales") or {}):
        return {"rows": [], "error": "config.yaml has no 'paper' scale"}
    cfg = copy.deepcopy(config)
    cfg["scale"] = "paper"
    built = papers_of(config) if config.get("papers") else []  # the sections this run built
    cfg["papers"] = [p for p in built if p in cfg["scales"]["paper"]]
    try:
        from ..estimate import estimate

        rows = estimate(cfg)
    except Exception as err:  # the estimate is context, not a result: say why it is missing
        log.warning("paper-scale estimate failed: %s", err)
        return {"rows": [], "error": f"{type(err).__name__}: {err}"}
    return {"rows": rows, "error": None, "total_runs": sum(r["runs"] for r in rows),
            "total_hours": sum(r["gpu_hours"] for r in rows)}


def dump_yaml(data: dict) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
