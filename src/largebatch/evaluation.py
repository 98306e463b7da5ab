"""Evaluating a network during training: loss and accuracy, distance from the start, and when.

Shared by both trainers (``train.train_run``, ``vtrain.train_group``) and the analyses that
evaluate trained weights (Keskar's sharpness, SWAP's averaged models).
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


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


def param_vector(model: nn.Module) -> list[torch.Tensor]:
    """Copies of the trainable weights (the start ``w0`` that ``weight_distance`` measures from)."""
    return [p.detach().clone() for p in model.parameters() if p.requires_grad]


def weight_distance(model: nn.Module, w0: list[torch.Tensor]) -> float:
    """||w - w0|| over all trainable weights."""
    sq = sum(((p.detach() - q) ** 2).sum() for p, q in zip((p for p in model.parameters() if p.requires_grad), w0))
    return float(torch.sqrt(sq))


def eval_steps(total: int, every: int, log_points: int) -> set[int]:
    """Steps after which to evaluate: 0, every `every` steps, a log grid, and the end."""
    points = {0, total}
    points.update(range(every, total + 1, every))
    if log_points:
        points.update(int(round(s)) for s in np.geomspace(1, max(total, 1), log_points))
    return {p for p in points if 0 <= p <= total}
