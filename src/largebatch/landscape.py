"""The loss landscape around trained weights: Hessian curvature and the 1-D parametric plot.

* :func:`hessian_max_eigenvalue` -- the largest-magnitude eigenvalue of the Hessian of the
  training loss, by power iteration on Hessian-vector products (the quantity Keskar et al.'s
  full-space epsilon-sharpness is related to);
* :func:`interpolate_state` and :func:`parametric_curve` -- the 1-D parametric plot
  ``f(alpha * x_LB + (1 - alpha) * x_SB)``, ``alpha in [-1, 2]`` (Keskar et al. Fig. 3);

and the plumbing they share with ``sharpness.epsilon_sharpness``: the trainable parameters as
one flat vector (``FlatParams``), the training loss and its gradient at such a vector, and
Hessian-vector products, accumulated over chunks of the inputs; ``sharpness``'s module
docstring states the conventions (training loss, chunking, the model left unchanged).

Progress: each power iteration and parametric-plot point logs one INFO line (elapsed time and
ETA) to the ``largebatch.landscape`` logger, which a Snakemake job's logger
(``largebatch.logs.job_logger``) writes to the rule's log.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from .progress import progress_eta, progress_prefix

_log = logging.getLogger(__name__)

LossFn = Callable[[Any, torch.Tensor], torch.Tensor]


# --------------------------------------------------------------------------- #
# The plumbing (also used by sharpness.epsilon_sharpness)
# --------------------------------------------------------------------------- #
class FlatParams:
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
def preserve_model(model: nn.Module) -> Iterator[None]:
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


def loss_and_grad(
    model: nn.Module,
    loss_fn: LossFn,
    flat: FlatParams,
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


def hvp(
    model: nn.Module,
    loss_fn: LossFn,
    flat: FlatParams,
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


# --------------------------------------------------------------------------- #
# Public API
# --------------------------------------------------------------------------- #
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
    with preserve_model(model):
        flat = FlatParams(model)
        x = flat.flatten(model).clone()
        gen = torch.Generator(device="cpu").manual_seed(int(seed))
        v = torch.randn(flat.n, generator=gen, dtype=torch.float64)
        v = (v / v.norm()).to(device=flat.device, dtype=flat.dtype)
        lam_prev: float | None = None
        lam = 0.0
        t0 = time.perf_counter()
        for it in range(int(iters)):
            hv = hvp(model, loss_fn, flat, x, v, inputs, targets, batch_size)
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
