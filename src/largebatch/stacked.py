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
returns ``None``.

The conv nets of the sweeps (``ShallowConv``, ``ResNet``, ``VGG``; Masters & Luschi's grid is
hundreds of them at batch 2-32) stack as one *grouped* network (``grouped_losses``): K runs are
K channel groups of one network whose convolutions have ``groups = K`` (torch's grouped
convolution), whose BatchNorm has K x C channels (so every run's channels get their own batch
statistics and running statistics, written in place into the stacked buffers) and whose
Linear layers are one ``torch.baddbmm`` over the K runs. Same losses, gradients and running
statistics as the vmap path up to float rounding, ~1.3-1.5x faster per step (``make bench``,
row "grouped conv stack vs vmap"). Ghost BN, dropout > 0 or any layer not listed in
``_GROUPED_LEAVES`` keeps the vmap path.
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


class _GroupedLinear(nn.Module):
    """K runs' ``Linear`` layers on the grouped layout: input (B, K * in), output (B, K * out);
    weight (K, out, in) and bias (K, out), the stacked parameters as they are."""

    def __init__(self, k: int, lin: nn.Linear):
        super().__init__()
        self.k = k
        self.weight = nn.Parameter(torch.empty(k, lin.out_features, lin.in_features, device="meta"))
        self.bias = nn.Parameter(torch.empty(k, lin.out_features, device="meta")) if lin.bias is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B = x.shape[0]
        h = x.reshape(B, self.k, -1).transpose(0, 1)  # (K, B, in): run k's features are block k
        wt = self.weight.transpose(1, 2)
        out = torch.bmm(h, wt) if self.bias is None else torch.baddbmm(self.bias.unsqueeze(1), h, wt)
        return out.transpose(0, 1).reshape(B, -1)


#: layers that act on each channel (or each channel block) on its own, so they work unchanged
#: on the grouped layout (B, K * C, ...): run k's channels are block k
_GROUPED_LEAVES = (nn.ReLU, nn.MaxPool1d, nn.MaxPool2d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.Flatten,
                   nn.Identity)
#: modules whose own forward only chains layers, adds residuals, pools and flattens from dim 1
_GROUPED_CONTAINERS = ("Sequential", "ShallowConv", "VGG", "ResNet", "BasicBlock")


def _grouped(model: nn.Module, k: int) -> nn.Module | None:
    """A meta-device copy of ``model`` that computes K runs at once on the grouped layout, or
    None where a layer is not known to be per-channel (the caller keeps the vmap path)."""
    if type(model).__name__ not in _GROUPED_CONTAINERS[1:]:
        return None
    wide = copy.deepcopy(model).to("meta")

    def convert(parent: nn.Module) -> bool:
        for name, m in parent.named_children():
            if type(m) in (nn.Conv1d, nn.Conv2d):
                if m.padding_mode != "zeros":
                    return False
                setattr(parent, name, type(m)(k * m.in_channels, k * m.out_channels, m.kernel_size, m.stride,
                                              m.padding, m.dilation, k * m.groups, m.bias is not None,
                                              device="meta"))
            elif type(m) in (nn.BatchNorm1d, nn.BatchNorm2d):
                if m.track_running_stats and m.momentum is None:  # cumulative average: not per run here
                    return False
                setattr(parent, name, type(m)(k * m.num_features, m.eps, m.momentum, m.affine,
                                              m.track_running_stats, device="meta"))
            elif type(m) is nn.Linear:
                setattr(parent, name, _GroupedLinear(k, m))
            elif type(m) is nn.Dropout and m.p == 0:
                setattr(parent, name, nn.Identity())
            elif isinstance(m, _GROUPED_LEAVES):
                continue
            elif type(m).__name__ in _GROUPED_CONTAINERS:
                if not convert(m):
                    return False
            else:  # ghost BN, dropout > 0, anything else
                return False
        return True

    if not convert(wide):
        return None
    return wide.train()


def grouped_losses(model: nn.Module, k: int) -> Callable | None:
    """``(params, buffers, x, y) -> (K,) losses`` of K stacked copies of a conv net computed
    as one grouped network (module docstring), or None if ``model`` is not one it handles.

    ``params`` / ``buffers`` as ``stacked_losses`` takes them; x: (K, B, C, ...) inputs, y: (K, B).
    Updates the BatchNorm running statistics in ``buffers`` in place (and their counters)."""
    wide = _grouped(model, k)
    if wide is None:
        return None
    shapes = {n: tuple(p.shape) for n, p in wide.named_parameters()}
    buffer_shapes = {n: tuple(b.shape) for n, b in wide.named_buffers()}
    counters = [n for n in buffer_shapes if n.endswith("num_batches_tracked")]
    scratch = torch.zeros((), dtype=torch.long)

    def losses(params: dict, buffers: dict, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        K, B = x.shape[0], x.shape[1]
        xw = x.transpose(0, 1).reshape(B, K * x.shape[2], *x.shape[3:])
        p = {n: params[n].reshape(shape) for n, shape in shapes.items()}
        # running statistics: views of the stacked (K, C) buffers, which batch_norm updates in place
        b = {n: scratch if n in counters else buffers[n].view(shape) for n, shape in buffer_shapes.items()}
        out = functional_call(wide, (p, b), (xw,))
        with torch.no_grad():
            for n in counters:
                buffers[n].add_(1)
        C = out.shape[1] // K
        logits = out.view(B, K, C).transpose(0, 1).reshape(K * B, C)
        return F.cross_entropy(logits, y.reshape(K * B), reduction="none").view(K, B).mean(1)

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

        # tiny MLPs: one batched matmul per layer (stacked_losses); conv nets: one grouped
        # network (grouped_losses); anything else: vmap
        self.losses = (stacked_losses(models[0]) or grouped_losses(models[0], k)
                       or vmap(loss_one, in_dims=(0, 0, 0, 0)))

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


def optimizer_tensors(opt: torch.optim.Optimizer, model: nn.Module) -> dict:
    """A torch optimiser's state tensors keyed like ``Stack.load_into``'s: {"exp_avg": {name:
    tensor}, ...} (the inverse of ``fill_optimizer``; empty for plain SGD)."""
    names = {id(p): n for n, p in model.named_parameters()}
    out: dict[str, dict] = {}
    for group in opt.param_groups:
        for p in group["params"]:
            for key, value in opt.state.get(p, {}).items():
                if key in ("exp_avg", "exp_avg_sq", "momentum_buffer") and value is not None:
                    out.setdefault(key, {})[names[id(p)]] = value
    return out


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
