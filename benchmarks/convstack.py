"""Stacked 1-D conv nets: the grouped network (``stacked.grouped_losses``) against the vmap path.

Masters & Luschi's grid trains hundreds of AlexNet- and ResNet-8-style 1-D nets at batch
2-32; runs of one batch size stack (``vtrain``). Both sides here compute the same K runs'
training step on the same stacked state (``stacked.Stack``): forward, backward and the SGD
step; one side with the grouped network (convolutions with ``groups = K``, BatchNorm over K x C
channels, batched Linear), the other with ``vmap(functional_call)``, which ``Stack`` used
for conv nets before. Ratio = vmap seconds per step / grouped seconds per step (goal >= 1:
the grouped path must not be slower where ``Stack`` picks it).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.func import functional_call, vmap

from largebatch.models import build_model
from largebatch.spec import normalize
from largebatch.stacked import Hyper, Stack, grouped_losses

from .common import Result, Timer, interleaved_medians

# (label, network, batch m, runs K): Masters & Luschi's cpu-scale nets (width 8) at the smallest
# batch of their grid (52 runs of one batch: 13 learning rates x 4 seeds) and at the largest
# batch that stacks (vtrain.MAX_BATCH), where the grouped kernels do the most arithmetic
NETS = {"resnet8": {"model": "resnet", "depth": 8, "width": 8}, "alexnet": {"model": "shallow_conv", "width": 8}}
CONFIGS = [("resnet8", 2, 52), ("resnet8", 32, 13), ("alexnet", 2, 52), ("alexnet", 32, 13)]


def _stack(net: dict, B: int, K: int) -> Stack:
    spec = normalize({"dataset": "mnist1d", **net, "norm": "batch", "optimizer": "sgd", "lr": 0.01,
                      "weight_decay": 5e-4, "batch_size": B, "epochs": 1})
    models = []
    for k in range(K):
        torch.manual_seed(k)
        models.append(build_model(spec, (1, 40), 10))
    return Stack(models, None, Hyper.of(spec, torch.optim.SGD(models[0].parameters(), lr=0.01)), "cpu")


def run(quick: bool = False, device: str = "cpu", repeats: int = 3, seconds: float = 1.0) -> list[Result]:
    timer = Timer("cpu")
    rows = []
    for label, B, K in (CONFIGS[:1] if quick else CONFIGS):
        stack = _stack(NETS[label], B, K)
        base = build_model(normalize({"dataset": "mnist1d", **NETS[label], "norm": "batch", "batch_size": B,
                                      "epochs": 1}), (1, 40), 10).to("meta").train()
        paths = {"grouped": grouped_losses(base, K),
                 "vmap": vmap(lambda p, b, x, y: F.cross_entropy(functional_call(base, (p, b), (x,)), y))}
        g = torch.Generator().manual_seed(0)
        x, y = torch.randn(K, B, 1, 40, generator=g), torch.randint(0, 10, (K, B), generator=g)
        steps = 2 if quick else max(5, int(seconds / 0.02))

        def loop(fn, steps=steps):
            for _ in range(steps):
                stack.grad.zero_()
                fn(stack.params, stack.buffers, x, y).sum().backward()
                with torch.no_grad():
                    stack.step(1, [0.0] * K)  # lr 0: every repeat times the same state

        t = interleaved_medians({name: (lambda fn=fn: loop(fn)) for name, fn in paths.items()}, timer,
                                repeats=1 if quick else repeats, warmup=0 if quick else 1)
        rows.append(Result(f"grouped conv stack vs vmap: {label} batch {B}, {K} runs", K * steps / t["grouped"],
                           K * steps / t["vmap"], "run-steps/s", t["vmap"] / t["grouped"], 1.0,
                           note="stacked.grouped_losses against vmap(functional_call) on the same Stack: "
                                "forward, backward, SGD step",
                           extra={"steps": steps, "times_s": t}))
    return rows
