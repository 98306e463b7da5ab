"""The stop rules of a run's protocol: when a run ends, and why (``stop_reason`` in its
metrics.json)."""

from __future__ import annotations

import math


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
