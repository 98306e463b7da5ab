"""Estimate the compute a scale needs, per paper, from the run table alone.

``python -m largebatch.estimate [--scale paper] [--tflops 25]`` prints, per paper, the number
of training runs and an estimate of GPU-hours:

    GPU-hours = sum over runs of (3 x forward FLOPs per sample x samples processed / throughput
                                  + steps x per-step overhead)

Forward FLOPs per sample are counted with ``torch.utils.flop_counter.FlopCounterMode`` on the
run's network (built on the CPU with the dataset's input shape; no data needed), the factor 3
covers forward + backward, samples processed = steps x batch size x multiplicity (budget from
the spec; runs that stop early by patience or a threshold cost less, so this is an upper
bound for those), and ``throughput`` is an assumed sustained rate (default 25 TFLOP/s, about
a third of an A100's dense bf16/TF32 peak). The per-step overhead (default 1.5 ms: kernel
launches and the Python loop, which dominate for small networks) is also an assumption.
Evaluation passes are not counted.

Measured costs: where ``make gpu-check`` (``python -m largebatch.gpucheck``) has written
``results/perf/gpu_costs.json`` (per-step milliseconds of each network at each batch size,
timed with CUDA events on a real GPU), a run whose step is in that file costs
``steps x measured ms per step`` instead; runs missing from it keep the assumed rates, and
the table says how many did. ``--costs PATH`` reads another file, ``--no-costs`` ignores it.
"""

from __future__ import annotations

import argparse
import json
import math
from collections import defaultdict
from pathlib import Path

import yaml

SHAPES = {"mnist1d": ((1, 40), 10, None), "mnist": ((1, 28, 28), 10, 60000), "fashion_mnist": ((1, 28, 28), 10, 60000),
          "cifar10": ((3, 32, 32), 10, 50000), "cifar100": ((3, 32, 32), 100, 50000)}


#: run-spec keys that decide what one training step costs (with the dataset kind): the key of
#: a measured cost in results/perf/gpu_costs.json
COST_KEYS = ("model", "width", "depth", "norm", "ghost_batch_size", "dropout", "batch_size", "multiplicity",
             "augment", "optimizer", "micro_batch")
DEFAULT_COSTS = "results/perf/gpu_costs.json"


def cost_key(spec: dict, kind: str) -> str:
    """What identifies a training step's cost: the COST_KEYS of the (normalised) spec and
    the dataset kind, as one canonical string."""
    return json.dumps({"dataset": kind, **{k: spec[k] for k in COST_KEYS}}, sort_keys=True)


def load_costs(path: str | Path) -> dict:
    """Read a gpu_costs.json; returns ``{"meta": {...}, "step_ms": {cost_key: ms}}``.
    A malformed file is an error naming it and the fix."""
    path = Path(path)
    fix = f"rerun `make gpu-check` on a GPU machine, or delete {path} to use the assumed rates"
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: cannot read measured GPU costs ({err}); {fix}") from err
    if not isinstance(doc, dict) or not isinstance(doc.get("entries"), list):
        raise ValueError(f"{path}: no `entries` list of measured step costs; {fix}")
    step_ms = {}
    for i, e in enumerate(doc["entries"]):
        missing = [k for k in ("dataset", *COST_KEYS, "step_ms") if not isinstance(e, dict) or k not in e]
        if missing:
            raise ValueError(f"{path}: entries[{i}] lacks {', '.join(missing)}; {fix}")
        if not (isinstance(e["step_ms"], (int, float)) and e["step_ms"] > 0):
            raise ValueError(f"{path}: entries[{i}].step_ms = {e['step_ms']!r} is not a positive number; {fix}")
        step_ms[cost_key(e, e["dataset"])] = float(e["step_ms"])
    return {"meta": {k: v for k, v in doc.items() if k != "entries"}, "step_ms": step_ms}


def forward_flops(spec: dict, input_shape, num_classes: int) -> float:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from .models import build_model

    model = build_model({**spec, "norm": "batch" if spec["norm"] == "ghost" else spec["norm"]}, input_shape, num_classes)
    model.eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.zeros(2, *input_shape))
    return counter.get_total_flops() / 2


