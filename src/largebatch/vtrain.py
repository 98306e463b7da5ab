"""Vectorised training: several runs of one batch size in one process, as one stack.

Runs that differ only in learning rate, its schedule, seeds, stopping rules or initial
weights (see ``FREE_KEYS``) share every tensor shape, so their parameters *and* buffers
are stacked along a new leading dimension (``torch.func.stack_module_state``) and one
forward computes all K (``stacked.Stack``: batched matmuls for MLPs, one grouped network for
conv nets, ``torch.func.vmap`` of ``functional_call`` otherwise); one backward
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
  ``runsetup.make_optimizer`` (Adam or SGD with momentum/Nesterov/weight decay) written
  out on one flat (K x P) buffer, and per-run gradient clipping;
* the same step loop: each run is a ``runsetup.RunSetup`` whose methods (``advance``,
  ``flush_losses``, ``evaluate_and_stop``, ``checkpoint``, ``finish``) both trainers call;
  the stack (``stacked.Stack``) holds the weights and steps the K optimisers;
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

import os
import time
import warnings
from pathlib import Path
from typing import Callable, Sequence

import torch

from .data import Dataset
from .models import build_model
from .runsetup import CheckpointTimer, RunSetup, checkpoint_state, total_steps
# which runs may stack is the spec's business (spec.FREE_KEYS); importable from here as before
from .spec import (FREE_KEYS, STACK_MAX_BATCH, STACK_MAX_STEP_FLOPS, STACK_MIN_GROUP, group_key,  # noqa: F401
                   normalize, run_id, stack_rule, vectorisable)
from .stacked import Hyper, Stack, fill_optimizer, optimizer_tensors
from .train import train_run

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
#: * 4 runs of the width-16 conv net: 1.06-1.5x at batch 32, 0.9x at 128;
#: * 52 runs of the ResNet-8-style 1-D net (width 8, BatchNorm) at batch 2: 2.9 ms per run-step
#:   stacked against ~8 ms one run at a time (2.7x; Masters & Luschi's grid, issue 17), with
#:   the vmap forward; the grouped forward (``stacked.grouped_losses``) is 1.35-1.55x faster
#:   again (``make bench``, rows "grouped conv stack vs vmap");
#: * with the grouped forward, 13 runs of a width-8 1-D net (Masters & Luschi's): ResNet-8 13.7x
#:   at batch 2, 2.25x at 32, 1.32x at 128, 1.04x at 512; AlexNet-style 3.65x at 32, 1.46x at 128,
#:   0.72x at 512; 4 runs of the width-16 conv net 1.70x at 32, 1.39x at 128 (conv nets: batch <= 128).
MAX_BATCH, MAX_STEP_FLOPS, MIN_GROUP = STACK_MAX_BATCH, STACK_MAX_STEP_FLOPS, STACK_MIN_GROUP  # spec.py holds them


def step_flops(spec: dict, input_shape: Sequence[int], num_classes: int = 10) -> float:
    """Approximate FLOPs of one training step of a run: 6 x samples per step x parameters."""
    s = normalize(spec)
    with torch.device("meta"):
        n_params = sum(p.numel() for p in build_model(s, tuple(input_shape), num_classes).parameters())
    return 6.0 * s["batch_size"] * s["multiplicity"] * n_params


def prefer_vectorised(spec: dict, n_runs: int, input_shape: Sequence[int] = (1, 40)) -> bool:
    """The documented rule: stack only where it measured faster than one run after another."""
    s = normalize(spec)
    return stack_rule(s, n_runs, lambda: step_flops(s, input_shape))


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


class _Run(RunSetup):
    """``train_run``'s setup of one run (``RunSetup``) whose weights a ``Stack`` trains, row
    ``row`` of it; its wall time is the stack's amortised clock, and its checkpoints carry the
    global random state ``train_run`` would have left (a stack draws nothing from it: no dropout)."""

    def __init__(self, spec: dict, data: Dataset, out_dir, device, init_state, clock: Callable[[], float]):
        super().__init__(spec, data, out_dir, device, init_state)
        self.torch_rng = torch.get_rng_state()
        self._stack_clock = clock
        self._before = 0.0  # wall seconds of earlier attempts (a resumed checkpoint's)
        self.stack: Stack | None = None
        self.row = 0

    def resume_stacked(self) -> torch.Tensor:
        """Load this run's mid-training checkpoint (``RunSetup.resume``); returns its pending losses."""
        pending = self.resume()
        if pending is None:
            raise ValueError(f"train_group(resume=True): run {self.rid} has no usable checkpoint")
        self.torch_rng = torch.get_rng_state()
        self._before = self.state["elapsed"]
        return pending.reshape(())

    def sync(self, optimizer: bool = False) -> None:
        opt_tensors = self.stack.load_into(self.row, self.model)
        if optimizer:
            fill_optimizer(self.opt, self.model, opt_tensors, self.step)

    def wall(self) -> float:
        return self._before + self._stack_clock()

    def rng_state(self) -> torch.Tensor:
        return self.torch_rng


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
    resume: bool = False,
) -> list[dict]:
    """Train runs of one stack (equal ``group_key``) together; returns their metrics in order.

    Each run gets exactly the files ``train_run`` writes, as soon as it finishes.  When runs
    stop early and fewer than ``min_stack`` are left, a stack no longer pays: the rest are
    checkpointed and handed to ``train_run``, which resumes each of them.  With ``resume``
    every run goes on from its mid-training checkpoint, all at the same step (as one stack
    writes them): an interrupted stack resumes as a stack, with the numbers it would have
    given uninterrupted."""
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
    clock = {"amortised": 0.0, "last": time.perf_counter()}
    live: list[_Run] = []  # the stack's members, in stack order

    def tick() -> float:  # advance the amortised clock: wall time since the last tick, shared by live runs
        now = time.perf_counter()
        if live:
            clock["amortised"] += (now - clock["last"]) / len(live)
        clock["last"] = now
        return clock["amortised"]

    runs = [_Run(s, data, o, device, i, tick) for s, o, i in zip(specs, out_dirs, init_states)]
    if len({r.rid for r in runs}) < len(runs):
        raise ValueError("train_group: the same run appears twice")
    r0 = runs[0]
    total, evals, B = r0.total, r0.evals, r0.B
    x_all, y_all = data.x_train, data.y_train
    hyper = Hyper.of(r0.spec, r0.opt)

    def restack(members: list[_Run], opt_states: list[dict] | None) -> Stack:
        stack = Stack([r.model for r in members], opt_states, hyper, device)
        for row, r in enumerate(members):
            r.stack, r.row = stack, row
        return stack

    for r in runs:  # each run logs its progress line after each evaluation; rate and ETA are the stack's
        r.log = log
    loss_acc = torch.zeros(len(runs), device=device)
    opt_states = None
    step = 0
    if resume:
        loss_acc = torch.stack([r.resume_stacked() for r in runs]).to(device)
        steps = {r.step for r in runs}
        if len(steps) > 1 or any(r.stopped or r.state["perm"] is None for r in runs):
            raise ValueError("train_group(resume=True): the checkpoints are not of one stack mid-training "
                             f"(steps {sorted(steps)}); resume them one by one with train_run")
        step = steps.pop()
        opt_states = [optimizer_tensors(r.opt, r.model) for r in runs]
    live[:] = runs
    stack = restack(live, opt_states)
    results: list[dict | None] = [None] * len(runs)
    for r in runs:
        r.begin()
    log(f"stack of {len(runs)} runs ({r0.spec['model']}, batch {B}, {total} steps"
        + (f", resumed at step {step}" if resume else "") + "): " + ", ".join(r.rid for r in runs))
    timer = CheckpointTimer(checkpoint_every_s)
    perms: torch.Tensor | None = torch.stack([r.state["perm"] for r in runs]) if resume else None
    while step < total and live:
        if live[0].epoch_ends():  # the runs share n and B: their epochs end together
            perms = torch.stack([r.new_epoch() for r in live])
        pos = live[0].position
        idx = perms[:, pos: pos + B]
        if r0.augment is None:
            xb, yb = x_all[idx], y_all[idx]
        else:
            pairs = [r.augment(x_all[idx[k]], y_all[idx[k]]) for k, r in enumerate(live)]
            xb, yb = torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])
        lrs = [r.lr(step) for r in live]
        stack.grad.zero_()
        losses = stack.losses(stack.params, stack.buffers, xb, yb)
        with warnings.catch_warnings():
            # each parameter is a column block of the (K, P) buffer and so is its gradient;
            # autograd accumulates into that row-strided layout in place and only warns
            warnings.filterwarnings("ignore", message="grad and param do not obey the gradient layout")
            losses.sum().backward()
        with torch.no_grad():
            stack.step(step + 1, lrs)
        for r in live:
            step = r.advance()
        loss_acc += losses.detach()
        stopped: list[int] = []
        if r0.flush_due(step):
            values = loss_acc.tolist()
            loss_acc.zero_()
            stopped = [k for k, r in enumerate(live) if r.flush_losses(values[k], lrs[k])]
        if step in evals:
            stopped += [k for k, r in enumerate(live) if k not in stopped and r.evaluate_and_stop(lrs[k])]
        if step == total:
            stopped = list(range(len(live)))
        if stopped:
            for k in sorted(set(stopped)):
                # stacks run without autocast or channels_last (train_many trains such runs one by one)
                results[runs.index(live[k])] = live[k].finish(
                    {"autocast": "none", "channels_last": False}, keep_checkpoint, loss_acc[k],
                    note=f" (stack of {len(live)})")
            keep = [k for k in range(len(live)) if k not in set(stopped)]
            if keep:
                # rebuild the stack from the runs that go on (their modules hold current weights)
                opt_states = [live[k].stack.load_into(live[k].row, live[k].model) for k in keep]
                stack = restack([live[k] for k in keep], opt_states)
                perms = perms[keep]
                loss_acc = loss_acc[keep].clone()
            tick()
            live[:] = [live[k] for k in keep]
            if 0 < len(live) < min_stack:
                for k, r in enumerate(live):
                    r.checkpoint(loss_acc[k])
                log(f"stack down to {len(live)} run(s) at step {step}: continuing with train_run")
                for r in live:
                    i = runs.index(r)
                    results[i] = train_run(dict(r.spec), data, r.out, device=device, init_state=init_states[i],
                                           checkpoint_every_s=checkpoint_every_s, log=log, on_step=on_step,
                                           keep_checkpoint=keep_checkpoint)
                break
        if on_step is not None:
            on_step(step)
        if live and timer.due():
            for k, r in enumerate(live):
                r.checkpoint(loss_acc[k])
            timer.done()
    return results  # type: ignore[return-value]


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
    shape_of = lambda name: get(name).input_shape  # noqa: E731
    # runs with a checkpoint: mid-training ones of one stack (equal group_key and step) resume as
    # a stack; finished ones (their outputs are rebuilt) and the rest go to train_run
    fresh, at_step = [], {}
    for i in range(len(specs) if stackable else 0):
        path = Path(out_dirs[i]) / "checkpoint.pt"
        if not path.exists():
            fresh.append(i)
            continue
        state = checkpoint_state(path)
        s = normalize(specs[i])
        if (state is not None and state.get("stop_reason") is None and state.get("perm") is not None
                and state.get("step", 0) < total_steps(s, get(s["dataset"]).n_train)):
            at_step.setdefault(state["step"], []).append(i)
    groups = [([fresh[j] for j in grp], False)
              for grp in plan_groups([specs[i] for i in fresh], shape_of, rule)]
    for ids in at_step.values():
        groups += [([ids[j] for j in grp], True) for grp in plan_groups([specs[i] for i in ids], shape_of, rule)]
    placed = {i for grp, _ in groups for i in grp}
    groups += [([i], True) for i in range(len(specs)) if i not in placed]
    n_stacked = sum(len(g) for g, _ in groups if len(g) > 1)
    log(f"pack of {len(specs)} runs: {n_stacked} in {sum(len(g) > 1 for g, _ in groups)} vectorised stack(s), "
        f"{len(specs) - n_stacked} one after another ({len(specs) - len(fresh)} resumed from checkpoints)")
    for grp, resumed in sorted(groups, key=lambda t: t[0][0]):
        name = normalize(specs[grp[0]])["dataset"]
        if len(grp) > 1:  # one stack (equal group_key, so one dataset)
            out = train_group([specs[i] for i in grp], get(name), [out_dirs[i] for i in grp], device=device,
                              init_states=[init_states[i] for i in grp], checkpoint_every_s=checkpoint_every_s,
                              log=log, keep_checkpoint=keep_checkpoint, min_stack=MIN_GROUP, resume=resumed)
            for i, m in zip(grp, out):
                results[i] = m
        else:
            (i,) = grp
            results[i] = train_run(dict(specs[i]), get(name), out_dirs[i], device=device,
                                   init_state=init_states[i], checkpoint_every_s=checkpoint_every_s, log=log,
                                   keep_checkpoint=keep_checkpoint, autocast=autocast,
                                   channels_last=channels_last)
    return results  # type: ignore[return-value]
