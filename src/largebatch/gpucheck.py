"""GPU check: ``make gpu-check`` = ``python -m largebatch.gpucheck``, for a machine with a GPU.

1. **Rehearsal on CUDA.** Runs the paper-scale rehearsal (the paper scale's plans and code
   paths at tiny sizes, switched on by the config overlay ``--rehearsal``, default
   ``config/rehearsal.yaml``) through Snakemake in a scratch copy of the workflow
   (``results/gpu-check/rehearsal/``), with ``device=cuda autocast=bf16 channels_last=True``:
   every rule, analysis and notebook of every paper, on the GPU, with the execution options
   a GPU run uses.  Where the overlay file does not exist the step is skipped and says so.
2. **Per-step costs.** For every distinct training step of the paper scale (network, width,
   depth, normalisation, ghost batch, dropout, dataset, batch size, augmentation
   multiplicity and kind, optimiser, micro-batch: ``estimate.COST_KEYS``) it times the
   engine's step (index a mini-batch from a device-resident dataset, augment, forward +
   loss under bf16 autocast, backward, optimiser step; 2-D conv nets and image batches in
   channels-last order) on synthetic tensors of the real dataset's shape and size, with
   CUDA events: ``--warmup`` steps, then one real-size epoch (``n_train // batch`` steps),
   capped at ``--max-steps`` (0 = no cap).  The mean milliseconds per step go to
   ``--out`` (default ``results/perf/gpu_costs.json``), rewritten after each measurement,
   which ``python -m largebatch.estimate`` then uses instead of its assumed 25 TFLOP/s +
   1.5 ms per step.

Where no CUDA device is visible it says so, writes nothing and exits 0.  Otherwise it exits 1
when the rehearsal fails or a step cannot run (listed under ``failures``; e.g. out of memory,
which the real run would hit too), else 0.

File format (JSON)::

    {"device": "NVIDIA H200", "torch": "2.x", "autocast": "bf16", "channels_last": true,
     "date": "2026-12-01T10:00:00+00:00", "scale": "paper", "warmup": 3, "max_steps": 200,
     "rehearsal": {"status": "ok" | "failed (exit N)" | "skipped: ...", "seconds": 123.4},
     "failures": [{"key": "<estimate.cost_key>", "error": "OutOfMemoryError: ..."}],
     "entries": [{"dataset": "cifar10", "model": "resnet", "width": 16, "depth": 20,
                  "norm": "batch", "ghost_batch_size": null, "dropout": 0.0,
                  "batch_size": 128, "multiplicity": 1, "augment": "crop_flip",
                  "optimizer": "sgd", "micro_batch": null, "runs": 208,
                  "steps_per_epoch": 390, "steps_timed": 200, "step_ms": 7.9,
                  "epoch_s": 3.1}, ...]}
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from .common import atomic_write_text
from .estimate import COST_KEYS, DEFAULT_COSTS, SHAPES, cost_key

log = logging.getLogger("largebatch.gpucheck")
NO_GPU = "gpu-check: no CUDA device is visible (torch.cuda.is_available() is False): nothing measured, nothing written"
WORKFLOW_FILES = ("Snakefile", "config.yaml", "config", "workflow", "report", "envs", "profiles")


def step_groups(config: dict) -> list[dict]:
    """The distinct training steps of a scale: one dict per cost key, with a representative
    (normalised) ``spec``, the dataset ``kind``, its ``n_train`` and how many ``runs`` use it."""
    from .experiments import build_registry, dataset_sizes, scale_block

    runs, _ = build_registry(config)
    scale = scale_block(config)
    sizes = dataset_sizes(scale)
    groups: dict[str, dict] = {}
    for spec in runs.values():
        kind = scale["datasets"][spec["dataset"]].get("kind", spec["dataset"])
        g = groups.setdefault(cost_key(spec, kind), {"spec": spec, "kind": kind, "n_train": sizes[spec["dataset"]],
                                                     "runs": 0})
        g["runs"] += 1
    return list(groups.values())


def time_step(spec: dict, kind: str, n_train: int, device: torch.device, *, steps: int, warmup: int = 3,
              autocast: str = "bf16", channels_last: bool = True, pool: int | None = None) -> float:
    """Mean milliseconds of ``steps`` training steps of ``spec`` after ``warmup`` steps, timed
    with CUDA events on a GPU (``time.perf_counter`` elsewhere, for tests).  The data are
    synthetic: ``pool`` (default ``n_train``) random samples of the dataset kind's shape on
    the device, random labels; the step is ``train_run``'s."""
    from .augment import batch_augment, get_augmenter
    from .models import build_model
    from .runsetup import make_optimizer
    from .train import AUTOCAST

    shape, classes, _ = SHAPES[kind]
    B, micro = spec["batch_size"], spec["micro_batch"]
    n = max(pool or n_train, B)
    gen = torch.Generator(device=device).manual_seed(0)
    x = torch.randn(n, *shape, device=device, generator=gen)
    y = torch.randint(0, classes, (n,), device=device, generator=gen)
    torch.manual_seed(0)
    model = build_model(spec, shape, classes).to(device)
    images = channels_last and len(shape) == 3
    if images:
        model = model.to(memory_format=torch.channels_last)
    opt = make_optimizer(spec, model)
    aug = None
    if spec["augment"] != "none" or spec["multiplicity"] > 1:
        fn = get_augmenter(spec["augment"])
        aug = lambda xb, yb: batch_augment(xb, yb, spec["multiplicity"], fn, gen)  # noqa: E731
    dtype = AUTOCAST[autocast]
    amp = torch.autocast(device.type, dtype=dtype) if dtype else contextlib.nullcontext()
    perm, pos = torch.randperm(n, device=device, generator=gen), 0
    model.train()

    def step():
        nonlocal perm, pos
        if pos + B > n:
            perm, pos = torch.randperm(n, device=device, generator=gen), 0
        idx = perm[pos:pos + B]
        pos += B
        xb, yb = x[idx], y[idx]
        if aug is not None:
            xb, yb = aug(xb, yb)
        if images:
            xb = xb.contiguous(memory_format=torch.channels_last)
        opt.zero_grad(set_to_none=True)
        for xc, yc in (zip(xb.split(micro), yb.split(micro)) if micro else [(xb, yb)]):
            with amp:
                loss = F.cross_entropy(model(xc).float(), yc) * (len(yc) / len(yb))
            loss.backward()
        opt.step()

    for _ in range(warmup):
        step()
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize(device)
        start.record()
        for _ in range(steps):
            step()
        end.record()
        torch.cuda.synchronize(device)
        return start.elapsed_time(end) / steps
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - t0) * 1000 / steps


