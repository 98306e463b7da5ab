"""Hoffer, Hubara & Soudry 2017, "Train longer, generalize better".

The paper's table compares, per network, a small-batch baseline (SB) with a large
batch (LB) and three cumulative adaptations of the large-batch run:

* ``+LR``  -- learning rate scaled by sqrt(B_L / B_S) (``lr_scaling="sqrt"``,
  ``base_batch`` = the small batch);
* ``+GBN`` -- Ghost Batch Normalization with ghost batches of the small-batch size;
* ``+RA``  -- regime adaptation: the epoch budget and every LR-drop epoch multiplied
  by B_L / B_S, so the large batch makes as many updates as the small batch.

Its Fig. 2 plots the distance of the weights from their initialisation against the
number of updates (log scale) during the first, high-learning-rate phase, for
several batch sizes, before (a) and after (b) the adaptations.  ``plan`` adds those
batch sizes; ``log_fit`` / ``sqrt_fit`` / ``high_lr_phase`` are the analysis.
"""

from __future__ import annotations

import copy
import math

import numpy as np

TITLE = "Hoffer, Hubara & Soudry 2017: train longer, generalize better"

#: the table's arms, in order; each adds one adaptation to the previous one
ARMS = ("SB", "LB", "+LR", "+GBN", "+RA")


def ra_factor(large_batch: int, small_batch: int) -> int:
    """Regime-adaptation factor: ceil(B_L / B_S), as ``--regime_bb_fix`` in bigBatch."""
    if small_batch < 1 or large_batch < small_batch:
        raise ValueError(f"regime adaptation needs 1 <= small batch <= large batch, got {small_batch} / {large_batch}")
    return math.ceil(large_batch / small_batch)


def regime_adaptation(run: dict, factor: float) -> dict:
    """A copy of run-spec keys with the regime stretched by `factor`.

    The training budget (``epochs``, or ``steps`` when the budget is in steps), every
    LR-drop epoch (``milestones``) and the warm-up length (also an epoch of the
    regime) are multiplied by `factor`; nothing else changes.
    """
    if not factor > 0:
        raise ValueError(f"regime adaptation factor = {factor!r} must be > 0")
    out = copy.deepcopy(run)
    if out.get("epochs") is not None:
        out["epochs"] = out["epochs"] * factor
    if out.get("steps") is not None:
        out["steps"] = int(round(out["steps"] * factor))
    if out.get("milestones"):
        out["milestones"] = [m * factor for m in out["milestones"]]
    if out.get("warmup_epochs"):
        out["warmup_epochs"] = out["warmup_epochs"] * factor
    return out


def arm_spec(run: dict, arm: str, batch: int, small_batch: int) -> dict:
    """Run-spec keys of one arm of the table at large batch `batch` (SB ignores it)."""
    if arm not in ARMS:
        raise ValueError(f"arm {arm!r} is not one of {list(ARMS)}")
    spec = copy.deepcopy(run)
    if arm == "SB":
        spec["batch_size"] = small_batch
        return spec
    spec["batch_size"] = batch
    level = ARMS.index(arm)
    if level >= ARMS.index("+LR"):
        spec.update(lr_scaling="sqrt", base_batch=small_batch)
    if level >= ARMS.index("+GBN"):
        if batch % small_batch:
            raise ValueError(f"batch {batch} is not a multiple of the small batch {small_batch}: "
                             f"ghost batches of {small_batch} samples would not tile it")
        spec.update(norm="ghost", ghost_batch_size=small_batch)
    if level >= ARMS.index("+RA"):
        spec = regime_adaptation(spec, ra_factor(batch, small_batch))
    return spec


