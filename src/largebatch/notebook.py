"""The one contract between the section rules and the analysis notebooks.

A notebook (``workflow/notebooks/<paper>.py``, a jupytext percent file) starts with::

    ctx = context("keskar", globals())
    sec = ctx.section()

and reads everything from ``ctx``: ``ctx.scale`` (the scale's name), ``ctx.block`` (the
paper's config block), ``ctx.datasets``, ``ctx.rows`` (the paper's run table),
``ctx.input.<name>`` / ``ctx.output.<name>`` (paths), ``ctx.runs()`` / ``ctx.histories()``
(the run table joined with each run's metrics / histories), ``ctx.config``. Under Snakemake
(``script:``) these come from the ``snakemake`` object; opened in Jupyter, ``context``
builds the same section rule with ``experiments.build_plan`` from config.yaml, so the
object is the same and the notebook runs on the results already on disk.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import yaml

from .experiments import PAPERS, build_plan, scale_block
from .report.section import Section, load_histories, load_runs


def _names(io) -> dict:
    """Named entries of a Snakemake Namedlist (or a plain dict)."""
    if isinstance(io, dict):
        return dict(io)
    return {name: io[name] for name in io.keys()}


@dataclass
class Context:
    paper: str
    scale: str
    block: dict
    datasets: dict
    rows: list[dict]
    input: SimpleNamespace
    output: SimpleNamespace
    config: dict
    log: str | None = None

    @property
    def declaration(self):
        return PAPERS[self.paper]

    @property
    def title(self) -> str:
        return self.declaration.title

    @property
    def ids(self) -> list[str]:
        return list(dict.fromkeys(r["run"] for r in self.rows))

    def _files(self, name: str) -> dict[str, str]:
        files = list(getattr(self.input, name))
        if len(files) != len(self.ids):
            raise ValueError(f"{self.paper}: input {name} has {len(files)} files for {len(self.ids)} runs")
        return dict(zip(self.ids, files))

    def runs(self) -> pd.DataFrame:
        """The paper's run table (labels + run id) joined with each run's metrics.json."""
        return load_runs(self.rows, self._files("metrics"))

    def histories(self) -> pd.DataFrame:
        """Every run's history.csv with the paper's labels as extra columns (long format)."""
        return load_histories(self.rows, self._files("histories"))

    def section(self):
        """The paper's report section, writing where the section rule's outputs say."""
        outputs = self.declaration.outputs_for(self.block, scale_block(self.config))
        out = vars(self.output)
        return Section(self.paper, self.title, outputs, outdir=Path(out["section"]).parent,
                       files={o.name: out[o.name] for o in outputs})


def context(paper: str, namespace: dict, config_path: str = "config.yaml") -> Context:
    """The notebook's context: from ``snakemake`` in ``namespace`` if present, else rebuilt
    from ``config_path`` (the working directory becomes the workflow directory)."""
    sm = namespace.get("snakemake")
    if sm is not None:
        p = sm.params
        if p.paper != paper:
            raise ValueError(f"notebook of {paper!r} run by the section rule of {p.paper!r}")
        return Context(paper, p.scale, p.block, p.datasets, p.runs, SimpleNamespace(**_names(sm.input)),
                       SimpleNamespace(**_names(sm.output)), sm.config, sm.log[0] if sm.log else None)
    root = Path(config_path).resolve().parent
    os.chdir(root)
    with open(config_path) as f:
        config = yaml.safe_load(f)
    config["papers"] = list(dict.fromkeys([*config["papers"], paper]))
    io = build_plan(config).sections[paper]
    p = io.params
    return Context(paper, p["scale"], p["block"], p["datasets"], p["runs"], SimpleNamespace(**io.input),
                   SimpleNamespace(**io.output), config)
