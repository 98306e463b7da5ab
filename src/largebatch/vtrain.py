"""Vectorised training: several runs of one batch size in one process, as one stack.

Runs that differ only in learning rate, its schedule, seeds, stopping rules or initial
weights (see ``FREE_KEYS``) share every tensor shape, so their parameters *and* buffers
are stacked along a new leading dimension (``torch.func.stack_module_state``) and one
``torch.func.vmap`` of ``functional_call`` computes all K forward passes; one backward
pass gives each run the gradient of its own loss (the runs' losses are summed, so their
gradients do not mix).  BatchNorm in train mode works under vmap because its running
statistics are stacked too; each run's statistics are updated from its own batch.

What each run sees is what ``train.train_run`` would give it:

* its own initial weights (``torch.manual_seed(seed)`` before ``build_model``) or
  ``init_state``;
* its own data order and augmentation (a generator seeded with ``data_seed`` or
  ``seed``): the K mini-batches are gathered with one index tensor of shape (K, B), so
  runs with different data seeds stack fine;
* its own learning rate at every step (``spec.lr_at``), the optimiser of
  ``train._make_optimizer`` (Adam or SGD with momentum/Nesterov/weight decay) written
  out on one flat (K x P) buffer, and per-run gradient clipping;
* the same evaluation steps, ``evaluate`` / ``weight_distance`` on a real module holding
  the run's weights, the same ``history.csv`` (written as it grows) / ``metrics.json`` /
  ``spec.json`` / ``model.pt`` and the same checkpoint format;
* the same progress line in the log after each evaluation (its samples/s are the run's own
  samples per second of the stack's wall time; its ETA is the stack's).

Results match sequential ``train_run`` to float32 rounding at the first steps (vmap uses
batched matrix products, which round differently); over a run the differences grow as
in any chaotic training, and ``tests/test_vtrain.py`` states the tolerance.

A run that stops (divergence, ``patience``, ``stop_train_acc``) writes its outputs at
once and leaves the stack; the others go on (and once too few are left for a stack to
pay, ``min_stack``, they are checkpointed and finish with ``train_run``).  ``wall_s`` of a
vectorised run is the group's wall time divided among the runs active at each moment
(its amortised cost).

Checkpoints are ``train_run``'s: every ``checkpoint_every_s`` each run of the stack gets
its own ``checkpoint.pt``; ``train_many`` hands a run that has a checkpoint to
``train_run``, which resumes it (sequentially) or, for a finished run whose final
checkpoint was kept, just rewrites its outputs.

Not vectorised (``vectorisable`` says why): dropout (per-run random masks cannot be
drawn as ``train_run`` draws them) and ``micro_batch``.  Ghost batch norm stacks like
BatchNorm (its running statistics are buffers too).
"""

from __future__ import annotations

import copy
import math
import os
import time
import warnings
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from .data import Dataset
from .models import build_model
from .spec import canonical_json, lr_at, normalize, run_id
from .stacked import stacked_losses
from .train import RunSetup, train_run, update_stop_reason

#: Spec keys that may differ between the runs of one stack.
FREE_KEYS = frozenset({
    "lr", "lr_scaling", "base_batch", "warmup_epochs", "schedule", "milestones", "gamma",
    "patience", "min_delta", "stop_train_acc", "seed", "data_seed", "init_from",
})

#: The rule ``train_many`` follows (measured with ``python -m benchmarks``; see README,
#: "Performance"): stack a group of >= MIN_GROUP runs whose network is in MAX_BATCH, whose
#: step sees at most MAX_BATCH[model] samples and, for an MLP, costs at most MAX_STEP_FLOPS
#: (about 6 x samples x parameters); train everything else one run after another.  A stack
#: saves Python and dispatch overhead per step, not arithmetic or memory traffic, so it wins
#: where steps are small and runs many.  Measured on one CPU thread of a shared 2-core
#: machine (per-step speed-ups vary by +-30% with the load from other processes; a loaded
#: machine, as in a run with parallel jobs, favours the stack less):
#: * 8 runs of the width-128 MLP (39k parameters): 1.5-2.0x at batch 32 (8 MFLOP/step),
#:   1.3-1.7x at 64, 1.0-1.45x at 128 (31 MFLOP), 0.75-1.04x at 256, 0.55x at 1024;
#: * 18 runs of the 2 x 32 MLP (2.6k parameters): 4.7-6x at batches 2-8, 2.3x at 64-256,
#:   0.8-1.1x at 1024;
#: * 2 runs lose (0.6-0.9x); 3 runs gain 1.15x on the width-128 MLP, 0.9x on the 2 x 32 one;
#:   4 runs gain 1.2-1.4x;
#: * 4 runs of the width-16 conv net: 1.06-1.5x at batch 32, 0.9x at 128.
MAX_BATCH = {"mlp": 256, "shallow_conv": 32}
MAX_STEP_FLOPS = 32e6
MIN_GROUP = 3


