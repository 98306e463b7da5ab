"""SWAP phase 3 (Gupta, Akle Serrano & DeCoste, 2020): average the workers, recompute BN.

Stochastic Weight Averaging in Parallel ends with

1. averaging the weights of the ``W`` independently trained worker models
   (:func:`average_models`, :func:`average_state_dicts`), and
2. recomputing the BatchNorm running statistics of the averaged model on the
   training data (:func:`recompute_bn`), because the workers' running
   statistics do not match the activations of the averaged weights.

Both steps are thin wrappers around :mod:`torch.optim.swa_utils`
(:class:`~torch.optim.swa_utils.AveragedModel` and
:func:`~torch.optim.swa_utils.update_bn`).  Behaviour of ``swa_utils`` worth knowing
(checked against torch 2.14):

* ``AveragedModel(model, use_buffers=False)`` deep-copies ``model`` and averages
  **parameters only**, as a running mean (``torch._foreach_lerp_`` with weight
  ``1 / (n + 1)``), which equals the arithmetic mean up to floating-point rounding
  (exact for identical workers).  Buffers are *not* averaged: after every
  ``update_parameters(worker)`` they are overwritten with that worker's buffers, so
  the result carries the **last** worker's buffers (BN running statistics,
  ``num_batches_tracked``) -- hence the need for :func:`recompute_bn`.
* ``update_parameters`` pairs parameters with ``zip(..., strict=False)`` in
  registration order, so a mismatched architecture would be silently truncated;
  :func:`average_models` therefore checks names and shapes first.
* ``update_bn`` resets the running statistics of every module that is an instance
  of ``torch.nn.modules.batchnorm._BatchNorm`` and sets their ``momentum`` to
  ``None`` (cumulative moving average), puts the *whole* model in train mode for
  the pass (so dropout is active, exactly as during training) and restores the
  previous mode and momenta afterwards.  With ``momentum=None`` each batch has
  equal weight: the running mean is the mean of the per-batch means and the
  running variance the mean of the per-batch *unbiased* variances (a smaller last
  batch counts as much as a full one).  ``num_batches_tracked`` ends up equal to the
  number of batches.  A loader item that is a tuple/list contributes only its first
  element.

On top of these, the SWAP experiment's computations on checkpoints (used by the jobs
``workflow/scripts/swap_average.py`` and ``swap_analysis.py``): phase 3 with its evaluation
(:func:`swap_average`), the test accuracy of the average of the first k workers
(:func:`average_curve`) and the loss on the plane through three models
(:func:`plane_basis`, :func:`loss_plane`).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, update_bn

from .models import build_model
from .train import evaluate

__all__ = ["average_models", "average_state_dicts", "recompute_bn", "bn_modules", "averaged_model",
           "swap_average", "average_curve", "plane_basis", "loss_plane"]


def _check_compatible(reference: nn.Module, other: nn.Module, index: int) -> None:
    ref = [(name, tuple(p.shape)) for name, p in reference.named_parameters()]
    oth = [(name, tuple(p.shape)) for name, p in other.named_parameters()]
    if ref != oth:
        raise ValueError(
            f"model {index} does not have the same parameters (names/shapes) as model 0; "
            "all SWAP workers must share one architecture"
        )
    ref_b = [(name, tuple(b.shape)) for name, b in reference.named_buffers()]
    oth_b = [(name, tuple(b.shape)) for name, b in other.named_buffers()]
    if ref_b != oth_b:
        raise ValueError(
            f"model {index} does not have the same buffers (names/shapes) as model 0"
        )


def average_models(models: Sequence[nn.Module]) -> nn.Module:
    """Return a deep copy of ``models[0]`` whose parameters are the mean over ``models``.

    Implemented with :class:`torch.optim.swa_utils.AveragedModel` (``use_buffers=False``),
    calling ``update_parameters`` once per worker, and returns its underlying
    ``.module``.  The inputs are not modified.  The result lives on ``models[0]``'s
    device(s) (workers on other devices are moved on the fly) and keeps ``models[0]``'s
    train/eval mode and ``requires_grad`` flags.

    Buffers are *not* averaged: as in ``AveragedModel``, they are copied from the
    **last** model in the list.  Recompute BatchNorm statistics with
    :func:`recompute_bn` before evaluating the averaged model.
    """
    models = list(models)
    if not models:
        raise ValueError("average_models needs at least one model")
    for i, m in enumerate(models):
        if not isinstance(m, nn.Module):
            raise TypeError(f"models[{i}] is a {type(m).__name__}, not an nn.Module")
        if i:
            _check_compatible(models[0], m, i)
    averaged = AveragedModel(models[0], use_buffers=False)
    for m in models:
        averaged.update_parameters(m)
    return averaged.module


def average_state_dicts(
    states: Sequence[Mapping[str, torch.Tensor]], model_factory: Callable[[], nn.Module]
) -> nn.Module:
    """Average worker checkpoints: load each state into a fresh ``model_factory()`` model.

    Equivalent to ``average_models([load(s) for s in states])`` (same result, same
    rules for buffers: they come from the last state) but streams through the states
    with one scratch model, so only two models are alive at a time.  The result is a
    model built by ``model_factory`` (on whatever device the factory puts it).
    """
    states = list(states)
    if not states:
        raise ValueError("average_state_dicts needs at least one state dict")
    first = model_factory()
    first.load_state_dict(states[0])
    averaged = AveragedModel(first, use_buffers=False)
    averaged.update_parameters(first)
    scratch = first  # AveragedModel deep-copied it, so it can be reused
    for i, state in enumerate(states[1:], start=1):
        scratch.load_state_dict(state)
        _check_compatible(averaged.module, scratch, i)
        averaged.update_parameters(scratch)
    return averaged.module


def bn_modules(model: nn.Module) -> list[nn.Module]:
    """The modules whose statistics :func:`recompute_bn` (``update_bn``) resets and recomputes."""
    return [
        m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
    ]


def _model_device(model: nn.Module) -> torch.device | None:
    for t in model.parameters():
        return t.device
    for t in model.buffers():
        return t.device
    return None


@torch.no_grad()
def recompute_bn(
    model: nn.Module,
    inputs: torch.Tensor | Iterable,
    batch_size: int | None = 256,
    device: torch.device | str | None = None,
) -> nn.Module:
    """Reset and recompute the BatchNorm running statistics of ``model`` on training data.

    ``inputs`` is either a tensor of training inputs (split into consecutive batches
    of ``batch_size`` rows -- a 1-row remainder is merged into the previous batch;
    ``batch_size=None`` = one batch holding all of it) or an
    iterable of batches (tensors or ``(x, y, ...)`` tuples, e.g. a ``DataLoader``;
    ``batch_size`` is then ignored).  Each batch is moved to ``device`` (default: the
    device of the model's parameters) just before its forward pass, so ``inputs`` can
    stay on the CPU.

    This is :func:`torch.optim.swa_utils.update_bn`, so the statistics are cumulative
    averages over batches (``momentum=None``): the running mean is the mean of the
    per-batch means and the running variance the mean of the per-batch unbiased
    variances; with a single batch they are exactly the batch mean and unbiased
    variance of the activations entering each BN layer.  ``num_batches_tracked``
    becomes the number of batches.  The model is run in train mode (dropout active)
    and its previous mode and BN momenta are restored.  Modules with
    ``track_running_stats=False`` are left alone.

    Custom BN-like layers are handled iff they subclass
    ``torch.nn.modules.batchnorm._BatchNorm`` (as ``largebatch``'s GhostBatchNorm
    does) -- ``update_bn`` finds layers by that ``isinstance`` check.  Such a layer's
    ``forward`` must honour ``momentum is None`` the way ``_BatchNorm.forward`` does
    (cumulative average with factor ``1 / num_batches_tracked``).  For a ghost BN
    that updates once per ghost batch the result is the average over ghost batches.

    Returns ``model`` (modified in place).
    """
    if device is None:
        device = _model_device(model)
    if isinstance(inputs, torch.Tensor):
        if inputs.shape[0] == 0:
            raise ValueError("recompute_bn needs at least one input sample")
        if batch_size is None:
            loader: Iterable = [inputs]
        else:
            if int(batch_size) < 1:
                raise ValueError(f"batch_size must be >= 1, got {batch_size}")
            chunks = list(inputs.split(int(batch_size)))
            if len(chunks) > 1 and chunks[-1].shape[0] == 1:
                # BatchNorm cannot take a training step on a single sample: merge the
                # 1-row remainder into the previous batch.
                chunks[-2:] = [inputs[-(chunks[-2].shape[0] + 1) :]]
            loader = chunks
    else:
        loader = inputs
    update_bn(loader, model, device=device)
    return model


# --------------------------------------------------------------------------- #
# the SWAP experiment on checkpoints: phase 3, k-worker averages, loss plane
# --------------------------------------------------------------------------- #
def _factory(spec: dict, data, device):
    def make():
        return build_model(spec, data.input_shape, data.num_classes).to(device)

    return make


def _subset(x, n: int | None):
    return x if n is None or n >= x.shape[0] else x[:n]


def averaged_model(states: list[dict], spec: dict, data, *, bn_batch: int | None, device="cpu",
                   bn_samples: int | None = None):
    """Phase 3: the mean of the workers' weights, BN statistics recomputed on training data."""
    model = average_state_dicts(states, _factory(spec, data, device))
    recompute_bn(model, _subset(data.x_train, bn_samples), batch_size=bn_batch)
    return model


def swap_average(states: list[dict], spec: dict, data, *, bn_batch: int | None, device="cpu") -> tuple[Any, dict]:
    """Phase 3 and the evaluation of its result; returns (model, metrics)."""
    t0 = time.perf_counter()
    model = averaged_model(states, spec, data, bn_batch=bn_batch, device=device)
    t_avg = time.perf_counter() - t0
    tr_loss, tr_acc = evaluate(model, data.x_train, data.y_train, spec["eval_batch"], spec["eval_bn"])
    te_loss, te_acc = evaluate(model, data.x_test, data.y_test, spec["eval_batch"], spec["eval_bn"])
    return model, {"workers": len(states), "train_loss": tr_loss, "train_acc": tr_acc, "test_loss": te_loss,
                   "test_acc": te_acc, "average_s": t_avg, "bn_batch": bn_batch}


def average_curve(states: list[dict], spec: dict, data, *, bn_batch: int | None, device="cpu") -> list[dict]:
    """Test accuracy/loss of the average of the first k workers, k = 1..W (BN recomputed each time)."""
    rows = []
    for k in range(1, len(states) + 1):
        model = averaged_model(states[:k], spec, data, bn_batch=bn_batch, device=device)
        te_loss, te_acc = evaluate(model, data.x_test, data.y_test, spec["eval_batch"], spec["eval_bn"])
        rows.append({"k": k, "test_loss": te_loss, "test_acc": te_acc})
    return rows


def _flat(state: dict, names: list[str]):
    return torch.cat([state[n].detach().reshape(-1).double().cpu() for n in names])


def plane_basis(origin, a, b):
    """Orthonormal basis (u, v) of the plane through the flat weight vectors origin, a, b.

    ``u`` points from ``origin`` to ``a``; ``v`` is the part of ``b - origin`` orthogonal to
    ``u`` (Garipov et al. 2018, as in the SWAP paper's plane plots).  Returns
    ``(u, v, coords)`` with ``coords`` the (x, y) coordinates of origin, a, b.
    """
    da, db = a - origin, b - origin
    na = torch.linalg.vector_norm(da)
    if na == 0:
        raise ValueError("plane_basis: the first point coincides with the origin; no plane is defined")
    u = da / na
    w = db - (db @ u) * u
    nw = torch.linalg.vector_norm(w)
    if nw <= 1e-12 * max(float(na), 1.0):
        raise ValueError("plane_basis: the three points are collinear; no plane is defined")
    v = w / nw
    coords = [(0.0, 0.0), (float(na), 0.0), (float(db @ u), float(db @ v))]
    return u, v, coords


def loss_plane(states: dict[str, dict], spec: dict, data, *, grid: int = 11, margin: float = 0.25,
               bn_batch: int | None = None, samples: int | None = None, device="cpu"):
    """Train and test loss/error on the plane through three models.

    ``states`` maps three labels to state dicts, in the order (origin, a, b) of
    :func:`plane_basis` (for SWAP: phase 1, a worker, the average).  The grid spans the
    three points' coordinates plus ``margin`` of the span on each side, ``grid`` x
    ``grid`` points.  At every point the trainable parameters are set, the BatchNorm
    statistics recomputed on (the first ``samples`` of) the training data, and the loss
    evaluated on the same training samples and on the test set.

    Returns ``(grid_rows, point_rows)``: one dict per grid point (x, y, train_loss,
    train_err, test_loss, test_err) and one per model (label, x, y).
    """
    labels = list(states)
    if len(labels) != 3:
        raise ValueError(f"loss_plane needs three models, got {len(labels)}")
    make = _factory(spec, data, device)
    model = make()
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    flats = [_flat(states[k], names) for k in labels]
    u, v, coords = plane_basis(*flats)
    xs, ys = zip(*coords)
    span_x, span_y = max(xs) - min(xs), max(ys) - min(ys)
    gx = np.linspace(min(xs) - margin * span_x, max(xs) + margin * span_x, grid)
    gy = np.linspace(min(ys) - margin * span_y, max(ys) + margin * span_y, grid)
    shapes = [(n, model.state_dict()[n].shape) for n in names]
    base = copy.deepcopy(states[labels[0]])
    x_tr, y_tr = _subset(data.x_train, samples), _subset(data.y_train, samples)
    rows = []
    for x in gx:
        for y in gy:
            flat = flats[0] + float(x) * u + float(y) * v
            state = dict(base)
            offset = 0
            for n, shape in shapes:
                k = math.prod(shape)
                state[n] = flat[offset: offset + k].reshape(shape).to(base[n].dtype)
                offset += k
            model.load_state_dict(state)
            recompute_bn(model, x_tr, batch_size=bn_batch)
            tr_loss, tr_acc = evaluate(model, x_tr, y_tr, spec["eval_batch"], spec["eval_bn"])
            te_loss, te_acc = evaluate(model, data.x_test, data.y_test, spec["eval_batch"], spec["eval_bn"])
            rows.append({"x": float(x), "y": float(y), "train_loss": tr_loss, "train_err": 1 - tr_acc,
                         "test_loss": te_loss, "test_err": 1 - te_acc})
    points = [{"label": k, "x": c[0], "y": c[1]} for k, c in zip(labels, coords)]
    return rows, points
