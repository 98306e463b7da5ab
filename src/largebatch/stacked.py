"""A direct batched forward for stacks of MLPs, the sweeps' tiny networks.

``vtrain`` computes the K forward passes of a stack with ``vmap(functional_call(...))``.
For the tiny MLPs of the Masters & Luschi and Golmant sweeps a step costs more in that
wrapper's per-call Python (swapping K-stacked tensors into a module, pytree flattening)
than in arithmetic (``make bench``, row "stack vs batched-matmul floor"). For an ``MLP``
(Flatten, then Linear -> BatchNorm1d or nothing -> ReLU blocks, then a Linear) the same
losses are one ``torch.baddbmm`` per layer on the stacked weights, and BatchNorm's batch
statistics and running-statistics update are written out per run. Same parameters and
buffers (names and shapes of ``stack_module_state``), same losses and gradients up to
float rounding, same running statistics; anything else (dropout, ghost BN, conv nets)
returns ``None`` and keeps the vmap path.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn


def _plan(model: nn.Module) -> list[tuple] | None:
    net = getattr(model, "net", None)
    if type(model).__name__ != "MLP" or not isinstance(net, nn.Sequential):
        return None
    layers = list(net.named_children())
    if not layers or not isinstance(layers[0][1], nn.Flatten):
        return None
    plan: list[tuple] = []
    for name, m in layers[1:]:
        prefix = f"net.{name}."
        if isinstance(m, nn.Linear):
            plan.append(("linear", prefix + "weight", prefix + "bias"))
        elif type(m) is nn.BatchNorm1d and m.affine and m.track_running_stats and m.momentum is not None:
            plan.append(("bn", prefix, float(m.momentum), float(m.eps)))
        elif isinstance(m, nn.ReLU):
            plan.append(("relu",))
        elif isinstance(m, nn.Identity):
            continue
        else:  # dropout, ghost BN, anything else: the generic vmap path
            return None
    return plan


def stacked_losses(model: nn.Module) -> Callable | None:
    """``(params, buffers, x, y) -> (K,) losses`` for a stack of this MLP, or None if it is not one.

    ``params`` / ``buffers``: name -> (K, ...) tensors as ``torch.func.stack_module_state``
    gives them; x: (K, B, ...) inputs, y: (K, B) labels. Updates BatchNorm running statistics
    in ``buffers`` in place, as a module in train mode does.
    """
    plan = _plan(model)
    if plan is None:
        return None

    def losses(params: dict, buffers: dict, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        K, B = x.shape[0], x.shape[1]
        h = x.reshape(K, B, -1)
        for op in plan:
            if op[0] == "linear":
                h = torch.baddbmm(params[op[2]].unsqueeze(1), h, params[op[1]].transpose(1, 2))
            elif op[0] == "bn":
                prefix, momentum, eps = op[1], op[2], op[3]
                var, mean = torch.var_mean(h, dim=1, keepdim=True, correction=0)
                with torch.no_grad():
                    unbiased = var.squeeze(1) * (B / (B - 1)) if B > 1 else var.squeeze(1)
                    buffers[prefix + "running_mean"].lerp_(mean.squeeze(1), momentum)
                    buffers[prefix + "running_var"].lerp_(unbiased, momentum)
                    buffers[prefix + "num_batches_tracked"].add_(1)
                scale = params[prefix + "weight"].unsqueeze(1) * torch.rsqrt(var + eps)
                h = torch.addcmul(params[prefix + "bias"].unsqueeze(1), h - mean, scale)
            else:
                h = F.relu(h)
        C = h.shape[-1]
        return F.cross_entropy(h.reshape(K * B, C), y.reshape(K * B), reduction="none").view(K, B).mean(1)

    return losses
