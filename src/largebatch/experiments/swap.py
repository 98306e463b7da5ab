"""SWAP: Gupta, Akle Serrano & DeCoste 2020, "Stochastic Weight Averaging in Parallel".

The runs (``plan``) and the two computations that are not training runs:

* phase 3 (``swap_average``): average the phase-2 workers' weights and recompute the
  BatchNorm statistics on the training data (``largebatch.swap``, i.e.
  ``torch.optim.swa_utils``), then evaluate the averaged model;
* the analysis of the averaged model: test accuracy of the average of the first k
  workers (``average_curve``) and the loss on the plane through the phase-1 output,
  one worker and the average (``plane_basis``, ``loss_plane``).

Protocol (one experiment per seed):

* **SB** and **LB** baselines: the shared run settings with the small / the large
  batch for ``epochs`` epochs (the same total budget in epochs).
* **phase 1**: the LB run with ``stop_train_acc``: it stops at the first evaluation
  (once per epoch) whose training accuracy reaches the threshold, capped at the LB
  budget.  Same seed, data order and schedule as the LB baseline, so phase 1 is the
  LB baseline stopped early.
* **phase 2**: ``workers`` runs, each its own job, initialised from phase 1's final
  weights (``init_from``), trained with the small batch for ``phase2_epochs`` epochs
  from ``phase2_lr`` down to 0 (cosine), each with its own data order
  (``data_seed``).  Optimiser state (momentum) starts fresh in every worker.
* **phase 3**: the average of the workers (rule ``swap_average``).

Only weights pass between phases; the engine starts every run from ``init_from``'s
``model.pt``.  Torch is imported inside the functions that need it, so planning the
runs (done while Snakemake builds the DAG) stays light.
"""

from __future__ import annotations

import copy
import math
import time
from typing import Any

TITLE = "SWAP (Gupta et al. 2020): stochastic weight averaging in parallel"

ARMS = ("SB", "LB", "phase1", "worker")


def phase1_spec(block: dict, seed: int) -> dict:
    return {**block["run"], "batch_size": block["large_batch"], "epochs": block["epochs"], "seed": seed,
            "stop_train_acc": block["stop_train_acc"]}


def worker_spec(block: dict, seed: int, worker: int, parent: str) -> dict:
    """Phase-2 worker ``worker`` (0-based) of seed ``seed``, starting from run ``parent``."""
    spec = {**block["run"], "batch_size": block["small_batch"], "epochs": block["phase2_epochs"], "seed": seed,
            "init_from": parent, "data_seed": worker_data_seed(seed, worker), "warmup_epochs": 0.0,
            "schedule": "cosine", "lr": block.get("phase2_lr", block["run"]["lr"])}
    if spec.get("lr_scaling", "none") != "none":
        # the phase-2 learning rate is given for the small batch itself
        spec["lr_scaling"], spec["base_batch"] = "none", None
    return spec


def worker_data_seed(seed: int, worker: int) -> int:
    """Data order of a worker: distinct from every other worker's and from phase 1's (= seed)."""
    return 1_000_003 * (seed + 1) + worker + 1


def plan(block: dict, scale: dict) -> list[tuple[dict, dict]]:
    from . import seeds_of
    from ..spec import run_id

    for key in ("small_batch", "large_batch", "epochs", "phase2_epochs", "workers", "stop_train_acc"):
        block[key]  # KeyError names a missing key
    if block["large_batch"] <= block["small_batch"]:
        raise ValueError(f"large_batch = {block['large_batch']} must be larger than small_batch = "
                         f"{block['small_batch']}")
    if block["workers"] < 1:
        raise ValueError(f"workers = {block['workers']} must be >= 1")
    if "epochs" in block["run"] or "steps" in block["run"]:
        raise ValueError("run must not set epochs/steps: the budget is `epochs` (SB, LB, phase-1 cap) "
                         "and `phase2_epochs` (workers)")
    defaults = scale.get("defaults", {})
    runs = []
    for seed in seeds_of(block):
        for arm, batch in (("SB", block["small_batch"]), ("LB", block["large_batch"])):
            runs.append(({"arm": arm, "seed": seed, "worker": -1, "batch_size": batch},
                         {**block["run"], "batch_size": batch, "epochs": block["epochs"], "seed": seed}))
        p1 = phase1_spec(block, seed)
        runs.append(({"arm": "phase1", "seed": seed, "worker": -1, "batch_size": block["large_batch"]}, p1))
        # the id build_registry will give phase 1 (scale defaults first, as it does)
        parent = run_id({**defaults, **p1})
        for w in range(block["workers"]):
            runs.append(({"arm": "worker", "seed": seed, "worker": w, "batch_size": block["small_batch"]},
                         worker_spec(block, seed, w, parent)))
    return runs


