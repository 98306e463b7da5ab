"""The overhead floor of stacked tiny-network training.

The sweeps (Masters & Luschi, Golmant) are hundreds of tiny runs whose steps cost more in
per-op overhead than in arithmetic. ``vtrain.train_group`` stacks K of them; this row sets
it against a hand-written loop of the same K runs that is about as lean as eager PyTorch
gets: the K networks' weights as (K, ...) tensors, one ``torch.bmm`` per layer, one
autograd backward of the summed losses, and an in-place SGD-with-momentum update with a
per-run learning rate. Same network (the sweeps' 2 x 32 MLP without BatchNorm), batch, K,
data and number of steps; evaluations and files only at the start and the end.

Ratio = floor per-step time / stacked per-step time (1.0 = as fast as the floor); the
per-step time is taken from two run lengths (S and S/4) so fixed costs cancel, as in
``benchmarks/vmap.py``. Goal >= 0.7x.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from largebatch.vtrain import train_group

from .common import Result, Timer, interleaved_medians, mnist1d, scratch
from .engine import EVAL_SAMPLES, calibrate

NET = {"model": "mlp", "width": 32, "depth": 2, "norm": "none", "optimizer": "sgd", "lr": 0.01, "momentum": 0.9}
CONFIGS = [(8, 18), (64, 18), (512, 18)]  # (batch, runs in the stack): the sweeps' small, middle, large batches


def specs_for(B: int, K: int, steps: int) -> list[dict]:
    base = {**NET, "batch_size": B, "steps": steps, "eval_every": steps, "eval_train_samples": EVAL_SAMPLES,
            "eval_batch": 4096}
    return [{**base, "seed": k, "lr": NET["lr"] * 2 ** (k % 6 - 3)} for k in range(K)]


def floor_loop(data, B: int, K: int, steps: int, width: int = 32, depth: int = 2) -> None:
    """K MLPs (depth hidden layers of `width`, ReLU, no norm) trained by batched matmuls."""
    g = torch.Generator().manual_seed(0)
    x_all = data.x_train.reshape(data.n_train, -1)
    dims = [x_all.shape[1]] + [width] * depth + [data.num_classes]
    Ws, bs = [], []
    for i, o in zip(dims[:-1], dims[1:]):
        Ws.append((torch.randn(K, i, o, generator=g) / i ** 0.5).requires_grad_())
        bs.append(torch.zeros(K, 1, o, requires_grad=True))
    params = Ws + bs
    bufs = [torch.zeros_like(p) for p in params]
    lr = (NET["lr"] * 2.0 ** (torch.arange(K) % 6 - 3)).float()
    lrs = [lr.view(K, *([1] * (p.dim() - 1))) for p in params]
    n = data.n_train
    for step in range(steps):
        idx = torch.randint(0, n, (K, B), generator=g)
        h, y = x_all[idx], data.y_train[idx]
        for j, (W, b) in enumerate(zip(Ws, bs)):
            h = torch.baddbmm(b, h, W)
            if j < len(Ws) - 1:
                h = F.relu(h)
        loss = F.cross_entropy(h.reshape(K * B, -1), y.reshape(-1), reduction="sum") / B
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            torch._foreach_mul_(bufs, 0.9)
            torch._foreach_add_(bufs, grads)
            torch._foreach_sub_(params, torch._foreach_mul(bufs, lrs))


def run(quick: bool = False, device: str = "cpu", repeats: int = 3, seconds: float = 1.0) -> list[Result]:
    device = torch.device(device)
    data = mnist1d(4000, "cpu", test_samples=EVAL_SAMPLES)
    timer = Timer("cpu")
    tmp = scratch("floor-")
    quiet = lambda s: None  # noqa: E731
    rows = []
    for B, K in (CONFIGS[:1] if quick else CONFIGS):

        def stacked(steps, B=B, K=K):
            train_group(specs_for(B, K, steps), data, [f"{tmp}/v{k}" for k in range(K)], device="cpu",
                        checkpoint_every_s=None, log=quiet)

        def floor(steps, B=B, K=K):
            floor_loop(data, B, K, steps)

        hi = 8 if quick else max(8, calibrate(stacked, timer, seconds, start=4))
        lo = max(1, hi // 4)
        t = interleaved_medians({"vec_hi": lambda: stacked(hi), "floor_hi": lambda: floor(hi),
                                 "vec_lo": lambda: stacked(lo), "floor_lo": lambda: floor(lo)}, timer,
                                repeats=1 if quick else repeats, warmup=0 if quick else 1)
        d_vec, d_floor = t["vec_hi"] - t["vec_lo"], t["floor_hi"] - t["floor_lo"]
        if d_vec <= 0 or d_floor <= 0:  # too noisy to subtract: whole runs
            d_vec, d_floor = t["vec_hi"], t["floor_hi"]
        steps = hi - lo
        rows.append(Result(f"stack vs batched-matmul floor: mlp 2x32, batch {B}, {K} runs", K * steps / d_vec,
                           K * steps / d_floor, "run-steps/s", d_floor / d_vec, 0.7,
                           note="vtrain.train_group against a hand-written bmm + autograd + foreach-SGD loop of "
                                "the same runs (per-step, fixed costs subtracted)",
                           extra={"steps": [lo, hi], "times_s": t}))
    return rows
