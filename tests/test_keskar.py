"""Keskar et al. 2017: the run plan (LB = 10% of the training set, SB and LB share x0) and the
analysis pieces of the section (sharpness per run, parametric curve, claim statistics)."""

from __future__ import annotations

import copy
import re

import numpy as np
import pandas as pd
import pytest
import torch

from largebatch.data import Dataset
from largebatch.experiments import ConfigError, build_registry
from largebatch.experiments import keskar as K
from largebatch.models import build_model
from largebatch.spec import normalize
from largebatch.stats import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED, finalize_claims
from largebatch.train import evaluate

BLOCK = {
    "run": {"optimizer": "adam", "lr": 0.001, "patience": 2},
    "networks": {
        "F1": {"dataset": "mnist1d", "model": "mlp", "width": 16, "depth": 2},
        "C1": {"dataset": "mnist1d", "model": "shallow_conv", "width": 4, "dropout": 0.5, "steps": 50},
    },
    "small_batch": 24,
    "large_batch_fraction": 0.1,
    "max_steps": 150,
    "eval_bn": "batch",
    "seeds": [0, 1, 2],
    "similar_train_acc_pp": 2.0,
    "claims": {"K1": {"margin_pp": 0.22}, "K2": {"margin_ratio": 8.7}, "K3": {"margin_ratio": 10.5},
               "K4": {"margin": 0.0}, "K5": {"margin": 0.0}, "K6": {"margin_ratio": 3.0},
               "K8": {"margin_acc_pp": 0.0, "margin_log10_sharpness": 0.0}},
    "sweep": {"network": "F1", "batch_sizes": [60, 240], "seeds": [0], "threshold_drop": 0.01},
    "sharpness": {"epsilons": [1e-3], "subspace_dim": 5, "max_iter": 2, "samples": 64, "batch": None,
                  "hessian_iters": 3},
    "parametric": {"alpha_min": -1, "alpha_max": 2, "points": 13, "pair_seed": 0, "delta": 0.25},
}


def scale(num_samples=1500, block=BLOCK):
    return {"gpu": False, "datasets": {"mnist1d": {"kind": "mnist1d", "num_samples": num_samples}},
            "keskar": copy.deepcopy(block)}


def registry(num_samples=1500, block=BLOCK):
    return build_registry({"scale": "s", "scales": {"s": scale(num_samples, block)}, "papers": ["keskar"]})


# --------------------------------------------------------------------------- #
# plan()
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("num_samples, lb", [(1500, 120), (20000, 1600), (2500, 200)])
def test_large_batch_is_ten_percent_of_the_training_set(num_samples, lb):
    runs, tables = registry(num_samples)
    main_lb = [r for r in tables["keskar"] if r["main"] and r["arm"] == "LB"]
    assert len(main_lb) == 2 * 3  # two networks x three seeds
    assert {r["batch_size"] for r in main_lb} == {lb}  # 10% of the 80% train split
    assert {runs[r["run"]]["batch_size"] for r in main_lb} == {lb}
    assert {r["batch_size"] for r in tables["keskar"] if r["arm"] == "SB"} == {24}


def test_sb_and_lb_of_a_seed_share_the_initial_weights():
    runs, tables = registry()
    rows = [r for r in tables["keskar"] if r["main"]]
    for net in ("F1", "C1"):
        states = {}
        for r in (r for r in rows if r["network"] == net):
            spec = runs[r["run"]]
            # the specs of a seed's SB and LB runs differ in the batch size only
            states[(r["arm"], r["seed"])] = (spec, None)
        for seed in BLOCK["seeds"]:
            sb, lb = states[("SB", seed)][0], states[("LB", seed)][0]
            assert {k for k in sb if sb[k] != lb[k]} == {"batch_size"}
            assert sb["optimizer"] == "adam" and sb["lr"] == lb["lr"] and sb["lr_scaling"] == "none"
        # the engine seeds torch with spec["seed"] right before building the model: same x0 for SB/LB
        inits = {}
        for (arm, seed), (spec, _) in states.items():
            torch.manual_seed(spec["seed"])
            model = build_model(spec, (1, 40), 10)
            inits[(arm, seed)] = torch.cat([p.detach().flatten() for p in model.parameters()])
        for seed in BLOCK["seeds"]:
            assert torch.equal(inits[("SB", seed)], inits[("LB", seed)])
        assert not torch.equal(inits[("SB", 0)], inits[("SB", 1)])  # different trials, different x0


