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
"""

from __future__ import annotations

import argparse
import math
from collections import defaultdict

import yaml

SHAPES = {"mnist1d": ((1, 40), 10, None), "mnist": ((1, 28, 28), 10, 60000), "fashion_mnist": ((1, 28, 28), 10, 60000),
          "cifar10": ((3, 32, 32), 10, 50000), "cifar100": ((3, 32, 32), 100, 50000)}


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


def estimate(config: dict, tflops: float = 25.0, step_ms: float = 1.5) -> list[dict]:
    from .experiments import build_registry, dataset_sizes, scale_block

    runs, tables = build_registry(config)
    scale = scale_block(config)
    sizes = dataset_sizes(scale)
    cache: dict[str, float] = {}
    cost: dict[str, float] = {}
    for rid, spec in runs.items():
        kind = scale["datasets"][spec["dataset"]].get("kind", spec["dataset"])
        shape, classes, _ = SHAPES[kind]
        key = repr((spec["model"], spec["width"], spec["depth"], spec["norm"], kind))
        if key not in cache:
            cache[key] = forward_flops(spec, shape, classes)
        n = sizes[spec["dataset"]]
        steps = spec["steps"] or math.ceil(spec["epochs"] * (n // spec["batch_size"]))
        samples = steps * spec["batch_size"] * spec["multiplicity"]
        cost[rid] = (3 * cache[key] * samples / (tflops * 1e12) + steps * step_ms / 1000) / 3600
    out = []
    seen: set[str] = set()
    for paper, rows in tables.items():
        ids = [r for r in dict.fromkeys(row["run"] for row in rows)]
        new = [r for r in ids if r not in seen]
        seen.update(ids)
        out.append({"paper": paper, "runs": len(ids), "gpu_hours": sum(cost[r] for r in new)})
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="config.yaml")
    parser.add_argument("--scale", default="paper")
    parser.add_argument("--tflops", type=float, default=25.0, help="assumed sustained TFLOP/s per GPU")
    parser.add_argument("--step-ms", type=float, default=1.5, help="assumed overhead per training step (ms)")
    parser.add_argument("--papers", nargs="*", help="default: every paper with a block at this scale")
    args = parser.parse_args(argv)
    with open(args.config) as f:
        config = yaml.safe_load(f)
    config["scale"] = args.scale
    from .experiments import PAPERS

    block = config["scales"][args.scale]
    config["papers"] = args.papers or [p for p in PAPERS if p in block]
    rows = estimate(config, args.tflops, args.step_ms)
    print(f"| paper | training runs | GPU-hours ({args.tflops:g} TFLOP/s, {args.step_ms:g} ms/step) |\n|---|---:|---:|")
    for r in rows:
        print(f"| {r['paper']} | {r['runs']} | {r['gpu_hours']:.2f} |")
    total = defaultdict(float)
    for r in rows:
        total["runs"] += r["runs"]
        total["h"] += r["gpu_hours"]
    print(f"| all | {int(total['runs'])} (shared runs counted once per paper) | {total['h']:.2f} |")


if __name__ == "__main__":
    main()
