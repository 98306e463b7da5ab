"""Sharpness measures for trained networks (Keskar et al. 2017).

This module implements the measurements used by Keskar, Mudigere, Nocedal,
Smelyanskiy & Tang, "On Large-Batch Training for Deep Learning: Generalization
Gap and Sharp Minima" (ICLR 2017, arXiv:1609.04836):

* :func:`epsilon_sharpness` -- the epsilon-sharpness of Metric 2.1, in full
  space (``A = I``) or in a random ``p``-dimensional subspace;
* :func:`hessian_max_eigenvalue` -- the largest-magnitude eigenvalue of the
  Hessian of the training loss, by power iteration on Hessian-vector products
  (the quantity the full-space sharpness is related to);
* :func:`interpolate_state` and :func:`parametric_curve` -- the 1-D parametric
  plot ``f(alpha * x_LB + (1 - alpha) * x_SB)``, ``alpha in [-1, 2]``
  (Keskar et al. Fig. 3).

All loss-based quantities are computed on the **training loss**
``f(w) = loss_fn(model_w(inputs), targets)`` over whatever ``inputs``/``targets``
the caller passes (Keskar et al. define the metric on the training function,
i.e. the mean cross-entropy over the training set). ``loss_fn`` must return the
*mean* loss over the batch it is given; when ``batch_size`` is set, the loss and
its derivatives are accumulated over chunks of the inputs, each chunk weighted
by its size, so that the result equals the full-batch mean (exactly so for
models whose output on one example does not depend on the other examples in
the batch, e.g. models in eval mode; a model with BatchNorm in train mode uses
per-chunk batch statistics).

The functions evaluate the model in whatever train/eval mode it is in when
passed (the caller decides how BatchNorm is evaluated). They never modify the
model: parameters are substituted with :func:`torch.func.functional_call`,
buffers (e.g. BatchNorm running statistics) are given as throw-away copies,
and as a safeguard the parameters and buffers are copied back from a snapshot
on return, also when an exception is raised. Dropout in train mode makes the
objective stochastic, which the deterministic optimisers here are not designed
for; put dropout layers in eval mode before calling.

Only trainable parameters (``requires_grad=True``) are perturbed; frozen
parameters and buffers stay at their values.

The epsilon-sharpness optimiser lives here; the Hessian, the parametric plot and the
plumbing they share with it (flat parameter vectors, chunked losses, gradients and
Hessian-vector products) in :mod:`largebatch.landscape`, re-exported here.

Progress: each L-BFGS-B iteration, power iteration and parametric-plot point logs one
INFO line to the ``largebatch.sharpness`` / ``largebatch.landscape`` logger (elapsed time
and ETA), which a Snakemake job's logger (``largebatch.logs.job_logger``) writes to the
rule's log.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import scipy.optimize
import torch
from torch import nn

from .landscape import (FlatParams, LossFn, hessian_max_eigenvalue, interpolate_state, loss_and_grad,
                        parametric_curve, preserve_model)
from .progress import progress_eta, progress_prefix

_log = logging.getLogger(__name__)

__all__ = [
    "epsilon_sharpness",
    "hessian_max_eigenvalue",
    "interpolate_state",
    "parametric_curve",
    "random_subspace_matrix",
]

# For n <= this many parameters A^+ x is computed with torch.linalg.pinv on the
# dense n x p matrix; above it, via the normal equations (A^T A)^{-1} A^T x in
# float64, accumulated over row blocks of A.
_PINV_DIRECT_MAX_N = 50_000
# Row-block size used when accumulating A^T A and A^T x.
_ROW_BLOCK = 1 << 18


def random_subspace_matrix(
    n: int,
    p: int,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Random ``n x p`` matrix ``A`` of Keskar et al. 2017 Metric 2.1.

    Entries are drawn uniformly from ``[0, 1)`` by a CPU :class:`torch.Generator`
    seeded with ``seed`` (so ``A`` does not depend on the device), then every
    column is normalised to unit Euclidean length (as in the SmoothOut
    reference implementation ``measure_sharpness.py``). The result occupies
    ``n * p * itemsize`` bytes.
    """
    if n < 1 or p < 1:
        raise ValueError(f"n and p must be positive, got n={n}, p={p}")
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    a = torch.rand(n, p, generator=gen, dtype=torch.float32)
    sq = torch.zeros(p, dtype=torch.float64)
    for start in range(0, n, _ROW_BLOCK):
        blk = a[start : start + _ROW_BLOCK].double()
        sq += (blk * blk).sum(dim=0)
    a /= sq.sqrt().to(torch.float32)
    return a.to(device=device, dtype=dtype)