def test_plan_records_the_stopping_rule_and_caps():
    runs, tables = registry()
    for r in tables["keskar"]:
        spec = runs[r["run"]]
        assert spec["patience"] == 2 and spec["epochs"] is None and spec["eval_bn"] == "batch"
        assert spec["steps"] == (50 if r["network"] == "C1" else 150)  # a network may lower the cap


def test_sweep_has_the_extra_sizes_and_shares_the_main_runs():
    runs, tables = registry()
    rows = tables["keskar"]
    sweep = [r for r in rows if r["sweep"]]
    assert sorted({r["batch_size"] for r in sweep}) == [24, 60, 120, 240]
    # the SB and LB runs of every seed are points of the sweep, listed once with both roles
    shared = [r for r in sweep if r["main"]]
    assert len(shared) == 2 * 3 and all(r["network"] == "F1" for r in shared)
    assert len({r["run"] for r in rows}) == len(rows) == 2 * 2 * 3 + 2
    extra = [r for r in sweep if not r["main"]]
    assert {r["arm"] for r in extra} == {"other"} and {r["seed"] for r in extra} == {0}


def test_pack_modes_group_runs():
    for mode, names in (("arm", {"F1-SB", "F1-LB", "C1-SB", "C1-LB", "F1-sweep"}), ("network", {"F1", "C1"})):
        _, tables = registry(block={**BLOCK, "pack": mode})
        assert {r["pack"] for r in tables["keskar"]} == names
    _, tables = registry(block={**BLOCK, "pack": "none"})
    assert all("pack" not in r for r in tables["keskar"])


@pytest.mark.parametrize("change, words", [
    ({"small_batch": 500}, "must be smaller than the large batch"),
    ({"sweep": {**BLOCK["sweep"], "network": "C9"}}, "sweep.network"),
    ({"networks": {"F1": {"dataset": "cifar10", "model": "mlp"}}}, "not defined under datasets"),
    ({"pack": "seed"}, "pack"),
])
def test_bad_blocks_name_the_key(change, words):
    with pytest.raises(ConfigError, match=words):
        registry(block={**BLOCK, **change})


# --------------------------------------------------------------------------- #
# per-run measurements
# --------------------------------------------------------------------------- #
def _tiny_bn_mlp(seed=0):
    spec = normalize({"model": "mlp", "width": 8, "depth": 1, "dropout": 0.2, "epochs": 1})
    torch.manual_seed(seed)
    return build_model(spec, (1, 6), 3)


def _data(n=48, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 6, generator=g), torch.randint(0, 3, (n,), generator=g)


def test_run_sharpness_reports_every_setting_and_leaves_the_model_alone():
    model = _tiny_bn_mlp()
    x, y = _data()
    before = copy.deepcopy(model.state_dict())
    doc = K.run_sharpness(model, x, y, eval_bn="batch", epsilons=[1e-3, 5e-4], subspace_dim=4, max_iter=3,
                          seed=0, hessian_iters=5)
    cols = K.sharpness_columns(doc)
    assert set(cols) == {"sharp_full_0.001", "sharp_full_0.0005", "sharp_subspace_0.001", "sharp_subspace_0.0005",
                         "hessian_max_eig", "sharp_loss"}
    assert all(v >= 0 for k, v in cols.items() if k.startswith("sharp_full"))
    # a larger box can only reach a higher loss (the smaller box lies inside it)
    assert cols["sharp_full_0.001"] >= cols["sharp_full_0.0005"]
    assert doc["samples"] == 48 and doc["eval_bn"] == "batch"
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert model.training  # mode flags restored