def estimate(config: dict, tflops: float = 25.0, step_ms: float = 1.5, costs: dict | None = None) -> list[dict]:
    """Per paper: training runs and GPU-hours; with ``costs`` (``load_costs``) a run whose
    step was measured costs steps x measured ms, the others the assumed rates (each row
    counts its runs of either kind: ``measured`` / ``assumed``)."""
    from .experiments import build_registry, dataset_sizes, scale_block

    runs, tables = build_registry(config)
    scale = scale_block(config)
    sizes = dataset_sizes(scale)
    cache: dict[str, float] = {}
    cost: dict[str, float] = {}
    measured: set[str] = set()
    for rid, spec in runs.items():
        kind = scale["datasets"][spec["dataset"]].get("kind", spec["dataset"])
        shape, classes, _ = SHAPES[kind]
        key = repr((spec["model"], spec["width"], spec["depth"], spec["norm"], kind))
        if key not in cache:
            cache[key] = forward_flops(spec, shape, classes)
        n = sizes[spec["dataset"]]
        steps = spec["steps"] or math.ceil(spec["epochs"] * (n // spec["batch_size"]))
        samples = steps * spec["batch_size"] * spec["multiplicity"]
        ms = (costs or {}).get("step_ms", {}).get(cost_key(spec, kind))
        if ms is not None:
            cost[rid] = steps * ms / 1000 / 3600
            measured.add(rid)
        else:
            cost[rid] = (3 * cache[key] * samples / (tflops * 1e12) + steps * step_ms / 1000) / 3600
    out = []
    seen: set[str] = set()
    for paper, rows in tables.items():
        ids = [r for r in dict.fromkeys(row["run"] for row in rows)]
        new = [r for r in ids if r not in seen]
        seen.update(ids)
        out.append({"paper": paper, "runs": len(ids), "gpu_hours": sum(cost[r] for r in new),
                    "measured": sum(r in measured for r in ids), "assumed": sum(r not in measured for r in ids)})
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="config.yaml")
    parser.add_argument("--scale", default="paper")
    parser.add_argument("--tflops", type=float, default=25.0, help="assumed sustained TFLOP/s per GPU")
    parser.add_argument("--step-ms", type=float, default=1.5, help="assumed overhead per training step (ms)")
    parser.add_argument("--papers", nargs="*", help="default: every paper with a block at this scale")
    parser.add_argument("--costs", default=DEFAULT_COSTS,
                        help=f"measured per-step costs from `make gpu-check` (default {DEFAULT_COSTS}, used if present)")
    parser.add_argument("--no-costs", action="store_true", help="ignore measured costs; assumed rates only")
    args = parser.parse_args(argv)
    with open(args.config) as f:
        config = yaml.safe_load(f)
    config["scale"] = args.scale
    from .experiments import PAPERS

    block = config["scales"][args.scale]
    config["papers"] = args.papers or [p for p in PAPERS if p in block]
    costs = None
    if not args.no_costs and Path(args.costs).exists():
        costs = load_costs(args.costs)
    rows = estimate(config, args.tflops, args.step_ms, costs)
    assumed = f"{args.tflops:g} TFLOP/s, {args.step_ms:g} ms/step"
    if costs is None:
        print(f"GPU-hours at an assumed {assumed} (no measured costs: run `make gpu-check` on a GPU machine)\n")
        print("| paper | training runs | GPU-hours |\n|---|---:|---:|")
    else:
        m = costs["meta"]
        print(f"GPU-hours from per-step costs measured by `make gpu-check` ({args.costs}: {m.get('device', '?')}, "
              f"autocast {m.get('autocast', '?')}, channels_last {m.get('channels_last', '?')}, {m.get('date', '?')}); "
              f"runs without a measurement at an assumed {assumed}\n")
        print("| paper | training runs | measured | assumed | GPU-hours |\n|---|---:|---:|---:|---:|")
    total = defaultdict(float)
    for r in rows:
        extra = "" if costs is None else f" {r['measured']} | {r['assumed']} |"
        print(f"| {r['paper']} | {r['runs']} |{extra} {r['gpu_hours']:.2f} |")
        for k in ("runs", "gpu_hours", "measured", "assumed"):
            total[k] += r[k]
    extra = "" if costs is None else f" {int(total['measured'])} | {int(total['assumed'])} |"
    print(f"| all | {int(total['runs'])} (shared runs counted once per paper) |{extra} {total['gpu_hours']:.2f} |")


if __name__ == "__main__":
    main()
