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

Progress: each L-BFGS-B iteration, power iteration and parametric-plot point logs one
INFO line to the ``largebatch.sharpness`` logger (elapsed time and ETA), which a
Snakemake job's logger (``largebatch.logs.job_logger``) writes to the rule's log.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import scipy.optimize
import torch
from torch import nn
from torch.func import functional_call

from .train import progress_eta, progress_prefix

_log = logging.getLogger(__name__)

__all__ = [
    "epsilon_sharpness",
    "hessian_max_eigenvalue",
    "interpolate_state",
    "parametric_curve",
    "random_subspace_matrix",
]

LossFn = Callable[[Any, torch.Tensor], torch.Tensor]

# For n <= this many parameters A^+ x is computed with torch.linalg.pinv on the
# dense n x p matrix; above it, via the normal equations (A^T A)^{-1} A^T x in
# float64, accumulated over row blocks of A.
_PINV_DIRECT_MAX_N = 50_000
# Row-block size used when accumulating A^T A and A^T x.
_ROW_BLOCK = 1 << 18


# --------------------------------------------------------------------------- #
# Internal helpers
# --------------------------------------------------------------------------- #
class _FlatParams:
    """Names, shapes and a flat view of a model's trainable parameters."""

    def __init__(self, model: nn.Module):
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        if not named:
            raise ValueError("model has no trainable parameters")
        dtypes = {p.dtype for _, p in named}
        devices = {p.device for _, p in named}
        if len(dtypes) != 1 or len(devices) != 1:
            raise ValueError(
                "all trainable parameters must share one dtype and device, got "
                f"dtypes={sorted(map(str, dtypes))}, devices={sorted(map(str, devices))}"
            )
        self.names = [n for n, _ in named]
        self.shapes = [p.shape for _, p in named]
        self.numels = [p.numel() for _, p in named]
        self.dtype = named[0][1].dtype
        self.device = named[0][1].device
        self.n = sum(self.numels)

    def flatten(self, model: nn.Module) -> torch.Tensor:
        params = dict(model.named_parameters())
        return torch.cat([params[n].detach().reshape(-1) for n in self.names])

    def unflatten(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        chunks = torch.split(flat, self.numels)
        return {n: c.view(s) for n, c, s in zip(self.names, chunks, self.shapes)}


@contextlib.contextmanager
def _preserve_model(model: nn.Module) -> Iterator[None]:
    """Snapshot parameters, buffers and train/eval flags; restore them on exit."""
    params = {n: p.detach().clone() for n, p in model.named_parameters()}
    buffers = {n: b.detach().clone() for n, b in model.named_buffers()}
    modes = {m: m.training for m in model.modules()}
    try:
        yield
    finally:
        with torch.no_grad():
            for n, p in model.named_parameters():
                p.copy_(params[n])
            for n, b in model.named_buffers():
                b.copy_(buffers[n])
        for m, mode in modes.items():
            m.training = mode


def _chunks(
    inputs: torch.Tensor, targets: torch.Tensor, batch_size: int | None
) -> Iterator[tuple[torch.Tensor, torch.Tensor, float]]:
    """Yield ``(inputs_k, targets_k, weight_k)`` with weights summing to one."""
    n = len(inputs)
    if n == 0:
        raise ValueError("inputs is empty")
    if len(targets) != n:
        raise ValueError(f"inputs has {n} rows but targets has {len(targets)}")
    if batch_size is None or batch_size >= n:
        yield inputs, targets, 1.0
        return
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    for start in range(0, n, batch_size):
        xb = inputs[start : start + batch_size]
        yield xb, targets[start : start + batch_size], len(xb) / n


def _buffer_copies(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: b.detach().clone() for n, b in model.named_buffers()}


def _to(t: Any, device: torch.device) -> Any:
    return t.to(device, non_blocking=True) if isinstance(t, torch.Tensor) else t


def _loss_and_grad(
    model: nn.Module,
    loss_fn: LossFn,
    flat: _FlatParams,
    w: torch.Tensor,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    batch_size: int | None,
    need_grad: bool = True,
) -> tuple[float, torch.Tensor | None]:
    """Training loss ``f(w)`` and its flat gradient, accumulated over chunks."""
    w_leaf = w.detach().requires_grad_(need_grad)
    params = flat.unflatten(w_leaf)
    total = 0.0
    grad = torch.zeros_like(w_leaf) if need_grad else None
    for xb, tb, weight in _chunks(inputs, targets, batch_size):
        state = {**params, **_buffer_copies(model)}
        with torch.set_grad_enabled(need_grad):
            out = functional_call(model, state, (_to(xb, flat.device),))
            loss = loss_fn(out, _to(tb, flat.device)) * weight
        if need_grad:
            if loss.requires_grad:
                (g,) = torch.autograd.grad(loss, w_leaf, allow_unused=True)
                if g is not None:
                    grad += g
        total += float(loss.detach())
    return total, grad


def _hvp(
    model: nn.Module,
    loss_fn: LossFn,
    flat: _FlatParams,
    x: torch.Tensor,
    v: torch.Tensor,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    batch_size: int | None,
) -> torch.Tensor:
    """Hessian-vector product ``H(x) v`` of the training loss (double backward)."""
    w_leaf = x.detach().requires_grad_(True)
    params = flat.unflatten(w_leaf)
    hv = torch.zeros_like(w_leaf)
    for xb, tb, weight in _chunks(inputs, targets, batch_size):
        state = {**params, **_buffer_copies(model)}
        with torch.enable_grad():
            out = functional_call(model, state, (_to(xb, flat.device),))
            loss = loss_fn(out, _to(tb, flat.device)) * weight
            if not loss.requires_grad:
                continue
            (g,) = torch.autograd.grad(loss, w_leaf, create_graph=True, allow_unused=True)
            if g is None or not g.requires_grad:
                continue  # loss is (at most) linear in w: no curvature
            (h,) = torch.autograd.grad(g @ v, w_leaf, allow_unused=True)
        if h is not None:
            hv += h.detach()
    return hv


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
) -> float:
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

    Returns:
        The sharpness ``phi`` (a percentage) as a Python float.

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

    with _preserve_model(model):
        flat = _FlatParams(model)
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
            f, g = _loss_and_grad(model, loss_fn, flat, w, inputs, targets, batch_size)
            g_y = g if a is None else a.T @ g
            return f, g_y.detach().to(torch.float64).cpu().numpy()

        f0, g0 = evaluate(np.zeros_like(radius))
        if not math.isfinite(f0):
            raise ValueError(f"training loss at x is not finite: {f0}")
        best = [f0]
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
                f, g = evaluate(np.clip(y, lower, upper))
            if math.isfinite(f) and f > best[0]:
                best[0] = f
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
        return float((best[0] - f0) / (1.0 + f0) * 100.0)