def test_eval_bn_choice_changes_the_sharpness_objective():
    model = _tiny_bn_mlp()
    x, y = _data()
    with torch.no_grad():  # give the running statistics values unlike the batch's own
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.fill_(3.0)
                m.running_var.fill_(9.0)
    kw = dict(epsilons=[1e-3], subspace_dim=2, max_iter=1, seed=0, hessian_iters=1)
    batch = K.run_sharpness(model, x, y, eval_bn="batch", **kw)
    running = K.run_sharpness(model, x, y, eval_bn="running", **kw)
    with K.bn_mode(model, "running"):
        expected = torch.nn.functional.cross_entropy(model(x), y).item()
    assert running["loss"] == pytest.approx(expected, rel=1e-5)
    assert batch["loss"] != pytest.approx(running["loss"], rel=1e-3)
    bn = next(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm1d))
    assert torch.all(bn.running_mean == 3.0)  # batch-statistics evaluation leaves running stats alone


def test_parametric_rows_hit_both_minimisers():
    x, y = _data(60, seed=1)
    data = Dataset(x[:40], y[:40], x[40:], y[40:], 3)
    a, b = _tiny_bn_mlp(0), _tiny_bn_mlp(1)
    model = _tiny_bn_mlp(2)
    rows = K.parametric_rows(model, a.state_dict(), b.state_dict(), data, [-1.0, 0.0, 0.5, 1.0, 2.0],
                             eval_bn="running", eval_batch=64)
    assert [r["alpha"] for r in rows] == [-1.0, 0.0, 0.5, 1.0, 2.0]
    for alpha, ref in ((0.0, a), (1.0, b)):
        row = next(r for r in rows if r["alpha"] == alpha)
        assert row["train_loss"] == pytest.approx(evaluate(ref, data.x_train, data.y_train, 64, "running")[0], rel=1e-5)
        assert row["test_acc"] == pytest.approx(evaluate(ref, data.x_test, data.y_test, 64, "running")[1])


# --------------------------------------------------------------------------- #
# claim statistics
# --------------------------------------------------------------------------- #
def test_endpoint_rise_known_answer():
    alphas = np.linspace(-1, 2, 25)
    f = np.where(alphas < 0, -2.0 * alphas, np.where(alphas > 1, 5.0 * (alphas - 1), 0.0)) + 0.1
    sb_rise, lb_rise = K.endpoint_rise(pd.DataFrame({"alpha": alphas, "train_loss": f}), delta=0.25)
    assert sb_rise == pytest.approx(0.5) and lb_rise == pytest.approx(1.25)
    with pytest.raises(ValueError, match="does not reach"):
        K.endpoint_rise(pd.DataFrame({"alpha": [0.0, 0.5, 1.0], "train_loss": [1.0, 1.0, 1.0]}))


def test_distance_ratios_pair_sb_and_lb_by_seed():
    runs = pd.DataFrame([
        {"network": "F1", "arm": "SB", "seed": 0, "w_dist": 12.0, "main": True},
        {"network": "F1", "arm": "LB", "seed": 0, "w_dist": 3.0, "main": True},
        {"network": "F1", "arm": "SB", "seed": 1, "w_dist": 10.0, "main": True},
        {"network": "F1", "arm": "LB", "seed": 1, "w_dist": 5.0, "main": True},
        {"network": "F1", "arm": "other", "seed": 0, "w_dist": 99.0, "main": False},
    ])
    r = K.distance_ratios(runs).sort_values("seed")
    assert r.ratio.tolist() == [4.0, 2.0]