def step_flops(spec: dict, input_shape: Sequence[int], num_classes: int = 10) -> float:
    """Approximate FLOPs of one training step of a run: 6 x samples per step x parameters."""
    s = normalize(spec)
    with torch.device("meta"):
        n_params = sum(p.numel() for p in build_model(s, tuple(input_shape), num_classes).parameters())
    return 6.0 * s["batch_size"] * s["multiplicity"] * n_params


def group_key(spec: dict) -> str:
    """Runs with equal keys have equal shapes, budgets and evaluation steps: they can stack."""
    s = normalize(spec)
    return canonical_json({k: v for k, v in s.items() if k not in FREE_KEYS})


def vectorisable(spec: dict) -> str | None:
    """None if a run can join a stack, else the reason it cannot."""
    s = normalize(spec)
    if s["dropout"] > 0:
        return "dropout > 0 (per-run dropout masks cannot be drawn as train_run draws them)"
    if s["micro_batch"] is not None:
        return "micro_batch (gradient accumulation) is not vectorised"
    return None


def prefer_vectorised(spec: dict, n_runs: int, input_shape: Sequence[int] = (1, 40)) -> bool:
    """The documented rule: stack only where it measured faster than one run after another."""
    s = normalize(spec)
    if n_runs < MIN_GROUP or s["model"] not in MAX_BATCH or vectorisable(s) is not None:
        return False
    if s["batch_size"] * s["multiplicity"] > MAX_BATCH[s["model"]]:
        return False
    return s["model"] != "mlp" or step_flops(s, input_shape) <= MAX_STEP_FLOPS


Rule = Callable[[dict, int, Sequence[int]], bool]


def plan_groups(specs: Sequence[dict], shape_of: Callable[[str], Sequence[int]] = lambda name: (1, 40),
                rule: Rule = prefer_vectorised) -> list[list[int]]:
    """Split a pack into stacks (lists of >= 2 indices) and single runs (lists of one), in order.

    ``shape_of(dataset)`` gives the input shape of a dataset's samples (for the rule's cost)."""
    buckets: dict[str, list[int]] = {}
    for i, spec in enumerate(specs):
        key = group_key(spec) if vectorisable(spec) is None else f"single-{i}"
        buckets.setdefault(key, []).append(i)
    groups = []
    for ids in buckets.values():
        first = normalize(specs[ids[0]])
        if len(ids) > 1 and rule(first, len(ids), shape_of(first["dataset"])):
            groups.append(ids)
        else:
            groups.extend([i] for i in ids)
    return sorted(groups, key=lambda g: g[0])


class _Stack:
    """K copies of one network.  Parameters live in one (K, P) buffer, one row per run, so
    each parameter is a (K, ...) leaf viewing a column block and per-run scalars (learning
    rates) broadcast over rows; gradients accumulate into a second (K, P) buffer; buffers
    (BatchNorm running statistics) are stacked by ``stack_module_state``."""

    def __init__(self, models: list[nn.Module], opt_states: list[dict] | None, optimizer: str, device):
        params, buffers = stack_module_state(models)
        k = len(models)
        self.k = k
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
        self.optimizer = optimizer
        self.state: dict[str, torch.Tensor | None] = {}
        keys = ("exp_avg", "exp_avg_sq") if optimizer == "adam" else ("momentum_buffer",)
        for key in keys:
            if opt_states is None or any(s.get(key) is None for s in opt_states):
                self.state[key] = torch.zeros(k, off, device=device) if optimizer == "adam" else None
            else:
                buf = torch.empty(k, off, device=device)
                for n in self.names:
                    self._view(buf, n).copy_(torch.stack([s[key][n] for s in opt_states]))
                self.state[key] = buf
        base = copy.deepcopy(models[0]).to("meta")
        base.train()

        def loss_one(p, b, x, y):
            return F.cross_entropy(functional_call(base, (p, b), (x,)), y)

        # tiny MLPs: one batched matmul per layer (largebatch.stacked); anything else: vmap
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


def _sync_module(stack: _Stack, k: int, model: nn.Module) -> dict:
    sd, opt = stack.run_state(k)
    model.load_state_dict(sd)
    return opt