def cost_entry(group: dict, step_ms: float, steps_timed: int) -> dict:
    """One entry of gpu_costs.json (the format ``estimate.load_costs`` reads)."""
    spec = group["spec"]
    spe = max(1, group["n_train"] // spec["batch_size"])
    return {"dataset": group["kind"], **{k: spec[k] for k in COST_KEYS}, "runs": group["runs"],
            "steps_per_epoch": spe, "steps_timed": steps_timed, "step_ms": step_ms,
            "epoch_s": step_ms * spe / 1000}


def write_costs(path: str | os.PathLike, meta: dict, entries: list[dict]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps({**meta, "entries": entries}, indent=1))


def prepare_rehearsal(overlay: str, workdir: Path, cores: str = "all") -> list[str]:
    """A scratch copy of the workflow in ``workdir`` with the rehearsal's fixture datasets (at
    the overlay's ``data_root``, when ``largebatch.fixtures`` exists and they are not there);
    returns the Snakemake command that runs the rehearsal there on CUDA."""
    import yaml

    repo = Path.cwd()
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    for name in WORKFLOW_FILES:
        src = repo / name
        if src.is_dir():
            shutil.copytree(src, workdir / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif src.exists():
            shutil.copy(src, workdir / name)
    settings = yaml.safe_load(Path(overlay).read_text()) or {}
    root = settings.get("data_root")
    if settings.get("rehearsal") and root and not (workdir / root).exists():
        try:
            from .fixtures import write_fixtures
        except ImportError:  # no fixture writer: the overlay's data_root must hold the data
            pass
        else:
            divisor = settings["rehearsal"].get("batch_divisor")
            write_fixtures(workdir / root, **({"batch_divisor": divisor} if divisor else {}))
    return [str(Path(sys.executable).with_name("snakemake")), "--cores", cores, "--configfile", "config.yaml",
            str(Path(overlay).resolve()), "--config", "device=cuda", "autocast=bf16", "channels_last=True"]


def run_rehearsal(overlay: str, workdir: Path, cores: str) -> dict:
    """The rehearsal through Snakemake on CUDA in a scratch copy of the workflow."""
    if not Path(overlay).exists():
        msg = f"skipped: rehearsal overlay {overlay} not found (the paper-scale rehearsal, issue 19 items 1-2)"
        log.warning(f"gpu-check: {msg}")
        return {"status": msg}
    cmd = prepare_rehearsal(overlay, workdir, cores)
    log.info(f"gpu-check: rehearsal on CUDA in {workdir}: {' '.join(cmd)}")
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=workdir)
    seconds = time.perf_counter() - t0
    status = "ok" if proc.returncode == 0 else f"failed (exit {proc.returncode}; see {workdir}/.snakemake/log)"
    log.info(f"gpu-check: rehearsal {status} in {seconds:.0f} s")
    return {"status": status, "seconds": seconds, "command": " ".join(cmd)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="config.yaml")
    parser.add_argument("--scale", default="paper")
    parser.add_argument("--out", default=DEFAULT_COSTS, help=f"per-step costs (default {DEFAULT_COSTS})")
    parser.add_argument("--rehearsal", default="config/rehearsal.yaml",
                        help="config overlay that switches the rehearsal on ('' skips the rehearsal)")
    parser.add_argument("--cores", default="all", help="snakemake --cores for the rehearsal")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps before timing each network")
    parser.add_argument("--max-steps", type=int, default=200, help="cap on timed steps per network (0: a whole epoch)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    if not torch.cuda.is_available():
        print(NO_GPU)
        return 0
    from .progress import progress_eta

    device = torch.device("cuda")
    meta = {"device": torch.cuda.get_device_name(device), "torch": torch.__version__, "autocast": "bf16",
            "channels_last": True, "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "scale": args.scale, "warmup": args.warmup, "max_steps": args.max_steps}
    meta["rehearsal"] = (run_rehearsal(args.rehearsal, Path("results/gpu-check/rehearsal"), args.cores)
                         if args.rehearsal else {"status": "skipped: --rehearsal ''"})
    import yaml

    with open(args.config) as f:
        config = yaml.safe_load(f)
    from .experiments import PAPERS

    config.pop("rehearsal", None)  # the real sizes
    config["scale"] = args.scale
    config["papers"] = [p for p in PAPERS if p in config["scales"][args.scale]]
    groups = step_groups(config)
    entries: list[dict] = []
    meta["failures"] = []  # steps that could not run (e.g. out of GPU memory): the real run would fail too
    t0 = time.perf_counter()
    for i, g in enumerate(groups):
        s = g["spec"]
        what = (f"{s['model']} w{s['width']} d{s['depth']} {s['norm']} on {g['kind']}, "
                f"batch {s['batch_size']}x{s['multiplicity']}")
        spe = max(1, g["n_train"] // s["batch_size"])
        steps = spe if args.max_steps <= 0 else min(spe, args.max_steps)
        try:
            ms = time_step(s, g["kind"], g["n_train"], device, steps=steps, warmup=args.warmup)
        except (RuntimeError, torch.cuda.OutOfMemoryError) as err:
            meta["failures"].append({"key": cost_key(s, g["kind"]), "error": f"{type(err).__name__}: {err}"[:500]})
            log.error(f"gpu-check: {i + 1}/{len(groups)} {what}: FAILED ({type(err).__name__}: {str(err)[:200]})")
            torch.cuda.empty_cache()
            write_costs(args.out, meta, entries)
            continue
        entries.append(cost_entry(g, ms, steps))
        write_costs(args.out, meta, entries)
        log.info(f"gpu-check: {i + 1}/{len(groups)} {what}: {ms:.2f} ms/step ({steps} of {spe} steps timed), "
                 f"{progress_eta(i + 1, len(groups), time.perf_counter() - t0)}")
    rehearsal = meta["rehearsal"]["status"]
    print(f"gpu-check: {len(entries)} per-step costs written to {args.out}, {len(meta['failures'])} steps failed; "
          f"rehearsal: {rehearsal}")
    return 0 if (rehearsal == "ok" or rehearsal.startswith("skipped")) and not meta["failures"] else 1


if __name__ == "__main__":
    sys.exit(main())
