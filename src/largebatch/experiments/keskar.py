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

#: Published values, each (mean, std): Table 2 accuracy (%), Table 3 (full space) and Table 4
#: (random 100-dimensional subspaces) epsilon-sharpness. F2 (TIMIT) is listed but never trained here.
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
#: where each published value is printed, in our words
SOURCES = {
    "table2": "Keskar et al. 2017, Table 2",
    "table3": "Keskar et al. 2017, Table 3",
    "table4": "Keskar et al. 2017, Table 4",
    "distance": "Keskar et al. 2017, main text",
    "threshold": "Keskar et al. 2017, Fig. 4",
    "hessian": "Keskar et al. 2017, text on Metric 2.1 (no values)",
    "parametric": "Keskar et al. 2017, Fig. 3 (shape only)",
}
#: the paper's range for ||x_SB - x0|| / ||x_LB - x0||
PUBLISHED_DISTANCE_RATIO = (3.0, 10.0)
#: Fig. 4: batch size beyond which test accuracy drops sharply, with the training-set size
PUBLISHED_THRESHOLD = {"C1": (500, 50000), "F2": (15000, 721329)}
#: the data each published network was trained on (a reference line is drawn only on the same data)
PAPER_DATASET = {"F1": "mnist", "F2": "timit", "C1": "cifar10", "C2": "cifar10", "C3": "cifar100",
                 "C4": "cifar100"}
DATASET_NAMES = {"mnist": "MNIST", "timit": "TIMIT", "cifar10": "CIFAR-10", "cifar100": "CIFAR-100",
                 "mnist1d": "MNIST-1D"}
#: stop reasons that mean "trained until the training loss ceased to improve" (the paper's rule);
#: any other (an update cap, divergence) means the run did not converge
CONVERGED_STOPS = ("patience",)


def smallest_published_gap() -> tuple[float, str]:
    """The smallest SB - LB test-accuracy gap of Table 2 (pp) and the network it belongs to."""
    gaps = {n: round(r[2][0] - r[3][0], 2) for n, r in PUBLISHED["table2"].items()}
    n = min(gaps, key=gaps.get)
    return gaps[n], n


def smallest_published_ratio(table: str) -> tuple[float, str]:
    """The smallest LB / SB sharpness ratio of Table 3 or 4 (both epsilons), rounded to 0.1,
    with the cell it belongs to."""
    cells = {}
    for n, r in PUBLISHED[table].items():
        for i, eps in ((0, "1e-3"), (2, "5e-4")):
            cells[f"{n}, ε={eps}: {r[i + 1][0]} / {r[i][0]}"] = round(r[i + 1][0] / r[i][0], 1)
    cell = min(cells, key=cells.get)
    return cells[cell], cell


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


def threshold_batch(sweep: pd.DataFrame, column: str = "test_acc", drop: float = 0.01) -> float | None:
    """The smallest batch size whose mean ``column`` lies more than ``drop`` below the
    mean at the smallest batch size (a descriptive reading of Fig. 4's threshold);
    None when no batch size drops that far."""
    means = sweep.groupby("batch_size")[column].mean().sort_index()
    ref = means.iloc[0]
    below = means[means < ref - drop]
    return None if below.empty else float(below.index[0])


def published_cell(table: str, network: str, column: int) -> str:
    """'mean ± std' of a published cell, or '–' when the paper has no such network."""
    rows = PUBLISHED[table].get(network)
    if rows is None:
        return "–"
    m, s = rows[column]
    return f"{m:.2f} ± {s:.2f}"


# --------------------------------------------------------------------------- #
# Claims: preconditions and decisions (largebatch.stats decides every verdict)
# --------------------------------------------------------------------------- #
def sharp_col(space: str, eps: float) -> str:
    """Column of a sharpness value in the run table (see ``sharpness_columns``)."""
    return f"sharp_{space}_{float(eps):g}"


def _pct(values) -> np.ndarray:
    return 100.0 * np.asarray(values, dtype=float)


def describe_unit(values, unit: str = "", digits: int = 2) -> str:
    """'mean ± sd unit (n=k)' (``stats.describe`` with the unit before the count)."""
    from ..stats import describe

    text = describe(values, digits)
    return text.replace(" (n=", f" {unit} (n=") if unit else text


def _num(value: float, spec: str) -> str:
    return format(value, spec) if np.isfinite(value) else "n/a"


def _log10(values) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log10(np.asarray(values, dtype=float))