def _fill_optimizer(opt: torch.optim.Optimizer, model: nn.Module, tensors: dict, step: int) -> None:
    """Put run k's optimiser state into a real torch optimiser (for a train_run checkpoint)."""
    names = {id(p): n for n, p in model.named_parameters()}
    for group in opt.param_groups:
        for p in group["params"]:
            n = names[id(p)]
            if "exp_avg" in tensors:
                opt.state[p] = {"step": torch.tensor(float(step)), "exp_avg": tensors["exp_avg"][n].clone(),
                                "exp_avg_sq": tensors["exp_avg_sq"][n].clone()}
            elif tensors.get("momentum_buffer") is not None:
                opt.state[p] = {"momentum_buffer": tensors["momentum_buffer"][n].clone()}


class _Run(RunSetup):
    """``train_run``'s setup of one run (``RunSetup``), plus the global random state it leaves
    (what ``train_run`` would checkpoint; a stack draws nothing from it: no dropout)."""

    def __init__(self, spec: dict, data: Dataset, out_dir, device, init_state):
        super().__init__(spec, data, out_dir, device, init_state)
        self.torch_rng = torch.get_rng_state()


def train_group(
    specs: Sequence[dict],
    data: Dataset,
    out_dirs: Sequence[str | os.PathLike],
    *,
    device: str | torch.device = "cpu",
    init_states: Sequence[dict | None] | None = None,
    checkpoint_every_s: float | None = 60.0,
    log: Callable[[str], None] = print,
    on_step: Callable[[int], None] | None = None,
    keep_checkpoint: bool = False,
    min_stack: int = 2,
) -> list[dict]:
    """Train runs of one stack (equal ``group_key``) together; returns their metrics in order.

    Each run gets exactly the files ``train_run`` writes, as soon as it finishes.  When runs
    stop early and fewer than ``min_stack`` are left, a stack no longer pays: the rest are
    checkpointed and handed to ``train_run``, which resumes each of them."""
    device = torch.device(device)
    if not specs:
        return []
    keys = {group_key(s) for s in specs}
    if len(keys) > 1:
        raise ValueError("train_group: runs differ in keys outside FREE_KEYS; group them with plan_groups")
    for s in specs:
        why = vectorisable(s)
        if why:
            raise ValueError(f"train_group: run {run_id(s)} cannot be stacked: {why}")
    init_states = list(init_states) if init_states is not None else [None] * len(specs)
    runs = [_Run(s, data, o, device, i) for s, o, i in zip(specs, out_dirs, init_states)]
    for r in runs:  # each run logs its progress line after each evaluation; rate and ETA are the stack's
        r.log = log
        r.start_clock(0)
    if len({r.rid for r in runs}) < len(runs):
        raise ValueError("train_group: the same run appears twice")
    r0 = runs[0]
    total, evals, B, spe = r0.total, r0.evals, r0.B, r0.steps_per_epoch
    n = data.n_train
    x_all, y_all = data.x_train, data.y_train
    clip = r0.spec["max_grad_norm"]
    opt_name = r0.spec["optimizer"]
    wd, mom, nesterov = r0.spec["weight_decay"], r0.spec["momentum"], r0.spec["nesterov"]
    beta1, beta2 = r0.opt.defaults.get("betas", (0.9, 0.999))
    eps = r0.opt.defaults.get("eps", 1e-8)

    active = list(range(len(runs)))  # positions in `runs` of the stack's members, in stack order
    stack = _Stack([r.model for r in runs], None, opt_name, device)
    loss_acc = torch.zeros(len(runs), device=device)
    results: list[dict | None] = [None] * len(runs)
    clock = {"amortised": 0.0, "last": time.perf_counter()}

    def tick():  # advance the amortised clock: wall time since the last tick, shared by active runs
        now = time.perf_counter()
        if active:
            clock["amortised"] += (now - clock["last"]) / len(active)
        clock["last"] = now
        return clock["amortised"]

    def record(pos: int, step: int, lr: float) -> dict:
        run = runs[active[pos]]
        _sync_module(stack, pos, run.model)
        return run.record(data, step, lr, tick())

    def checkpoint(pos: int, step: int) -> None:
        run = runs[active[pos]]
        opt_tensors = _sync_module(stack, pos, run.model)
        _fill_optimizer(run.opt, run.model, opt_tensors, step)
        st = {**run.state, "step": step, "elapsed": tick(), "pos": batch_pos,
              "perm": perms[pos] if perms is not None else None}
        run.checkpoint(st, run.torch_rng, loss_acc[pos], device)

    def finish(pos: int, step: int) -> None:
        """Write run `pos`'s outputs exactly as train_run does."""
        i = active[pos]
        run = runs[i]
        _sync_module(stack, pos, run.model)
        wall = tick()
        # stacks run without autocast or channels_last (train_many trains such runs one by one)
        metrics = run.write_outputs(step, wall, device, {"autocast": "none", "channels_last": False})
        ckpt = run.out / "checkpoint.pt"
        if keep_checkpoint:
            checkpoint(pos, step)
        elif ckpt.exists():
            ckpt.unlink()
        results[i] = metrics
        log(f"{run.rid}: {metrics['status']} after {step} steps ({metrics['stop_reason']}), "
            f"test acc {metrics['test_acc']:.4f}, {wall:.1f}s (stack of {len(active)})")

    perms: torch.Tensor | None = None
    batch_pos = 0
    for pos in range(len(active)):
        record(pos, 0, lr_at(runs[active[pos]].spec, 0, spe, total))
    log(f"stack of {len(runs)} runs ({r0.spec['model']}, batch {B}, {total} steps): "
        + ", ".join(r.rid for r in runs))
    last_ckpt = time.perf_counter()
    step = 0
    while step < total and active:
        if perms is None or batch_pos + B > n:
            perms = torch.stack([torch.randperm(n, generator=runs[i].g, device=x_all.device) for i in active])
            batch_pos = 0
        idx = perms[:, batch_pos: batch_pos + B]
        batch_pos += B
        if r0.augment is None:
            xb, yb = x_all[idx], y_all[idx]
        else:
            pairs = [runs[i].augment(x_all[idx[p]], y_all[idx[p]]) for p, i in enumerate(active)]
            xb, yb = torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])
        lrs = [lr_at(runs[i].spec, step, spe, total) for i in active]
        stack.grad.zero_()
        losses = stack.losses(stack.params, stack.buffers, xb, yb)
        with warnings.catch_warnings():
            # each parameter is a column block of the (K, P) buffer and so is its gradient;
            # autograd accumulates into that row-strided layout in place and only warns
            warnings.filterwarnings("ignore", message="grad and param do not obey the gradient layout")
            losses.sum().backward()
        with torch.no_grad():
            _update(stack, step + 1, lrs, opt_name, wd, mom, nesterov, beta1, beta2, eps, clip)
        step += 1
        loss_acc += losses.detach()
        for i in active:
            runs[i].state["loss_count"] += 1
        is_eval = step in evals
        stopped: list[int] = []
        if is_eval or step % 25 == 0:
            values = loss_acc.tolist()
            loss_acc.zero_()
            for pos, i in enumerate(active):
                runs[i].state["loss_sum"] += values[pos]
                if not math.isfinite(values[pos]):
                    runs[i].state["stop_reason"] = "diverged"
                    record(pos, step, lrs[pos])
                    stopped.append(pos)
        if is_eval:
            for pos, i in enumerate(active):
                if pos in stopped:
                    continue
                st = runs[i].state
                update_stop_reason(st, runs[i].spec, record(pos, step, lrs[pos]))
                if st["stop_reason"] is not None:
                    stopped.append(pos)
        if step == total:
            stopped = list(range(len(active)))
        if stopped:
            for pos in sorted(set(stopped)):
                finish(pos, step)
            keep = [p for p in range(len(active)) if p not in set(stopped)]
            if keep:
                # rebuild the stack from the runs that go on (their modules hold current weights)
                opt_states = []
                for p in keep:
                    opt_tensors = _sync_module(stack, p, runs[active[p]].model)
                    opt_states.append({k: v for k, v in opt_tensors.items()})
                stack = _Stack([runs[active[p]].model for p in keep], opt_states, opt_name, device)
                perms = perms[keep]
                loss_acc = loss_acc[keep].clone()
            tick()
            active = [active[p] for p in keep]
            if 0 < len(active) < min_stack:
                for pos in range(len(active)):
                    checkpoint(pos, step)
                log(f"stack down to {len(active)} run(s) at step {step}: continuing with train_run")
                for i in active:
                    results[i] = train_run(dict(runs[i].spec), data, runs[i].out, device=device,
                                           init_state=init_states[i], checkpoint_every_s=checkpoint_every_s,
                                           log=log, on_step=on_step, keep_checkpoint=keep_checkpoint)
                break
        if on_step is not None:
            on_step(step)
        if active and checkpoint_every_s is not None and time.perf_counter() - last_ckpt >= checkpoint_every_s:
            for pos in range(len(active)):
                checkpoint(pos, step)
            last_ckpt = time.perf_counter()
    return results  # type: ignore[return-value]


