"""Gradient variance under Batch Augmentation (Hoffer et al. 2019, "Augment your batch").

A BA step averages the gradient over ``M`` independently augmented copies of ``B``
distinct samples.  This module measures how noisy that gradient is, compared with the
gradient over ``M*B`` *distinct* samples (each augmented once) that a plain large
batch of the same size would give.

Quantity measured
-----------------
For one model (its weights fixed), the *gradient variance* of a sampling scheme is the
trace of the covariance of the mini-batch gradient ``g`` (of the mean loss) over the
randomness of the scheme (which samples, which augmentations)::

    V = E ||g - E g||^2

estimated from ``K`` independent draws ``g_1..g_K`` as
``sum_k ||g_k - mean(g)||^2 / (K - 1)`` (unbiased).  Schemes:

* ``"ba"``:       ``B`` distinct samples drawn without replacement, each repeated ``M``
                  times and augmented independently (:func:`largebatch.augment.batch_augment`);
* ``"distinct"``: ``M*B`` distinct samples drawn without replacement, each augmented once.

For ``M = 1`` the two schemes are the same (and, with the same seed, give the same number).

Variance model
--------------
Write ``g(x, T)`` for the gradient of one sample ``x`` under augmentation ``T``,
``mu(x) = E_T g(x, T)``, ``a = mean_x ||mu(x) - mean mu||^2`` (variance *between*
samples) and ``b = mean_x E_T ||g(x, T) - mu(x)||^2`` (variance *within* a sample, from
augmentation).  If per-sample gradients were independent (no batch-norm coupling) and
samples are drawn without replacement from ``N``, with ``f(n) = (N - n)/(N - 1)``::

    V_ba(M)       = a f(B) / B       + b / (M B)
    V_distinct(M) = a f(MB) / (M B)  + b / (M B)

so BA removes only the augmentation part of the noise (``b``), while distinct samples
shrink both parts: ``V_distinct(M) <= V_ba(M) <= V_ba(1)``.  :func:`fit_variance_model`
fits ``a`` and ``b`` to measurements by least squares in relative terms.

The model is evaluated in ``train()`` mode (batch-norm batch statistics: the gradient SGD
actually uses); its buffers (running statistics) are restored afterwards, parameters are
never changed and ``.grad`` is not touched (``torch.autograd.grad``).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .augment import Augmenter, batch_augment, get_augmenter

__all__ = [
    "SCHEMES",
    "gradient_variance",
    "gradient_variance_table",
    "predicted_variance",
    "fit_variance_model",
    "initial_model",
]

SCHEMES = ("ba", "distinct")


def _flat_grad(model: nn.Module, params: list[torch.Tensor], loss_fn, x, y) -> torch.Tensor:
    loss = loss_fn(model(x), y)
    if loss.dim() != 0:
        raise ValueError(f"loss_fn must return the mean loss as a scalar, got shape {tuple(loss.shape)}")
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1).double()
                      for g, p in zip(grads, params)])


def gradient_variance(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    multiplicity: int,
    augment: Augmenter | str | None,
    *,
    scheme: str = "ba",
    draws: int = 32,
    seed: int = 0,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy,
) -> dict:
    """Trace of the covariance of the mini-batch gradient under one sampling scheme.

    ``scheme="ba"``: ``batch_size`` distinct samples, ``multiplicity`` augmented copies of
    each; ``scheme="distinct"``: ``batch_size * multiplicity`` distinct samples, augmented
    once.  ``draws`` independent mini-batches are drawn with a CPU ``torch.Generator``
    seeded with ``seed`` (indices without replacement within a draw; the same generator
    drives the augmentation).

    Returns a dict: ``scheme``, ``multiplicity``, ``batch_size``, ``examples`` (samples the
    model sees per step, ``B*M``), ``distinct`` (distinct samples per step), ``trace_cov``
    (the unbiased variance estimate), ``mean_sq_norm`` (mean of ``||g_k||^2``),
    ``sq_norm_of_mean`` (``||mean g_k||^2``) and ``draws``.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"scheme = {scheme!r}; choose one of {list(SCHEMES)}")
    for name, value in (("batch_size", batch_size), ("multiplicity", multiplicity)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if isinstance(draws, bool) or not isinstance(draws, int) or draws < 2:
        raise ValueError(f"draws must be an integer >= 2 (a variance needs two draws), got {draws!r}")
    n = len(x)
    if len(y) != n:
        raise ValueError(f"x and y differ in length ({n} vs {len(y)})")
    distinct = batch_size * (multiplicity if scheme == "distinct" else 1)
    if distinct > n:
        raise ValueError(f"scheme {scheme!r} with batch_size={batch_size}, multiplicity={multiplicity} needs "
                         f"{distinct} distinct samples but only {n} are given; lower the batch size or M")
    aug = get_augmenter(augment) if isinstance(augment, str) or augment is None else augment
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("model has no parameters with requires_grad=True")

    g = torch.Generator()
    g.manual_seed(int(seed))
    saved = [(b, b.detach().clone()) for b in model.buffers()]
    was_training = model.training
    model.train()
    total = None
    sq_norms = 0.0
    try:
        with torch.enable_grad():
            for _ in range(draws):
                idx = torch.randperm(n, generator=g)[:distinct].to(x.device)
                xb, yb = x.index_select(0, idx), y.index_select(0, idx.to(y.device))
                m = multiplicity if scheme == "ba" else 1
                xb, yb = batch_augment(xb, yb, m, aug, g)
                vec = _flat_grad(model, params, loss_fn, xb, yb)
                total = vec if total is None else total + vec
                sq_norms += float(vec.dot(vec))
    finally:
        with torch.no_grad():
            for buf, value in saved:
                buf.copy_(value)
        model.train(was_training)
    mean = total / draws
    sq_mean = float(mean.dot(mean))
    trace = max((sq_norms - draws * sq_mean) / (draws - 1), 0.0)
    return {
        "scheme": scheme,
        "multiplicity": int(multiplicity),
        "batch_size": int(batch_size),
        "examples": int(batch_size * multiplicity),
        "distinct": int(distinct),
        "trace_cov": trace,
        "mean_sq_norm": sq_norms / draws,
        "sq_norm_of_mean": sq_mean,
        "draws": int(draws),
    }


def gradient_variance_table(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    multiplicities: Sequence[int],
    augment: Augmenter | str | None,
    *,
    draws: int = 32,
    seed: int = 0,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy,
) -> list[dict]:
    """:func:`gradient_variance` for every multiplicity and both schemes (one row each).

    Every (scheme, M) is measured with the same ``seed``, so the ``M = 1`` rows of the two
    schemes are identical measurements.
    """
    rows = []
    for scheme in SCHEMES:
        for m in multiplicities:
            rows.append(gradient_variance(model, x, y, batch_size, int(m), augment, scheme=scheme,
                                          draws=draws, seed=seed, loss_fn=loss_fn))
    return rows


def _coefficients(scheme: str, batch_size: int, multiplicity: int, n: int) -> tuple[float, float]:
    """(coefficient of a, coefficient of b) in the variance model for one measurement."""
    def fpc(k: int) -> float:
        return (n - k) / (n - 1) if n > 1 else 1.0

    bm = batch_size * multiplicity
    if scheme == "ba":
        return fpc(batch_size) / batch_size, 1.0 / bm
    if scheme == "distinct":
        return fpc(bm) / bm, 1.0 / bm
    raise ValueError(f"scheme = {scheme!r}; choose one of {list(SCHEMES)}")


def predicted_variance(a: float, b: float, batch_size: int, multiplicity: int, n: int, scheme: str) -> float:
    """The variance model of the module docstring for one scheme and M (``n``: samples drawn from)."""
    ca, cb = _coefficients(scheme, batch_size, multiplicity, n)
    return ca * a + cb * b


def fit_variance_model(rows: Sequence[dict], n: int) -> dict:
    """Fit the between-sample (``a``) and augmentation (``b``) variances to measurements.

    ``rows`` are dicts with ``scheme``, ``batch_size``, ``multiplicity`` and ``trace_cov``
    (e.g. from :func:`gradient_variance_table`); ``n`` is the number of samples the draws
    came from.  Least squares on the relative residuals ``(pred - meas) / meas``.
    Returns ``a``, ``b``, ``aug_share = b / (a + b)`` (the share of a single sample's
    gradient variance that augmentation causes) and ``max_rel_residual``.
    """
    rows = [r for r in rows if r["trace_cov"] > 0]
    if len(rows) < 2:
        raise ValueError("fit_variance_model needs at least two measurements with positive variance")
    design = np.array([_coefficients(r["scheme"], r["batch_size"], r["multiplicity"], n) for r in rows])
    meas = np.array([r["trace_cov"] for r in rows], dtype=float)
    (a, b), *_ = np.linalg.lstsq(design / meas[:, None], np.ones(len(rows)), rcond=None)
    a, b = max(float(a), 0.0), max(float(b), 0.0)
    pred = design @ np.array([a, b])
    share = b / (a + b) if a + b > 0 else float("nan")
    return {"a": a, "b": b, "aug_share": share, "max_rel_residual": float(np.max(np.abs(pred / meas - 1)))}


def initial_model(spec: dict, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """The network a run starts from: the engine's initialisation for ``spec['seed']``
    (``torch.manual_seed(seed)`` then ``build_model``, as in :func:`largebatch.train.train_run`)."""
    from .models import build_model
    from .spec import normalize

    spec = normalize(spec)
    torch.manual_seed(spec["seed"])
    return build_model(spec, input_shape, num_classes)
