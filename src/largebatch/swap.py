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
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, update_bn

__all__ = ["average_models", "average_state_dicts", "recompute_bn", "bn_modules"]


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