def _update(stack: _Stack, step: int, lrs: list[float], opt_name: str, wd: float, mom: float, nesterov: bool,
            beta1: float, beta2: float, eps: float, clip: float | None) -> None:
    """One optimiser step for every run of the stack, element-wise on the flat buffers, in
    the operation order of torch.optim's single-tensor Adam / SGD."""
    p, g = stack.flat, stack.grad
    if clip:
        norm = torch.linalg.vector_norm(g, dim=1, keepdim=True)  # per run, over all its parameters
        g.mul_((clip / (norm + 1e-6)).clamp(max=1.0))
    if wd != 0:
        g = g.add(p, alpha=wd)
    if opt_name == "adam":
        m, v = stack.state["exp_avg"], stack.state["exp_avg_sq"]
        m.lerp_(g, 1 - beta1)
        v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
        bc1 = 1 - beta1 ** step
        bc2_sqrt = (1 - beta2 ** step) ** 0.5
        denom = (v.sqrt() / bc2_sqrt).add_(eps)
        upd = stack.spread([-lr / bc1 for lr in lrs]) * m
        p.add_(upd.div_(denom))
        return
    if mom != 0:
        buf = stack.state["momentum_buffer"]
        if buf is None:
            buf = stack.state["momentum_buffer"] = g.clone()
        else:
            buf.mul_(mom).add_(g)
        g = g.add(buf, alpha=mom) if nesterov else buf
    p.addcmul_(g, stack.spread([-lr for lr in lrs]))  # = add_(g, alpha=-lr), same rounding


