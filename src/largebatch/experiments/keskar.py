"""Keskar et al. 2017: large-batch training converges to sharp minima and generalises worse.

``plan(block, scale)`` turns the ``keskar:`` block of a scale into training runs:

* for every network of ``networks`` and every seed, a small-batch (SB) and a large-batch
  (LB) run with Adam and the same learning rate (no batch-size scaling).  LB is
  ``large_batch_fraction`` (10% in the paper) of the network's training set, computed from
  the dataset size, not typed in.  SB and LB of one seed share the spec's ``seed``, which
  fixes the initialisation: both start from the same x0, as the authors' code does (it
  loads one saved ``x0.h5`` into both).  Every run trains until its training loss stops
  improving (spec ``patience``, evaluated each epoch) or hits the ``max_steps`` cap (a
  network may override it with its own ``steps``).
* the Fig. 4 sweep: the ``sweep.network`` trained with each of ``sweep.batch_sizes`` (and
  the SB and LB runs of every seed, which are shared with the main comparison).

The rest of the module is the analysis the workflow runs on those runs: per-run
sharpness (epsilon-sharpness in full space and in a random subspace, Hessian top
eigenvalue; ``run_sharpness``), the 1-D parametric curve between an SB and an LB
minimiser (``parametric_rows``), and the statistics the claims use.
"""

from __future__ import annotations

import contextlib
import math
import time
from typing import TYPE_CHECKING, Iterable, Sequence

import numpy as np
import pandas as pd

if TYPE_CHECKING:  # torch is imported where it is used: the Snakefile imports this module
    import torch
    from torch import nn

TITLE = "Keskar et al. 2017: large-batch training, generalization gap and sharp minima"

ARMS = ("SB", "LB")

#: Published values (REFERENCE.md §1, tagged [V]): Table 2 accuracy (%), Tables 3-4
#: epsilon-sharpness; each entry (mean, std).  F2 (TIMIT) is listed but never trained here.
PUBLISHED = {
    "table2": {  # train SB, train LB, test SB, test LB
        "F1": [(99.66, 0.05), (99.92, 0.01), (98.03, 0.07), (97.81, 0.07)],
        "F2": [(99.99, 0.03), (98.35, 2.08), (64.02, 0.2), (59.45, 1.05)],
        "C1": [(99.89, 0.02), (99.66, 0.2), (80.04, 0.12), (77.26, 0.42)],
        "C2": [(99.99, 0.04), (99.99, 0.01), (89.24, 0.12), (87.26, 0.07)],
        "C3": [(99.56, 0.44), (99.88, 0.30), (49.58, 0.39), (46.45, 0.43)],
        "C4": [(99.10, 1.23), (99.57, 1.84), (63.08, 0.5), (57.81, 0.17)],
    },
    "table3": {  # full space: eps=1e-3 SB, LB, eps=5e-4 SB, LB
        "F1": [(1.23, 0.83), (205.14, 69.52), (0.61, 0.27), (42.90, 17.14)],
        "F2": [(1.39, 0.02), (310.64, 38.46), (0.90, 0.05), (93.15, 6.81)],
        "C1": [(28.58, 3.13), (707.23, 43.04), (7.08, 0.88), (227.31, 23.23)],
        "C2": [(8.68, 1.32), (925.32, 38.29), (2.07, 0.86), (175.31, 18.28)],
        "C3": [(29.85, 5.98), (258.75, 8.96), (8.56, 0.99), (105.11, 13.22)],
        "C4": [(12.83, 3.84), (421.84, 36.97), (4.07, 0.87), (109.35, 16.57)],
    },
    "table4": {  # random 100-dim subspace: eps=1e-3 SB, LB, eps=5e-4 SB, LB
        "F1": [(0.11, 0.00), (9.22, 0.56), (0.05, 0.00), (9.17, 0.14)],
        "F2": [(0.29, 0.02), (23.63, 0.54), (0.05, 0.00), (6.28, 0.19)],
        "C1": [(2.18, 0.23), (137.25, 21.60), (0.71, 0.15), (29.50, 7.48)],
        "C2": [(0.95, 0.34), (25.09, 2.61), (0.31, 0.08), (5.82, 0.52)],
        "C3": [(17.02, 2.20), (236.03, 31.26), (4.03, 1.45), (86.96, 27.39)],
        "C4": [(6.05, 1.13), (72.99, 10.96), (1.89, 0.33), (19.85, 4.12)],
    },
}
#: the paper's range for ||x_SB - x0|| / ||x_LB - x0||
PUBLISHED_DISTANCE_RATIO = (3.0, 10.0)


