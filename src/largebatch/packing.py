"""Which job trains which run: the one packing policy.

A *pack* is a training job that trains several runs in one process (rule
``train_pack_<name>``, ``workflow/scripts/train_pack.py``): the start-up (interpreter, torch
import, data load) is paid once, and runs that the vectorised trainer can stack
(``largebatch.vtrain``: equal ``spec.group_key``) train together. A run in no pack is
trained by the generic ``train`` rule, one job per run.

The policy has one knob, the top-level config key ``packing.job_seconds``: the estimated
length of a training job to aim for. Runs are grouped by (paper, stack key, depth in the
``init_from`` chain); a group estimated over 1.5x the target is split into
``round(cost / target)`` packs, shorter groups are merged first-fit-decreasing into packs of
at most the target. A run estimated longer than the target therefore trains alone, so at
the paper scale (runs of GPU-hours) every run is its own job, and at the CPU scales the
hundreds of tiny runs share a few dozen jobs. ``job_seconds: 0`` turns packing off.

``python -m largebatch.packing RUN_ID`` prints the job (rule name) that trains a run.
The estimate is a rough CPU cost model, used only to balance jobs: it never changes what
a run computes.
"""

from __future__ import annotations

import argparse
import math
import sys
from typing import Callable

from .spec import group_key, vectorisable

#: input features and positions per sample of each dataset kind (for the cost estimate)
INPUT = {"mnist1d": (40, 40), "mnist": (784, 784), "fashion_mnist": (784, 784), "cifar10": (3072, 1024),
         "cifar100": (3072, 1024)}
#: cost model (one CPU thread, measured orders of magnitude; see README "Performance"):
#: per step overhead, arithmetic rate, per-run start-up
STEP_S = 6e-4
FLOPS = 4e9
RUN_S = 0.5
#: share of its budget a run with a patience rule is assumed to train (its budget is a cap that
#: the protocol means it never to reach; at the cpu scale Keskar's and the baseline's runs stop
#: by patience after a few percent of it)
PATIENCE_SHARE = 0.1
#: runs that can stack are assumed to train this much faster together than one after another
#: (measured 1.5-6x for small MLP batches, ~1x for large ones; see vtrain.prefer_vectorised)
STACK_SPEEDUP = 2.0
MIN_STACK = 3  # as vtrain.MIN_GROUP: smaller groups train one run after another
SPLIT_OVER = 1.5


def forward_flops(spec: dict, kind: str) -> float:
    """Rough forward FLOPs per sample: exact for an MLP's matmuls, width- and depth-scaled
    for the conv nets (balancing only)."""
    features, positions = INPUT.get(kind, (40, 40))
    w, d = spec["width"], spec["depth"]
    if spec["model"] == "mlp":
        return 2.0 * (features * w + max(d - 1, 0) * w * w + w * 10)
    layers = {"shallow_conv": 2, "vgg": 8}.get(spec["model"], 6 * max(d, 1) + 2)
    return 2.0 * 9 * w * w * layers * positions / 4


def run_cost(spec: dict, n_train: int, kind: str) -> float:
    """Estimated CPU-seconds to train a (normalised) run (a patience run: PATIENCE_SHARE of its budget)."""
    batch = spec["batch_size"]
    steps = spec["steps"] or math.ceil(spec["epochs"] * max(n_train // batch, 1))
    if spec["patience"]:
        steps = max(1, math.ceil(steps * PATIENCE_SHARE))
    fwd = forward_flops(spec, kind)
    evals = (steps / spec["eval_every"]) if spec["eval_every"] else (steps / max(n_train // batch, 1))
    eval_samples = (spec["eval_train_samples"] or n_train) + n_train // 4
    return (RUN_S + steps * (STEP_S + 3 * fwd * batch * spec["multiplicity"] / FLOPS)
            + evals * eval_samples * fwd / FLOPS)


def _depth(rid: str, runs: dict[str, dict]) -> int:
    depth, parent = 0, runs[rid]["init_from"]
    while parent is not None:
        depth, parent = depth + 1, runs[parent]["init_from"]
    return depth


def pack_runs(owners: dict[str, str], runs: dict[str, dict], job_seconds: float,
              cost: Callable[[dict], float]) -> dict[str, list[str]]:
    """Pack name -> run ids (plan order) for the runs that share a job.

    ``owners``: run id -> the paper whose job trains it (the first paper that plans it), in
    plan order. ``cost(spec)``: estimated seconds of a run. Runs of one pack never start from
    each other (a pack's inputs are its runs' parents, trained before). Names are
    ``<paper>-<i>``, numbered by first run in plan order, so they are stable for a config."""
    if job_seconds <= 0:
        return {}
    papers: dict[str, dict[tuple, list[str]]] = {}
    for rid, paper in owners.items():
        spec = runs[rid]
        key = (group_key(spec) if vectorisable(spec) is None else rid, _depth(rid, runs))
        papers.setdefault(paper, {}).setdefault(key, []).append(rid)
    packs: dict[str, list[str]] = {}
    for paper, groups in papers.items():
        chunks: list[tuple[float, int, list[str]]] = []
        for (key, _), ids in groups.items():
            stack = STACK_SPEEDUP if key not in runs and len(ids) >= MIN_STACK else 1.0
            costs = [cost(runs[r]) / stack for r in ids]
            total = sum(costs)
            # a group is split only when it is well over the target (a stack split in two
            # loses part of its speed-up, and a run's last bits can depend on its stack's size)
            n = max(1, round(total / job_seconds)) if total > SPLIT_OVER * job_seconds else 1
            size = math.ceil(len(ids) / n)
            for i in range(0, len(ids), size):
                part = ids[i:i + size]
                chunks.append((sum(costs[i:i + size]), len(chunks), part))
        bins: list[tuple[float, list[list[str]]]] = []
        for c, _, part in sorted(chunks, key=lambda t: (-t[0], t[1])):
            depth = _depth(part[0], runs)
            for j, (load, members) in enumerate(bins):
                if load + c <= job_seconds and all(_depth(m[0], runs) == depth for m in members):
                    bins[j] = (load + c, members + [part])
                    break
            else:
                bins.append((c, [part]))
        order = {r: i for i, r in enumerate(owners)}
        jobs = [sorted((r for part in members for r in part), key=order.__getitem__) for _, members in bins]
        jobs = sorted((j for j in jobs if len(j) > 1), key=lambda j: order[j[0]])
        for i, ids in enumerate(jobs):
            packs[f"{paper}-{i:02d}"] = ids
    return packs


def train_rule(run: str, packs: dict[str, list[str]]) -> str:
    """The rule whose job trains ``run``: ``train_pack_<pack>`` or the generic ``train``."""
    for name, ids in packs.items():
        if run in ids:
            return f"train_pack_{name}"
    return "train"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m largebatch.packing",
                                 description="Print the Snakemake rule (job) that trains each given run id.")
    ap.add_argument("runs", nargs="+", help="run ids (results/runs/<id>/)")
    ap.add_argument("--config", default="config.yaml")
    ap.add_argument("--scale", help="scale (default: the config's)")
    args = ap.parse_args(argv)
    import yaml

    from .experiments import build_plan

    with open(args.config) as f:
        config = yaml.safe_load(f)
    if args.scale:
        config["scale"] = args.scale
    plan = build_plan(config)
    status = 0
    for rid in args.runs:
        if rid not in plan.runs:
            print(f"{rid}: not a run of scale {config['scale']!r}", file=sys.stderr)
            status = 1
            continue
        print(f"{rid}\t{train_rule(rid, plan.packs)}")
    return status


if __name__ == "__main__":
    sys.exit(main())