def train_many(
    specs: Sequence[dict],
    datasets: Callable[[str], Dataset] | dict,
    out_dirs: Sequence[str | os.PathLike],
    *,
    device: str | torch.device = "cpu",
    init_states: Sequence[dict | None] | None = None,
    checkpoint_every_s: float | None = 60.0,
    log: Callable[[str], None] = print,
    keep_checkpoint: bool = True,
    rule: Rule = prefer_vectorised,
    autocast: str = "none",
    channels_last: bool = False,
) -> list[dict]:
    """Train a pack: stacks where ``rule`` says so (``plan_groups``), the rest with train_run.

    A run with a checkpoint on disk (an interrupted or finished earlier attempt) goes to
    ``train_run``, which resumes it or rebuilds its outputs from its final checkpoint.
    The execution options ``autocast`` and ``channels_last`` (see ``train_run``) are not
    stacked: with either set, every run trains with ``train_run``."""
    get = datasets.__getitem__ if isinstance(datasets, dict) else datasets
    init_states = list(init_states) if init_states is not None else [None] * len(specs)
    results: list[dict | None] = [None] * len(specs)
    stackable = autocast == "none" and not channels_last
    fresh = [i for i in range(len(specs))
             if stackable and not (Path(out_dirs[i]) / "checkpoint.pt").exists()]
    groups = [[fresh[j] for j in grp]
              for grp in plan_groups([specs[i] for i in fresh], lambda name: get(name).input_shape, rule)]
    groups += [[i] for i in range(len(specs)) if i not in set(fresh)]
    n_stacked = sum(len(g) for g in groups if len(g) > 1)
    log(f"pack of {len(specs)} runs: {n_stacked} in {sum(len(g) > 1 for g in groups)} vectorised stack(s), "
        f"{len(specs) - n_stacked} one after another ({len(specs) - len(fresh)} resumed from checkpoints)")
    for grp in groups:
        name = normalize(specs[grp[0]])["dataset"]
        if len(grp) > 1:  # one stack (equal group_key, so one dataset)
            out = train_group([specs[i] for i in grp], get(name), [out_dirs[i] for i in grp], device=device,
                              init_states=[init_states[i] for i in grp], checkpoint_every_s=checkpoint_every_s,
                              log=log, keep_checkpoint=keep_checkpoint, min_stack=MIN_GROUP)
            for i, m in zip(grp, out):
                results[i] = m
        else:
            (i,) = grp
            results[i] = train_run(dict(specs[i]), get(name), out_dirs[i], device=device,
                                   init_state=init_states[i], checkpoint_every_s=checkpoint_every_s, log=log,
                                   keep_checkpoint=keep_checkpoint, autocast=autocast,
                                   channels_last=channels_last)
    return results  # type: ignore[return-value]
