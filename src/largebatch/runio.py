"""The files of a run that more than one part reads: history.csv's format, checkpoint errors,
the fingerprint that ties a checkpoint to its inputs, and loading a run's final weights
(``runsetup.RunSetup`` writes them; the analyses' jobs load the weights)."""

from __future__ import annotations

import csv
import hashlib
import os
from pathlib import Path

import torch

from .common import atomic_write

HISTORY_COLUMNS = ["step", "epoch", "lr", "samples", "train_loss", "train_acc", "test_loss", "test_acc",
                   "batch_loss", "w_dist", "wall_s"]


class CheckpointError(RuntimeError):
    """A checkpoint exists but cannot be used; the message says what to do."""


def state_fingerprint(state: dict | None) -> str:
    """A short hash of a state dict's tensors (None -> ""), to tie a checkpoint to its start."""
    if state is None:
        return ""
    h = hashlib.sha1()
    for key in sorted(state):
        h.update(key.encode())
        h.update(state[key].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def write_history(rows: list[dict], path: Path) -> None:
    with atomic_write(path, newline="") as f:
        w = csv.DictWriter(f, fieldnames=HISTORY_COLUMNS)
        w.writeheader()
        w.writerows(rows)


def load_weights(path: str | os.PathLike, device="cpu") -> dict:
    """Final weights of a run, loaded safely (weights_only)."""
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as err:
        raise CheckpointError(f"{path}: cannot load weights ({type(err).__name__}: {err}); "
                              f"delete the run directory and rerun snakemake to retrain it") from err