def arm_check(arms: dict[str, pd.DataFrame], *, similar_train_pp: float | None = None,
              converged: Sequence[str] | None = CONVERGED_STOPS,
              stop_words: dict[str, str] | None = None) -> tuple[bool, str]:
    """Preconditions of a comparison between arms (run tables with ``stop_reason`` and
    ``train_acc`` as a fraction): every run stopped by one of the ``converged`` stop reasons
    (None: only divergence fails), and, with ``similar_train_pp``, the arms' mean train
    accuracies within that many percentage points. ``stop_words`` names stop reasons for the
    reader (default: a Keskar run's "budget" is its update cap). Returns (ok, what was found)."""
    words = {"budget": "the update cap", "cap": "the update cap", "diverged": "divergence",
             **(stop_words or {})}
    name = lambda reasons: ", ".join(words.get(r, r) for r in sorted(set(reasons)))
    problems, facts = [], []
    for label, arm in arms.items():
        if arm.empty:
            problems.append(f"{label} has no runs")
            continue
        stops = arm["stop_reason"].astype(str)
        bad = stops[(stops == "diverged") | (~stops.isin(list(converged)) if converged is not None else False)]
        if len(bad):
            problems.append(f"{label}: {len(bad)} of {len(arm)} runs stopped by {name(bad)}")
        else:
            facts.append(f"{label}: {len(arm)} of {len(arm)} stopped by {name(stops)}")
    if similar_train_pp is not None and len(arms) == 2 and not any(a.empty for a in arms.values()):
        (n1, a1), (n2, a2) = arms.items()
        m1, m2 = 100 * a1["train_acc"].mean(), 100 * a2["train_acc"].mean()
        gap = abs(m2 - m1)
        text = f"train accuracy {n1} {m1:.2f} %, {n2} {m2:.2f} % ({gap:.2f} pp apart)"
        (facts if gap <= similar_train_pp else problems).append(text)
    if problems:
        return False, "failed: " + "; ".join(problems + facts)
    return True, "met: " + "; ".join(facts)


def margin_note(cid: str, value: float) -> str:
    """Where a margin comes from, for the claims table: '; the smallest published ...' when
    ``value`` is the published quantity the config comments name, else '; set in config'."""
    published = {"K1": lambda: smallest_published_gap()[0], "K2": lambda: smallest_published_ratio("table3")[0],
                 "K3": lambda: smallest_published_ratio("table4")[0], "K6": lambda: PUBLISHED_DISTANCE_RATIO[0]}
    what = {"K1": "smallest SB − LB test gap in Keskar et al. 2017, Table 2",
            "K2": "smallest LB/SB ratio in Keskar et al. 2017, Table 3",
            "K3": "smallest LB/SB ratio in Keskar et al. 2017, Table 4",
            "K6": "lower end of Keskar et al. 2017's range 3–10"}
    if cid in published and math.isclose(float(value), published[cid]()):
        return f"; margin: {what[cid]}"
    return "; margin set in config" if value else ""


def _requirement(similar_train_pp: float | None) -> str:
    text = f"both arms converged (every run stopped by {'/'.join(CONVERGED_STOPS)})"
    if similar_train_pp is not None:
        text += f", mean train accuracies within {similar_train_pp:g} pp"
    return text


def _table_cell(table: str, net: str, i: int, unit: str = "") -> str:
    m, s = PUBLISHED[table][net][i]
    return f"{m:.2f} ± {s:.2f}{unit}"