def _pinv_apply(a: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``A^+ x`` in float64 (on ``A``'s device)."""
    n, p = a.shape
    x64 = x.to(device=a.device, dtype=torch.float64)
    if n <= _PINV_DIRECT_MAX_N or n < p:
        return torch.linalg.pinv(a.double()) @ x64
    gram = torch.zeros(p, p, dtype=torch.float64, device=a.device)
    atx = torch.zeros(p, dtype=torch.float64, device=a.device)
    for start in range(0, n, _ROW_BLOCK):
        blk = a[start : start + _ROW_BLOCK].double()
        gram += blk.T @ blk
        atx += blk.T @ x64[start : start + _ROW_BLOCK]
    return torch.linalg.solve(gram, atx)



# --------------------------------------------------------------------------- #
# Public API
# --------------------------------------------------------------------------- #
def epsilon_sharpness(
    model: nn.Module,
    loss_fn: LossFn,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    epsilon: float,
    subspace_dim: int | None = None,
    max_iter: int = 10,
    seed: int = 0,
    batch_size: int | None = None,
    *,
    lbfgsb_options: Mapping[str, Any] | None = None,
    return_point: bool = False,
) -> float | tuple[float, torch.Tensor]:
    r"""Epsilon-sharpness of Keskar et al. 2017, Metric 2.1, on the training loss.

    .. math::

        \phi_{x,f}(\epsilon, A) = \frac{\max_{y \in C_\epsilon} f(x + A y) - f(x)}
                                      {1 + f(x)} \times 100,

    with ``f(w) = loss_fn(model_w(inputs), targets)`` the **training** loss
    (mean cross-entropy in Keskar et al.; pass the training set), ``x`` the
    model's current trainable parameters flattened into a vector of length
    ``n`` and the box

    .. math::

        C_\epsilon = \{ y \in \mathbb{R}^p :
                        |y_i| \le \epsilon (|(A^+ x)_i| + 1) \}.

    ``A`` is the identity when ``subspace_dim`` is ``None`` (full space, so the
    box is ``|y_i| <= epsilon * (|x_i| + 1)``), else the ``n x p`` random matrix
    of :func:`random_subspace_matrix` with ``p = subspace_dim`` and the given
    ``seed`` (Keskar et al. use ``p = 100``). ``A^+`` is its pseudo-inverse.

    As in the paper the maximisation is solved inexactly: SciPy's L-BFGS-B
    (``scipy.optimize.minimize(method="L-BFGS-B")``) is run on ``-f(x + A y)``
    from ``y = 0`` for ``max_iter`` iterations (10 in the paper), with the
    exact gradient ``A^T grad f`` from torch autograd. The model is evaluated
    in its own dtype (float32 normally); SciPy works in float64. The value
    returned uses the largest loss L-BFGS-B evaluated (all evaluated points lie
    in the box; ``y = 0`` is one of them, so the result is ``>= 0``).

    Args:
        model: the network; evaluated in its current train/eval mode; left
            unchanged (parameters, buffers such as BatchNorm running statistics,
            and mode flags are restored on return, also on exceptions).
        loss_fn: ``loss_fn(outputs, targets) -> scalar`` mean loss over a batch.
        inputs, targets: the training data, indexed along dim 0. Chunks are
            moved to the model's device as they are used.
        epsilon: box size (Keskar et al. use 1e-3 and 5e-4).
        subspace_dim: ``p`` for the random-subspace variant; ``None`` = full space.
        max_iter: L-BFGS-B iterations (``options["maxiter"]``).
        seed: seed for the random matrix ``A`` (unused in full space).
        batch_size: if given, ``f`` and its gradient are accumulated over chunks
            of this many examples (weighted by chunk size); ``None`` = one chunk.
        lbfgsb_options: extra/overriding SciPy options. By default
            ``{"maxiter": max_iter, "gtol": 0.0, "ftol": 0.0}``: the tolerances
            are zeroed so that the optimiser does not stop at ``y = 0`` merely
            because the gradient of a well-converged network is below SciPy's
            default ``gtol=1e-5``; it still stops early once the projected
            gradient is exactly zero (all coordinates at an ascending corner of
            the box) or the line search cannot make progress.

        return_point: also return the perturbation ``A y`` (parameter space, flat, in
            :class:`FlatParams` order) at which the largest loss was evaluated.

    Returns:
        The sharpness ``phi`` (a percentage) as a Python float; with ``return_point``,
        ``(phi, perturbation)``.

    Note:
        L-BFGS-B is a first-order-started method: at an exact stationary point
        (gradient exactly zero at ``y = 0``) it cannot move and the value is 0.
        The subspace variant stores ``A`` (``n * p`` floats) on the model's
        device; the full-space variant lets SciPy hold about ``25 n`` float64
        numbers of L-BFGS-B workspace.
    """
    if not epsilon > 0:
        raise ValueError(f"epsilon must be positive, got {epsilon}")
    if subspace_dim is not None and subspace_dim < 1:
        raise ValueError(f"subspace_dim must be positive, got {subspace_dim}")

    with preserve_model(model):
        flat = FlatParams(model)
        x = flat.flatten(model).clone()

        if subspace_dim is None:
            a = None
            center = x.detach().to(torch.float64).cpu().numpy()
        else:
            a = random_subspace_matrix(
                flat.n, int(subspace_dim), seed, dtype=flat.dtype, device=flat.device
            )
            center = _pinv_apply(a, x).cpu().numpy()
        radius = float(epsilon) * (np.abs(center) + 1.0)
        lower, upper = -radius, radius

        def evaluate(y: np.ndarray) -> tuple[float, np.ndarray]:
            y_t = torch.as_tensor(y, dtype=flat.dtype, device=flat.device)
            w = x + y_t if a is None else x + a @ y_t
            f, g = loss_and_grad(model, loss_fn, flat, w, inputs, targets, batch_size)
            g_y = g if a is None else a.T @ g
            return f, g_y.detach().to(torch.float64).cpu().numpy()

        f0, g0 = evaluate(np.zeros_like(radius))
        if not math.isfinite(f0):
            raise ValueError(f"training loss at x is not finite: {f0}")
        best, best_y = [f0], [np.zeros_like(radius)]
        what = f"epsilon-sharpness ({'full space' if a is None else f'subspace p={subspace_dim}'}, eps {epsilon:g})"
        t0, done, n_evals = time.perf_counter(), [0], [1]

        def progress(_xk) -> None:  # L-BFGS-B calls it after each iteration
            done[0] += 1
            _log.info(f"{progress_prefix()}{what}: iteration {done[0]}/{int(max_iter)}, {n_evals[0]} loss evaluations, "
                      f"loss {best[0]:.6g} (at x: {f0:.6g}), "
                      f"{progress_eta(done[0], int(max_iter), time.perf_counter() - t0)}")

        def objective(y: np.ndarray) -> tuple[float, np.ndarray]:
            n_evals[0] += 1
            if not y.any():
                f, g = f0, g0
            else:
                # L-BFGS-B keeps its iterates feasible; the clip only guards
                # against round-off so every reported value is inside C_eps.
                y = np.clip(y, lower, upper)
                f, g = evaluate(y)
            if math.isfinite(f) and f > best[0]:
                best[0], best_y[0] = f, y.copy()
            return -f, -g

        options: dict[str, Any] = {"maxiter": int(max_iter), "gtol": 0.0, "ftol": 0.0}
        if lbfgsb_options:
            options.update(lbfgsb_options)
        scipy.optimize.minimize(
            objective,
            np.zeros_like(radius),
            jac=True,
            method="L-BFGS-B",
            bounds=scipy.optimize.Bounds(lower, upper),
            options=options,
            callback=progress,
        )
        value = float((best[0] - f0) / (1.0 + f0) * 100.0)
        if not return_point:
            return value
        y_t = torch.as_tensor(best_y[0], dtype=flat.dtype, device=flat.device)
        return value, (y_t if a is None else a @ y_t).detach()