# --------------------------------------------------------------------------- #
# Planning
# --------------------------------------------------------------------------- #
def large_batch(n_train: int, fraction: float) -> int:
    """The LB size: ``fraction`` of the training set (Keskar et al.: 10%), at least 1."""
    if not 0 < fraction <= 1:
        raise ValueError(f"large_batch_fraction = {fraction} must be in (0, 1]")
    return max(1, int(round(n_train * fraction)))


def plan(block: dict, scale: dict) -> list[tuple[dict, dict]]:
    from . import dataset_sizes, seeds_of

    sizes = dataset_sizes(scale)
    seeds = seeds_of(block)
    sb = block["small_batch"]
    nets = block["networks"]
    if not nets:
        raise ValueError("networks is empty: name at least one network")
    common = {**block.get("run", {}), "eval_bn": block["eval_bn"], "steps": block["max_steps"],
              "epochs": None}
    rows: dict[tuple, tuple[dict, dict]] = {}

    def add(net: str, batch: int, seed: int, arm: str, role: str) -> None:
        key = (net, batch, seed)
        if key in rows:
            rows[key][0][role] = True
            return
        spec = {**common, **nets[net], "batch_size": batch, "seed": seed}  # a network's `steps` overrides max_steps
        labels = {"network": net, "arm": arm, "batch_size": batch, "seed": seed, "main": False, "sweep": False}
        labels[role] = True
        pack = block.get("pack", "none")
        if pack == "arm":  # one training (and sharpness) job per network and arm, one for the sweep's extras
            labels["pack"] = f"{net}-{arm if role == 'main' else 'sweep'}"
        elif pack == "network":  # one job per network
            labels["pack"] = net
        elif pack != "none":
            raise ValueError(f"pack = {pack!r} must be one of none, arm, network")
        rows[key] = (labels, spec)

    lbs = {}
    for net, cfg in nets.items():
        dataset = cfg.get("dataset")
        if dataset not in sizes:
            raise ValueError(f"networks.{net}.dataset = {dataset!r} is not defined under datasets "
                             f"(defined: {sorted(sizes)})")
        lbs[net] = large_batch(sizes[dataset], block["large_batch_fraction"])
        if sb >= lbs[net]:
            raise ValueError(f"small_batch = {sb} must be smaller than the large batch of {net} ({lbs[net]} "
                             f"= {block['large_batch_fraction']} of {sizes[dataset]} samples)")
        for seed in seeds:
            add(net, sb, seed, "SB", "main")
            add(net, lbs[net], seed, "LB", "main")
    sweep = block.get("sweep")
    if sweep:
        net = sweep["network"]
        if net not in nets:
            raise ValueError(f"sweep.network = {net!r} is not one of networks ({sorted(nets)})")
        for batch in sweep["batch_sizes"]:
            arm = "SB" if batch == sb else "LB" if batch == lbs[net] else "other"
            for seed in sweep.get("seeds", seeds):
                add(net, batch, seed, arm, "sweep")
        for seed in seeds:  # the main SB and LB runs are points of the sweep too
            add(net, sb, seed, "SB", "sweep")
            add(net, lbs[net], seed, "LB", "sweep")
    return list(rows.values())


def sb_lb_pairs(rows: list[dict], runs: dict[str, dict]) -> list[dict]:
    """The SB/LB pairs of the main comparison (same network and seed, hence the same x0), each
    with the SB run's spec and its dataset file: the inputs of the parametric-plot job."""
    main = [r for r in rows if r["main"]]
    lbs = {(r["network"], r["seed"]): r["run"] for r in main if r["arm"] == "LB"}
    pairs = []
    for r in main:
        if r["arm"] != "SB":
            continue
        spec = runs[r["run"]]
        pairs.append({"network": r["network"], "seed": r["seed"], "sb": r["run"], "lb": lbs[(r["network"], r["seed"])],
                      "spec": spec, "data": f"results/data/{spec['dataset']}.pt"})
    return pairs


