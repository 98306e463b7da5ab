"""Helpers for the per-paper analysis notebooks (jupytext percent files).

Under Snakemake (`script:`) the notebook gets the `snakemake` object.  Opened in
Jupyter, ``context(paper, globals())`` rebuilds the same inputs from config.yaml so
the notebook runs there too, on the results already on disk.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace


def context(paper: str, namespace: dict, config_path: str = "config.yaml"):
    if "snakemake" in namespace:
        return namespace["snakemake"]
    import yaml

    from .experiments import build_registry

    root = Path(config_path).resolve().parent
    os.chdir(root)
    with open(config_path) as f:
        config = yaml.safe_load(f)
    config["papers"] = list(dict.fromkeys([*config["papers"], paper]))
    _, tables = build_registry(config)
    params = SimpleNamespace(runs=tables[paper], config=config, scale=config["scales"][config["scale"]].get(paper, {}))
    return SimpleNamespace(params=params, config=config, log=[None], input=SimpleNamespace(), output=SimpleNamespace())