def sb_lb_claims(net: str, sb: pd.DataFrame, lb: pd.DataFrame, rises: pd.DataFrame, ratios: pd.DataFrame,
                 block: dict) -> list[dict]:
    """Claims K1-K7 for one network: its SB and LB runs (with the sharpness columns), the
    parametric-curve rises of its SB/LB pairs and its per-seed distance ratios; decision
    settings from ``block["claims"]`` and ``block["similar_train_acc_pp"]``. Preconditions:
    every run of both arms converged (all claims) and, for K1, mean train accuracies within
    ``similar_train_acc_pp``; a failed one makes the claim inconclusive."""
    from ..stats import claim_row, combine, decide, decide_one_sample, describe

    cfg, tol = block["claims"], block["similar_train_acc_pp"]
    eps = [float(e) for e in block["sharpness"]["epsilons"]]
    # K1 compares generalisation, so it needs similar train accuracies as well as converged arms
    # (Table 2's premise); K2-K7 compare the minimisers each batch size converges to
    ok, found = arm_check({"SB": sb, "LB": lb}, similar_train_pp=tol)
    pre_k1 = dict(precondition=f"{_requirement(tol)}: {found}", precondition_ok=ok)
    ok, found = arm_check({"SB": sb, "LB": lb})
    pre = dict(precondition=f"{_requirement(None)}: {found}", precondition_ok=ok)
    where = f", {net} on {DATASET_NAMES.get(PAPER_DATASET.get(net), 'its data')}"
    rows = []

    m = float(cfg["K1"]["margin_pp"])
    pub = PUBLISHED["table2"].get(net)
    rows.append(claim_row(
        f"K1-{net}", "At similar training accuracy, LB reaches lower test accuracy than SB (Table 2).",
        f"{net}: final test accuracy (%), LB vs SB",
        decide(_pct(lb.test_acc), _pct(sb.test_acc), "less", m),
        rule=f"LB < SB: one-sided Welch t-test; against: reverse test, or equivalence within ±{m:g} pp (TOST{margin_note('K1', m)})",
        ours=f"test SB {describe_unit(_pct(sb.test_acc), '%')} vs LB {describe_unit(_pct(lb.test_acc), '%')}; "
             f"train SB {describe_unit(_pct(sb.train_acc), '%')} vs LB {describe_unit(_pct(lb.train_acc), '%')}",
        paper=(f"test SB {_table_cell('table2', net, 2, ' %')} vs LB {_table_cell('table2', net, 3, ' %')}; train SB "
               f"{_table_cell('table2', net, 0, ' %')} vs LB {_table_cell('table2', net, 1, ' %')}" if pub
               else "not published"),
        paper_source=SOURCES["table2"] + where if pub else "", **pre_k1))

    for cid, space, table, what in (("K2", "full", "table3", "full space (Table 3)"),
                                    ("K3", "subspace", "table4",
                                     f"random {block['sharpness']['subspace_dim']}-dim subspaces (Table 4)")):
        ratio = float(cfg[cid]["margin_ratio"])
        parts = []
        for e in eps:
            c = sharp_col(space, e)
            part = decide(_log10(lb[c]), _log10(sb[c]), "greater", math.log10(ratio))
            part["label"] = f"ε={e:g}"
            parts.append(part)
        pubrow = PUBLISHED[table].get(net)
        rows.append(claim_row(
            f"{cid}-{net}", f"LB minimisers are sharper than SB ones: ε-sharpness in {what}, at every ε.",
            f"{net}: log10 ε-sharpness, LB vs SB, at ε = {', '.join(f'{e:g}' for e in eps)}",
            combine(parts, how="all"),
            rule=(f"LB > SB on log10 sharpness at every ε (one-sided Welch t-tests); against: any ε reversed or "
                  f"shown within a factor {ratio:g} (TOST{margin_note(cid, ratio)})"),
            ours="; ".join(f"ε={e:g}: SB {describe(sb[sharp_col(space, e)], 3)} vs LB {describe(lb[sharp_col(space, e)], 3)}"
                           for e in eps),
            paper=("; ".join(f"ε={e}: SB {_table_cell(table, net, i)} vs LB {_table_cell(table, net, i + 1)}"
                             for i, e in ((0, "1e-3"), (2, "5e-4"))) if pubrow else "not published"),
            paper_source=SOURCES[table] + where if pubrow else "", **pre))

    m = float(cfg["K4"]["margin"])
    rows.append(claim_row(
        f"K4-{net}", "LB minimisers are sharper than SB ones: largest eigenvalue of the training-loss Hessian.",
        f"{net}: top Hessian eigenvalue, LB vs SB",
        decide(lb.hessian_max_eig, sb.hessian_max_eig, "greater", m),
        rule="LB > SB: one-sided Welch t-test; against: reverse test"
             + (f", or equivalence within ±{m:g} (TOST)" if m > 0 else " (no published size for an equivalence margin)"),
        ours=f"SB {describe(sb.hessian_max_eig, 3)} vs LB {describe(lb.hessian_max_eig, 3)}",
        paper="not published", paper_source=SOURCES["hessian"], **pre))

    r = rises[rises.network == net]
    m = float(cfg["K5"]["margin"])
    delta = block["parametric"]["delta"]
    rows.append(claim_row(
        f"K5-{net}", "Along the line between an SB and an LB minimiser the training loss rises faster around the "
                     "LB end (Fig. 3).",
        f"{net}: rise of the training loss {delta:g} outward from each end, LB end − SB end, paired by seed",
        decide_one_sample(r.lb_rise - r.sb_rise, "greater", 0.0, m),
        rule="mean paired difference > 0: one-sided t-test; against: reverse test"
             + (f", or equivalence within ±{m:g} (TOST)" if m > 0 else " (Fig. 3 gives a shape, no size)"),
        ours=f"SB end {describe(r.sb_rise, 3)} vs LB end {describe(r.lb_rise, 3)}",
        paper="not published", paper_source=SOURCES["parametric"], **pre))

    rr = ratios[ratios.network == net]
    lo, hi = PUBLISHED_DISTANCE_RATIO
    m = float(cfg["K6"]["margin_ratio"])
    rows.append(claim_row(
        f"K6-{net}", "SB iterates travel further from the shared starting point x0 than LB iterates.",
        f"{net}: log10(‖x_SB − x0‖ / ‖x_LB − x0‖), paired by seed",
        decide_one_sample(_log10(rr.ratio), "greater", 0.0, math.log10(m)),
        rule=f"mean log10 ratio > 0: one-sided t-test; against: reverse test, or ratio within a factor {m:g} (TOST{margin_note('K6', m)})",
        ours=f"‖x − x0‖ SB {describe(rr.sb_dist)} vs LB {describe(rr.lb_dist)}; ratio {describe(rr.ratio)}",
        paper=f"ratio {lo:g}–{hi:g}", paper_source=SOURCES["distance"], **pre))
    parts = [decide_one_sample(_log10(rr.ratio), "greater", math.log10(lo), 0.0),
             decide_one_sample(_log10(rr.ratio), "less", math.log10(hi), 0.0)]
    parts[0]["label"], parts[1]["label"] = f"ratio > {lo:g}", f"ratio < {hi:g}"
    rows.append(claim_row(
        f"K7-{net}", f"The ratio ‖x_SB − x0‖ / ‖x_LB − x0‖ lies between {lo:g} and {hi:g}.",
        f"{net}: log10 distance ratio per seed",
        combine(parts, how="all"),
        rule=(f"mean log10 ratio above log10 {lo:g} and below log10 {hi:g}: one-sided t-tests, both must hold; "
              f"against: significantly outside either bound"),
        ours=f"ratio {describe(rr.ratio)}", paper=f"{lo:g}–{hi:g}", paper_source=SOURCES["distance"], **pre))
    return rows


