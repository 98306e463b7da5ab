"""Gradient noise scale (McCandlish, Kaplan, Amodei et al. 2018, arXiv 1812.06162).

The *simple noise scale* is

    B_simple = tr(Sigma) / |G|^2

where ``G`` is the full-batch (true) gradient of the mean loss and ``Sigma`` the
covariance of the per-example gradients.  It equals the more general
``B_noise = tr(H Sigma) / (G^T H G)`` when the Hessian ``H`` is proportional to
the identity, and McCandlish et al. find ``B_crit ~= B_noise ~= B_simple``.

Estimator (McCandlish et al. App. A.1, as in EleutherAI/gpt-neox)
------------------------------------------------------------------
For a mini-batch of ``B`` examples drawn i.i.d., ``E|G_B|^2 = |G|^2 + tr(Sigma)/B``.
Measuring the squared gradient norm at two batch sizes ``b_small < b_big`` gives
two unbiased estimates:

    |G|^2     ~= (b_big |G_big|^2 - b_small |G_small|^2) / (b_big - b_small)
    tr(Sigma) ~= (|G_small|^2 - |G_big|^2) / (1/b_small - 1/b_big)

Each estimate is averaged *separately* over ``n_estimates`` draws and
``B_simple`` is the ratio of the two averages (a ratio of averages, never an
average of per-draw ratios, which would be badly biased because the per-draw
``|G|^2`` estimate is noisy and can be negative).

Sampling scheme used here
-------------------------
* A ``torch.Generator`` seeded with ``seed`` draws a random permutation of the
  ``N`` examples; draw ``k`` takes the next ``b_big`` consecutive indices of that
  permutation, so successive draws are disjoint until fewer than ``b_big``
  unused indices remain, after which a fresh permutation is started
  ("disjoint as far as possible", like epochs of a shuffled data loader).
  Within a draw, indices are therefore sampled *without replacement*.
* ``G_big`` is the gradient of the mean loss over all ``b_big`` examples of the
  draw and ``G_small`` the gradient of the mean loss over the *first*
  ``b_small`` of those same examples (a nested sub-batch, as in the
  single-device gpt-neox recipe where the big batch is made of small batches).
  Marginally, each of them is a uniform random subset of the data set, so the
  expectations below hold; the nesting only introduces a positive correlation
  between the two norms, which reduces the variance of the difference.

Finite-population correction.  Because indices are drawn without replacement
from a finite set of ``N`` examples, the exact expectation of ``|G_B|^2`` is

    E|G_B|^2 = |G|^2 + tr(Sigma_pop) * N/(N-1) * (1/B - 1/N)

with ``Sigma_pop`` the population covariance (divide by ``N``) of the
per-example gradients of the ``N`` examples.  Plugging this into the estimator
gives exactly

    E[trace_sigma] = tr(Sigma_pop) * N / (N - 1)      (the unbiased sample covariance)
    E[g2]          = |G|^2 - tr(Sigma_pop) / (N - 1)

so both corrections vanish as ``N`` grows (for ``N`` ~ 5e4 they are
negligible); no correction is applied by this module.

Model state
-----------
The model is evaluated in whatever mode (``train()``/``eval()``) it is in; the
caller decides (e.g. ``eval()`` for BatchNorm running statistics, ``train()``
to measure the noise of the actual training gradient, including dropout).
All buffers (e.g. BatchNorm running statistics and ``num_batches_tracked``) are
restored afterwards, parameters are never modified, and ``.grad`` attributes
are not touched because gradients are obtained with ``torch.autograd.grad``.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Callable

import torch
from torch import nn

from .train import progress_eta, progress_prefix

_log = logging.getLogger(__name__)  # progress: INFO lines (a Snakemake job's logger writes them to its log)

__all__ = [
    "gradient_noise_stats",
    "gradient_noise_scale",
    "critical_batch_from_noise",
]


def _validate(n: int, b_small: int, b_big: int, n_estimates: int) -> None:
    for name, value in (("b_small", b_small), ("b_big", b_big), ("n_estimates", n_estimates)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if b_small >= b_big:
        raise ValueError(
            f"b_small must be strictly smaller than b_big (got b_small={b_small}, b_big={b_big})"
        )
    if b_big > n:
        raise ValueError(
            f"b_big={b_big} exceeds the number of available examples len(inputs)={n}"
        )


def _squared_grad_norm(
    model: nn.Module,
    params: list[torch.Tensor],
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
) -> float:
    """|d mean_loss(model(x), y) / d params|^2 accumulated in float64."""
    loss = loss_fn(model(x), y)
    if loss.dim() != 0:
        raise ValueError(
            "loss_fn must return a scalar (the mean loss over the batch), "
            f"got a tensor of shape {tuple(loss.shape)}"
        )
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    total = 0.0
    for g in grads:
        if g is not None:
            total += float(g.detach().double().pow(2).sum())
    return total


def gradient_noise_stats(
    model: nn.Module,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    inputs: torch.Tensor,
    targets: torch.Tensor,
    b_small: int,
    b_big: int,
    n_estimates: int = 32,
    seed: int = 0,
) -> dict:
    """Two-batch-size estimates of |G|^2, tr(Sigma) and B_simple = tr(Sigma)/|G|^2.

    Parameters
    ----------
    model:
        A ``torch.nn.Module``; used in its current train/eval mode.  Parameters
        with ``requires_grad=True`` define the gradient.
    loss_fn:
        ``loss_fn(model(x), y)`` must return the *mean* loss over the batch as a
        scalar tensor (e.g. ``nn.CrossEntropyLoss()``).
    inputs, targets:
        Tensors whose first dimension indexes the ``N`` examples the noise
        scale refers to (e.g. the training set or a large random subset of it).
    b_small, b_big:
        The two batch sizes, ``1 <= b_small < b_big <= N``.
    n_estimates:
        Number of (G_small, G_big) draws averaged.
    seed:
        Seed of the ``torch.Generator`` that chooses the indices (the global
        RNG is not used for sampling; dropout, if active, still uses it).

    Returns
    -------
    dict with
        ``g2``           average over draws of the |G|^2 estimate,
        ``trace_sigma``  average over draws of the tr(Sigma) estimate,
        ``b_simple``     ``trace_sigma / g2`` (NaN if ``g2 <= 0``, i.e. the
                         true-gradient signal is not resolved: use larger
                         batches or more estimates),
        ``n_estimates``  number of draws,
        ``b_small``, ``b_big``  the batch sizes used,
        ``g2_se``, ``trace_sigma_se``  standard errors of the two averages
                         (NaN when ``n_estimates == 1``).

    See the module docstring for the sampling scheme (nested G_small = first
    ``b_small`` examples of each ``b_big`` draw, without replacement) and the
    exact finite-population expectation of the estimates.

    Raises
    ------
    ValueError
        if ``b_small >= b_big``, ``b_big > len(inputs)``, a size is not a
        positive integer, or ``len(inputs) != len(targets)``.
    """
    n = len(inputs)
    if len(targets) != n:
        raise ValueError(f"inputs and targets differ in length ({n} vs {len(targets)})")
    _validate(n, b_small, b_big, n_estimates)

    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("model has no parameters with requires_grad=True")

    # Snapshot buffers (BatchNorm running stats etc.) to restore them afterwards.
    buffer_backup = [(b, b.detach().clone()) for b in model.buffers()]

    gen = torch.Generator()
    gen.manual_seed(int(seed))
    perm = torch.randperm(n, generator=gen)
    pos = 0

    inv_diff = 1.0 / b_small - 1.0 / b_big
    g2_estimates: list[float] = []
    trace_estimates: list[float] = []
    t0 = time.perf_counter()
    every = max(1, n_estimates // 10)  # about ten progress lines per measurement
    try:
        with torch.enable_grad():
            for k in range(n_estimates):
                if pos + b_big > n:
                    perm = torch.randperm(n, generator=gen)
                    pos = 0
                idx = perm[pos : pos + b_big]
                pos += b_big
                idx_dev = idx.to(inputs.device)
                x_big = inputs.index_select(0, idx_dev)
                y_big = targets.index_select(0, idx_dev.to(targets.device))

                norm_big = _squared_grad_norm(model, params, loss_fn, x_big, y_big)
                norm_small = _squared_grad_norm(
                    model, params, loss_fn, x_big[:b_small], y_big[:b_small]
                )
                g2_estimates.append((b_big * norm_big - b_small * norm_small) / (b_big - b_small))
                trace_estimates.append((norm_small - norm_big) / inv_diff)
                if (k + 1) % every == 0 or k + 1 == n_estimates:
                    g2_mean = sum(g2_estimates) / len(g2_estimates)
                    running = sum(trace_estimates) / len(trace_estimates) / g2_mean if g2_mean > 0 else math.nan
                    _log.info(f"{progress_prefix()}noise scale (b {b_small} vs {b_big}): draw {k + 1}/{n_estimates}, "
                              f"B_simple so far {running:.4g}, "
                              f"{progress_eta(k + 1, n_estimates, time.perf_counter() - t0)}")
    finally:
        with torch.no_grad():
            for buf, saved in buffer_backup:
                buf.copy_(saved)

    g2_t = torch.tensor(g2_estimates, dtype=torch.float64)
    tr_t = torch.tensor(trace_estimates, dtype=torch.float64)
    g2 = float(g2_t.mean())
    trace_sigma = float(tr_t.mean())
    if n_estimates > 1:
        g2_se = float(g2_t.std(unbiased=True)) / math.sqrt(n_estimates)
        tr_se = float(tr_t.std(unbiased=True)) / math.sqrt(n_estimates)
    else:
        g2_se = tr_se = float("nan")
    b_simple = trace_sigma / g2 if g2 > 0 else float("nan")
    return {
        "g2": g2,
        "trace_sigma": trace_sigma,
        "b_simple": b_simple,
        "n_estimates": int(n_estimates),
        "b_small": int(b_small),
        "b_big": int(b_big),
        "g2_se": g2_se,
        "trace_sigma_se": tr_se,
    }


def gradient_noise_scale(
    model: nn.Module,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    inputs: torch.Tensor,
    targets: torch.Tensor,
    b_small: int,
    b_big: int,
    n_estimates: int = 32,
    seed: int = 0,
) -> float:
    """Simple gradient noise scale B_simple = tr(Sigma)/|G|^2 (McCandlish et al. 2018).

    Thin wrapper returning ``gradient_noise_stats(...)["b_simple"]``; see that
    function for the arguments, the estimator and the sampling scheme.
    Returns NaN when the averaged |G|^2 estimate is not positive.
    """
    return gradient_noise_stats(
        model,
        loss_fn,
        inputs,
        targets,
        b_small=b_small,
        b_big=b_big,
        n_estimates=n_estimates,
        seed=seed,
    )["b_simple"]


def critical_batch_from_noise(b_simple: float) -> float:
    """Critical batch size predicted by the noise scale: B_crit ~= B_simple.

    McCandlish et al. (2018) model the steps/examples trade-off as
    ``(S/S_min - 1)(E/E_min - 1) = 1`` with critical batch
    ``B_crit = E_min/S_min ~= B_noise = tr(H Sigma)/(G^T H G)``, and
    ``B_noise = B_simple = tr(Sigma)/|G|^2`` when the Hessian is proportional
    to the identity.  This function therefore returns ``b_simple`` unchanged
    (as a float); it exists so that the approximation is explicit at call
    sites.  Note that McCandlish et al. report B_simple can differ from the
    measured B_crit by a roughly constant factor (it grows as the loss falls,
    so it should be measured at the loss level of interest).
    """
    return float(b_simple)
