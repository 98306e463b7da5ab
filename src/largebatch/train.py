"""The one training engine every paper uses.

``train_run(spec, data, out_dir)`` trains the run a spec describes on a dataset held
as tensors on the device, and writes into ``out_dir``:

* ``spec.json``     the normalised spec (plus its run id)
* ``history.csv``   one row per evaluation: step, epoch, lr, samples, train/test loss
                    and accuracy, mean mini-batch loss since the last row, ||w_t - w_0||
                    over all trainable weights, wall time; written as it grows (a row is
                    appended after each evaluation), so a crashed or preempted run keeps
                    its curve; a resumed run rewrites it from its checkpoint's rows (no
                    duplicates)
* ``metrics.json``  final numbers and ``status`` (ok | diverged) and ``stop_reason``
* ``model.pt``      final weights (state_dict, loadable with weights_only=True)
* ``checkpoint.pt`` while training (every ``checkpoint_every_s`` seconds); a rerun
                    resumes from it and ends with the same numbers as an
                    uninterrupted run; it is removed once the run has finished.

A run whose loss becomes NaN/inf stops with status ``diverged``: that is a result.

Progress: after every evaluation the ``log`` callable gets one line (``progress_line``): run
id, step and epoch of the total, lr, train/test loss and accuracy, training samples per
second (augmented copies included) and an ETA from the rate since training (re)started.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import csv
import json
import math
import os
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .common import atomic_torch_save, atomic_write, atomic_write_text
from .data import Dataset
from .models import build_model
from .spec import effective_lr, lr_at, normalize, run_id

HISTORY_COLUMNS = ["step", "epoch", "lr", "samples", "train_loss", "train_acc", "test_loss", "test_acc",
                   "batch_loss", "w_dist", "wall_s"]


class CheckpointError(RuntimeError):
    """A checkpoint exists but cannot be used; the message says what to do."""


class _StaleCheckpoint(Exception):
    pass


def state_fingerprint(state: dict | None) -> str:
    """A short hash of a state dict's tensors (None -> ""), to tie a checkpoint to its start."""
    if state is None:
        return ""
    h = hashlib.sha1()
    for key in sorted(state):
        h.update(key.encode())
        h.update(state[key].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device = {name!r} but no CUDA device is visible; use device: auto or cpu")
    return torch.device(name)


def write_history(rows: list[dict], path: Path) -> None:
    with atomic_write(path, newline="") as f:
        w = csv.DictWriter(f, fieldnames=HISTORY_COLUMNS)
        w.writeheader()
        w.writerows(rows)


@contextlib.contextmanager
def batch_stat_eval(model: nn.Module):
    """Evaluate with BatchNorm using each evaluation batch's own statistics (Keskar's
    Keras BN mode 2) while dropout is off; running statistics are left untouched."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [{k: v.clone() for k, v in m.state_dict().items()} for m in bns]
    was = model.training
    model.eval()
    for m in bns:
        m.train()
    try:
        yield model
    finally:
        for m, s in zip(bns, saved):
            m.load_state_dict(s)
        model.train(was)


def update_stop_reason(state: dict, spec: dict, row: dict) -> None:
    """After an evaluation ``row``: set ``state["stop_reason"]`` to ``diverged`` (non-finite
    training loss), ``train_acc`` (``stop_train_acc`` reached) or ``patience`` (no improvement
    of ``min_delta`` in the training loss for ``patience`` evaluations: relative, loss < best *
    (1 - min_delta), or with ``min_delta_mode: abs`` absolute, loss < best - min_delta), keeping
    the best loss and the count of evaluations without improvement in ``state``."""
    if not math.isfinite(row["train_loss"]):
        state["stop_reason"] = "diverged"
        return
    if spec["stop_train_acc"] is not None and row["train_acc"] >= spec["stop_train_acc"]:
        state["stop_reason"] = "train_acc"
    if spec["patience"] is not None:
        if spec.get("min_delta_mode", "rel") == "abs":
            better = row["train_loss"] < state["best"] - spec["min_delta"]
        else:
            better = row["train_loss"] < state["best"] * (1 - spec["min_delta"])
        if better:
            state["best"], state["bad_evals"] = row["train_loss"], 0
        else:
            state["bad_evals"] += 1
            if state["bad_evals"] >= spec["patience"]:
                state["stop_reason"] = "patience"


def job_options(params, log: Callable[[str], None]) -> dict:
    """The keyword arguments a Snakemake training job passes to ``train_run`` / ``train_many``
    from its rule's params (config keys checkpoint_every_s, autocast, channels_last)."""
    return {"checkpoint_every_s": params.checkpoint_every_s, "autocast": params.autocast,
            "channels_last": params.channels_last, "log": log}


#: training-step autocast dtypes by config name
AUTOCAST = {"none": None, "bf16": torch.bfloat16}


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 2048, bn: str = "running") -> tuple[float, float]:
    """Mean cross-entropy and accuracy of `model` on (x, y)."""
    was = model.training
    ctx = batch_stat_eval(model) if bn == "batch" else contextlib.nullcontext()
    if bn != "batch":
        model.eval()
    loss_sum = torch.zeros((), device=x.device, dtype=torch.float64)
    correct = torch.zeros((), device=x.device, dtype=torch.long)
    with ctx:
        for xs, ys in zip(x.split(batch), y.split(batch)):
            out = model(xs)
            loss_sum += F.cross_entropy(out.float(), ys, reduction="sum").double()
            correct += (out.argmax(1) == ys).sum()
    model.train(was)
    n = max(len(y), 1)
    return loss_sum.item() / n, correct.item() / n


