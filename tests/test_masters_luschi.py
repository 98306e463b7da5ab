"""Masters & Luschi 2018: the run plan (linear scaling, grid, separate selection and test seeds,
ghost BN, warm-up, packs) and the analysis helpers behind the claims (stability, stable range,
selection, per-seed widths); the verdicts themselves come from largebatch.stats."""

import copy
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from largebatch.experiments import build_registry, dataset_sizes, packs_of
from largebatch.experiments import masters_luschi as ml
from largebatch.spec import effective_lr, normalize, run_id
from largebatch.stats import NOT_REPRODUCED, REPRODUCED, decide_trend

REPO = Path(__file__).resolve().parents[1]

SCALE = {"datasets": {"d": {"kind": "mnist1d", "num_samples": 2200, "train_split": 0.5, "seed": 1}}}  # 1,100 train
BLOCK = {
    "run": {"dataset": "d", "model": "mlp", "width": 8, "depth": 1, "optimizer": "sgd", "momentum": 0.9,
            "epochs": 2, "schedule": "step", "milestones": [1, 1.5]},
    "batch_sizes": [2, 4, 8, 16, 32, 64, 128, 256],
    "base_lrs_log2": [-9, -7, -5],
    "norms": ["batch", "none"],
    "seeds": [0, 1],
    "test_seeds": [5, 6, 7],
    "bn_batch": {"batch_sizes": [16, 64], "bn_batch_sizes": [2, 4, 8, 16, 32], "base_lrs_log2": [-7], "reference": 4},
    "warmup": {"batch_sizes": [128, 256], "epochs": 0.5},
    "stable_tolerance_pp": 5.0,
}


def plan(block=BLOCK):
    return ml.plan(copy.deepcopy(block), SCALE)


def test_sweep_uses_linear_scaling_over_the_full_grid():
    rows = [(l, normalize(s)) for l, s in plan() if l["part"] == "sweep"]
    cells = {(l["norm"], l["m"], l["lr_log2"], l["seed"]) for l, _ in rows}
    assert len(cells) == len(rows) == 2 * 8 * 3 * 5  # every (norm, m, eta_base, seed) once
    for labels, spec in rows:
        # eta = m * eta_base: the same average update per gradient computation
        assert effective_lr(spec) == pytest.approx(labels["m"] * 2.0 ** labels["lr_log2"])
        assert spec["batch_size"] == labels["m"] and spec["norm"] == labels["norm"]
        assert spec["optimizer"] == "sgd" and spec["momentum"] == 0.9
        assert spec["epochs"] == 2 and spec["warmup_epochs"] == 0  # fixed epoch budget for every m


def test_bn_batch_runs_use_ghost_bn_and_share_the_full_batch_runs():
    rows = plan()
    sweep_ids = {run_id(s) for l, s in rows if l["part"] == "sweep"}
    bn = [(l, normalize(s)) for l, s in rows if l["part"] == "bn_batch"]
    assert {(l["m"], l["m_bn"]) for l, _ in bn} == {(16, 2), (16, 4), (16, 8), (16, 16),
                                                   (64, 2), (64, 4), (64, 8), (64, 16), (64, 32), (64, 64)}
    for labels, spec in bn:
        if labels["m_bn"] < labels["m"]:
            assert spec["norm"] == "ghost" and spec["ghost_batch_size"] == labels["m_bn"]
            assert labels["m"] % spec["ghost_batch_size"] == 0
        else:  # m_BN = m is ordinary BN: the very run the sweep trains
            assert spec["norm"] == "batch" and run_id(spec) in sweep_ids