def sweep_claim(sweep: pd.DataFrame, block: dict) -> dict:
    """Claim K8 (Fig. 4) from the batch-size sweep's runs (with the sharpness columns): test
    accuracy falls and full-space sharpness at the first epsilon rises with log2(batch size)."""
    from ..stats import claim_row, combine, decide_trend

    cfg = block["claims"]["K8"]
    net, eps = block["sweep"]["network"], float(block["sharpness"]["epsilons"][0])
    x = np.log2(sweep.batch_size.to_numpy(float))
    acc = decide_trend(x, _pct(sweep.test_acc), "less", float(cfg["margin_acc_pp"]))
    sharp = decide_trend(x, _log10(sweep[sharp_col("full", eps)]), "greater", float(cfg["margin_log10_sharpness"]))
    acc["label"], sharp["label"] = "test accuracy falls", "sharpness rises"
    drop = block["sweep"]["threshold_drop"]
    thr = threshold_batch(sweep, drop=drop)
    ok, found = arm_check({"sweep": sweep})
    small = sweep.batch_size.min()
    return claim_row(
        f"K8-{net}", "Test accuracy falls and sharpness rises as the batch size grows (Fig. 4).",
        f"{net}: slopes of test accuracy (pp) and log10 ε-sharpness (full space, ε={eps:g}) per doubling of the "
        f"batch size, {sweep.batch_size.nunique()} sizes",
        combine([acc, sharp], how="all"),
        rule="accuracy slope < 0 and sharpness slope > 0: one-sided least-squares slope tests, both must hold; "
             "against: either slope significantly the other way",
        ours=(f"accuracy {_num(acc['effect'], '+.2f')} pp per doubling, log10 sharpness "
              f"{_num(sharp['effect'], '+.3f')} per doubling; "
              f"first size {100 * drop:g} pp below the smallest batch's accuracy: "
              + ("none" if thr is None else f"{thr:.0f} ({thr / small:.0f}× the smallest)")),
        paper="threshold ≈ " + "; ".join(f"{b:,} of {n:,} training samples ({100 * b / n:.0f}%) for {k}"
                                         for k, (b, n) in PUBLISHED_THRESHOLD.items()),
        paper_source=SOURCES["threshold"],
        precondition=f"every sweep run converged (stopped by {'/'.join(CONVERGED_STOPS)}): {found}",
        precondition_ok=ok)


# TODO(issue 15 port): outputs with captions, analysis jobs and section inputs
from .base import Paper as _Paper  # noqa: E402

PAPER = _Paper(key="keskar", title=TITLE, category="1 Keskar 2017", plan=plan, outputs=[])