def _param_vector(model: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters() if p.requires_grad]


def weight_distance(model: nn.Module, w0: list[torch.Tensor]) -> float:
    sq = sum(((p.detach() - q) ** 2).sum() for p, q in zip((p for p in model.parameters() if p.requires_grad), w0))
    return float(torch.sqrt(sq))


def eval_steps(total: int, every: int, log_points: int) -> set[int]:
    """Steps after which to evaluate: 0, every `every` steps, a log grid, and the end."""
    points = {0, total}
    points.update(range(every, total + 1, every))
    if log_points:
        points.update(int(round(s)) for s in np.geomspace(1, max(total, 1), log_points))
    return {p for p in points if 0 <= p <= total}


def _make_optimizer(spec: dict, model: nn.Module) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    lr = effective_lr(spec)
    # foreach: one multi-tensor call per update instead of a Python loop over parameters
    # (torch's default on CUDA; on CPU the same numbers bit for bit, and faster; see README)
    if spec["optimizer"] == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=spec["weight_decay"], foreach=True)
    return torch.optim.SGD(params, lr=lr, momentum=spec["momentum"], nesterov=spec["nesterov"],
                           weight_decay=spec["weight_decay"], foreach=True)


class RunSetup:
    """What one run needs before its first step, built as ``train_run`` always has: the
    budget, then (in this order of random draws) the model from ``torch.manual_seed(seed)``
    or ``init_state``, its starting weights ``w0``, the optimiser, the data-order generator
    (``data_seed`` or ``seed``), and the dropout stream ``seed + 1_000_003``.  Vectorised
    stacks (``vtrain``) build their runs with it too."""

    def __init__(self, spec: dict, data: Dataset, out_dir: str | os.PathLike, device: torch.device,
                 init_state: dict | None = None, channels_last: bool = False):
        self.spec = spec = normalize(spec)
        self.rid = rid = run_id(spec)
        self.out = Path(out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        n = data.n_train
        self.B = B = spec["batch_size"]
        if B > n:
            raise ValueError(f"run {rid}: batch_size = {B} is larger than the training set ({n} samples)")
        self.steps_per_epoch = n // B
        self.total = spec["steps"] if spec["steps"] is not None else max(
            1, int(round(spec["epochs"] * self.steps_per_epoch)))
        self.evals = eval_steps(self.total, spec["eval_every"] or self.steps_per_epoch, spec["log_points"])

        torch.manual_seed(spec["seed"])
        self.model = build_model(spec, data.input_shape, data.num_classes).to(device)
        if init_state is not None:
            self.model.load_state_dict(init_state)
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.w0 = _param_vector(self.model)
        self.opt = _make_optimizer(spec, self.model)
        self.g = torch.Generator(device=data.x_train.device)
        self.g.manual_seed(spec["data_seed"] if spec["data_seed"] is not None else spec["seed"])
        torch.manual_seed(spec["seed"] + 1_000_003)  # dropout stream, separate from the init stream

        self.augment = None
        if spec["augment"] != "none" or spec["multiplicity"] > 1:
            from .augment import batch_augment, get_augmenter

            aug_fn = get_augmenter(spec["augment"])
            self.augment = lambda xb, yb: batch_augment(xb, yb, spec["multiplicity"], aug_fn, self.g)
        n_eval = min(spec["eval_train_samples"] or n, n)
        self.x_eval, self.y_eval = data.x_train[:n_eval], data.y_train[:n_eval]
        self.inputs_id = {"data": data.checksum, "init": state_fingerprint(init_state)}  # checkpoint identity
        self.state = {"step": 0, "perm": None, "pos": 0, "history": [], "best": math.inf, "bad_evals": 0,
                      "elapsed": 0.0, "loss_sum": 0.0, "loss_count": 0, "stop_reason": None}
        self.log: Callable[[str], None] | None = None  # progress: one line per evaluation
        self._history_written = 0  # rows of state["history"] already in history.csv
        self._clock: tuple[float, int] | None = None  # (perf_counter, step) when training (re)started

    def start_clock(self, step: int) -> None:
        """Training (re)starts at ``step`` now: samples/s and the ETA are measured from here."""
        self._clock = (time.perf_counter(), step)

    def flush_history(self) -> None:
        """Bring history.csv up to date: append the rows written since the last flush, or
        rewrite the whole file the first time (e.g. after resuming from a checkpoint, whose
        rows replace any written after that checkpoint was taken)."""
        hist, path = self.state["history"], self.out / "history.csv"
        if 0 < self._history_written <= len(hist) and path.exists():
            with open(path, "a", newline="") as f:
                csv.DictWriter(f, fieldnames=HISTORY_COLUMNS).writerows(hist[self._history_written:])
        else:
            write_history(hist, path)
        self._history_written = len(hist)

    def progress_line(self, row: dict) -> str:
        """One line for the job's log after an evaluation (see the module docstring)."""
        step, total = row["step"], self.total
        rate = eta = "?"
        if self._clock is not None and step > self._clock[1]:
            seconds = time.perf_counter() - self._clock[0]
            per_step = seconds / (step - self._clock[1])
            rate = f"{self.B * self.spec['multiplicity'] / per_step:,.0f}"
            eta = _hms(per_step * (total - step))
        return (f"{self.rid}: step {step}/{total} epoch {row['epoch']:.2f}/{total / self.steps_per_epoch:.2f} "
                f"lr {row['lr']:.4g} train loss {row['train_loss']:.4f} acc {row['train_acc']:.4f} "
                f"test loss {row['test_loss']:.4f} acc {row['test_acc']:.4f} | {rate} samples/s ETA {eta}")

    def record(self, data: Dataset, step: int, lr: float, wall: float) -> dict:
        """Evaluate the run's model now and append the history row (mean mini-batch loss since
        the last row, ||w - w0||, ``wall`` seconds so far)."""
        spec, state = self.spec, self.state
        tr_loss, tr_acc = evaluate(self.model, self.x_eval, self.y_eval, spec["eval_batch"], spec["eval_bn"])
        te_loss, te_acc = evaluate(self.model, data.x_test, data.y_test, spec["eval_batch"], spec["eval_bn"])
        row = {
            "step": step, "epoch": step / self.steps_per_epoch, "lr": lr, "samples": step * self.B,
            "train_loss": tr_loss, "train_acc": tr_acc, "test_loss": te_loss, "test_acc": te_acc,
            "batch_loss": state["loss_sum"] / state["loss_count"] if state["loss_count"] else float("nan"),
            "w_dist": weight_distance(self.model, self.w0), "wall_s": wall,
        }
        state["loss_sum"], state["loss_count"] = 0.0, 0
        state["history"].append(row)
        self.flush_history()
        if self.log is not None:
            self.log(self.progress_line(row))
        return row

    def checkpoint(self, state: dict, torch_rng: torch.Tensor, loss_acc: torch.Tensor, device: torch.device) -> None:
        """Write ``checkpoint.pt`` (``state`` with its permutation on the CPU)."""
        st = dict(state)
        st["perm"] = state["perm"].cpu() if state["perm"] is not None else None
        atomic_torch_save({
            "run_id": self.rid, "inputs": self.inputs_id, "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(), "w0": [t.cpu() for t in self.w0],
            "generator": self.g.get_state(), "torch_rng": torch_rng,
            "cuda_rng": torch.cuda.get_rng_state() if device.type == "cuda" else None, "state": st,
            "loss_acc": loss_acc.detach().cpu(),
        }, self.out / "checkpoint.pt")

    def write_outputs(self, steps: int, wall: float, device: torch.device, execution: dict) -> dict:
        """Write spec.json, history.csv, model.pt and metrics.json; return the metrics."""
        spec, state, hist = self.spec, self.state, self.state["history"]
        last = hist[-1]
        metrics = {
            "run": self.rid,
            "status": "diverged" if state["stop_reason"] == "diverged" else "ok",
            "stop_reason": state["stop_reason"] or "budget",
            "steps": steps,
            "epochs": steps / self.steps_per_epoch,
            "steps_per_epoch": self.steps_per_epoch,
            "batch_size": self.B,
            "lr_peak": effective_lr(spec),
            "train_loss": last["train_loss"],
            "train_acc": last["train_acc"],
            "test_loss": last["test_loss"],
            "test_acc": last["test_acc"],
            "best_test_acc": max((r["test_acc"] for r in hist), default=float("nan")),
            "w_dist": last["w_dist"],
            "wall_s": wall,
            "steps_per_s": steps / wall if wall > 0 else float("nan"),
            "device": str(device),
            "execution": execution,
        }
        atomic_write_text(self.out / "spec.json", json.dumps({"run": self.rid, **spec}, indent=2, sort_keys=True))
        write_history(hist, self.out / "history.csv")
        atomic_torch_save(self.model.state_dict(), self.out / "model.pt")
        atomic_write_text(self.out / "metrics.json", json.dumps(metrics, indent=2, allow_nan=True))
        return metrics


def _hms(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


_PROGRESS_LABEL: contextvars.ContextVar[str] = contextvars.ContextVar("largebatch_progress_label", default="")


@contextlib.contextmanager
def progress_label(label: str):
    """Within this block the long analyses' progress lines start with ``label: `` (e.g. the
    run id a sharpness job is measuring)."""
    token = _PROGRESS_LABEL.set(f"{label}: ")
    try:
        yield
    finally:
        _PROGRESS_LABEL.reset(token)


def progress_prefix() -> str:
    """The current ``progress_label`` followed by ": " ("" outside one)."""
    return _PROGRESS_LABEL.get()


def progress_eta(done: int, total: int, seconds: float) -> str:
    """``elapsed h:mm:ss, ETA h:mm:ss`` after ``done`` of ``total`` units took ``seconds``
    (ETA at the mean rate so far; ``?`` before the first unit); long analyses log it."""
    eta = _hms(seconds / done * (total - done)) if done > 0 else "?"
    return f"elapsed {_hms(seconds)}, ETA {eta}"


def train_run(
    spec: dict,
    data: Dataset,
    out_dir: str | os.PathLike,
    *,
    device: str | torch.device = "cpu",
    init_state: dict | None = None,
    checkpoint_every_s: float = 60.0,
    log: Callable[[str], None] = print,
    on_step: Callable[[int], None] | None = None,
    keep_checkpoint: bool = False,
    autocast: str = "none",
    channels_last: bool = False,
) -> dict:
    """Train one run; returns the metrics dict also written to metrics.json.

    With ``keep_checkpoint`` the final checkpoint stays on disk, so a job that trains
    several runs and dies later can rebuild this run's outputs without retraining.

    Execution options (config keys of the same names; recorded in metrics.json, not part of
    the run's spec or id): ``autocast="bf16"`` runs the training forward pass and loss under
    ``torch.autocast`` in bfloat16 (weights, optimiser and evaluation stay float32);
    ``channels_last`` stores a 2-D conv net's weights and each image batch in channels-last
    memory order (a no-op for 1-D data).
    """
    if autocast not in AUTOCAST:
        raise ValueError(f"autocast = {autocast!r}; choose one of {sorted(AUTOCAST)}")
    device = torch.device(device)
    n = data.n_train
    images = channels_last and len(data.input_shape) == 3  # (C, H, W) samples
    run = RunSetup(spec, data, out_dir, device, init_state, channels_last=images)
    run.log = log
    spec, rid, out, model, opt, g, state = run.spec, run.rid, run.out, run.model, run.opt, run.g, run.state
    B, steps_per_epoch, total, evals, augment = run.B, run.steps_per_epoch, run.total, run.evals, run.augment
    amp = torch.autocast(device.type, dtype=AUTOCAST[autocast]) if AUTOCAST[autocast] else contextlib.nullcontext()
    loss_acc = torch.zeros((), device=device)  # mini-batch losses since the last flush
    ckpt_path = out / "checkpoint.pt"
    if ckpt_path.exists():
        try:
            ck = torch.load(ckpt_path, map_location=device, weights_only=True)
            if ck.get("run_id") != rid:
                raise CheckpointError(f"{ckpt_path} belongs to run {ck.get('run_id')!r}, not {rid!r}")
            if ck.get("inputs") != run.inputs_id:
                raise _StaleCheckpoint
            model.load_state_dict(ck["model"])
            opt.load_state_dict(ck["optimizer"])
            run.w0 = [t.to(device) for t in ck["w0"]]
            g.set_state(ck["generator"])
            torch.set_rng_state(ck["torch_rng"])
            if device.type == "cuda" and ck.get("cuda_rng") is not None:
                torch.cuda.set_rng_state(ck["cuda_rng"])
            state.update(ck["state"])
            loss_acc.copy_(ck["loss_acc"])
            if state["perm"] is not None:
                state["perm"] = state["perm"].to(data.x_train.device)
            run.flush_history()  # the checkpoint's rows; drops any written after it was taken
            log(f"resumed {rid} from {ckpt_path} at step {state['step']}/{total}")
        except CheckpointError:
            raise
        except _StaleCheckpoint:
            # same spec, but the data or the starting weights changed since it was written
            log(f"{ckpt_path}: written for other data or starting weights; training {rid} from scratch")
            ckpt_path.unlink()
        except Exception as err:
            raise CheckpointError(
                f"{ckpt_path}: checkpoint is unreadable or truncated ({type(err).__name__}: {err}); "
                f"delete it to restart run {rid} from scratch: `rm {ckpt_path}`"
            ) from err

    def save_checkpoint():
        run.checkpoint(state, torch.get_rng_state(), loss_acc, device)

    def record(step: int, lr: float) -> dict:
        return run.record(data, step, lr, state["elapsed"] + (time.perf_counter() - t_start))

    t_start = time.perf_counter()
    last_ckpt = time.perf_counter()
    run.start_clock(state["step"])
    if not state["history"]:
        record(0, lr_at(spec, 0, steps_per_epoch, total))
    x_all, y_all = data.x_train, data.y_train
    micro = spec["micro_batch"]
    clip = spec["max_grad_norm"]
    model.train()
    while state["step"] < total and state["stop_reason"] is None:
        if state["perm"] is None or state["pos"] + B > n:
            state["perm"] = torch.randperm(n, generator=g, device=x_all.device)
            state["pos"] = 0
        idx = state["perm"][state["pos"]: state["pos"] + B]
        state["pos"] += B
        xb, yb = x_all[idx], y_all[idx]
        if augment is not None:
            xb, yb = augment(xb, yb)
        if images:
            xb = xb.contiguous(memory_format=torch.channels_last)
        lr = lr_at(spec, state["step"], steps_per_epoch, total)
        for group in opt.param_groups:
            group["lr"] = lr
        opt.zero_grad(set_to_none=True)
        if micro:
            loss_total = torch.zeros((), device=device)
            for xc, yc in zip(xb.split(micro), yb.split(micro)):
                with amp:
                    loss = F.cross_entropy(model(xc).float(), yc) * (len(yc) / len(yb))
                loss.backward()
                loss_total += loss.detach()
            loss_d = loss_total
        else:
            with amp:
                loss = F.cross_entropy(model(xb).float(), yb)
            loss.backward()
            loss_d = loss.detach()
        if clip:
            nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        state["step"] += 1
        step = state["step"]
        loss_acc += loss_d
        state["loss_count"] += 1
        is_eval = step in evals
        if is_eval or step % 25 == 0:
            lv = loss_acc.item()
            state["loss_sum"] += lv
            loss_acc.zero_()
            if not math.isfinite(lv):
                state["stop_reason"] = "diverged"
                record(step, lr)
                break
        if is_eval:
            row = record(step, lr)
            update_stop_reason(state, spec, row)
            if state["stop_reason"] == "diverged":
                break
        if on_step is not None:
            on_step(step)
        if checkpoint_every_s is not None and time.perf_counter() - last_ckpt >= checkpoint_every_s:
            state["elapsed"] += time.perf_counter() - t_start
            t_start = time.perf_counter()
            save_checkpoint()
            last_ckpt = time.perf_counter()

    wall = state["elapsed"] + (time.perf_counter() - t_start)
    metrics = run.write_outputs(state["step"], wall, device, {"autocast": autocast, "channels_last": images})
    if keep_checkpoint:
        state["elapsed"] = wall
        t_start = time.perf_counter()
        save_checkpoint()
    elif ckpt_path.exists():
        ckpt_path.unlink()
    log(f"{rid}: {metrics['status']} after {metrics['steps']} steps ({metrics['stop_reason']}), "
        f"test acc {metrics['test_acc']:.4f}, {wall:.1f}s")
    return metrics


def load_weights(path: str | os.PathLike, device="cpu") -> dict:
    """Final weights of a run, loaded safely (weights_only)."""
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as err:
        raise CheckpointError(f"{path}: cannot load weights ({type(err).__name__}: {err}); "
                              f"delete the run directory and rerun snakemake to retrain it") from err
