"""The stop rules of a run's protocol: when a run ends, and why (``stop_reason`` in its
metrics.json)."""

from __future__ import annotations

import math
from typing import Iterable, Mapping

# A run whose final training loss is at least this fraction of the chance loss ln(classes) did
# not learn: metrics.json says ``status: no_learning`` (Golmant et al.'s plateau is a loss no
# batch size reaches, not a run left at chance; the same fraction as golmant's ``no_learning``).
NO_LEARNING_FRACTION = 0.95


def end_reason(spec: dict) -> str:
    """Why a run that no stop rule stopped ended: ``budget`` where its steps/epochs are the
    protocol's own, ``cap`` where it has a stop rule (patience, stop_train_acc) that should
    have ended it first: the budget is then a safety limit, and a run that reaches it is a sign
    the protocol was cut, not evidence."""
    return "cap" if spec["patience"] is not None or spec["stop_train_acc"] is not None else "budget"


def update_stop_reason(state: dict, spec: dict, row: dict) -> None:
    """After an evaluation ``row``: set ``state["stop_reason"]`` to ``diverged`` (non-finite
    training loss), ``train_acc`` (``stop_train_acc`` reached) or ``patience`` (no improvement
    of ``min_delta`` in the training loss for ``patience`` evaluations: relative, loss < best *
    (1 - min_delta), or with ``min_delta_mode: abs`` absolute, loss < best - min_delta), keeping
    the best loss and the count of evaluations without improvement in ``state``."""
    if not math.isfinite(row["train_loss"]):
        state["stop_reason"] = "diverged"
        return
    if spec["stop_train_acc"] is not None and row["train_acc"] >= spec["stop_train_acc"]:
        state["stop_reason"] = "train_acc"
    if spec["patience"] is not None:
        if spec.get("min_delta_mode", "rel") == "abs":
            better = row["train_loss"] < state["best"] - spec["min_delta"]
        else:
            better = row["train_loss"] < state["best"] * (1 - spec["min_delta"])
        if better:
            state["best"], state["bad_evals"] = row["train_loss"], 0
        else:
            state["bad_evals"] += 1
            if state["bad_evals"] >= spec["patience"]:
                state["stop_reason"] = "patience"


def run_status(stop_reason: str | None, train_loss: float, num_classes: int) -> str:
    """``diverged`` (non-finite loss), ``no_learning`` (final training loss still within
    ``NO_LEARNING_FRACTION`` of the chance loss ln(num_classes)) or ``ok``."""
    if stop_reason == "diverged" or not math.isfinite(train_loss):
        return "diverged"
    if num_classes > 1 and train_loss >= NO_LEARNING_FRACTION * math.log(num_classes):
        return "no_learning"
    return "ok"


def arm_problems(runs: Iterable[Mapping], label: str = "") -> list[str]:
    """Why the runs of a claim's arm are not evidence, one sentence each (empty: none): a run
    stopped by a safety cap (``stop_reason: cap``), did not learn (``status: no_learning``) or
    diverged. Each section makes an empty list a precondition of every claim on the arm."""
    rows = list(runs)
    n = len(rows)
    where = f"{label}: " if label else ""
    out = []
    for key, value, words in (("stop_reason", "cap", "stopped at the safety cap (the protocol was cut)"),
                              ("status", "no_learning", "did not learn (final train loss at chance)"),
                              ("status", "diverged", "diverged")):
        k = sum(1 for r in rows if r.get(key) == value)
        if k:
            out.append(f"{where}{k} of {n} runs {words}")
    return out
