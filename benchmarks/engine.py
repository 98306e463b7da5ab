"""Engine overhead: ``train_run`` against a bare PyTorch loop doing the same work.

Both sides: the same network (same seed), batch, optimiser (``torch.optim`` Adam, as
``train._make_optimizer`` builds it for the spec), the same data on the same device,
mini-batches drawn from a random permutation per epoch, and the same evaluations
(``train.evaluate`` on 256 training and 256 test samples at step 0 and at the end, which
``train_run`` always does with ``eval_every = steps``).  The bare loop has no learning-rate
schedule, loss bookkeeping, divergence checks, history or output files; what that costs
``train_run`` is the overhead measured here, as a throughput ratio (bare time / our time).
"""

from __future__ import annotations


import torch
import torch.nn.functional as F

from largebatch.models import build_model
from largebatch.spec import normalize
from largebatch.train import _make_optimizer, evaluate, train_run

from .common import Result, Timer, interleaved_medians, mnist1d, scratch

CONFIGS = [("mlp", 32), ("mlp", 1024), ("shallow_conv", 32), ("shallow_conv", 1024)]
WIDTH = {"mlp": 128, "shallow_conv": 16}  # the cpu-scale networks
EVAL_SAMPLES = 256


def bare_loop(spec: dict, data, device) -> float:
    spec = normalize(spec)
    torch.manual_seed(spec["seed"])
    model = build_model(spec, data.input_shape, data.num_classes).to(device)
    opt = _make_optimizer(spec, model)
    g = torch.Generator(device=data.x_train.device)
    g.manual_seed(spec["seed"])
    n, B, steps = data.n_train, spec["batch_size"], spec["steps"]
    x_ev, y_ev = data.x_train[:EVAL_SAMPLES], data.y_train[:EVAL_SAMPLES]
    evaluate(model, x_ev, y_ev, spec["eval_batch"])
    evaluate(model, data.x_test, data.y_test, spec["eval_batch"])
    model.train()
    perm, pos = None, n
    for _ in range(steps):
        if pos + B > n:
            perm = torch.randperm(n, generator=g, device=data.x_train.device)
            pos = 0
        idx = perm[pos: pos + B]
        pos += B
        xb, yb = data.x_train[idx], data.y_train[idx]
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(xb), yb).backward()
        opt.step()
    evaluate(model, x_ev, y_ev, spec["eval_batch"])
    return evaluate(model, data.x_test, data.y_test, spec["eval_batch"])[0]


def calibrate(fn, timer: Timer, seconds: float, start: int = 8, cap: int = 5000) -> int:
    """Steps for which fn(steps) takes about `seconds` (grown until it takes >= seconds / 4)."""
    k = start
    fn(k)  # warm-up
    while True:
        t = timer(lambda: fn(k))
        if t >= seconds / 4 or k >= cap:
            return int(min(cap, max(start, k * seconds / max(t, 1e-9))))
        k *= 4


def run(quick: bool = False, device: str = "cpu", repeats: int = 5, seconds: float = 1.0) -> list[Result]:
    device = torch.device(device)
    data = mnist1d(4000, device, test_samples=EVAL_SAMPLES)
    timer = Timer(device)
    out = scratch("engine-")
    rows = []
    for model, B in CONFIGS:
        spec = {"model": model, "width": WIDTH[model], "depth": 3, "batch_size": B, "optimizer": "adam",
                "lr": 1e-3, "steps": 3, "eval_every": None, "eval_train_samples": EVAL_SAMPLES, "eval_batch": 4096}
        if quick:
            steps = 3
        else:  # about `seconds` of bare training per measurement
            steps = calibrate(lambda k: bare_loop({**spec, "steps": k}, data, device), timer, seconds)
        spec = {**spec, "steps": steps, "eval_every": steps}
        fns = {
            "bare": lambda: bare_loop(spec, data, device),
            "ours": lambda: train_run(spec, data, out, device=device, checkpoint_every_s=None, log=lambda s: None),
        }
        t = interleaved_medians(fns, timer, repeats=1 if quick else repeats, warmup=0 if quick else 1)
        thr_ours, thr_bare = steps * B / t["ours"], steps * B / t["bare"]
        rows.append(Result(
            f"engine overhead: {model} batch {B}", thr_ours, thr_bare, "samples/s", thr_ours / thr_bare, 0.95,
            note=f"train_run vs bare loop, {steps} steps, same evaluations at start and end",
            extra={"steps": steps, "t_ours_s": t["ours"], "t_bare_s": t["bare"]}))
    return rows