def test_warmup_runs_only_add_a_warmup():
    rows = plan()
    warm = [(l, normalize(s)) for l, s in rows if l["part"] == "warmup"]
    assert {l["m"] for l, _ in warm} == {128, 256} and len(warm) == 2 * 2 * 3 * 5
    sweep = {(l["norm"], l["m"], l["lr_log2"], l["seed"]): normalize(s) for l, s in rows if l["part"] == "sweep"}
    for labels, spec in warm:
        twin = dict(sweep[(labels["norm"], labels["m"], labels["lr_log2"], labels["seed"])])
        assert spec["warmup_epochs"] == 0.5
        twin["warmup_epochs"] = 0.5
        assert spec == twin


def test_selection_and_test_seeds_are_separate_and_bn_tests_only_the_compared_cells():
    rows = plan()
    for labels, spec in rows:
        assert labels["seed_role"] == ("select" if spec["seed"] in (0, 1) else "test")
    # every sweep and warm-up cell has both sets (any cell may be selected)
    for part in ("sweep", "warmup"):
        roles = {}
        for l, _ in rows:
            if l["part"] == part:
                roles.setdefault((l["norm"], l["m"], l["lr_log2"]), set()).add(l["seed_role"])
        assert all(r == {"select", "test"} for r in roles.values())
    # the BN-batch study tests only m_BN = reference (4) and m_BN = m, the cells claim M5 compares
    tested = {(l["m"], l["m_bn"]) for l, _ in rows if l["part"] == "bn_batch" and l["seed_role"] == "test"}
    assert tested == {(16, 4), (16, 16), (64, 4), (64, 64)}
    with pytest.raises(ValueError, match="separate"):
        plan({**BLOCK, "test_seeds": [1, 9]})


@pytest.mark.parametrize("change, message", [
    ({"bn_batch": {"batch_sizes": [24], "bn_batch_sizes": [16], "base_lrs_log2": [-7]}}, "does not divide"),
    ({"warmup": {"batch_sizes": [64], "epochs": 2}}, "shorter than the budget"),
    ({"run": {**BLOCK["run"], "optimizer": "adam"}}, "SGD"),
    ({"base_lrs_log2": [-7, 0.5]}, "integer"),
    ({"norms": ["ghost"]}, "choose batch or none"),
])
def test_bad_blocks_are_rejected_with_the_key(change, message):
    with pytest.raises(ValueError, match=message):
        plan({**BLOCK, **change})


def test_packs_balance_cost_and_keep_batch_sizes_together():
    rows = ml.plan({**copy.deepcopy(BLOCK), "packs": 6}, SCALE)
    sizes = dataset_sizes(SCALE)
    cost, members = {}, {}
    seen = {}
    for labels, spec in rows:
        key = json.dumps(spec, sort_keys=True)
        if key in seen:  # a run two studies share is in one pack
            assert seen[key] == labels["pack"]
            continue
        seen[key] = labels["pack"]
        cost[labels["pack"]] = cost.get(labels["pack"], 0) + ml.run_cost(spec, sizes["d"])
        members.setdefault(labels["pack"], set()).add(spec["batch_size"])
    total = sum(cost.values())
    assert 4 <= len(cost) <= 9
    assert max(cost.values()) <= 1.6 * total / 6  # no pack much above the target
    # the most expensive batch size (m = 2, half the steps) is split, and its packs hold nothing else
    m2 = [p for p, ms in members.items() if 2 in ms]
    assert len(m2) >= 2 and all(members[p] == {2} for p in m2)
    # merged packs hold a contiguous range of batch sizes
    order = sorted(BLOCK["batch_sizes"])
    for ms in members.values():
        idx = sorted(order.index(m) for m in ms)
        assert idx == list(range(idx[0], idx[-1] + 1))