def test_threshold_batch_is_the_first_size_that_drops():
    sweep = pd.DataFrame({"batch_size": [64, 64, 256, 1024, 4096], "test_acc": [0.90, 0.92, 0.905, 0.88, 0.80]})
    assert K.threshold_batch(sweep, drop=0.01) == 1024
    assert K.threshold_batch(sweep, drop=0.5) is None


def test_published_cells_are_the_reference_values():
    assert K.published_cell("table2", "F1", 2) == "98.03 ± 0.07"
    assert K.published_cell("table3", "C1", 1) == "707.23 ± 43.04"
    assert K.published_cell("table4", "F1", 3) == "9.17 ± 0.14"
    assert K.published_cell("table3", "X9", 0) == "–"


def test_pairs_and_sharpness_packs_for_the_rules():
    runs, tables = registry(block={**BLOCK, "pack": "arm"})
    rows = tables["keskar"]
    pairs = K.sb_lb_pairs(rows, runs)
    assert len(pairs) == 2 * 3
    for p in pairs:
        assert runs[p["sb"]]["batch_size"] == 24 and runs[p["lb"]]["batch_size"] == 120
        assert runs[p["sb"]]["seed"] == runs[p["lb"]]["seed"] == p["seed"]
        assert p["data"] == "results/data/mnist1d.pt"
    packs = K.sharpness_packs(rows)
    assert sorted(r for ids in packs.values() for r in ids) == sorted({r["run"] for r in rows})
    assert len(packs["F1-sweep"]) == 2 and len(packs["C1-LB"]) == 3


# --------------------------------------------------------------------------- #
# claims: margins from the paper, preconditions, decisions through largebatch.stats
# --------------------------------------------------------------------------- #
def test_config_margins_are_the_papers_smallest_effects():
    import yaml

    config = yaml.safe_load(open("config.yaml"))
    gap, net = K.smallest_published_gap()
    assert (gap, net) == (0.22, "F1")  # Table 2: 98.03 - 97.81
    assert K.smallest_published_ratio("table3")[0] == 8.7 and K.smallest_published_ratio("table4")[0] == 10.5
    largest_train_gap = max(abs(r[0][0] - r[1][0]) for r in K.PUBLISHED["table2"].values())
    for name, sc in config["scales"].items():
        if "keskar" not in sc:
            continue
        c = sc["keskar"]["claims"]
        assert c["K1"]["margin_pp"] == gap, name
        assert c["K2"]["margin_ratio"] == K.smallest_published_ratio("table3")[0], name
        assert c["K3"]["margin_ratio"] == K.smallest_published_ratio("table4")[0], name
        assert c["K6"]["margin_ratio"] == K.PUBLISHED_DISTANCE_RATIO[0], name
        # the precondition admits the paper's own SB/LB train-accuracy differences (1.64 pp for F2)
        assert largest_train_gap <= sc["keskar"]["similar_train_acc_pp"], name
        assert sc["baseline"]["claims"]["B1"]["margin_pp"] == gap, name
    # power: the paper's 5 starting points at the default scale, >= 3 seeds for the sweep
    cpu = config["scales"]["cpu"]
    assert len(cpu["keskar"]["seeds"]) >= 5 and len(cpu["baseline"]["seeds"]) >= 5
    assert len(cpu["keskar"]["sweep"]["seeds"]) >= 3


EPS2 = {**BLOCK["sharpness"], "epsilons": [1e-3, 5e-4]}
CLAIM_BLOCK = {**BLOCK, "sharpness": EPS2}


