"""Compute efficiency: FLOP/s of a large-batch training step against this machine's peak.

The step is what ``train_run`` does per update (forward, cross-entropy, backward, Adam
step) on MNIST-1D-shaped data; its FLOPs are counted with
``torch.utils.flop_counter.FlopCounterMode`` (matrix products and convolutions, forward and
backward; element-wise work such as BatchNorm, ReLU and the optimiser is not counted, so
the ratio is conservative).  The peak is a large square float32 matrix product
(``torch.mm``, n = 2048) on the same number of threads, measured in the same run.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from largebatch.models import build_model
from largebatch.spec import normalize
from largebatch.train import _make_optimizer

from .common import Result, Timer, interleaved_medians

# (model, width, depth, batch): the cpu-scale networks at a large batch, Keskar's F1 width, and
# the 1-D conv nets (C1-style shallow conv; a ResNet-8 of 16 channels, the smallest CIFAR ResNet
# of Masters & Luschi, on MNIST-1D's 40-sample signals) at a sweep's large and small batches
CONFIGS = [("mlp", 128, 3, 4096), ("mlp", 512, 3, 4096), ("shallow_conv", 16, 3, 1024),
           ("shallow_conv", 16, 3, 64), ("resnet", 16, 8, 1024), ("resnet", 16, 8, 64)]


def peak_matmul(timer: Timer, device, n: int = 2048, reps: int = 3, repeats: int = 3) -> float:
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)

    def mm():
        for _ in range(reps):
            torch.mm(a, b)

    t = interleaved_medians({"mm": mm}, timer, repeats=repeats, warmup=1)["mm"]
    return 2 * n ** 3 * reps / t


def step_flops(model, xb, yb) -> int:
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(xb), yb).backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def run(quick: bool = False, device: str = "cpu", repeats: int = 3) -> list[Result]:
    device = torch.device(device)
    timer = Timer(device)
    peak = peak_matmul(timer, device, n=256 if quick else 2048, reps=1 if quick else 3,
                       repeats=1 if quick else repeats)
    rows = []
    for name, width, depth, B in (CONFIGS[:1] if quick else CONFIGS):
        B = 64 if quick else B
        spec = normalize({"model": name, "width": width, "depth": depth, "batch_size": B, "optimizer": "adam",
                          "lr": 1e-3, "epochs": 1})
        torch.manual_seed(0)
        model = build_model(spec, (1, 40), 10).to(device).train()
        opt = _make_optimizer(spec, model)
        xb = torch.randn(B, 1, 40, device=device)
        yb = torch.randint(0, 10, (B,), device=device)
        flops = step_flops(model, xb, yb)
        steps = 1 if quick else 5

        def train_steps():
            for _ in range(steps):
                opt.zero_grad(set_to_none=True)
                F.cross_entropy(model(xb), yb).backward()
                opt.step()

        t = interleaved_medians({"step": train_steps}, timer, repeats=1 if quick else repeats,
                                warmup=0 if quick else 1)["step"]
        achieved = flops * steps / t
        rows.append(Result(f"compute: {name} width {width}{f' depth {depth}' if name == 'resnet' else ''}, batch {B} step", achieved / 1e9, peak / 1e9, "GFLOP/s",
                           100 * achieved / peak, 50.0, ratio_unit="%",
                           note=f"{flops / 1e6:.0f} MFLOP per step (FlopCounterMode) vs 2048^3 float32 matmul",
                           extra={"flops_per_step": flops, "t_step_s": t / steps}))
    return rows
