"""Render every paper section into one self-contained HTML page.

Figures are inlined as base64 PNG, tables as HTML produced by pandas (escaped), and
every string from config or results goes through Jinja2's autoescaping, so the page
needs no network and shows any `<script>` in a label as text.
"""

from __future__ import annotations

import base64
import json
import os
import platform
import subprocess
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import pandas as pd
import yaml
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

PACKAGES = ["torch", "torchvision", "snakemake", "numpy", "scipy", "pandas", "seaborn", "matplotlib", "mnist1d",
            "jupytext"]


def git_commit(cwd: str | os.PathLike = ".") -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=cwd, capture_output=True, text=True,
                             check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return sha + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)"


def hardware() -> str:
    cpu = platform.processor() or platform.machine()
    text = f"{platform.system()} {platform.machine()}, {os.cpu_count()} logical CPUs ({cpu})"
    try:
        import torch

        if torch.cuda.is_available():
            text += f"; GPU: {torch.cuda.get_device_name(0)}"
        else:
            text += "; no GPU visible"
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


def benchmark_summary(paths: list[str]) -> dict:
    """Run count and time spent in jobs, from Snakemake's benchmark files."""
    seconds, n = 0.0, 0
    for p in paths:
        try:
            df = pd.read_csv(p, sep="\t")
        except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError):
            continue
        if "s" in df:
            seconds += float(df["s"].iloc[0])
            n += 1
    return {"jobs": n, "seconds": seconds}


def _img(path: Path) -> Markup:
    data = base64.b64encode(path.read_bytes()).decode()
    return Markup(f'<img alt="{path.stem}" src="data:image/png;base64,{data}">')


def _read_fragment(path: Path) -> Markup:
    # produced by pandas.DataFrame.to_html(escape=True) in Section.table
    return Markup(path.read_text())


def load_section(path: str | os.PathLike) -> dict:
    path = Path(path)
    doc = json.loads(path.read_text())
    base = path.parent
    items = []
    for item in doc["items"]:
        item = dict(item)
        if item["kind"] == "figure":
            item["img"] = _img(base / item["png"])
        elif item["kind"] == "table":
            item["fragment"] = _read_fragment(base / item["html"])
        items.append(item)
    claims = pd.read_csv(base / doc["claims"]).fillna("")
    counts = claims["verdict"].value_counts().to_dict() if len(claims) else {}
    return {**doc, "items": items, "claims_rows": claims.to_dict("records"), "verdict_counts": counts}


def build_report(section_paths: list[str], out_html: str | os.PathLike, config: dict, benchmarks: list[str] | None = None,
                 template_dir: str | os.PathLike = "report", workdir: str | os.PathLike = ".",
                 runs: int | None = None) -> Path:
    env = Environment(loader=FileSystemLoader(str(template_dir)), autoescape=select_autoescape(["html", "j2"]))
    template = env.get_template("template.html.j2")
    sections = [load_section(p) for p in section_paths]
    bench = benchmark_summary(benchmarks or [])
    provenance = {
        "commit": git_commit(workdir),
        "generated": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "scale": config.get("scale"),
        "hardware": hardware(),
        "versions": versions(),
        "jobs": bench["jobs"],
        "runs": runs,
        "job_hours": bench["seconds"] / 3600,
        "job_seconds": bench["seconds"],
        "config": yaml.safe_dump(config, sort_keys=False),
    }
    html = template.render(sections=sections, prov=provenance)
    out = Path(out_html)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(html)
    os.replace(tmp, out)
    return out