def fake_runs(net="C1", n=5, test=(0.80, 0.76), train=(0.99, 0.99), sharp=(1.0, 30.0), hess=(2.0, 9.0),
              dist=(10.0, 2.0), stop=("patience", "patience"), seed=0, sharp_eps2=None):
    """SB and LB run tables of one network, values around the given (SB, LB) means."""
    rng = np.random.default_rng(seed)
    rows = []
    for i, arm in enumerate(("SB", "LB")):
        for s in range(n):
            jitter = lambda v, rel=0.05: v * (1 + rel * rng.standard_normal())
            sh2 = sharp_eps2[i] if sharp_eps2 else sharp[i] / 3
            rows.append({"network": net, "arm": arm, "seed": s, "main": True, "sweep": False,
                         "stop_reason": stop[i] if s == 0 or stop[i] == "patience" else "patience",
                         "test_acc": test[i] + 0.003 * rng.standard_normal(),
                         "train_acc": train[i] + 0.001 * rng.standard_normal(),
                         "sharp_full_0.001": jitter(sharp[i]), "sharp_full_0.0005": jitter(sh2),
                         "sharp_subspace_0.001": jitter(sharp[i] / 10), "sharp_subspace_0.0005": jitter(sh2 / 10),
                         "hessian_max_eig": jitter(hess[i]), "w_dist": jitter(dist[i]), "epochs": 10.0,
                         "batch_size": 24 if arm == "SB" else 120})
    runs = pd.DataFrame(rows)
    rises = pd.DataFrame({"network": net, "seed": range(n), "sb_rise": 0.1 + 0.01 * rng.standard_normal(n),
                          "lb_rise": 0.5 + 0.02 * rng.standard_normal(n)})
    return runs, rises


def decided(runs, rises, block=CLAIM_BLOCK, net="C1"):
    sb, lb = runs[runs.arm == "SB"], runs[runs.arm == "LB"]
    rows = finalize_claims(K.sb_lb_claims(net, sb, lb, rises, K.distance_ratios(runs), block))
    return {r["id"].split("-")[0]: r for r in rows}


def test_clear_effects_are_reproduced_with_the_papers_values_beside_them():
    rows = decided(*fake_runs())
    assert {k: r["verdict"] for k, r in rows.items()} == {
        "K1": REPRODUCED, "K2": REPRODUCED, "K3": REPRODUCED, "K4": REPRODUCED, "K5": REPRODUCED,
        "K6": REPRODUCED, "K7": REPRODUCED}
    assert all(r["precondition_ok"] for r in rows.values())
    assert rows["K1"]["paper"].startswith("test SB 80.04 ± 0.12 % vs LB 77.26 ± 0.42 %")
    assert "Table 2" in rows["K1"]["paper_source"] and "Table 3" in rows["K2"]["paper_source"]
    assert rows["K1"]["effect"] == pytest.approx(-4.0, abs=0.5)  # percentage points, LB - SB
    assert re.fullmatch(r"test SB \d+\.\d\d ± \d\.\d\d % \(n=5\) vs LB 7\d\.\d\d ± .* % \(n=5\); train .*", rows["K1"]["ours"])
    assert "margin: smallest SB − LB test gap in Keskar et al. 2017, Table 2" in rows["K1"]["rule"]
    assert "REFERENCE" not in " ".join(str(v) for r in rows.values() for v in r.values())


def test_k2_needs_both_epsilons():
    # LB far sharper at eps = 1e-3 but clearly flatter at eps = 5e-4: the two-part claim is refuted
    rows = decided(*fake_runs(sharp=(1.0, 30.0), sharp_eps2=(10.0, 1.0)))
    assert rows["K2"]["verdict"] == NOT_REPRODUCED
    # LB sharper at eps = 1e-3, equal at eps = 5e-4: shown within a factor 8.7 there (TOST), so the
    # claim that LB is sharper at every epsilon is refuted
    rows = decided(*fake_runs(sharp_eps2=(1.0, 1.02)))
    assert rows["K2"]["verdict"] == NOT_REPRODUCED
    assert "ε=0.0005" in rows["K2"]["test"] and "ε=0.001" in rows["K2"]["test"]