# --------------------------------------------------------------------------- #
# phase 3 and analysis (torch)
# --------------------------------------------------------------------------- #
def _factory(spec: dict, data, device):
    from ..models import build_model

    def make():
        return build_model(spec, data.input_shape, data.num_classes).to(device)

    return make


def _subset(x, n: int | None):
    return x if n is None or n >= x.shape[0] else x[:n]


def averaged_model(states: list[dict], spec: dict, data, *, bn_batch: int | None, device="cpu",
                   bn_samples: int | None = None):
    """Phase 3: the mean of the workers' weights, BN statistics recomputed on training data."""
    from ..swap import average_state_dicts, recompute_bn

    model = average_state_dicts(states, _factory(spec, data, device))
    recompute_bn(model, _subset(data.x_train, bn_samples), batch_size=bn_batch)
    return model


def swap_average(states: list[dict], spec: dict, data, *, bn_batch: int | None, device="cpu") -> tuple[Any, dict]:
    """Phase 3 and the evaluation of its result; returns (model, metrics)."""
    from ..train import evaluate

    t0 = time.perf_counter()
    model = averaged_model(states, spec, data, bn_batch=bn_batch, device=device)
    t_avg = time.perf_counter() - t0
    tr_loss, tr_acc = evaluate(model, data.x_train, data.y_train, spec["eval_batch"], spec["eval_bn"])
    te_loss, te_acc = evaluate(model, data.x_test, data.y_test, spec["eval_batch"], spec["eval_bn"])
    return model, {"workers": len(states), "train_loss": tr_loss, "train_acc": tr_acc, "test_loss": te_loss,
                   "test_acc": te_acc, "average_s": t_avg, "bn_batch": bn_batch}


def average_curve(states: list[dict], spec: dict, data, *, bn_batch: int | None, device="cpu") -> list[dict]:
    """Test accuracy/loss of the average of the first k workers, k = 1..W (BN recomputed each time)."""
    from ..train import evaluate

    rows = []
    for k in range(1, len(states) + 1):
        model = averaged_model(states[:k], spec, data, bn_batch=bn_batch, device=device)
        te_loss, te_acc = evaluate(model, data.x_test, data.y_test, spec["eval_batch"], spec["eval_bn"])
        rows.append({"k": k, "test_loss": te_loss, "test_acc": te_acc})
    return rows


def _flat(state: dict, names: list[str]):
    import torch

    return torch.cat([state[n].detach().reshape(-1).double().cpu() for n in names])


def plane_basis(origin, a, b):
    """Orthonormal basis (u, v) of the plane through the flat weight vectors origin, a, b.

    ``u`` points from ``origin`` to ``a``; ``v`` is the part of ``b - origin`` orthogonal to
    ``u`` (Garipov et al. 2018, as in the SWAP paper's plane plots).  Returns
    ``(u, v, coords)`` with ``coords`` the (x, y) coordinates of origin, a, b.
    """
    import torch

    da, db = a - origin, b - origin
    na = torch.linalg.vector_norm(da)
    if na == 0:
        raise ValueError("plane_basis: the first point coincides with the origin; no plane is defined")
    u = da / na
    w = db - (db @ u) * u
    nw = torch.linalg.vector_norm(w)
    if nw <= 1e-12 * max(float(na), 1.0):
        raise ValueError("plane_basis: the three points are collinear; no plane is defined")
    v = w / nw
    coords = [(0.0, 0.0), (float(na), 0.0), (float(db @ u), float(db @ v))]
    return u, v, coords


