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
* ``metrics.json``  final numbers and ``status`` (ok | diverged | no_learning: final train loss at chance) and ``stop_reason``
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
import os
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .data import Dataset
# the run's state (runsetup) and files (runio), evaluation and progress helpers: importable from
# here as they always were
from .evaluation import batch_stat_eval, eval_steps, evaluate, param_vector, weight_distance  # noqa: F401
from .progress import progress_eta, progress_label, progress_prefix  # noqa: F401
from .runio import HISTORY_COLUMNS, CheckpointError, load_weights, state_fingerprint, write_history  # noqa: F401
from .runsetup import CheckpointTimer, RunSetup, make_optimizer  # noqa: F401
from .stopping import update_stop_reason  # noqa: F401

_make_optimizer = make_optimizer  # the name README and benchmarks cite


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device = {name!r} but no CUDA device is visible; use device: auto or cpu")
    return torch.device(name)


def job_options(params, log: Callable[[str], None]) -> dict:
    """The keyword arguments a Snakemake training job passes to ``train_run`` / ``train_many``
    from its rule's params (config keys checkpoint_every_s, autocast, channels_last)."""
    return {"checkpoint_every_s": params.checkpoint_every_s, "autocast": params.autocast,
            "channels_last": params.channels_last, "log": log}


#: training-step autocast dtypes by config name
AUTOCAST = {"none": None, "bf16": torch.bfloat16}


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
    images = channels_last and len(data.input_shape) == 3  # (C, H, W) samples
    run = RunSetup(spec, data, out_dir, device, init_state, channels_last=images)
    run.log = log
    spec, model, opt, augment, total = run.spec, run.model, run.opt, run.augment, run.total
    amp = torch.autocast(device.type, dtype=AUTOCAST[autocast]) if AUTOCAST[autocast] else contextlib.nullcontext()
    loss_acc = torch.zeros((), device=device)  # mini-batch losses since the last flush
    pending = run.resume()
    if pending is not None:
        loss_acc.copy_(pending)
    run.begin()
    timer = CheckpointTimer(checkpoint_every_s)
    x_all, y_all = data.x_train, data.y_train
    micro = spec["micro_batch"]
    clip = spec["max_grad_norm"]
    model.train()
    while run.step < total and not run.stopped:
        idx = run.batch()
        xb, yb = x_all[idx], y_all[idx]
        if augment is not None:
            xb, yb = augment(xb, yb)
        if images:
            xb = xb.contiguous(memory_format=torch.channels_last)
        lr = run.lr(run.step)
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
        step = run.advance()
        loss_acc += loss_d
        if run.flush_due(step):
            lv = loss_acc.item()
            loss_acc.zero_()
            if run.flush_losses(lv, lr):
                break
        if step in run.evals:
            run.evaluate_and_stop(lr)
            if run.diverged:
                break
        # a run stopped by its rules (train_acc, patience) ends after this step's hook and checkpoint
        if on_step is not None:
            on_step(step)
        if timer.due():
            run.checkpoint(loss_acc)
            timer.done()
    return run.finish({"autocast": autocast, "channels_last": images}, keep_checkpoint, loss_acc)