def test_config_blocks_plan_the_required_sweep():
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    for scale in ("tiny", "cpu", "paper"):
        cfg = {**config, "scale": scale, "papers": ["masters_luschi"]}
        runs, tables = build_registry(cfg)
        packs_of(tables, runs)  # packs are valid
        sweep = [r for r in tables["masters_luschi"] if r["part"] == "sweep"]
        assert {r["seed"] for r in sweep} >= {0, 1} and {r["norm"] for r in sweep} == {"batch", "none"}
        if scale != "tiny":
            ms = sorted({r["m"] for r in sweep})
            assert ms[0] == 2 and ms[-1] >= 1024 and all(b == 2 * a for a, b in zip(ms, ms[1:]))
    cpu = build_registry({**config, "scale": "cpu", "papers": ["masters_luschi"]})[1]["masters_luschi"]
    assert all("pack" in r for r in cpu)
    # power (issue 16): >= 3 selection seeds per grid cell, >= 5 separate test seeds per compared arm,
    # and the paper's eta_base grid up to 2^0
    sweep = [r for r in cpu if r["part"] == "sweep"]
    assert len({r["seed"] for r in sweep if r["seed_role"] == "select"}) >= 3
    assert len({r["seed"] for r in sweep if r["seed_role"] == "test"}) >= 5
    assert max(r["lr_log2"] for r in sweep) == 0


# ---------------------------------------------------------------------------------------- analysis

def _runs(rows):
    return pd.DataFrame(rows, columns=["run", "m", "lr_log2", "seed", "status", "train_loss", "test_acc"])


def test_stability_flags_divergence_and_loss_increase():
    runs = _runs([("a", 2, -8, 0, "ok", 1.0, 0.5), ("b", 2, -8, 1, "diverged", float("nan"), 0.1),
                  ("c", 2, -4, 0, "ok", 3.0, 0.1), ("d", 2, -4, 1, "ok", 2.2, 0.2),
                  ("e", 2, -2, 0, "ok", 2.29, 0.1)])
    init = pd.Series({"a": 2.3, "b": 2.3, "c": 2.3, "d": 2.3, "e": 2.3})
    # e: a network driven to chance sits at its initial loss without a NaN; it has not trained
    assert list(ml.run_stability(runs, init)) == [True, False, False, False, False]
    assert ml.run_stability(runs.assign(train_loss=2.0), init).iloc[3]


def test_cell_table_and_stable_range():
    runs = _runs([
        ("a", 2, -8, 0, "ok", 1, 0.60), ("b", 2, -8, 1, "ok", 1, 0.62),  # best at m=2
        ("c", 2, -6, 0, "ok", 1, 0.58), ("d", 2, -6, 1, "ok", 1, 0.58),  # within 0.05
        ("e", 2, -4, 0, "ok", 1, 0.50), ("f", 2, -4, 1, "ok", 1, 0.52),  # too far below
        ("g", 8, -8, 0, "ok", 1, 0.40), ("h", 8, -8, 1, "ok", 1, 0.40),  # best at m=8
        ("i", 8, -6, 0, "ok", 1, 0.39), ("j", 8, -6, 1, "diverged", float("nan"), 0.1),  # a seed diverged
        ("k", 8, -4, 0, "ok", 1, 0.38), ("l", 8, -4, 1, "ok", 1, 0.38),
    ])
    runs["stable"] = [True] * 9 + [False] + [False, True]  # k: loss went up
    runs["norm"] = "none"
    cells = ml.cell_table(runs, ["norm", "m", "lr_log2"])
    c = cells.set_index(["m", "lr_log2"])
    assert c.loc[(2, -8), "acc_mean"] == pytest.approx(0.61) and c.loc[(2, -8), "n"] == 2
    assert np.isnan(c.loc[(8, -6), "acc_mean"]) and c.loc[(8, -6), "n_diverged"] == 1
    assert c.loc[(8, -4), "stable_frac"] == 0.5
    in_range = ml.stable_cells(cells, 0.05, ["norm", "m"]).to_numpy()
    # m=2: -8 and -6 (not -4: 0.09 below); m=8: only -8 (-6 diverged, -4 unstable)
    assert list(in_range) == [True, True, False, True, False, False]
    # against the best over every m, nothing at m=8 is acceptable
    assert list(ml.stable_cells(cells, 0.05, ["norm"])) == [True, True, False, False, False, False]