def loss_plane(states: dict[str, dict], spec: dict, data, *, grid: int = 11, margin: float = 0.25,
               bn_batch: int | None = None, samples: int | None = None, device="cpu"):
    """Train and test loss/error on the plane through three models.

    ``states`` maps three labels to state dicts, in the order (origin, a, b) of
    :func:`plane_basis` (for SWAP: phase 1, a worker, the average).  The grid spans the
    three points' coordinates plus ``margin`` of the span on each side, ``grid`` x
    ``grid`` points.  At every point the trainable parameters are set, the BatchNorm
    statistics recomputed on (the first ``samples`` of) the training data, and the loss
    evaluated on the same training samples and on the test set.

    Returns ``(grid_rows, point_rows)``: one dict per grid point (x, y, train_loss,
    train_err, test_loss, test_err) and one per model (label, x, y).
    """
    import numpy as np

    from ..swap import recompute_bn
    from ..train import evaluate

    labels = list(states)
    if len(labels) != 3:
        raise ValueError(f"loss_plane needs three models, got {len(labels)}")
    make = _factory(spec, data, device)
    model = make()
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    flats = [_flat(states[k], names) for k in labels]
    u, v, coords = plane_basis(*flats)
    xs, ys = zip(*coords)
    span_x, span_y = max(xs) - min(xs), max(ys) - min(ys)
    gx = np.linspace(min(xs) - margin * span_x, max(xs) + margin * span_x, grid)
    gy = np.linspace(min(ys) - margin * span_y, max(ys) + margin * span_y, grid)
    shapes = [(n, model.state_dict()[n].shape) for n in names]
    base = copy.deepcopy(states[labels[0]])
    x_tr, y_tr = _subset(data.x_train, samples), _subset(data.y_train, samples)
    rows = []
    for x in gx:
        for y in gy:
            flat = flats[0] + float(x) * u + float(y) * v
            state = dict(base)
            offset = 0
            for n, shape in shapes:
                k = math.prod(shape)
                state[n] = flat[offset: offset + k].reshape(shape).to(base[n].dtype)
                offset += k
            model.load_state_dict(state)
            recompute_bn(model, x_tr, batch_size=bn_batch)
            tr_loss, tr_acc = evaluate(model, x_tr, y_tr, spec["eval_batch"], spec["eval_bn"])
            te_loss, te_acc = evaluate(model, data.x_test, data.y_test, spec["eval_batch"], spec["eval_bn"])
            rows.append({"x": float(x), "y": float(y), "train_loss": tr_loss, "train_err": 1 - tr_acc,
                         "test_loss": te_loss, "test_err": 1 - te_acc})
    points = [{"label": k, "x": c[0], "y": c[1]} for k, c in zip(labels, coords)]
    return rows, points


# --------------------------------------------------------------------------- #
# run-table look-ups used by workflow/rules/swap.smk
# --------------------------------------------------------------------------- #
def run_of(rows: list[dict], arm: str, seed) -> str:
    """Run id of the one ``arm`` run (SB, LB, phase1) of ``seed`` in the paper's run table."""
    found = [r["run"] for r in rows if r["arm"] == arm and r["seed"] == int(seed)]
    if len(found) != 1:
        raise KeyError(f"swap: expected one {arm!r} run for seed {seed}, found {len(found)}")
    return found[0]


def worker_runs(rows: list[dict], seed) -> list[str]:
    """Run ids of the phase-2 workers of ``seed``, in worker order."""
    mine = [r for r in rows if r["arm"] == "worker" and r["seed"] == int(seed)]
    return [r["run"] for r in sorted(mine, key=lambda r: r["worker"])]


# --------------------------------------------------------------------------- #
# claims
# --------------------------------------------------------------------------- #
#: where the claims are made; the paper's table values were not available to us
SOURCE = "Gupta, Akle Serrano & DeCoste 2020, abstract and Sec. 4 (claims; table values not available to us)"
SOURCE_FIG1 = "Gupta, Akle Serrano & DeCoste 2020, Fig. 1 (worker curves and the averaged model)"

#: per-seed columns ``claims`` needs (accuracies in %, times in seconds)
PER_SEED = ("seed", "sb_acc", "lb_acc", "swap_acc", "best_worker_acc", "p1_acc", "sb_train", "lb_train",
            "p1_stop", "loop_parallel", "loop_sb", "t_parallel", "t_sb")


