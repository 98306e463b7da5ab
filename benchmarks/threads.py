"""Threads: two jobs with one intra-op thread each, in parallel, against one job with two
threads training the same two runs one after another (the two ways to use 2 cores).

Each side is timed in wall time from a common start signal (after interpreter start-up,
imports, data load and a warm-up, which both sides pay alike) until its last run ends.
The workload is the baseline's network (MLP 3 x 128, Adam) at a small and a large batch.
The ratio is (1 job x 2 threads) / (2 jobs x 1 thread) in time; > 1 means the default
``threads: 1`` with parallel jobs is faster.  On a machine shared with other work the
wall times include that load; the median of a few repeats, alternating the sides.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

from .common import Result, scratch

REPO = Path(__file__).resolve().parents[1]


def _start(data: Path, threads: int, runs: int, batch: int, steps: int) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-m", "benchmarks.threads_worker", "--data", str(data), "--threads",
                          str(threads), "--runs", str(runs), "--batch", str(batch), "--steps", str(steps)],
                         cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    if p.stdout.readline().strip() != "ready":
        raise RuntimeError("threads worker failed to start")
    return p


def measure(data: Path, threads: int, jobs: int, runs: int, batch: int, steps: int) -> float:
    """Wall seconds from the start signal until every job has finished its runs."""
    procs = [_start(data, threads, runs, batch, steps) for _ in range(jobs)]
    t0 = time.perf_counter()
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    for p in procs:
        p.stdout.readline()
        p.wait()
    return time.perf_counter() - t0


def run(quick: bool = False, device: str = "cpu", repeats: int = 3) -> list[Result]:
    from largebatch.data import prepare_dataset

    tmp = scratch("threads-")
    data = tmp / "mnist1d.pt"
    prepare_dataset("mnist1d", {"kind": "mnist1d", "num_samples": 600 if quick else 5000, "seed": 42}, data)
    rows = []
    for batch, steps in ([(32, 5)] if quick else [(64, 800), (1600, 40)]):
        t_par, t_thr = [], []
        for r in range(1 if quick else repeats):
            order = ("par", "thr") if r % 2 == 0 else ("thr", "par")
            for side in order:
                if side == "par":
                    t_par.append(measure(data, threads=1, jobs=2, runs=1, batch=batch, steps=steps))
                else:
                    t_thr.append(measure(data, threads=2, jobs=1, runs=2, batch=batch, steps=steps))
        par, thr = statistics.median(t_par), statistics.median(t_thr)
        rows.append(Result(f"threads: 2 jobs x 1 thread vs 1 job x 2 threads, batch {batch}", 2 / par, 2 / thr,
                           "runs/s", thr / par, 1.0,
                           note=f"2 runs of {steps} steps (MLP 3x128); wall {par:.2f} s vs {thr:.2f} s; "
                                f"goal: the default threads: 1 is at least as fast",
                           extra={"t_parallel_s": t_par, "t_threads_s": t_thr}))
    return rows