def test_selection_ignores_diverged_cells_and_flags_the_grid_edge():
    cells = pd.DataFrame({"m": [2, 2, 2, 8], "lr_log2": [-9, -7, -5, -9],
                          "acc_mean": [60.0, float("nan"), 55.0, 40.0], "n_diverged": [0, 1, 0, 0],
                          "stable_frac": [1.0, 0.0, 1.0, 0.5]})
    best = ml.select_best(cells)
    assert best.lr_log2 == -9 and best.m == 2  # the NaN (diverged) cell is never selected
    assert ml.select_best(cells.assign(acc_mean=float("nan"))) is None
    assert ml.on_grid_edge(-9, [-9, -7, -5]) and ml.on_grid_edge(-5, [-9, -7, -5])
    assert not ml.on_grid_edge(-7, [-9, -7, -5])
    # the precondition of M2: batch sizes at which every eta_base cell had a stable seed (at m = 8
    # half the seeds failed, but no cell failed with every seed: the grid stops short there)
    assert ml.sizes_without_unstable_cell(cells) == [8]


def test_widths_are_measured_against_one_common_bar():
    runs = pd.DataFrame({"m": [2, 2, 2, 64, 64, 64], "seed": [5] * 6, "lr_log2": [-9, -7, -5] * 2,
                         "acc": [60.0, 58.0, 50.0, 52.0, 51.0, 20.0],
                         "stable": [True, True, True, True, True, False]})
    w = ml.widths_per_seed(runs, level=60.0, tol=5.0).set_index("m").width
    # m = 2: 60 and 58 are within 5 of the global best 60; m = 64: nothing is, although 52 and 51
    # are within 5 of the best at m = 64 (the old per-m rule would have called that range 2 wide)
    assert w[2] == 2 and w[64] == 0
    frac = ml.stable_fraction_per_seed(runs).set_index("m").stable_frac
    assert frac[2] == 1.0 and frac[64] == pytest.approx(2 / 3)


def test_the_width_trend_is_decided_by_the_library_both_ways():
    m = np.log2([2, 4, 8, 16, 32, 64, 128] * 3)
    narrowing = [7, 6, 6, 5, 3, 2, 1] * 3
    assert decide_trend(m, np.array(narrowing) + np.repeat([0, 0.1, -0.1], 7), "less", 0.25)["verdict"] == REPRODUCED
    widening = [1, 2, 3, 3, 4, 5, 6] * 3
    assert decide_trend(m, np.array(widening) + np.repeat([0, 0.1, -0.1], 7), "less", 0.25)["verdict"] == NOT_REPRODUCED


def test_a_divergent_run_is_a_result(tiny_data, tmp_path):
    """A huge base lr diverges; the run still writes its files with status 'diverged', and the
    analysis counts it as unstable and keeps its cell out of the stable range."""
    from largebatch.train import train_run

    spec = {**BLOCK["run"], "dataset": "t", "batch_size": 32, "lr": 2.0 ** 6, "lr_scaling": "linear",
            "base_batch": 1, "norm": "none", "epochs": 1}
    metrics = train_run(spec, tiny_data, tmp_path, log=lambda s: None)
    assert metrics["status"] == "diverged"
    hist = pd.read_csv(tmp_path / "history.csv")
    runs = pd.DataFrame([{"run": "x", "m": 32, "lr_log2": 6, "seed": 0, "norm": "none", **metrics}])
    runs["stable"] = ml.run_stability(runs, pd.Series({"x": hist.train_loss.iloc[0]}))
    assert not runs.stable.iloc[0]
    cells = ml.cell_table(runs, ["norm", "m", "lr_log2"])
    assert cells.n_diverged.iloc[0] == 1 and not ml.stable_cells(cells, 0.05, ["norm", "m"]).iloc[0]