def sharpness_packs(rows: list[dict]) -> dict[str, list[str]]:
    """Pack name -> run ids: the sharpness jobs follow the training packs (one job, one
    start-up, per pack; still one JSON per run)."""
    packs: dict[str, list[str]] = {}
    for r in rows:
        if r.get("pack"):
            ids = packs.setdefault(r["pack"], [])
            if r["run"] not in ids:
                ids.append(r["run"])
    return packs


# --------------------------------------------------------------------------- #
# Per-run measurements
# --------------------------------------------------------------------------- #
@contextlib.contextmanager
def bn_mode(model: nn.Module, eval_bn: str):
    """Dropout off; BatchNorm with running statistics ("running") or with each forward
    batch's own statistics ("batch", Keras BN mode 2 as in the authors' code)."""
    from ..train import batch_stat_eval

    if eval_bn == "batch":
        with batch_stat_eval(model):
            yield model
    else:
        was = model.training
        model.eval()
        try:
            yield model
        finally:
            model.train(was)


def _mean_ce(out, targets):
    import torch.nn.functional as F

    return F.cross_entropy(out.float(), targets)


def run_sharpness(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eval_bn: str,
                  epsilons: Sequence[float], subspace_dim: int, max_iter: int, seed: int,
                  hessian_iters: int, batch: int | None = None) -> dict:
    """Keskar's Metric 2.1 at each epsilon, in full space and in a random ``subspace_dim``
    subspace (matrix seeded with ``seed``), and the Hessian's top eigenvalue, all on the
    mean cross-entropy over (x, y) (training samples), with BatchNorm as ``eval_bn``."""
    import torch
    import torch.nn.functional as F

    from ..sharpness import epsilon_sharpness, hessian_max_eigenvalue

    t0 = time.perf_counter()
    out = {"samples": int(len(y)), "eval_bn": eval_bn, "subspace_dim": int(subspace_dim),
           "max_iter": int(max_iter), "seed": int(seed), "sharpness": []}
    with bn_mode(model, eval_bn), torch.no_grad():
        loss = 0.0
        for xb, yb in zip(x.split(batch or len(y)), y.split(batch or len(y))):
            loss += float(F.cross_entropy(model(xb).float(), yb, reduction="sum"))
        out["loss"] = loss / len(y)
    with bn_mode(model, eval_bn):
        for space, dim in (("full", None), ("subspace", subspace_dim)):
            for eps in epsilons:
                value = epsilon_sharpness(model, _mean_ce, x, y, float(eps), subspace_dim=dim,
                                          max_iter=max_iter, seed=seed, batch_size=batch)
                out["sharpness"].append({"space": space, "epsilon": float(eps), "value": value})
        out["hessian_max_eig"] = hessian_max_eigenvalue(model, _mean_ce, x, y, iters=hessian_iters, seed=seed,
                                                        batch_size=batch)
    out["hessian_iters"] = int(hessian_iters)
    out["seconds"] = time.perf_counter() - t0
    return out


def sharpness_columns(doc: dict) -> dict:
    """Flatten a sharpness JSON into columns ``sharp_full_0.001``, ``sharp_subspace_0.0005``, ..."""
    cols = {f"sharp_{r['space']}_{r['epsilon']:g}": r["value"] for r in doc["sharpness"]}
    cols["hessian_max_eig"] = doc["hessian_max_eig"]
    cols["sharp_loss"] = doc["loss"]
    return cols


def parametric_rows(model: nn.Module, state_sb: dict, state_lb: dict, data, alphas: Iterable[float], *,
                    eval_bn: str, eval_batch: int, train_samples: int | None = None) -> list[dict]:
    """Fig. 3: train and test loss/accuracy at ``alpha * x_LB + (1 - alpha) * x_SB``."""
    from ..sharpness import parametric_curve
    from ..train import evaluate

    n = min(train_samples or data.n_train, data.n_train)
    xtr, ytr = data.x_train[:n], data.y_train[:n]

    def metrics(m):
        tr_loss, tr_acc = evaluate(m, xtr, ytr, eval_batch, eval_bn)
        te_loss, te_acc = evaluate(m, data.x_test, data.y_test, eval_batch, eval_bn)
        return {"train_loss": tr_loss, "train_acc": tr_acc, "test_loss": te_loss, "test_acc": te_acc}

    return parametric_curve(model, state_sb, state_lb, list(alphas), metrics)


