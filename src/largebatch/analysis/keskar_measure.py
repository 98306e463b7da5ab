"""Keskar et al. 2017: the per-run measurements the analysis jobs make on trained weights.

``run_sharpness`` (job ``keskar_sharpness_*``, one JSON per run): Metric 2.1, the
epsilon-sharpness in full space and in a random subspace, and the top eigenvalue of the
training loss's Hessian. ``parametric_rows`` (job ``keskar_parametric``): Fig. 3's loss and
accuracy along the line through an SB and an LB minimiser. Both evaluate BatchNorm as the
run did (``bn_mode``). This module imports torch; the section's analysis
(``analysis.keskar``) reads only the files these jobs write.
"""

from __future__ import annotations

import contextlib
import time
from typing import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..sharpness import epsilon_sharpness, hessian_max_eigenvalue, parametric_curve
from ..train import batch_stat_eval, evaluate


@contextlib.contextmanager
def bn_mode(model: nn.Module, eval_bn: str):
    """Dropout off; BatchNorm with running statistics ("running") or with each forward
    batch's own statistics ("batch", Keras BN mode 2 as in the authors' code)."""
    if eval_bn == "batch":
        with batch_stat_eval(model):
            yield model
    else:
        was = model.training
        model.eval()
        try:
            yield model
        finally:
            model.train(was)


def _mean_ce(out, targets):
    return F.cross_entropy(out.float(), targets)


def run_sharpness(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eval_bn: str,
                  epsilons: Sequence[float], subspace_dim: int, max_iter: int, seed: int,
                  hessian_iters: int, batch: int | None = None) -> dict:
    """Keskar's Metric 2.1 at each epsilon, in full space and in a random ``subspace_dim``
    subspace (matrix seeded with ``seed``), and the Hessian's top eigenvalue, all on the
    mean cross-entropy over (x, y) (training samples), with BatchNorm as ``eval_bn``."""
    t0 = time.perf_counter()
    out = {"samples": int(len(y)), "eval_bn": eval_bn, "subspace_dim": int(subspace_dim),
           "max_iter": int(max_iter), "seed": int(seed), "sharpness": []}
    with bn_mode(model, eval_bn), torch.no_grad():
        loss = 0.0
        for xb, yb in zip(x.split(batch or len(y)), y.split(batch or len(y))):
            loss += float(F.cross_entropy(model(xb).float(), yb, reduction="sum"))
        out["loss"] = loss / len(y)
    with bn_mode(model, eval_bn):
        for space, dim in (("full", None), ("subspace", subspace_dim)):
            for eps in epsilons:
                value = epsilon_sharpness(model, _mean_ce, x, y, float(eps), subspace_dim=dim,
                                          max_iter=max_iter, seed=seed, batch_size=batch)
                out["sharpness"].append({"space": space, "epsilon": float(eps), "value": value})
        out["hessian_max_eig"] = hessian_max_eigenvalue(model, _mean_ce, x, y, iters=hessian_iters, seed=seed,
                                                        batch_size=batch)
    out["hessian_iters"] = int(hessian_iters)
    out["seconds"] = time.perf_counter() - t0
    return out


def parametric_rows(model: nn.Module, state_sb: dict, state_lb: dict, data, alphas: Iterable[float], *,
                    eval_bn: str, eval_batch: int, train_samples: int | None = None) -> list[dict]:
    """Fig. 3: train and test loss/accuracy at ``alpha * x_LB + (1 - alpha) * x_SB``."""
    n = min(train_samples or data.n_train, data.n_train)
    xtr, ytr = data.x_train[:n], data.y_train[:n]

    def metrics(m):
        tr_loss, tr_acc = evaluate(m, xtr, ytr, eval_batch, eval_bn)
        te_loss, te_acc = evaluate(m, data.x_test, data.y_test, eval_batch, eval_bn)
        return {"train_loss": tr_loss, "train_acc": tr_acc, "test_loss": te_loss, "test_acc": te_acc}

    return parametric_curve(model, state_sb, state_lb, list(alphas), metrics)
