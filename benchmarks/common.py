"""Shared helpers: results, timers, interleaved medians, a small MNIST-1D dataset."""

from __future__ import annotations

import atexit
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch


@dataclass
class Result:
    """One row of the benchmark table: `measured` against `baseline`, as `ratio` vs `goal`."""

    name: str
    measured: float
    baseline: float
    unit: str
    ratio: float
    goal: float
    higher_is_better: bool = True
    ratio_unit: str = "x"
    note: str = ""
    extra: dict = field(default_factory=dict)
    goal_override: str | None = None  # a goal that is not a threshold on the ratio
    pass_override: bool | None = None

    @property
    def passed(self) -> bool:
        if self.pass_override is not None:
            return self.pass_override
        return self.ratio >= self.goal if self.higher_is_better else self.ratio <= self.goal

    @property
    def goal_text(self) -> str:
        if self.goal_override:
            return self.goal_override
        op = ">=" if self.higher_is_better else "<="
        if self.ratio_unit == "%":
            return f"{op} {self.goal:g}%"
        if self.ratio_unit == "x":
            return f"{op} {self.goal:g}x"
        return f"{op} {self.goal:g} {self.ratio_unit}"

    @property
    def ratio_text(self) -> str:
        if self.ratio_unit == "%":
            return f"{self.ratio:.1f}%"
        if self.ratio_unit == "x":
            return f"{self.ratio:.2f}x"
        return f"{self.ratio:.3g} {self.ratio_unit}"


def fmt(v: float) -> str:
    if v != v:
        return "n/a"
    if abs(v) >= 1e5 or (abs(v) < 1e-2 and v != 0):
        return f"{v:.3g}"
    return f"{v:,.3g}" if abs(v) < 1000 else f"{v:,.0f}"


def set_threads(n: int = 1) -> None:
    torch.set_num_threads(n)


class Timer:
    """Seconds of work: process CPU time on the CPU (robust to load from other processes
    on a shared machine; single-threaded work only), CUDA events on a GPU."""

    def __init__(self, device: torch.device | str = "cpu", clock: str = "cpu"):
        self.device = torch.device(device)
        self.clock = clock

    def __call__(self, fn: Callable[[], object]) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize(self.device)
            return start.elapsed_time(end) / 1000.0
        clock = time.process_time if self.clock == "cpu" else time.perf_counter
        t0 = clock()
        fn()
        return clock() - t0


def interleaved_medians(fns: dict[str, Callable[[], object]], timer: Timer, repeats: int = 3,
                        warmup: int = 1) -> dict[str, float]:
    """Median seconds of each function, measured A B A B ... after `warmup` untimed calls each."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for r in range(repeats):
        keys = list(fns) if r % 2 == 0 else list(reversed(fns))
        for k in keys:
            times[k].append(timer(fns[k]))
    return {k: statistics.median(v) for k, v in times.items()}


_TMP_ROOT: list[Path] = []


def scratch(prefix: str) -> Path:
    """A new scratch folder under one per-process root that is removed at exit."""
    if not _TMP_ROOT:
        root = Path(tempfile.mkdtemp(prefix="lb-bench-"))
        atexit.register(shutil.rmtree, root, ignore_errors=True)
        _TMP_ROOT.append(root)
    return Path(tempfile.mkdtemp(prefix=prefix, dir=_TMP_ROOT[0]))


_DATA_CACHE: dict[tuple, object] = {}


def mnist1d(num_samples: int = 4000, device="cpu", test_samples: int | None = None):
    """A locally generated MNIST-1D dataset (80/20 split), cached per process."""
    from largebatch.data import load_dataset, prepare_dataset

    key = (num_samples, str(device), test_samples)
    if key not in _DATA_CACHE:
        tmp = scratch("data-")
        path = tmp / "mnist1d.pt"
        prepare_dataset("mnist1d", {"kind": "mnist1d", "num_samples": num_samples, "seed": 42}, path)
        d = load_dataset(path, device)
        if test_samples is not None:
            d.x_test, d.y_test = d.x_test[:test_samples], d.y_test[:test_samples]
        _DATA_CACHE[key] = d
    return _DATA_CACHE[key]