def test_equal_arms_within_the_margin_are_not_reproduced_and_noise_is_inconclusive():
    runs, rises = fake_runs(sharp=(5.0, 5.0), hess=(3.0, 3.0), dist=(4.0, 4.0), test=(0.80, 0.80))
    rows = decided(runs, rises)
    assert rows["K2"]["verdict"] == NOT_REPRODUCED  # ratio 1, far inside a factor 8.7
    assert rows["K6"]["verdict"] == NOT_REPRODUCED  # ratio 1, inside a factor 3
    assert rows["K7"]["verdict"] == NOT_REPRODUCED  # ratio 1 is below the published 3-10
    assert rows["K4"]["verdict"] == INCONCLUSIVE  # no margin for the eigenvalue: equal is not evidence


def test_a_capped_arm_makes_every_sb_lb_claim_inconclusive():
    # C1's SB stopped at the update cap (the issue-16 case): clear effects, still no verdict
    rows = decided(*fake_runs(stop=("budget", "patience")))
    assert all(r["verdict"] == INCONCLUSIVE and not r["precondition_ok"] for r in rows.values())
    assert "SB: 1 of 5 runs stopped by the update cap" in rows["K2"]["precondition"]
    assert rows["K2"]["p_claim"] < 0.05  # the test itself still shows the effect


def test_train_accuracies_too_far_apart_make_the_generalisation_claim_inconclusive():
    rows = decided(*fake_runs(train=(0.76, 0.94)))
    assert rows["K1"]["verdict"] == INCONCLUSIVE and not rows["K1"]["precondition_ok"]
    # the minimisers' sharpness and distance are still compared: both arms converged
    assert all(rows[k]["verdict"] == REPRODUCED and rows[k]["precondition_ok"] for k in ("K2", "K3", "K6"))
    assert rows["K1"]["precondition"].startswith("both arms converged (every run stopped by patience), mean train accuracies within 2 pp")
    assert "failed: " in rows["K1"]["precondition"] and "pp apart" in rows["K1"]["precondition"]
    runs = fake_runs()[0]
    ok, text = K.arm_check({"SB": runs[runs.arm == "SB"], "LB": runs[runs.arm == "LB"]}, similar_train_pp=2.0)
    assert ok and text.startswith("met: SB: 5 of 5 stopped by patience")


def test_distance_ratio_range_claim():
    assert decided(*fake_runs(dist=(10.0, 2.0)))["K7"]["verdict"] == REPRODUCED  # ratio 5
    assert decided(*fake_runs(dist=(40.0, 2.0)))["K7"]["verdict"] == NOT_REPRODUCED  # ratio 20 > 10


def sweep_runs(acc_slope, sharp_factor, seeds=3, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for k, b in enumerate([24, 48, 96, 192, 384]):
        for s in range(seeds):
            rows.append({"batch_size": b, "seed": s, "stop_reason": "patience",
                         "test_acc": 0.8 + acc_slope * k + 0.002 * rng.standard_normal(),
                         "sharp_full_0.001": 2.0 * sharp_factor ** k * (1 + 0.05 * rng.standard_normal())})
    return pd.DataFrame(rows)


def test_sweep_claim_needs_both_trends():
    assert K.sweep_claim(sweep_runs(-0.01, 1.5), CLAIM_BLOCK)["verdict"] == REPRODUCED
    assert K.sweep_claim(sweep_runs(+0.01, 1.5), CLAIM_BLOCK)["verdict"] == NOT_REPRODUCED
    assert K.sweep_claim(sweep_runs(-0.01, 1.0, seed=3), CLAIM_BLOCK)["verdict"] != REPRODUCED
    capped = sweep_runs(-0.01, 1.5)
    capped.loc[0, "stop_reason"] = "budget"
    row = finalize_claims([K.sweep_claim(capped, CLAIM_BLOCK)])[0]
    assert row["verdict"] == INCONCLUSIVE and "1 of 15 runs stopped by the update cap" in row["precondition"]