# --------------------------------------------------------------------------- #
# Analysis
# --------------------------------------------------------------------------- #
def endpoint_rise(curve: pd.DataFrame, delta: float = 0.25, column: str = "train_loss") -> tuple[float, float]:
    """How much ``column`` rises when stepping ``delta`` outward from each minimiser along
    the SB-LB line: ``(f(-delta) - f(0), f(1 + delta) - f(1))`` (SB end, LB end), with f
    linearly interpolated on the alpha grid.  A steeper loss around the LB end means the
    second number is the larger."""
    c = curve.sort_values("alpha")
    a, f = c["alpha"].to_numpy(float), c[column].to_numpy(float)
    if a.min() > -delta or a.max() < 1 + delta:
        raise ValueError(f"alpha grid [{a.min()}, {a.max()}] does not reach -{delta} and 1+{delta}")
    at = lambda v: float(np.interp(v, a, f))
    return at(-delta) - at(0.0), at(1.0 + delta) - at(1.0)


def distance_ratios(runs: pd.DataFrame) -> pd.DataFrame:
    """||x_SB - x0|| / ||x_LB - x0|| per network and seed (SB and LB of a seed share x0)."""
    main = runs[runs["main"]]
    sb = main[main.arm == "SB"].set_index(["network", "seed"])["w_dist"]
    lb = main[main.arm == "LB"].set_index(["network", "seed"])["w_dist"]
    both = pd.concat({"sb_dist": sb, "lb_dist": lb}, axis=1).dropna()
    both["ratio"] = both.sb_dist / both.lb_dist
    return both.reset_index()


def trend_test(x: Sequence[float], y: Sequence[float], claim: str, alpha: float = 0.05) -> tuple[str, float, float, str]:
    """Monotone trend of y in x: one-sided Spearman rank correlation (claim 'increasing' or
    'decreasing').  reproduced: p < alpha; not reproduced: rho has the other sign (or is 0);
    inconclusive: right sign, p >= alpha.  Returns (verdict, rho, p, description)."""
    from scipy import stats

    from ..stats import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED

    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    desc = f"Spearman rank correlation, one-sided ({claim}), n={len(x)}, alpha={alpha}"
    if len(x) < 3 or len(np.unique(x)) < 2:
        return INCONCLUSIVE, float("nan"), float("nan"), desc + " (too few points)"
    res = stats.spearmanr(x, y, alternative="greater" if claim == "increasing" else "less")
    rho, p = float(res.statistic), float(res.pvalue)
    if not math.isfinite(rho) or (claim == "increasing" and rho <= 0) or (claim == "decreasing" and rho >= 0):
        return NOT_REPRODUCED, rho, p, desc
    return (REPRODUCED if p < alpha else INCONCLUSIVE), rho, p, desc


def threshold_batch(sweep: pd.DataFrame, column: str = "test_acc", drop: float = 0.01) -> float | None:
    """The smallest batch size whose mean ``column`` lies more than ``drop`` below the
    mean at the smallest batch size (a descriptive reading of Fig. 4's threshold);
    None when no batch size drops that far."""
    means = sweep.groupby("batch_size")[column].mean().sort_index()
    ref = means.iloc[0]
    below = means[means < ref - drop]
    return None if below.empty else float(below.index[0])


def combine_verdicts(verdicts: Sequence[str]) -> str:
    """reproduced only if every part is; not reproduced if any part is; else inconclusive."""
    from ..stats import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED

    if any(v == NOT_REPRODUCED for v in verdicts):
        return NOT_REPRODUCED
    if verdicts and all(v == REPRODUCED for v in verdicts):
        return REPRODUCED
    return INCONCLUSIVE


def published_cell(table: str, network: str, column: int) -> str:
    """'mean ± std' of a published cell, or '–' when the paper has no such network."""
    rows = PUBLISHED[table].get(network)
    if rows is None:
        return "–"
    m, s = rows[column]
    return f"{m:.2f} ± {s:.2f}"
