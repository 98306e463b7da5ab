"""Paper experiments as data: config block -> list of training runs.

Each paper module in this package exposes

* ``TITLE``  -- the section title in the report, and
* ``plan(block, scale) -> list[tuple[dict, dict]]`` -- the runs the paper needs at
  this scale, each as ``(labels, spec)``: ``labels`` are the paper's own columns
  (arm, batch size, seed, ...), ``spec`` a run spec (see ``largebatch.spec``).

``build_registry`` collects the runs of every requested paper, normalises their
specs, gives each its id (shared runs are trained once), and returns the run table
plus one label table per paper.  Nothing here imports Snakemake.
"""

from __future__ import annotations

import copy
import importlib

from ..spec import SpecError, normalize, run_id

#: paper key -> module name in this package, in report order
PAPERS = {
    "baseline": "baseline",
    "keskar": "keskar",
    "hoffer": "hoffer",
    "masters_luschi": "masters_luschi",
    "golmant": "golmant",
    "swap": "swap",
    "batch_augmentation": "batch_augmentation",
}


class ConfigError(ValueError):
    """config.yaml asks for something impossible; the message names the key and the fix."""


def paper_module(name: str):
    if name not in PAPERS:
        raise ConfigError(f"config.yaml: papers lists {name!r}, which is not a paper; choose from {list(PAPERS)}")
    try:
        return importlib.import_module(f"{__name__}.{PAPERS[name]}")
    except ModuleNotFoundError as err:
        raise ConfigError(f"config.yaml: paper {name!r} is not implemented in this version ({err})") from err


def dataset_sizes(scale: dict) -> dict[str, int]:
    """Number of training samples of each dataset of a scale (for batch-size checks)."""
    known = {"mnist": 60000, "fashion_mnist": 60000, "cifar10": 50000, "cifar100": 50000}
    sizes = {}
    for name, cfg in scale.get("datasets", {}).items():
        kind = cfg.get("kind", name)
        if kind == "mnist1d":
            # mnist1d makes num_samples // 10 samples per class, then splits train / test
            total = (cfg.get("num_samples", 5000) // 10) * 10
            n = int(total * cfg.get("train_split", 0.8))
        else:
            n = known.get(kind, 0)
        if cfg.get("train_samples"):
            n = min(n, cfg["train_samples"])
        sizes[name] = n
    return sizes


def scale_block(config: dict) -> dict:
    scale = config["scale"]
    if scale not in config.get("scales", {}):
        raise ConfigError(f"config.yaml: scale = {scale!r} has no block under `scales`; "
                          f"choose one of {sorted(config.get('scales', {}))}")
    if config.get("rehearsal"):  # the paper scale's plans, sized for a CPU (largebatch.rehearsal)
        from ..rehearsal import rehearse_scale

        try:
            return rehearse_scale(config["scales"][scale], config["rehearsal"])
        except ValueError as err:
            raise ConfigError(f"config: {err}") from err
    return config["scales"][scale]


def build_registry(config: dict) -> tuple[dict[str, dict], dict[str, list[dict]]]:
    """Return ({run id: normalised spec}, {paper: [labels + {"run": id}, ...]})."""
    scale = scale_block(config)
    where = f"scales.{config['scale']}"
    sizes = dataset_sizes(scale)
    defaults = scale.get("defaults", {})
    runs: dict[str, dict] = {}
    tables: dict[str, list[dict]] = {}
    for paper in config["papers"]:
        mod = paper_module(paper)
        if paper not in scale:
            raise ConfigError(f"config.yaml: papers lists {paper!r} but {where} has no `{paper}:` block; "
                              f"add one or remove {paper!r} from papers")
        block = copy.deepcopy(scale[paper])
        try:
            planned = mod.plan(block, scale)
        except (KeyError, ValueError, TypeError) as err:
            what = f"missing key {err}" if isinstance(err, KeyError) else str(err)
            raise ConfigError(f"config.yaml: {where}.{paper}: {what}") from err
        rows = []
        for labels, spec in planned:
            full = {**defaults, **spec}
            try:
                spec_n = normalize(full)
            except SpecError as err:
                raise ConfigError(f"config.yaml: {where}.{paper}: {err}") from err
            if spec_n["dataset"] not in sizes:
                raise ConfigError(f"config.yaml: {where}.{paper}: dataset {spec_n['dataset']!r} is not defined "
                                  f"under {where}.datasets (defined: {sorted(sizes)})")
            n = sizes[spec_n["dataset"]]
            if spec_n["batch_size"] > n:
                raise ConfigError(f"config.yaml: {where}.{paper}: batch_size = {spec_n['batch_size']} is larger "
                                  f"than the training set of {spec_n['dataset']!r} ({n} samples); lower it")
            rid = run_id(spec_n)
            runs[rid] = spec_n
            rows.append({**labels, "run": rid})
        tables[paper] = rows
    for rid, spec in runs.items():
        parent = spec["init_from"]
        if parent is not None and parent not in runs:
            raise ConfigError(f"run {rid} starts from run {parent!r}, which no paper plans")
    return runs, tables


def packs_of(tables: dict[str, list[dict]], runs: dict[str, dict]) -> dict[str, list[str]]:
    """Runs a paper asked to train together in one job (label ``pack``), by pack name.

    A pack is an execution choice: its runs are trained one after another (or
    vectorised) in one process, so the per-job start-up cost (interpreter, torch
    import, data load) is paid once.  A run shared by two papers joins the first pack
    that claims it.  A run cannot share a pack with the run it starts from.
    """
    packs: dict[str, list[str]] = {}
    claimed: set[str] = set()
    for paper, rows in tables.items():
        for row in rows:
            name = row.get("pack")
            if name is None or row["run"] in claimed:
                continue
            packs.setdefault(f"{paper}-{name}", []).append(row["run"])
            claimed.add(row["run"])
    for name, ids in packs.items():
        members = set(ids)
        for rid in ids:
            if runs[rid]["init_from"] in members:
                raise ConfigError(f"pack {name!r}: run {rid} starts from {runs[rid]['init_from']}, which is in the "
                                  f"same pack; put them in different packs")
    return packs


def seeds_of(block: dict, key: str = "seeds") -> list[int]:
    seeds = block.get(key)
    if not isinstance(seeds, list) or not seeds:
        raise ConfigError(f"{key} = {seeds!r}: give a non-empty list of integer seeds")
    return seeds
