"""Vectorised packs: K runs of one batch size (different lr and seed) trained as one stack
(``vtrain.train_group``) against the same K runs one after another (``train_run``).

Both sides train the same specs with the same evaluations (start and end, 256 train + 256
test samples) and write the same files.  Each side is timed at two run lengths, S/4 and S
steps; the ratio is the per-step speed-up, (t_seq(S) - t_seq(S/4)) / (t_vec(S) -
t_vec(S/4)), i.e. without the per-run fixed costs (model set-up, evaluations, files) that
long runs make negligible; the speed-up of whole S-step runs is kept in ``extra``.
The row passes when the documented rule (``vtrain.prefer_vectorised``) picks the faster
way within a 10% margin (the run-to-run spread of these timings on a shared machine): it
stacks where the stack is at most 10% slower and trains one run after another where the
stack is at most 10% faster.
"""

from __future__ import annotations


import torch

from largebatch.train import train_run
from largebatch.vtrain import prefer_vectorised, train_group

from .common import Result, Timer, interleaved_medians, mnist1d, scratch
from .engine import EVAL_SAMPLES, calibrate

# (label, network spec keys, batch, runs in the stack): the cpu-scale MLP (width 128, Adam) and
# conv, and the narrow MLP of the Masters & Luschi / Golmant sweeps (2 x 32, SGD + momentum)
MLP128 = {"model": "mlp", "width": 128, "depth": 3, "optimizer": "adam", "lr": 1e-3}
CONV16 = {"model": "shallow_conv", "width": 16, "depth": 3, "optimizer": "adam", "lr": 1e-3}
MLP32 = {"model": "mlp", "width": 32, "depth": 2, "optimizer": "sgd", "lr": 0.01, "momentum": 0.9}
# Masters & Luschi's 1-D nets (plain SGD, width 8): ResNet-8 and the AlexNet-style net
RES8 = {"model": "resnet", "width": 8, "depth": 8, "optimizer": "sgd", "lr": 0.01, "weight_decay": 5e-4}
ALEX8 = {"model": "shallow_conv", "width": 8, "optimizer": "sgd", "lr": 0.01, "weight_decay": 5e-4}
CONFIGS = [
    ("mlp128", MLP128, 32, 2), ("mlp128", MLP128, 32, 3), ("mlp128", MLP128, 32, 8), ("mlp128", MLP128, 64, 3),
    ("mlp128", MLP128, 64, 8), ("mlp128", MLP128, 128, 8), ("mlp128", MLP128, 256, 8), ("mlp128", MLP128, 1024, 4),
    ("conv16", CONV16, 32, 4), ("conv16", CONV16, 128, 4),
    ("mlp32", MLP32, 64, 3), ("mlp32", MLP32, 2, 18), ("mlp32", MLP32, 8, 18), ("mlp32", MLP32, 64, 18),
    ("mlp32", MLP32, 256, 18), ("mlp32", MLP32, 1024, 18),
    ("resnet8", RES8, 2, 13), ("resnet8", RES8, 32, 13), ("resnet8", RES8, 128, 13), ("resnet8", RES8, 512, 13),
    ("alexnet8", ALEX8, 32, 13), ("alexnet8", ALEX8, 128, 13), ("alexnet8", ALEX8, 512, 13),
]


def specs_for(net: dict, B: int, K: int, steps: int) -> list[dict]:
    base = {**net, "batch_size": B, "steps": steps, "eval_every": steps, "eval_train_samples": EVAL_SAMPLES,
            "eval_batch": 4096}
    return [{**base, "seed": k, "lr": net["lr"] * 2 ** (k % 6 - 3)} for k in range(K)]


def run(quick: bool = False, device: str = "cpu", repeats: int = 3, seconds: float = 1.0) -> list[Result]:
    device = torch.device(device)
    data = mnist1d(4000, device, test_samples=EVAL_SAMPLES)
    timer = Timer(device)
    tmp = scratch("vmap-")
    quiet = lambda s: None  # noqa: E731
    rows = []
    for label, net, B, K in (CONFIGS[:1] if quick else CONFIGS):

        def sequential(steps, net=net, B=B, K=K):
            for k, s in enumerate(specs_for(net, B, K, steps)):
                train_run(s, data, f"{tmp}/s{k}", device=device, checkpoint_every_s=None, log=quiet)

        def stacked(steps, net=net, B=B, K=K):
            train_group(specs_for(net, B, K, steps), data, [f"{tmp}/v{k}" for k in range(K)], device=device,
                        checkpoint_every_s=None, log=quiet)

        hi = 8 if quick else max(8, calibrate(sequential, timer, seconds, start=4))
        lo = max(1, hi // 4)
        t = interleaved_medians({"seq_hi": lambda: sequential(hi), "vec_hi": lambda: stacked(hi),
                                 "seq_lo": lambda: sequential(lo), "vec_lo": lambda: stacked(lo)}, timer,
                                repeats=1 if quick else repeats, warmup=0 if quick else 1)
        d_seq, d_vec = t["seq_hi"] - t["seq_lo"], t["vec_hi"] - t["vec_lo"]
        if d_seq <= 0 or d_vec <= 0:  # too noisy to subtract: fall back to whole runs
            d_seq, d_vec = t["seq_hi"], t["vec_hi"]
        speedup = d_seq / d_vec
        rule = prefer_vectorised(specs_for(net, B, K, hi)[0], K, data.input_shape)
        r = Result(f"vmap pack: {label} batch {B}, {K} runs", K * (hi - lo) / d_vec, K * (hi - lo) / d_seq,
                   "run-steps/s", speedup, 1.0,
                   note=f"rule {'stacks' if rule else 'trains one by one'}; pass = the rule picks the faster way "
                        f"(10% margin)",
                   extra={"steps": [lo, hi], "times_s": t, "whole_run_speedup": t["seq_hi"] / t["vec_hi"],
                          "rule_stacks": rule})
        r.goal_override = "rule picks faster (10%)"
        r.pass_override = speedup >= 0.9 if rule else speedup <= 1.1
        rows.append(r)
    return rows