def hessian_max_eigenvalue(
    model: nn.Module,
    loss_fn: LossFn,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    iters: int = 20,
    seed: int = 0,
    batch_size: int | None = None,
    tol: float = 1e-4,
) -> float:
    """Largest-magnitude eigenvalue of the Hessian of the training loss.

    Power iteration on Hessian-vector products of
    ``f(w) = loss_fn(model_w(inputs), targets)`` (the **training** loss) with
    respect to the trainable parameters, at the model's current parameters.
    Each product is a double backward pass (``torch.autograd.grad`` with
    ``create_graph=True``), accumulated over chunks of ``batch_size`` examples
    (weighted by chunk size) when ``batch_size`` is given.

    The start vector is standard normal from a CPU generator seeded with
    ``seed``. After each product the Rayleigh quotient ``v^T H v`` (``|v| = 1``)
    is the estimate; iteration stops after ``iters`` products or when two
    successive estimates differ by at most ``tol`` times the latest one. The
    returned value is signed (the eigenvalue of largest magnitude, which for a
    minimum is the largest eigenvalue). Power iteration converges at rate
    ``|lambda_2 / lambda_1|``, so a small gap needs more ``iters``.

    The model is evaluated in its current train/eval mode and left unchanged
    (parameters, buffers and mode flags are restored, also on exceptions).
    """
    if iters < 1:
        raise ValueError(f"iters must be positive, got {iters}")
    with _preserve_model(model):
        flat = _FlatParams(model)
        x = flat.flatten(model).clone()
        gen = torch.Generator(device="cpu").manual_seed(int(seed))
        v = torch.randn(flat.n, generator=gen, dtype=torch.float64)
        v = (v / v.norm()).to(device=flat.device, dtype=flat.dtype)
        lam_prev: float | None = None
        lam = 0.0
        t0 = time.perf_counter()
        for it in range(int(iters)):
            hv = _hvp(model, loss_fn, flat, x, v, inputs, targets, batch_size)
            lam = float(torch.dot(v.double(), hv.double()))
            _log.info(f"{progress_prefix()}Hessian power iteration {it + 1}/{int(iters)}: eigenvalue {lam:.6g}, "
                      f"{progress_eta(it + 1, int(iters), time.perf_counter() - t0)}")
            norm = float(hv.double().norm())
            if norm == 0.0 or not math.isfinite(norm):
                break
            v = hv / norm
            if lam_prev is not None and abs(lam - lam_prev) <= tol * abs(lam):
                break
            lam_prev = lam
        return lam


