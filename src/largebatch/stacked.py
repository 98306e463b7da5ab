"""K copies of one network trained as one: the stack ``vtrain.train_group`` steps.

``Stack`` holds the K runs' parameters in one (K, P) buffer (one row per run), their
gradients in a second, their BatchNorm statistics stacked, and steps all K optimisers at
once (``Stack.step``: torch.optim's Adam / SGD written out on the flat buffers).

The forward pass: ``vtrain`` computes the K forward passes of a stack with ``vmap(functional_call(...))``.
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

import copy
import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state, vmap


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


@dataclass(frozen=True)
class Hyper:
    """The optimiser settings every run of a stack shares (their learning rates may differ)."""

    optimizer: str  # "adam" or "sgd"
    weight_decay: float
    momentum: float
    nesterov: bool
    beta1: float
    beta2: float
    eps: float
    clip: float | None  # max_grad_norm, per run over all its parameters

    @classmethod
    def of(cls, spec: dict, opt: torch.optim.Optimizer) -> "Hyper":
        """The settings of a normalised spec, with Adam's betas and eps from its torch optimiser."""
        beta1, beta2 = opt.defaults.get("betas", (0.9, 0.999))
        return cls(spec["optimizer"], spec["weight_decay"], spec["momentum"], spec["nesterov"], beta1, beta2,
                   opt.defaults.get("eps", 1e-8), spec["max_grad_norm"])


class Stack:
    """K copies of one network.  Parameters live in one (K, P) buffer, one row per run, so
    each parameter is a (K, ...) leaf viewing a column block and per-run scalars (learning
    rates) broadcast over rows; gradients accumulate into a second (K, P) buffer; buffers
    (BatchNorm running statistics) are stacked by ``stack_module_state``."""

    def __init__(self, models: list[nn.Module], opt_states: list[dict] | None, hyper: Hyper, device):
        params, buffers = stack_module_state(models)
        k = len(models)
        self.k = k
        self.hyper = hyper
        self.names = list(params)
        self.shapes = {n: tuple(params[n].shape) for n in self.names}
        self.slices, off = {}, 0
        for n in self.names:
            size = math.prod(self.shapes[n][1:])
            self.slices[n] = (off, off + size)
            off += size
        self.flat = torch.empty(k, off, device=device)
        self.grad = torch.zeros(k, off, device=device)
        self.params = {}
        for n in self.names:
            view = self._view(self.flat, n)
            view.copy_(params[n].detach())
            leaf = view.detach().requires_grad_()
            leaf.grad = self._view(self.grad, n)
            self.params[n] = leaf
        self.buffers = {n: b.detach().clone() for n, b in buffers.items()}
        self.state: dict[str, torch.Tensor | None] = {}
        adam = hyper.optimizer == "adam"
        keys = ("exp_avg", "exp_avg_sq") if adam else ("momentum_buffer",)
        for key in keys:
            if opt_states is None or any(s.get(key) is None for s in opt_states):
                self.state[key] = torch.zeros(k, off, device=device) if adam else None
            else:
                buf = torch.empty(k, off, device=device)
                for n in self.names:
                    self._view(buf, n).copy_(torch.stack([s[key][n] for s in opt_states]))
                self.state[key] = buf
        base = copy.deepcopy(models[0]).to("meta")
        base.train()

        def loss_one(p, b, x, y):
            return F.cross_entropy(functional_call(base, (p, b), (x,)), y)

        # tiny MLPs: one batched matmul per layer (stacked_losses); anything else: vmap
        self.losses = stacked_losses(models[0]) or vmap(loss_one, in_dims=(0, 0, 0, 0))

    def _view(self, flat: torch.Tensor, name: str) -> torch.Tensor:
        a, b = self.slices[name]
        return flat[:, a:b].view(self.shapes[name])

    def spread(self, values: Sequence[float]) -> torch.Tensor:
        """One value per run as a (K, 1) float32 column (float32, like a scalar kernel argument)."""
        return torch.tensor(values, dtype=torch.float32, device=self.flat.device).view(self.k, 1)

    def run_state(self, k: int) -> tuple[dict, dict]:
        """State dict of run k, and its optimiser tensors keyed by parameter name."""
        sd = {n: p.detach()[k] for n, p in self.params.items()}
        sd.update({n: b[k] for n, b in self.buffers.items()})
        opt = {key: (None if buf is None else {n: self._view(buf, n)[k] for n in self.names})
               for key, buf in self.state.items()}
        return sd, opt

    def load_into(self, k: int, model: nn.Module) -> dict:
        """Copy run k's weights and statistics into ``model``; returns its optimiser tensors."""
        sd, opt = self.run_state(k)
        model.load_state_dict(sd)
        return opt

    def step(self, step: int, lrs: Sequence[float]) -> None:
        """Optimiser step number ``step`` (from 1) for every run of the stack, run k at
        learning rate ``lrs[k]``, element-wise on the flat buffers, in the operation order of
        torch.optim's single-tensor Adam / SGD."""
        h = self.hyper
        p, g = self.flat, self.grad
        if h.clip:
            norm = torch.linalg.vector_norm(g, dim=1, keepdim=True)  # per run, over all its parameters
            g.mul_((h.clip / (norm + 1e-6)).clamp(max=1.0))
        if h.weight_decay != 0:
            g = g.add(p, alpha=h.weight_decay)
        if h.optimizer == "adam":
            m, v = self.state["exp_avg"], self.state["exp_avg_sq"]
            m.lerp_(g, 1 - h.beta1)
            v.mul_(h.beta2).addcmul_(g, g, value=1 - h.beta2)
            bc1 = 1 - h.beta1 ** step
            bc2_sqrt = (1 - h.beta2 ** step) ** 0.5
            denom = (v.sqrt() / bc2_sqrt).add_(h.eps)
            upd = self.spread([-lr / bc1 for lr in lrs]) * m
            p.add_(upd.div_(denom))
            return
        if h.momentum != 0:
            buf = self.state["momentum_buffer"]
            if buf is None:
                buf = self.state["momentum_buffer"] = g.clone()
            else:
                buf.mul_(h.momentum).add_(g)
            g = g.add(buf, alpha=h.momentum) if h.nesterov else buf
        p.addcmul_(g, self.spread([-lr for lr in lrs]))  # = add_(g, alpha=-lr), same rounding


def fill_optimizer(opt: torch.optim.Optimizer, model: nn.Module, tensors: dict, step: int) -> None:
    """Put a run's optimiser tensors (``Stack.load_into``) into a real torch optimiser, as
    torch.optim would hold them after ``step`` steps (for a ``train_run`` checkpoint)."""
    names = {id(p): n for n, p in model.named_parameters()}
    for group in opt.param_groups:
        for p in group["params"]:
            n = names[id(p)]
            if "exp_avg" in tensors:
                opt.state[p] = {"step": torch.tensor(float(step)), "exp_avg": tensors["exp_avg"][n].clone(),
                                "exp_avg_sq": tensors["exp_avg_sq"][n].clone()}
            elif tensors.get("momentum_buffer") is not None:
                opt.state[p] = {"momentum_buffer": tensors["momentum_buffer"][n].clone()}
