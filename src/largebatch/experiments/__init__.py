"""The papers as data: config -> every training run, job and section output of the workflow.

Each paper module in this package declares ``PAPER`` (``base.Paper``): its title, its run
plan, its analysis jobs and its section's tables and figures with their captions.
``build_plan(config)`` turns the requested papers' declarations into a :class:`Plan`: the
normalised run specs by id (a run two papers plan is trained once), each paper's run table,
the training packs (``largebatch.packing``), the analysis jobs and each section rule's
inputs, outputs and params. ``workflow/rules/*.smk`` generate every rule from the Plan, and
``largebatch.notebook.context`` rebuilds the same section IO in Jupyter. Nothing here
imports Snakemake or torch.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from .. import paths
from ..packing import pack_runs, run_cost, stacks
from ..spec import SpecError, normalize, run_id
from . import baseline, batch_augmentation, golmant, hoffer, keskar, masters_luschi, swap
from .base import ConfigError, Job, Output, Paper, View, dataset_sizes, seeds_of, train_size

#: paper key -> declaration, in report order
PAPERS: dict[str, Paper] = {m.PAPER.key: m.PAPER for m in (baseline, keskar, hoffer, masters_luschi, golmant,
                                                          swap, batch_augmentation)}

__all__ = ["PAPERS", "ConfigError", "Job", "Output", "Paper", "Plan", "View", "build_plan",
           "build_registry", "dataset_sizes", "paper", "papers_of", "scale_block", "seeds_of", "train_size"]


def paper(name: str) -> Paper:
    if name not in PAPERS:
        raise ConfigError(f"config.yaml: papers lists {name!r}, which is not a paper; choose from {list(PAPERS)}")
    return PAPERS[name]


def papers_of(config: dict) -> list[str]:
    """The sections a run of `config` builds, in the top-level ``papers`` order.

    A scale with blocks for only some papers (``mnist``) says which in its own optional
    ``papers`` list, so that ``--config scale=NAME`` alone works. The top-level ``papers``
    (which ``--config papers=[...]`` sets) still narrows it: the result is the intersection,
    in the top-level order. Snakemake merges the command line into the config, so the two
    cannot be told apart; the top-level default names every paper, so by default the scale's
    list is what runs. The one place this is decided: the plan, the workflow's rules and the
    report all call it.
    """
    top = list(config["papers"])
    for key in top:
        paper(key)
    own = ((config.get("scales") or {}).get(config.get("scale")) or {}).get("papers")
    if own is None:
        return top
    where = f"scales.{config['scale']}.papers"
    for key in own:
        if key not in PAPERS:
            raise ConfigError(f"config.yaml: {where} lists {key!r}, which is not a paper; choose from {list(PAPERS)}")
    chosen = [key for key in top if key in own]
    if not chosen:
        raise ConfigError(f"config.yaml: scale {config['scale']!r} builds only {list(own)} ({where}), and papers = "
                          f"{top} names none of them; give papers=[...] from {list(own)}, or no papers= to build them all")
    return chosen


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
    for key in papers_of(config):
        decl = paper(key)
        if key not in scale:
            raise ConfigError(f"config.yaml: papers lists {key!r} but {where} has no `{key}:` block; "
                              f"add one or remove {key!r} from papers")
        try:
            planned = decl.plan(copy.deepcopy(scale[key]), scale)
        except (KeyError, ValueError, TypeError) as err:
            what = f"missing key {err}" if isinstance(err, KeyError) else str(err)
            raise ConfigError(f"config.yaml: {where}.{key}: {what}") from err
        rows = []
        for labels, spec in planned:
            try:
                spec_n = normalize({**defaults, **spec})
            except SpecError as err:
                raise ConfigError(f"config.yaml: {where}.{key}: {err}") from err
            if spec_n["dataset"] not in sizes:
                raise ConfigError(f"config.yaml: {where}.{key}: dataset {spec_n['dataset']!r} is not defined "
                                  f"under {where}.datasets (defined: {sorted(sizes)})")
            n = sizes[spec_n["dataset"]]
            if spec_n["batch_size"] > n:
                raise ConfigError(f"config.yaml: {where}.{key}: batch_size = {spec_n['batch_size']} is larger "
                                  f"than the training set of {spec_n['dataset']!r} ({n} samples); lower it")
            rid = run_id(spec_n)
            runs[rid] = spec_n
            rows.append({**labels, "run": rid})
        tables[key] = rows
    for rid, spec in runs.items():
        parent = spec["init_from"]
        if parent is not None and parent not in runs:
            raise ConfigError(f"run {rid} starts from run {parent!r}, which no paper plans")
    return runs, tables


@dataclass
class Plan:
    """Everything the workflow runs for a config (see the module docstring)."""

    scale_name: str
    scale: dict
    runs: dict[str, dict]
    tables: dict[str, list[dict]]
    packs: dict[str, list[str]]
    jobs: dict[str, list[Job]] = field(default_factory=dict)
    sections: dict[str, Job] = field(default_factory=dict)
    outputs: dict[str, list[Output]] = field(default_factory=dict)

    def view(self, key: str) -> View:
        return View(key, self.scale[key], self.scale, self.scale_name, self.tables[key], self.runs, self.packs)


def packing_cost(scale: dict):
    """The packing policy's cost function for this scale's datasets."""
    sizes = dataset_sizes(scale)
    kinds = {name: cfg.get("kind", name) for name, cfg in scale["datasets"].items()}
    return lambda spec: run_cost(spec, sizes[spec["dataset"]], kinds[spec["dataset"]])


def packing_stack_rule(scale: dict):
    """Whether k runs like a spec stack (``packing.stacks``), for this scale's datasets."""
    kinds = {name: cfg.get("kind", name) for name, cfg in scale["datasets"].items()}
    return lambda spec, k: stacks(spec, k, kinds[spec["dataset"]])