def interpolate_state(
    state_a: Mapping[str, Any], state_b: Mapping[str, Any], alpha: float
) -> dict[str, Any]:
    """Linear interpolation ``(1 - alpha) * a + alpha * b`` of two state dicts.

    Floating-point tensors are interpolated (in ``a``'s dtype and on ``a``'s
    device; ``alpha`` outside ``[0, 1]`` extrapolates). Integer/bool tensors
    (e.g. BatchNorm ``num_batches_tracked``) and non-tensor entries take ``a``'s
    value (copied). With ``a = x_SB``, ``b = x_LB`` this gives Keskar et al.'s
    1-D parametric plot point ``alpha * x_LB + (1 - alpha) * x_SB``.

    Note that BatchNorm running statistics, being floating-point buffers, are
    interpolated too (as in the authors' PyTorch parametric-plot script); the
    Keras original interpolated trainable weights only and used batch
    statistics at evaluation time.
    """
    if set(state_a) != set(state_b):
        missing = sorted(set(state_a) ^ set(state_b))
        raise KeyError(f"state dicts have different keys: {missing}")
    alpha = float(alpha)
    out: dict[str, Any] = {}
    for key, va in state_a.items():
        vb = state_b[key]
        if isinstance(va, torch.Tensor):
            if va.shape != vb.shape:
                raise ValueError(f"shape mismatch for {key}: {va.shape} vs {vb.shape}")
            if va.is_floating_point() or va.is_complex():
                vb = vb.detach().to(device=va.device, dtype=va.dtype)
                # (1 - alpha) * a + alpha * b is exact at alpha = 0 and 1.
                out[key] = (1.0 - alpha) * va.detach() + alpha * vb
            else:
                out[key] = va.detach().clone()
        else:
            out[key] = va
    return out


def parametric_curve(
    model: nn.Module,
    state_sb: Mapping[str, Any],
    state_lb: Mapping[str, Any],
    alphas: Sequence[float] | np.ndarray,
    evaluate: Callable[[nn.Module], Mapping[str, Any]],
) -> list[dict[str, Any]]:
    """Keskar et al. 2017 1-D parametric plot ``f(alpha x_LB + (1 - alpha) x_SB)``.

    For each ``alpha`` (the paper uses ``alpha in [-1, 2]``; the authors' code
    ``numpy.linspace(-1, 2, 25)``) the state ``interpolate_state(state_sb,
    state_lb, alpha)`` is loaded into ``model`` and ``evaluate(model)`` is
    called; it should return a dict of metrics (e.g. train/test loss and
    accuracy). ``alpha = 0`` is the small-batch minimiser, ``alpha = 1`` the
    large-batch one.

    Returns:
        One row per alpha, ``{"alpha": alpha, **metrics}``, in input order.

    The model's original state dict and train/eval flags are restored at the
    end, also on exceptions.
    """
    original = {k: v.detach().clone() if isinstance(v, torch.Tensor) else v
                for k, v in model.state_dict().items()}
    modes = {m: m.training for m in model.modules()}
    rows: list[dict[str, Any]] = []
    alphas = list(alphas)
    t0 = time.perf_counter()
    try:
        for alpha in alphas:
            alpha = float(alpha)
            model.load_state_dict(interpolate_state(state_sb, state_lb, alpha))
            metrics = evaluate(model)
            rows.append({"alpha": alpha, **metrics})
            _log.info(f"{progress_prefix()}parametric plot point {len(rows)}/{len(alphas)} (alpha {alpha:g}), "
                      f"{progress_eta(len(rows), len(alphas), time.perf_counter() - t0)}")
            for m, mode in modes.items():
                m.training = mode
    finally:
        model.load_state_dict(original)
        for m, mode in modes.items():
            m.training = mode
    return rows
