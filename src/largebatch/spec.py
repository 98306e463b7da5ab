"""Training-run specifications: a run is data.

A *spec* is a flat, JSON-serialisable dict that fully determines a training run
(dataset, model, optimiser, schedule, batch size, budget, seeds, ...).  Its id is
a readable prefix plus a short hash of the normalised spec, so two papers that
ask for the same run share one job and one result directory.

Only protocol choices live in a spec.  Execution choices that do not change the
protocol (device, threads, checkpoint interval) are passed to the engine
separately and never change a run id.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from typing import Any, Callable

MODELS = ("mlp", "shallow_conv", "vgg", "resnet", "wrn")
OPTIMIZERS = ("sgd", "adam")
LR_SCALINGS = ("none", "linear", "sqrt")
SCHEDULES = ("constant", "step", "cosine")
NORMS = ("batch", "ghost", "none")
EVAL_BN = ("running", "batch")
MIN_DELTA_MODES = ("rel", "abs")  # as torch's ReduceLROnPlateau threshold_mode
AUGMENTS = ("none", "mnist1d", "crop_flip", "crop_flip_cutout")

#: Every key a spec may hold, with its default.  A key not listed here is an error.
DEFAULTS: dict[str, Any] = {
    # data and model
    "dataset": "mnist1d",
    "model": "mlp",
    "width": 128,  # hidden width (MLP units / conv channels multiplier base)
    "depth": 3,  # hidden layers (MLP) or depth parameter (ResNet 6n+2, WRN)
    "norm": "batch",  # batch | ghost | none
    "ghost_batch_size": None,  # samples per ghost batch when norm == "ghost"
    "dropout": 0.0,
    # optimiser
    "optimizer": "sgd",
    "lr": 0.1,
    "momentum": 0.0,
    "nesterov": False,
    "weight_decay": 0.0,
    "max_grad_norm": None,  # clip the global gradient norm (Hoffer et al. clip at 5)
    # learning-rate rule and schedule
    "lr_scaling": "none",  # none | linear | sqrt, relative to base_batch
    "base_batch": None,  # batch size at which `lr` is the learning rate
    "warmup_epochs": 0.0,  # linear warm-up to the scaled lr
    "warmup_start": 0.0,  # lr of the warm-up's first step as a fraction of the peak (Masters & Luschi: 1/32);
    # 0: the ramp (step + 1) / warm-up steps
    "schedule": "constant",  # constant | step | cosine
    "milestones": [],  # epochs at which a step schedule multiplies the lr by gamma
    "gamma": 0.1,
    # batches
    "batch_size": 128,
    "micro_batch": None,  # gradient accumulation chunk; None = whole batch at once
    "augment": "none",
    "multiplicity": 1,  # batch augmentation: M augmented copies of each sample
    # budget and stopping
    "epochs": None,  # exactly one of epochs / steps
    "steps": None,
    "patience": None,  # stop when the train loss has not improved for this many epochs
    "min_delta": 1e-4,  # improvement of the train loss that counts for `patience` (see min_delta_mode)
    "min_delta_mode": "rel",  # rel: loss < best * (1 - min_delta); abs: loss < best - min_delta
    "stop_train_acc": None,  # stop once train accuracy reaches this (SWAP phase 1)
    # evaluation
    "eval_every": None,  # steps between evaluations; None = once per epoch
    "log_points": 0,  # extra evaluations on a log-spaced step grid
    "eval_bn": "running",  # running | batch (batch statistics at test time, Keskar's code)
    "eval_batch": 2048,
    "eval_train_samples": None,  # evaluate train metrics on the first N samples
    # seeds and provenance
    "seed": 0,  # initialisation and dropout
    "data_seed": None,  # data order and augmentation; None = seed
    "init_from": None,  # run id whose final weights initialise this run
}


class SpecError(ValueError):
    """A run specification is malformed; the message names the key and the fix."""


def _check_choice(spec: dict, key: str, choices: tuple) -> None:
    if spec[key] not in choices:
        raise SpecError(f"run spec: {key} = {spec[key]!r} is not allowed; choose one of {list(choices)}")


def _check_number(spec: dict, key: str, low: float, *, integer: bool = False, allow_none: bool = False,
                  inclusive: bool = True) -> None:
    value = spec[key]
    if value is None and allow_none:
        return
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind):
        raise SpecError(f"run spec: {key} = {value!r} must be {'an integer' if integer else 'a number'}")
    if integer is False and not math.isfinite(value):
        raise SpecError(f"run spec: {key} = {value!r} must be finite")
    if value < low or (not inclusive and value == low):
        op = ">=" if inclusive else ">"
        raise SpecError(f"run spec: {key} = {value!r} must be {op} {low}")


def normalize(spec: dict) -> dict:
    """Fill defaults, check every value, and return a new canonical spec."""
    unknown = sorted(set(spec) - set(DEFAULTS))
    if unknown:
        raise SpecError(f"run spec: unknown key(s) {unknown}; allowed keys are {sorted(DEFAULTS)}")
    out = copy.deepcopy(DEFAULTS)
    out.update(copy.deepcopy(spec))
    for key, choices in (
        ("model", MODELS),
        ("optimizer", OPTIMIZERS),
        ("lr_scaling", LR_SCALINGS),
        ("schedule", SCHEDULES),
        ("norm", NORMS),
        ("eval_bn", EVAL_BN),
        ("augment", AUGMENTS),
        ("min_delta_mode", MIN_DELTA_MODES),
    ):
        _check_choice(out, key, choices)
    if not isinstance(out["dataset"], str) or not out["dataset"]:
        raise SpecError(f"run spec: dataset = {out['dataset']!r} must be a dataset name")
    _check_number(out, "lr", 0, inclusive=False)
    _check_number(out, "momentum", 0)
    _check_number(out, "weight_decay", 0)
    _check_number(out, "gamma", 0, inclusive=False)
    _check_number(out, "dropout", 0)
    _check_number(out, "warmup_epochs", 0)
    _check_number(out, "warmup_start", 0)
    if out["warmup_start"] >= 1:
        raise SpecError(f"run spec: warmup_start = {out['warmup_start']!r} must be < 1 (a fraction of the peak lr)")
    _check_number(out, "min_delta", 0)
    _check_number(out, "width", 1, integer=True)
    _check_number(out, "depth", 1, integer=True)
    _check_number(out, "batch_size", 1, integer=True)
    _check_number(out, "multiplicity", 1, integer=True)
    _check_number(out, "eval_batch", 1, integer=True)
    _check_number(out, "log_points", 0, integer=True)
    _check_number(out, "seed", 0, integer=True)
    for key in ("base_batch", "micro_batch", "ghost_batch_size", "eval_every", "eval_train_samples",
                "patience", "steps", "data_seed"):
        _check_number(out, key, 0 if key == "data_seed" else 1, integer=True, allow_none=True)
    _check_number(out, "epochs", 0, allow_none=True, inclusive=False)
    _check_number(out, "max_grad_norm", 0, allow_none=True, inclusive=False)
    _check_number(out, "stop_train_acc", 0, allow_none=True, inclusive=False)
    if out["dropout"] >= 1:
        raise SpecError(f"run spec: dropout = {out['dropout']} must be < 1")
    if out["stop_train_acc"] is not None and out["stop_train_acc"] > 1:
        raise SpecError(f"run spec: stop_train_acc = {out['stop_train_acc']} is a fraction and must be <= 1")
    if (out["epochs"] is None) == (out["steps"] is None):
        raise SpecError("run spec: give exactly one of epochs / steps as the training budget")
    if out["nesterov"] not in (True, False):
        raise SpecError(f"run spec: nesterov = {out['nesterov']!r} must be true or false")
    if out["norm"] == "ghost":
        gbs = out["ghost_batch_size"]
        if gbs is None:
            raise SpecError("run spec: norm = 'ghost' needs ghost_batch_size (samples per ghost batch)")
        per_step = out["micro_batch"] or out["batch_size"] * out["multiplicity"]
        if per_step % gbs:
            raise SpecError(
                f"run spec: ghost_batch_size = {gbs} must divide the batch seen by the model "
                f"({per_step}); pick a divisor of it"
            )
    else:
        out["ghost_batch_size"] = None
    if out["micro_batch"] is not None and (out["batch_size"] * out["multiplicity"]) % out["micro_batch"]:
        raise SpecError(
            f"run spec: micro_batch = {out['micro_batch']} must divide batch_size*multiplicity "
            f"= {out['batch_size'] * out['multiplicity']}"
        )
    if out["lr_scaling"] != "none" and out["base_batch"] is None:
        raise SpecError(f"run spec: lr_scaling = {out['lr_scaling']!r} needs base_batch")
    if not isinstance(out["milestones"], list) or any(
        isinstance(m, bool) or not isinstance(m, (int, float)) or m <= 0 for m in out["milestones"]
    ):
        raise SpecError(f"run spec: milestones = {out['milestones']!r} must be a list of positive epochs")
    out["milestones"] = sorted(out["milestones"])
    if out["init_from"] is not None and not isinstance(out["init_from"], str):
        raise SpecError(f"run spec: init_from = {out['init_from']!r} must be a run id")
    # ints given as floats (e.g. 2.0) would change the hash: canonicalise whole floats in epochs
    if isinstance(out["epochs"], float) and out["epochs"].is_integer():
        out["epochs"] = int(out["epochs"])
    return out


def canonical_json(spec: dict) -> str:
    return json.dumps(spec, sort_keys=True, separators=(",", ":"))


#: Spec keys that may differ between the runs of one vectorised stack (``largebatch.vtrain``).
FREE_KEYS = frozenset({
    "lr", "lr_scaling", "base_batch", "warmup_epochs", "warmup_start", "schedule", "milestones", "gamma",
    "patience", "min_delta", "stop_train_acc", "seed", "data_seed", "init_from",
})


def group_key(spec: dict) -> str:
    """Runs with equal keys have equal shapes, budgets and evaluation steps: they can stack."""
    s = normalize(spec)
    return canonical_json({k: v for k, v in s.items() if k not in FREE_KEYS})


def vectorisable(spec: dict) -> str | None:
    """None if a run can join a vectorised stack, else the reason it cannot."""
    s = normalize(spec)
    if s["dropout"] > 0:
        return "dropout > 0 (per-run dropout masks cannot be drawn as train_run draws them)"
    if s["micro_batch"] is not None:
        return "micro_batch (gradient accumulation) is not vectorised"
    return None


#: The rule ``vtrain.prefer_vectorised`` follows (and the packing policy expects): a group of at
#: least STACK_MIN_GROUP runs stacks when its network is in STACK_MAX_BATCH, a step sees at most
#: STACK_MAX_BATCH[model] samples and, for an MLP, costs at most STACK_MAX_STEP_FLOPS (about
#: 6 x samples x parameters). Measurements behind the numbers: ``vtrain``. Here, torch-free, so
#: the plan (``packing``) can read them without importing torch.
STACK_MAX_BATCH = {"mlp": 256, "shallow_conv": 128, "resnet": 128}  # conv nets: 32 before the grouped forward
STACK_MAX_STEP_FLOPS = 32e6
STACK_MIN_GROUP = 3


def stack_rule(spec: dict, k: int, mlp_step_flops: Callable[[], float]) -> bool:
    """The rule above for k runs like a normalised ``spec``; ``mlp_step_flops()`` (asked only for
    an MLP) is its caller's estimate of one step's FLOPs."""
    model = spec["model"]
    if k < STACK_MIN_GROUP or model not in STACK_MAX_BATCH or vectorisable(spec) is not None:
        return False
    if spec["batch_size"] * spec["multiplicity"] > STACK_MAX_BATCH[model]:
        return False
    return model != "mlp" or mlp_step_flops() <= STACK_MAX_STEP_FLOPS


#: Keys added after runs were first published: hashed only when they differ from their default, so
#: the ids (and finished results) of every run that does not use them stay what they were.
HASH_IF_SET = frozenset({"warmup_start"})


def run_id(spec: dict) -> str:
    """Readable prefix plus a 10-hex-digit hash of the normalised spec (``HASH_IF_SET`` keys
    only where set)."""
    spec = normalize(spec)
    hashed = {k: v for k, v in spec.items() if k not in HASH_IF_SET or v != DEFAULTS[k]}
    digest = hashlib.sha1(canonical_json(hashed).encode()).hexdigest()[:10]
    prefix = f"{spec['dataset']}-{spec['model']}-{spec['optimizer']}-b{spec['batch_size']}-s{spec['seed']}"
    return f"{prefix}-{digest}"


def scale_lr(base_lr: float, batch_size: int, base_batch: int, rule: str = "none") -> float:
    """Learning rate for ``batch_size`` given ``base_lr`` tuned at ``base_batch``.

    * ``"none"``:   ``base_lr`` (no scaling; Keskar et al.),
    * ``"linear"``: ``base_lr * B/B0`` (LSR, Goyal et al. 2017),
    * ``"sqrt"``:   ``base_lr * sqrt(B/B0)`` (SRSR, Krizhevsky 2014 / Hoffer 2017).
    """
    if batch_size <= 0 or base_batch <= 0:
        raise ValueError(
            f"batch_size and base_batch must be positive (got {batch_size}, {base_batch})"
        )
    ratio = batch_size / base_batch
    if rule == "none":
        return float(base_lr)
    if rule == "linear":
        return float(base_lr * ratio)
    if rule == "sqrt":
        return float(base_lr * math.sqrt(ratio))
    raise ValueError(f"rule must be one of 'none', 'linear', 'sqrt'; got {rule!r}")


def effective_lr(spec: dict) -> float:
    """The peak learning rate of a (normalised) spec after its batch-size scaling rule."""
    if spec["lr_scaling"] == "none":
        return spec["lr"]
    return scale_lr(spec["lr"], spec["batch_size"], spec["base_batch"], spec["lr_scaling"])


def lr_at(spec: dict, step: int, steps_per_epoch: int, total_steps: int) -> float:
    """Learning rate used for update number `step` (0-based)."""
    peak = effective_lr(spec)
    warm = spec["warmup_epochs"] * steps_per_epoch
    if warm > 0 and step < warm:  # linear ramp; a warm-up shorter than one step never exceeds the peak
        start = spec.get("warmup_start", 0.0)
        if start > 0:  # from start x peak at the first step to the peak at the end of the warm-up
            return peak * (start + (1 - start) * step / warm)
        return peak * min(1.0, (step + 1) / warm)
    if spec["schedule"] == "step":
        epoch = step / steps_per_epoch
        drops = sum(1 for m in spec["milestones"] if epoch >= m)
        return peak * spec["gamma"] ** drops
    if spec["schedule"] == "cosine":
        span = max(total_steps - warm, 1)
        return peak * 0.5 * (1 + math.cos(math.pi * min(step - warm, span) / span))
    return peak
