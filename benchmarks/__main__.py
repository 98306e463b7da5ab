"""``python -m benchmarks`` (``make bench``): run every benchmark, print a table of ratios
with their goals, and write it to results/perf/benchmarks.md (+ .json).

    python -m benchmarks                    # everything (a few minutes on 2 cores)
    python -m benchmarks --only engine,vmap # some of them
    python -m benchmarks --quick            # tiny sizes, one repeat: checks the code paths only
    python -m benchmarks --device cuda      # timed with CUDA events (where a GPU is present)
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch

from . import convstack, datapath, engine, floor, flops, orchestration, threads, vmap
from .common import Result, fmt, set_threads

BENCHMARKS = {
    "engine": engine.run,
    "datapath": datapath.run,
    "flops": flops.run,
    "vmap": vmap.run,
    "floor": floor.run,
    "convstack": convstack.run,
    "threads": threads.run,
    "orchestration": orchestration.run,
}


def table(rows: list[Result]) -> str:
    lines = ["| benchmark | measured | baseline | unit | ratio | goal | pass |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.name} | {fmt(r.measured)} | {fmt(r.baseline)} | {r.unit} | {r.ratio_text} | "
                     f"{r.goal_text} | {'yes' if r.passed else 'NO'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", default="", help=f"comma-separated subset of {', '.join(BENCHMARKS)}")
    ap.add_argument("--quick", action="store_true", help="tiny sizes and one repeat (a smoke test, not a measurement)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--repeats", type=int, default=None, help="timed repeats (default: each benchmark's own, 3-5)")
    ap.add_argument("--out", default="results/perf/benchmarks", help="path stem of the .md and .json written")
    ap.add_argument("--results", default="results",
                    help="results folder of a finished default (cpu-scale) run, for the per-job cost share")
    args = ap.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(BENCHMARKS)
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        ap.error(f"unknown benchmark(s) {unknown}; choose from {list(BENCHMARKS)}")
    set_threads(1)
    rows: list[Result] = []
    t0 = time.perf_counter()
    for name in names:
        print(f"[bench] {name} ...", file=sys.stderr, flush=True)
        kw = {"quick": args.quick, "device": args.device}
        if not args.quick and args.repeats:
            kw["repeats"] = args.repeats
        if name == "orchestration":
            kw["results"] = args.results
        for r in BENCHMARKS[name](**kw):
            rows.append(r)
            print(f"[bench]   {r.name}: {r.ratio_text} (goal {r.goal_text}) {'pass' if r.passed else 'FAIL'}",
                  file=sys.stderr, flush=True)
    md = table(rows)
    header = (f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
              f"{torch.get_num_threads()} intra-op thread(s), device {args.device}"
              f"{', QUICK (not a measurement)' if args.quick else ''}; {time.perf_counter() - t0:.0f} s")
    print(f"\n{header}\n\n{md}\n")
    for r in rows:
        if r.note:
            print(f"- {r.name}: {r.note}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text(f"{header}\n\n{md}\n\n" + "\n".join(f"- {r.name}: {r.note}" for r in rows)
                                      + "\n")
    out.with_suffix(".json").write_text(json.dumps(
        {"header": header, "rows": [{**asdict(r), "passed": r.passed, "goal": r.goal_text} for r in rows]},
        indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
