"""One training run's state, files and step-loop bookkeeping, shared by both trainers.

``train.train_run`` trains one run; ``vtrain.train_group`` trains a stack of runs whose
weights live in stacked buffers.  Both walk the same skeleton after every training step, and
it lives here, as ``RunSetup`` methods, so that a run gives the same history, metrics and
checkpoints whichever trainer trains it:

* ``advance``: the step is done (its mini-batch used, the step and its loss counted);
* ``flush_losses``: every ``FLUSH_EVERY`` steps and at each evaluation the mini-batch losses
  summed on the device are read (one device sync); a non-finite sum ends the run as
  ``diverged`` (its row recorded);
* ``evaluate_and_stop``: at an evaluation step, the history row and the stopping rules
  (``stopping.update_stop_reason``);
* ``checkpoint`` (when a ``CheckpointTimer`` is due), ``resume``, and ``finish`` (the
  outputs, the kept or removed final checkpoint, the log line).

What differs between the trainers is where the current weights are and whose clock counts:
``sync`` (a stack copies a run's row of its buffers into the run's module; ``train_run``
trains the module itself), ``wall`` and ``rng_state`` are the methods a trainer overrides.
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from .common import atomic_torch_save, atomic_write_text
from .data import Dataset
from .evaluation import eval_steps, evaluate, param_vector, weight_distance
from .models import build_model
from .progress import hms
from .runio import HISTORY_COLUMNS, CheckpointError, state_fingerprint, write_history
from .spec import effective_lr, lr_at, normalize, run_id
from .stopping import end_reason, run_status, update_stop_reason

#: steps between two reads of the summed mini-batch loss outside evaluations (each is a device
#: sync): a diverged run is noticed within this many steps
FLUSH_EVERY = 25


class _StaleCheckpoint(Exception):
    """A checkpoint of this run written for other data or starting weights."""


def make_optimizer(spec: dict, model: nn.Module) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    lr = effective_lr(spec)
    # foreach: one multi-tensor call per update instead of a Python loop over parameters
    # (torch's default on CUDA; on CPU the same numbers bit for bit, and faster; see README)
    if spec["optimizer"] == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=spec["weight_decay"], foreach=True)
    return torch.optim.SGD(params, lr=lr, momentum=spec["momentum"], nesterov=spec["nesterov"],
                           weight_decay=spec["weight_decay"], foreach=True)


class CheckpointTimer:
    """Checkpoints are due every ``every_s`` seconds of wall time (never with None; after
    every step with 0)."""

    def __init__(self, every_s: float | None):
        self.every_s = every_s
        self.last = time.perf_counter()

    def due(self) -> bool:
        return self.every_s is not None and time.perf_counter() - self.last >= self.every_s

    def done(self) -> None:
        self.last = time.perf_counter()


def total_steps(spec: dict, n_train: int) -> int:
    """The training budget of a (normalised) run spec in steps, on ``n_train`` samples."""
    if spec["steps"] is not None:
        return spec["steps"]
    return max(1, int(round(spec["epochs"] * (n_train // spec["batch_size"]))))


def checkpoint_state(path: str | os.PathLike) -> dict | None:
    """The step-loop state saved in a checkpoint (step, stop_reason, ...), or None if it cannot
    be read (``RunSetup.resume`` then says what is wrong)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)["state"]
    except Exception:
        return None