def plan(block: dict, scale: dict) -> list[tuple[dict, dict]]:
    """Every network's table arms, plus the distance batch sizes of Fig. 2.

    The distance network's runs also log extra evaluations on a log-spaced step
    grid (``distance.log_points``).  Each extra distance batch size B gets the
    unadapted run ("LB" arm at batch B, Fig. 2a) and the fully adapted one ("+RA"
    arm, Fig. 2b); the small batch is the same run in both panels.  With ``pack: true``
    all runs of a seed train in one job (one start-up per seed).
    """
    from . import seeds_of

    seeds = seeds_of(block)
    dist = block.get("distance") or {}
    runs = []
    for name, net in block["networks"].items():
        sb, lb = net["small_batch"], net["large_batch"]
        if lb <= sb:
            raise ValueError(f"networks.{name}: large_batch = {lb} must be larger than small_batch = {sb}")
        base = dict(net["run"])
        if not base.get("milestones"):
            raise ValueError(f"networks.{name}.run: give the LR-drop epochs (milestones) of the paper's step regime")
        base.setdefault("schedule", "step")
        jobs = [(arm, lb) for arm in ARMS]
        if dist and dist.get("network") == name:
            base["log_points"] = dist["log_points"]
            for b in dist["batch_sizes"]:
                if b % sb:
                    raise ValueError(f"distance.batch_sizes: {b} is not a multiple of networks.{name}.small_batch "
                                     f"= {sb} (GBN uses ghost batches of the small batch)")
                if b not in (sb, lb):
                    jobs += [("LB", b), ("+RA", b)]
        for arm, b in jobs:
            for seed in seeds:
                labels = {"network": name, "label": net.get("label", name), "arm": arm,
                          "batch_size": sb if arm == "SB" else b, "seed": seed,
                          "table": b == lb}
                if block.get("pack"):
                    labels["pack"] = f"seed{seed}"
                runs.append((labels, {**arm_spec(base, arm, b, sb), "seed": seed}))
    if dist and dist.get("network") not in block["networks"]:
        raise ValueError(f"distance.network = {dist.get('network')!r} is not one of networks "
                         f"{sorted(block['networks'])}")
    return runs


# ----------------------------------------------------------------------------- analysis
def _linear_fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) < 3 or np.ptp(x) == 0:
        return float("nan"), float("nan"), float("nan")
    b, a = np.polyfit(x, y, 1)
    resid = y - (a + b * x)
    ss_tot = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - float((resid ** 2).sum()) / ss_tot if ss_tot > 0 else float("nan")
    return float(a), float(b), r2


def log_fit(t, d) -> tuple[float, float, float]:
    """Least-squares d = a + b ln t; returns (a, b, R^2).  Needs t >= 1 and >= 3 points."""
    t = np.asarray(t, dtype=float)
    if np.any(t <= 0):
        raise ValueError("log_fit: steps must be positive")
    return _linear_fit(np.log(t), d)


def sqrt_fit(t, d) -> tuple[float, float, float]:
    """Least-squares d = a + b sqrt(t) (the random-walk alternative); returns (a, b, R^2)."""
    return _linear_fit(np.sqrt(np.asarray(t, dtype=float)), d)


def high_lr_phase(history, min_step: int = 1):
    """Rows of a run's history during the first (highest) learning-rate phase, step >= min_step.

    A row's ``lr`` is the rate of the last update before it, so the rows whose lr is the
    run's peak are exactly the updates 1..t_drop of the high-LR phase.
    """
    h = history[history["step"] >= min_step]
    peak = h["lr"].max()
    return h[np.isclose(h["lr"], peak, rtol=1e-9, atol=0)]


def log_grid(total: int, points: int) -> list[int]:
    """The log-spaced steps the engine evaluates for ``log_points = points`` (see
    ``largebatch.train.eval_steps``), in order, without the per-epoch evaluations."""
    if points <= 0 or total < 1:
        return []
    return sorted({int(round(s)) for s in np.geomspace(1, total, points)})


def distance_fits(history, log_points: int, total: int, min_step: int = 1) -> dict:
    """Fits of ||w_t - w_0|| in one run's high-LR phase, on its log-grid evaluations at
    updates t >= `min_step` (e.g. after momentum's build-up, 1/(1 - momentum) updates).

    Returns t_drop (last update of the phase), the number of points fitted, d at t_drop,
    and (a, b, R^2) of d = a + b ln t and of the random-walk alternative d = a + b sqrt(t)
    (NaN with fewer than 3 points).
    """
    phase = high_lr_phase(history)
    grid = set(log_grid(total, log_points))
    pts = phase[phase["step"].isin(grid) & (phase["step"] >= min_step)]
    t, d = pts["step"].to_numpy(float), pts["w_dist"].to_numpy(float)
    a, b, r2 = log_fit(t, d) if len(t) else (float("nan"),) * 3
    _, _, r2_sqrt = sqrt_fit(t, d) if len(t) else (float("nan"),) * 3
    return {"t_drop": int(phase["step"].max()) if len(phase) else 0, "points": len(t),
            "d_drop": float(phase["w_dist"].iloc[-1]) if len(phase) else float("nan"),
            "intercept": a, "slope": b, "r2_log": r2, "r2_sqrt": r2_sqrt}