def decide_claims(per_seed, claims: dict, pre: dict, stop_train_acc: float) -> list[dict]:
    """Claims S1-S4 from one row per seed (columns ``PER_SEED``).

    claims: the block's ``claims`` ({S1, S2, S4: {margin_pp}, S3: {margin_ratio}}); pre: its
    ``preconditions`` ({baseline_train_acc_min_pp}). Every claim needs phase 1 to have stopped
    at its training-accuracy threshold in every seed (else SWAP's protocol did not run); S1
    needs SB converged, S2 LB converged. S3 compares training-loop time (the engine's clock:
    no interpreter start-up or data load), the job time is shown beside it.
    """
    import numpy as np

    from ..stats import claim_row, decide, decide_one_sample, describe
    from .hoffer import non_inferior

    missing = set(PER_SEED) - set(per_seed.columns)
    if missing:
        raise ValueError(f"swap claims: per-seed table lacks {sorted(missing)}")
    stops = list(per_seed.p1_stop)
    p1_ok = all(s == "train_acc" for s in stops)
    p1 = (p1_ok, f"phase 1 stopped at {100 * stop_train_acc:g}% train accuracy in every seed: "
                 + ("yes" if p1_ok else f"NO (stop reasons: {', '.join(map(str, stops))})"))
    lo = float(pre["baseline_train_acc_min_pp"])

    def converged(name, col):
        m = float(np.nanmean(per_seed[col]))
        ok = bool(np.isfinite(m) and m >= lo)
        return ok, f"{name} converged (final train accuracy >= {lo:g}%): {m:.1f}% {'yes' if ok else 'NO'}"

    def pre_of(*checks):
        return {"precondition_ok": all(ok for ok, _ in checks), "precondition": "; ".join(t for _, t in checks)}

    s = per_seed
    m1 = float(claims["S1"]["margin_pp"])
    m2 = float(claims["S2"]["margin_pp"])
    m3 = float(claims["S3"]["margin_ratio"])
    m4 = float(claims["S4"]["margin_pp"])
    ratio = (s.loop_parallel / s.loop_sb).to_numpy(float)
    d3 = decide_one_sample(ratio, "less", 1.0, m3)
    d3["ours"] = (f"training loop (s): SWAP {describe(s.loop_parallel, 1)} vs SB {describe(s.loop_sb, 1)}, "
                  f"ratio {describe(ratio, 2)}; job time (s), not decided on: SWAP {describe(s.t_parallel, 1)} vs "
                  f"SB {describe(s.t_sb, 1)}, ratio {describe(s.t_parallel / s.t_sb, 2)}")
    def named(d, a, b, col_a, col_b):
        d["ours"] = f"{a} {describe(s[col_a])} vs {b} {describe(s[col_b])}"
        return d

    d4 = decide_one_sample((s.swap_acc - s.best_worker_acc).to_numpy(float), "greater", 0.0, m4)
    d4["ours"] = (f"SWAP {describe(s.swap_acc)} vs best worker {describe(s.best_worker_acc)}; SWAP ahead in "
                  f"{int((s.swap_acc > s.best_worker_acc).sum())} of {len(s)} seeds")
    return [
        claim_row("S1", "SWAP generalises as well as small-batch training (SB).", "final test accuracy (%), SWAP vs SB",
                  named(non_inferior(s.swap_acc, s.sb_acc, m1), "SWAP", "SB", "swap_acc", "sb_acc"),
                  rule=f"non-inferiority: Welch one-sided SWAP > SB - {m1:g} points; against: SWAP more than "
                       f"{m1:g} points below SB", paper="claim only: 'generalize equally well as those trained "
                  "with small mini-batches'", paper_source=SOURCE, **pre_of(p1, converged("SB", "sb_train"))),
        claim_row("S2", "SWAP generalises better than large-batch training (LB) of the same epoch budget.",
                  "final test accuracy (%), SWAP vs LB",
                  named(decide(s.swap_acc, s.lb_acc, "greater", m2), "SWAP", "LB", "swap_acc", "lb_acc"),
                  rule=f"Welch one-sided SWAP > LB; against: reverse test or equivalence within ±{m2:g} points",
                  paper="claim only (table values not available to us)", paper_source=SOURCE,
                  **pre_of(p1, converged("LB", "lb_train"))),
        claim_row("S3", "SWAP takes less time than SB when the workers run in parallel.",
                  "training-loop time: (phase 1 + slowest worker + averaging) / SB, per seed", d3,
                  rule=f"one-sample t-test of the per-seed time ratio < 1; against: > 1, or within 1 ± {m3:g}",
                  paper="claim only: 'substantially shorter time'", paper_source=SOURCE, **pre_of(p1)),
        claim_row("S4", "The averaged model is more accurate than every single worker.",
                  "test accuracy (%): SWAP minus the best worker, per seed", d4,
                  rule=f"one-sample t-test of the per-seed difference > 0; against: < 0, or within ±{m4:g} points",
                  paper="claim only (Fig. 1 curves)", paper_source=SOURCE_FIG1, **pre_of(p1)),
    ]


def phase1_sanity(per_seed) -> dict:
    """Sanity check, not a claim: SWAP against its own phase-1 model (stopped part-way through
    its learning-rate schedule, so a gain is expected by construction). Paired per seed."""
    from ..stats import decide_one_sample

    return decide_one_sample((per_seed.swap_acc - per_seed.p1_acc).to_numpy(float), "greater", 0.0, 0.0)


# TODO(issue 15 port): outputs with captions, analysis jobs and section inputs
from .base import Paper as _Paper  # noqa: E402

PAPER = _Paper(key="swap", title=TITLE, category="5 SWAP (Gupta et al. 2020)", plan=plan, outputs=[])