def section_io(decl: Paper, view: View) -> Job:
    """The section rule of a paper: its notebook's inputs, outputs and params."""
    ids = view.ids
    outputs = decl.outputs_for(view.block, view.scale)
    extra = decl.inputs(view)
    clash = {"metrics", "histories"} & set(extra)
    if clash:
        raise ValueError(f"paper {decl.key!r}: section input names {sorted(clash)} are reserved")
    return Job(
        name=decl.key,
        script=f"{decl.key}.py",
        input={"metrics": [paths.run_file(r) for r in ids],
               "histories": [paths.run_file(r, "history.csv") for r in ids], **extra},
        output={"section": paths.section_file(decl.key), "claims": paths.claims_file(decl.key),
                **{o.name: paths.item_file(decl.key, o.kind, o.name) for o in outputs}},
        params={"paper": decl.key, "scale": view.scale_name, "block": view.block,
                "datasets": view.scale["datasets"], "runs": view.rows},
        device=False,
    )


def build_plan(config: dict) -> Plan:
    """Runs, packs, analysis jobs and section IO of every paper the config asks for."""
    runs, tables = build_registry(config)
    scale = scale_block(config)
    owners: dict[str, str] = {}
    for key, rows in tables.items():
        for row in rows:
            owners.setdefault(row["run"], key)
    job_seconds = (config.get("packing") or {}).get("job_seconds", 0)
    packable = {r: k for r, k in owners.items() if PAPERS[k].packable}
    packs = pack_runs(packable, runs, job_seconds, packing_cost(scale), packing_stack_rule(scale))
    plan = Plan(config["scale"], scale, runs, tables, packs)
    names: dict[str, str] = {}
    for key in tables:
        decl, view = PAPERS[key], plan.view(key)
        try:
            plan.jobs[key] = list(decl.jobs(view))
            plan.outputs[key] = decl.outputs_for(view.block, scale)
            plan.sections[key] = section_io(decl, view)
        except (KeyError, ValueError, TypeError) as err:
            what = f"missing key {err}" if isinstance(err, KeyError) else str(err)
            raise ConfigError(f"config.yaml: scales.{config['scale']}.{key}: {what}") from err
        for job in plan.jobs[key]:
            if job.name in names or job.name in PAPERS or job.name.startswith("train"):
                raise ConfigError(f"paper {key!r}: job name {job.name!r} is taken "
                                  f"({names.get(job.name, 'a workflow rule')}); rename it")
            names[job.name] = key
    return plan
