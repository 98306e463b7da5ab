"""Which job trains which run: the one packing policy.

A *pack* is a training job that trains several runs in one process (rule
``train_pack_<name>``, ``workflow/scripts/train_pack.py``): the start-up (interpreter, torch
import, data load) is paid once, and runs that the vectorised trainer can stack
(``largebatch.vtrain``: equal ``spec.group_key``) train together. A run in no pack is
trained by the generic ``train`` rule, one job per run.

The policy has one knob, the top-level config key ``packing.job_seconds``: the estimated
length of a training job to aim for. Runs are grouped by (paper, stack key, depth in the
``init_from`` chain); a group estimated over 1.5x the target is split into the fewest equal
parts estimated under 1.5x the target, shorter groups are merged first-fit-decreasing into packs of
at most the target. A group that ``vtrain`` will stack (``stacks``) is costed as one stack
(``stack_speedup``: its per-step overhead paid once), so the sweeps' big groups of tiny runs
stay whole. A run estimated longer than the target therefore trains alone, so at
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

from .spec import group_key, stack_rule, vectorisable

#: input features and positions per sample of each dataset kind (for the cost estimate)
INPUT = {"mnist1d": (40, 40), "mnist": (784, 784), "fashion_mnist": (784, 784), "cifar10": (3072, 1024),
         "cifar100": (3072, 1024)}
#: cost model (one CPU thread, measured orders of magnitude; see README "Performance"):
#: per-step overhead per layer (an MLP's Linear + norm + ReLU; a conv net's conv / FC block:
#: a 3-layer MLP step ~0.6 ms, a ResNet-8 step 4-7 ms, the AlexNet-style net 2-3 ms at batch
#: 2), arithmetic rate, per-run start-up, per evaluation (record, history row, two passes)
STEP_S = 1.5e-4
CONV_STEP_S = 5e-4
FLOPS = 4e9
RUN_S = 0.5
EVAL_S = 0.01
#: share of its budget a run with a patience rule is assumed to train (its budget is a cap that
#: the protocol means it never to reach; at the cpu scale Keskar's and the baseline's runs stop
#: by patience after a few percent of it)
PATIENCE_SHARE = 0.1
#: in a stack the per-step overhead (Python, dispatch: most of a tiny network's step) is paid
#: once; each run adds about this share of its own one-at-a-time step cost. So K runs that stack
#: cost ``stack_speedup(K) = K / (1 + (K - 1) x STACK_MARGINAL)`` times less than one after
#: another: measured ~0.05 for 52 ResNet-8 / AlexNet-style 1-D nets at batch 2 (one run 4-7 ms
#: a step, the stack of 52 16-21 ms: 14-17x), ~0.15 for 18 runs of the 2 x 32 MLP (4.7-6x)
STACK_MARGINAL = 0.1
SPLIT_OVER = 1.5


def stack_speedup(k: int) -> float:
    """How many times less CPU K runs of one stack take than the same runs one after another."""
    return k / (1 + (k - 1) * STACK_MARGINAL) if k > 1 else 1.0


def stacks(spec: dict, k: int, kind: str = "mnist1d") -> bool:
    """Whether ``vtrain`` stacks a group of K runs like ``spec`` (``vtrain.prefer_vectorised``'s
    rule, with this module's FLOP estimate in place of the model's parameter count)."""
    return stack_rule(spec, k, lambda: 3 * forward_flops(spec, kind) * spec["batch_size"] * spec["multiplicity"])


def forward_flops(spec: dict, kind: str) -> float:
    """Rough forward FLOPs per sample: exact for an MLP's matmuls, width- and depth-scaled
    for the conv nets (balancing only)."""
    features, positions = INPUT.get(kind, (40, 40))
    w, d = spec["width"], spec["depth"]
    if spec["model"] == "mlp":
        return 2.0 * (features * w + max(d - 1, 0) * w * w + w * 10)
    layers = {"shallow_conv": 2, "vgg": 8}.get(spec["model"], max(d, 1))  # resnet / wrn: depth is the layers
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
    return (RUN_S + steps * (step_overhead(spec) + 3 * fwd * batch * spec["multiplicity"] / FLOPS)
            + evals * (EVAL_S + eval_samples * fwd / FLOPS))


def step_overhead(spec: dict) -> float:
    """Seconds of per-op overhead in one training step of a run (independent of the batch)."""
    if spec["model"] == "mlp":
        return STEP_S * (spec["depth"] + 1)
    layers = {"shallow_conv": 5, "vgg": 15}.get(spec["model"], max(spec["depth"], 1) + 2)
    return CONV_STEP_S * layers


def _depth(rid: str, runs: dict[str, dict]) -> int:
    depth, parent = 0, runs[rid]["init_from"]
    while parent is not None:
        depth, parent = depth + 1, runs[parent]["init_from"]
    return depth


def pack_runs(owners: dict[str, str], runs: dict[str, dict], job_seconds: float,
              cost: Callable[[dict], float],
              stack_rule: Callable[[dict, int], bool] | None = None) -> dict[str, list[str]]:
    """Pack name -> run ids (plan order) for the runs that share a job.

    ``owners``: run id -> the paper whose job trains it (the first paper that plans it), in
    plan order. ``cost(spec)``: estimated seconds of a run one at a time; ``stack_rule(spec,
    k)``: whether k such runs stack (default ``stacks`` on MNIST-1D), which divides their cost
    by ``stack_speedup``. Runs of one pack never start from each other (a pack's inputs are
    its runs' parents, trained before). Names are ``<paper>-<i>``, numbered by first run in
    plan order, so they are stable for a config."""
    if job_seconds <= 0:
        return {}
    papers: dict[str, dict[tuple, list[str]]] = {}
    for rid, paper in owners.items():
        spec = runs[rid]
        key = (group_key(spec) if vectorisable(spec) is None else rid, _depth(rid, runs))
        papers.setdefault(paper, {}).setdefault(key, []).append(rid)
    stack_rule = stack_rule or stacks
    packs: dict[str, list[str]] = {}
    for paper, groups in papers.items():
        chunks: list[tuple[float, int, list[str]]] = []
        for (key, _), ids in groups.items():
            costs = [cost(runs[r]) for r in ids]

            def group_cost(i: int, j: int) -> float:  # runs ids[i:j] in one job
                together = key not in runs and stack_rule(runs[ids[i]], j - i)
                return sum(costs[i:j]) / (stack_speedup(j - i) if together else 1.0)

            # a group is split only when it is well over the target, into as few parts as bring
            # each under SPLIT_OVER x the target (a stack split in parts loses part of its
            # speed-up, and a run's last bits can depend on its stack's size); single runs if none
            size = len(ids)
            for n in range(1, len(ids) + 1):
                size = math.ceil(len(ids) / n)
                if group_cost(0, size) <= SPLIT_OVER * job_seconds:
                    break
            for i in range(0, len(ids), size):
                part = ids[i:i + size]
                chunks.append((group_cost(i, i + len(part)), len(chunks), part))
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