class RunSetup:
    """One run: what it needs before its first step, built as ``train_run`` always has (the
    budget, then, in this order of random draws, the model from ``torch.manual_seed(seed)``
    or ``init_state``, its starting weights ``w0``, the optimiser, the data-order generator
    (``data_seed`` or ``seed``), and the dropout stream ``seed + 1_000_003``), and the state
    its step loop moves through (``state``: step, data position, history, stopping rule,
    losses not yet in a row), changed only by the methods below."""

    def __init__(self, spec: dict, data: Dataset, out_dir: str | os.PathLike, device: torch.device,
                 init_state: dict | None = None, channels_last: bool = False):
        self.spec = spec = normalize(spec)
        self.rid = rid = run_id(spec)
        self.data, self.device = data, device
        self.out = Path(out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.n = n = data.n_train
        self.B = B = spec["batch_size"]
        if B > n:
            raise ValueError(f"run {rid}: batch_size = {B} is larger than the training set ({n} samples)")
        self.steps_per_epoch = n // B
        self.total = total_steps(spec, n)
        self.evals = eval_steps(self.total, spec["eval_every"] or self.steps_per_epoch, spec["log_points"])

        torch.manual_seed(spec["seed"])
        self.model = build_model(spec, data.input_shape, data.num_classes).to(device)
        if init_state is not None:
            self.model.load_state_dict(init_state)
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.w0 = param_vector(self.model)
        self.opt = make_optimizer(spec, self.model)
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
        self._t0, self._elapsed0 = time.perf_counter(), 0.0  # wall(): seconds before + since (re)start

    # ---- what a trainer overrides: where the weights are, whose clock counts
    def sync(self, optimizer: bool = False) -> None:
        """Bring ``model`` (and with ``optimizer`` the optimiser) up to date with the weights
        being trained, before they are evaluated or saved; ``train_run`` trains them in place."""

    def wall(self) -> float:
        """Seconds of wall time this run has taken so far (across resumes)."""
        return self._elapsed0 + (time.perf_counter() - self._t0)

    def rng_state(self) -> torch.Tensor:
        """The global torch random state a checkpoint restores (the dropout stream)."""
        return torch.get_rng_state()

    # ---- the step loop
    @property
    def step(self) -> int:
        return self.state["step"]

    @property
    def position(self) -> int:
        """Samples of the current permutation already used."""
        return self.state["pos"]

    @property
    def stopped(self) -> bool:
        return self.state["stop_reason"] is not None

    @property
    def diverged(self) -> bool:
        return self.state["stop_reason"] == "diverged"

    def lr(self, step: int) -> float:
        return lr_at(self.spec, step, self.steps_per_epoch, self.total)

    def begin(self) -> None:
        """Training (re)starts now at ``step``: start the clocks and record a fresh run's step-0 row."""
        self._t0, self._elapsed0 = time.perf_counter(), self.state["elapsed"]
        self.start_clock(self.state["step"])
        if not self.state["history"]:
            self.record(0, self.lr(0))

    def epoch_ends(self) -> bool:
        """Whether the current permutation cannot fill the next mini-batch (or there is none)."""
        return self.state["perm"] is None or self.state["pos"] + self.B > self.n

    def new_epoch(self) -> torch.Tensor:
        """Draw the next permutation of the training set from the run's data-order generator."""
        self.state["perm"] = torch.randperm(self.n, generator=self.g, device=self.data.x_train.device)
        self.state["pos"] = 0
        return self.state["perm"]

    def batch(self) -> torch.Tensor:
        """Indices of the next mini-batch (a new permutation when needed); ``advance`` uses them up."""
        if self.epoch_ends():
            self.new_epoch()
        return self.state["perm"][self.state["pos"]: self.state["pos"] + self.B]

    def advance(self) -> int:
        """A training step is done: its mini-batch is used and its loss (pending on the device
        until ``flush_losses``) counted.  Returns the step's number."""
        st = self.state
        st["pos"] += self.B
        st["step"] += 1
        st["loss_count"] += 1
        return st["step"]

    def flush_due(self, step: int) -> bool:
        """Whether the pending mini-batch losses are read after ``step``."""
        return step in self.evals or step % FLUSH_EVERY == 0

    def flush_losses(self, loss_sum: float, lr: float) -> bool:
        """Add the mini-batch losses summed since the last flush.  A non-finite sum means the
        run diverged: its row is recorded now and True returned (stop at once)."""
        self.state["loss_sum"] += loss_sum
        if math.isfinite(loss_sum):
            return False
        self.state["stop_reason"] = "diverged"
        self.record(self.state["step"], lr)
        return True

    def evaluate_and_stop(self, lr: float) -> bool:
        """At an evaluation step: record the row and apply the stopping rules; True when the
        run stops (``stop_reason`` says why)."""
        row = self.record(self.state["step"], lr)
        update_stop_reason(self.state, self.spec, row)
        return self.stopped

    # ---- history and progress
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
        """One line for the job's log after an evaluation (see ``train``'s module docstring)."""
        step, total = row["step"], self.total
        rate = eta = "?"
        if self._clock is not None and step > self._clock[1]:
            seconds = time.perf_counter() - self._clock[0]
            per_step = seconds / (step - self._clock[1])
            rate = f"{self.B * self.spec['multiplicity'] / per_step:,.0f}"
            eta = hms(per_step * (total - step))
        return (f"{self.rid}: step {step}/{total} epoch {row['epoch']:.2f}/{total / self.steps_per_epoch:.2f} "
                f"lr {row['lr']:.4g} train loss {row['train_loss']:.4f} acc {row['train_acc']:.4f} "
                f"test loss {row['test_loss']:.4f} acc {row['test_acc']:.4f} | {rate} samples/s ETA {eta}")

    def record(self, step: int, lr: float) -> dict:
        """Evaluate the run's model now and append the history row (mean mini-batch loss since
        the last row, ||w - w0||, wall seconds so far)."""
        spec, state, data = self.spec, self.state, self.data
        self.sync()
        wall = self.wall()
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

    # ---- checkpoints and outputs
    @property
    def checkpoint_path(self) -> Path:
        return self.out / "checkpoint.pt"

    def checkpoint(self, pending_loss: torch.Tensor) -> None:
        """Write ``checkpoint.pt``: everything ``resume`` needs to go on bit for bit, with the
        mini-batch losses ``pending_loss`` summed on the device since the last flush."""
        self.sync(optimizer=True)
        st = dict(self.state)
        st["elapsed"] = self.wall()
        st["perm"] = st["perm"].cpu() if st["perm"] is not None else None
        atomic_torch_save({
            "run_id": self.rid, "inputs": self.inputs_id, "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(), "w0": [t.cpu() for t in self.w0],
            "generator": self.g.get_state(), "torch_rng": self.rng_state(),
            "cuda_rng": torch.cuda.get_rng_state() if self.device.type == "cuda" else None, "state": st,
            "loss_acc": pending_loss.detach().cpu(),
        }, self.checkpoint_path)

    def resume(self) -> torch.Tensor | None:
        """Continue from ``checkpoint.pt`` if there is one for this run: returns the mini-batch
        losses pending when it was written (None: no usable checkpoint, start afresh).  One for
        other data or starting weights is removed; one for another run or unreadable raises
        ``CheckpointError``, which says what to do."""
        path, rid, device, log = self.checkpoint_path, self.rid, self.device, self.log or (lambda s: None)
        if not path.exists():
            return None
        try:
            ck = torch.load(path, map_location=device, weights_only=True)
            if ck.get("run_id") != rid:
                raise CheckpointError(f"{path} belongs to run {ck.get('run_id')!r}, not {rid!r}")
            if ck.get("inputs") != self.inputs_id:
                raise _StaleCheckpoint
            self.model.load_state_dict(ck["model"])
            self.opt.load_state_dict(ck["optimizer"])
            self.w0 = [t.to(device) for t in ck["w0"]]
            self.g.set_state(ck["generator"])
            torch.set_rng_state(ck["torch_rng"])
            if device.type == "cuda" and ck.get("cuda_rng") is not None:
                torch.cuda.set_rng_state(ck["cuda_rng"])
            state = self.state
            state.update(ck["state"])
            pending = ck["loss_acc"]
            if state["perm"] is not None:
                state["perm"] = state["perm"].to(self.data.x_train.device)
            self.flush_history()  # the checkpoint's rows; drops any written after it was taken
            log(f"resumed {rid} from {path} at step {state['step']}/{self.total}")
            return pending
        except CheckpointError:
            raise
        except _StaleCheckpoint:
            # same spec, but the data or the starting weights changed since it was written
            log(f"{path}: written for other data or starting weights; training {rid} from scratch")
            path.unlink()
            return None
        except Exception as err:
            raise CheckpointError(
                f"{path}: checkpoint is unreadable or truncated ({type(err).__name__}: {err}); "
                f"delete it to restart run {rid} from scratch: `rm {path}`"
            ) from err

    def write_outputs(self, steps: int, wall: float, execution: dict) -> dict:
        """Write spec.json, history.csv, model.pt and metrics.json; return the metrics."""
        spec, state, hist = self.spec, self.state, self.state["history"]
        last = hist[-1]
        metrics = {
            "run": self.rid,
            "status": run_status(state["stop_reason"], last["train_loss"], self.data.num_classes),
            "stop_reason": state["stop_reason"] or end_reason(spec),
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
            "device": str(self.device),
            "execution": execution,
        }
        atomic_write_text(self.out / "spec.json", json.dumps({"run": self.rid, **spec}, indent=2, sort_keys=True))
        write_history(hist, self.out / "history.csv")
        atomic_torch_save(self.model.state_dict(), self.out / "model.pt")
        atomic_write_text(self.out / "metrics.json", json.dumps(metrics, indent=2, allow_nan=True))
        return metrics

    def finish(self, execution: dict, keep_checkpoint: bool, pending_loss: torch.Tensor, note: str = "") -> dict:
        """The run is over (budget spent or stopped): write its outputs, keep its final
        checkpoint (``keep_checkpoint``: a pack job that dies later rebuilds the outputs from
        it without training) or remove it, and log one line (ending in ``note``)."""
        self.sync()
        wall = self.wall()
        metrics = self.write_outputs(self.state["step"], wall, execution)
        if keep_checkpoint:
            self.checkpoint(pending_loss)
        elif self.checkpoint_path.exists():
            self.checkpoint_path.unlink()
        if self.log is not None:
            self.log(f"{self.rid}: {metrics['status']} after {metrics['steps']} steps ({metrics['stop_reason']}), "
                     f"test acc {metrics['test_acc']:.4f}, {wall:.1f}s{note}")
        return metrics
