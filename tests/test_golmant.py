"""Golmant et al. 2018 section: run planning, thresholds, regimes and critical batch per curve."""

import copy
import math

import numpy as np
import pandas as pd
import pytest

from largebatch.experiments import build_registry, packs_of
from largebatch.experiments import golmant as G
from largebatch.spec import lr_at, normalize


def _config(**block_changes):
    block = {
        "run": {"model": "mlp", "width": 8, "depth": 1, "norm": "none", "optimizer": "sgd", "lr": 0.01,
                "momentum": 0.9, "eval_every": 5},
        "steps": 40,
        "batch_sizes": [8, 16, 64, 256, 1024],
        "max_batch_fraction": 0.5,
        "thresholds": [0.25, 0.5, 1.0],
        "strategies": {"fixed": {"lr_scaling": "none"}, "lsr": {"lr_scaling": "linear", "warmup_steps": 10},
                       "srsr": {"lr_scaling": "sqrt"}},
        "datasets": {"standard": {"name": "big", "strategies": ["fixed", "lsr", "srsr"]},
                     "small": {"name": "little", "strategies": ["lsr"]}},
        "seeds": [0, 1],
        "noise": {"b_small": 8, "b_big": 64, "n_estimates": 4},
        "packs": 3,
    }
    block.update(block_changes)
    scale = {"gpu": False,
             "datasets": {"big": {"kind": "mnist1d", "num_samples": 2560},  # 2,048 train
                          "little": {"kind": "mnist1d", "num_samples": 640}},  # 512 train
             "golmant": block}
    return {"scale": "s", "scales": {"s": scale}, "papers": ["golmant"]}


@pytest.fixture(scope="module")
def registry():
    runs, tables = build_registry(_config())
    return runs, pd.DataFrame(tables["golmant"]), tables


def test_smallest_batch_run_is_shared_by_every_strategy(registry):
    runs, rows, _ = registry
    sweep = rows[rows.kind == "sweep"]
    b0 = sweep[(sweep.data == "standard") & (sweep.batch_size == 8)]
    assert len(b0) == 6  # 3 strategies x 2 seeds ...
    assert b0.groupby("seed").run.nunique().eq(1).all()  # ... but one run per seed
    assert runs[b0.run.iloc[0]]["lr_scaling"] == "none" and runs[b0.run.iloc[0]]["warmup_epochs"] == 0
    # above B0 the strategies are different runs
    b16 = sweep[(sweep.data == "standard") & (sweep.batch_size == 16)]
    assert b16.run.nunique() == 6


def test_batch_grid_stops_at_the_fraction_of_each_training_set(registry):
    _, rows, _ = registry
    sweep = rows[rows.kind == "sweep"]
    assert sorted(sweep[sweep.data == "standard"].batch_size.unique()) == [8, 16, 64, 256, 1024]  # <= 1024
    assert sorted(sweep[sweep.data == "small"].batch_size.unique()) == [8, 16, 64, 256]  # <= 256
    with pytest.raises(ValueError, match="fewer than 2 batch sizes"):
        G.batch_grid({"batch_sizes": [512, 1024], "max_batch_fraction": 0.5}, 600)


def test_lr_rules_and_warmup_in_steps(registry):
    runs, rows, _ = registry
    pick = lambda s, b: runs[rows[(rows.kind == "sweep") & (rows.data == "standard") & (rows.strategy == s)
                                  & (rows.batch_size == b) & (rows.seed == 0)].run.iloc[0]]
    lsr, srsr, fixed = pick("lsr", 256), pick("srsr", 256), pick("fixed", 256)
    spe = 2048 // 256
    peak = 0.01 * 256 / 8
    lrs = [lr_at(lsr, k, spe, 40) for k in range(12)]
    assert lrs[9] == pytest.approx(peak) and lrs[10] == pytest.approx(peak)  # the warm-up lasts 10 steps
    assert lrs[4] == pytest.approx(peak / 2)
    assert lr_at(srsr, 0, spe, 40) == pytest.approx(0.01 * math.sqrt(32))
    assert lr_at(fixed, 0, spe, 40) == pytest.approx(0.01)


def test_snapshots_replay_the_b0_run_for_fewer_steps(registry):
    runs, rows, _ = registry
    snaps = rows[rows.kind == "snapshot"]
    assert sorted(snaps.frac.unique()) == [0.25, 0.5]
    for r in snaps.itertuples():
        full = rows[(rows.kind == "sweep") & (rows.data == r.data) & (rows.batch_size == r.batch_size)
                    & (rows.seed == r.seed)].run.iloc[0]
        a, b = dict(runs[r.run]), dict(runs[full])
        assert a.pop("steps") == round(r.frac * 40) and b.pop("steps") == 40
        assert a == b  # same run in every other respect
    points = G.noise_points(rows.to_dict("records"))
    assert len(points) == 2 * 3 * 2  # datasets x fractions x seeds
    assert {p["run"] for p in points if p["frac"] == 1.0} <= set(rows[rows.kind == "sweep"].run)


def test_packs_keep_a_batch_size_together_and_balance_cost(registry):
    runs, rows, tables = registry
    packs = packs_of({"golmant": tables["golmant"]}, runs)
    assert len(packs) == 3 and sum(len(v) for v in packs.values()) == len(runs)
    costs = [sum(G._cost(runs[r]) for r in ids) for ids in packs.values()]
    assert max(costs) < 1.6 * (sum(costs) / len(costs))
    # the heaviest batch size (1024) costs more than an average pack, so it is split by seed
    homes = rows[rows.batch_size == 1024].groupby("seed").pack.unique()
    assert all(len(h) == 1 for h in homes) and homes.iloc[0][0] != homes.iloc[1][0]
    # every other batch size lives in exactly one pack
    for b in (8, 16, 64, 256):
        assert rows[rows.batch_size == b].pack.nunique() == 1


def _hist(steps, losses):
    return pd.DataFrame({"step": steps, "train_loss": losses, "test_loss": np.asarray(losses) + 0.1})


def test_reference_thresholds_are_reached_by_every_b0_seed():
    ref = pd.concat([
        _hist([0, 10, 20, 30, 40], [2.3, 1.5, 1.6, 1.2, 1.0]).assign(seed=0),
        _hist([0, 10, 20, 30, 40], [2.3, 1.8, 1.4, 1.3, 1.1]).assign(seed=1),
    ])
    t = G.reference_thresholds(ref, [0.5, 1.0], 40).set_index(["metric", "frac"]).threshold
    # seed 0 reaches 1.5 within 20 steps, seed 1 only 1.4: the threshold is the larger, 1.5
    assert t[("train_loss", 0.5)] == pytest.approx(1.5)
    assert t[("train_loss", 1.0)] == pytest.approx(1.1)
    assert t[("test_loss", 0.5)] == pytest.approx(1.6)


def test_steps_table_marks_never_reached_as_infinite():
    runs = pd.DataFrame({"run": ["a", "b"], "dataset": ["d", "d"], "batch_size": [8, 16]})
    hist = {"a": _hist([0, 10, 20], [2.0, 1.0, 0.5]), "b": _hist([0, 10, 20], [2.0, 1.5, 1.2])}
    thr = pd.DataFrame({"dataset": ["d"], "metric": ["train_loss"], "frac": [1.0], "threshold": [1.0]})
    st = G.steps_table(runs, hist, thr).set_index("run")
    assert st.loc["a", "steps"] == 10 and st.loc["a", "reached"]
    assert st.loc["b", "steps"] == math.inf and not st.loc["b", "reached"]


B = np.array([8, 16, 32, 64, 128, 256, 512, 1024, 4096], dtype=float)


def test_regimes_of_a_mccandlish_curve_perfect_scaling_and_a_flat_curve():
    mcc = 100 * (1 + 128 / B)  # S = S_min (1 + B_noise/B): linear, then diminishing, then flat
    r = G.regimes(B, mcc)
    assert r["near_linear"] and r["diminishing"] and r["plateau"] and r["three_regimes"]
    # with B_noise = 512 the grid ends (at 8 B_noise) while the last quadrupling still gains 1.33x
    assert not G.regimes(B, 100 * (1 + 512 / B))["plateau"]
    perfect = 8000 / B
    r = G.regimes(B, perfect)
    assert r["near_linear"] and not r["diminishing"] and not r["plateau"]
    flat = np.full(B.size, 50.0)
    r = G.regimes(B, flat)
    assert not r["near_linear"] and r["plateau"]
    # a large batch that never reaches the threshold is a plateau (no gain), not a gap
    broke = perfect.copy()
    broke[-1] = np.inf
    assert G.regimes(B, broke)["plateau"] and G.scaling_exponents(B, broke)[-1] == -np.inf


def test_critical_batch_of_each_curve():
    mcc = 100 * (1 + 512 / B)
    assert G.curve_stats(B, mcc)["b_crit"] == pytest.approx(512 + 2 * 8, rel=0.1)
    perfect = G.curve_stats(B, 8000 / B)
    assert perfect["lower_bound"] and perfect["b_crit"] == 4096
    # only B0 reached: half-way (in log2) to the next batch, as efficiency 1 -> 0 crosses 0.5
    only = G.curve_stats(B, [100] + [np.inf] * (B.size - 1))
    assert only["b_crit"] == pytest.approx(math.sqrt(8 * 16)) and not only["lower_bound"]


def test_mean_curve_is_geometric_and_never_reached_wins():
    df = pd.DataFrame({"batch_size": [8, 8, 16, 16], "steps": [100, 400, 50, np.inf]})
    mc = G.mean_curve(df).set_index("batch_size").steps
    assert mc[8] == pytest.approx(200) and mc[16] == math.inf


def test_a_shorter_run_replays_the_start_of_the_longer_one(tiny_data, tmp_path):
    from largebatch.train import train_run

    spec = normalize({"model": "mlp", "width": 8, "depth": 1, "norm": "none", "optimizer": "sgd", "lr": 0.05,
                      "momentum": 0.9, "batch_size": 8, "steps": 30, "eval_every": 10})
    short = copy.deepcopy(spec)
    short["steps"] = 10
    train_run(spec, tiny_data, tmp_path / "long", checkpoint_every_s=None, log=lambda s: None)
    train_run(short, tiny_data, tmp_path / "short", checkpoint_every_s=None, log=lambda s: None)
    long_h = pd.read_csv(tmp_path / "long" / "history.csv").set_index("step")
    short_h = pd.read_csv(tmp_path / "short" / "history.csv").set_index("step")
    assert long_h.loc[10, "train_loss"] == short_h.loc[10, "train_loss"]
    assert long_h.loc[10, "w_dist"] == short_h.loc[10, "w_dist"]


def test_measure_noise_reads_each_checkpoint(tiny_data_path, tiny_data, tmp_path, monkeypatch):
    from largebatch.train import train_run

    monkeypatch.chdir(tmp_path)
    spec = normalize({"model": "mlp", "width": 8, "depth": 1, "norm": "none", "optimizer": "sgd", "lr": 0.05,
                      "batch_size": 8, "steps": 20})
    train_run(spec, tiny_data, "results/runs/r0", checkpoint_every_s=None, log=lambda s: None)
    points = [{"data": "standard", "dataset": "mnist1d", "seed": 0, "frac": 1.0, "run": "r0"}]
    out = G.measure_noise(points, {"mnist1d": str(tiny_data_path)}, {"r0": spec},
                          {"b_small": 8, "b_big": 256, "n_estimates": 8}, log=lambda s: None)
    assert len(out) == 1 and out.step.iloc[0] == 20
    assert out.trace_sigma.iloc[0] > 0 and out.g2.iloc[0] > 0
    assert out.b_simple.iloc[0] == pytest.approx(out.trace_sigma.iloc[0] / out.g2.iloc[0])


def test_chance_loss_and_the_no_learning_flag():
    assert G.chance_loss("mnist1d") == pytest.approx(math.log(10))
    assert G.chance_loss("cifar100") == pytest.approx(math.log(100))
    with pytest.raises(ValueError, match="CLASSES"):
        G.chance_loss("imagenet")
    chance = math.log(10)
    assert G.learnt("ok", 0.5, chance, 0.95)
    assert not G.learnt("ok", 2.301, chance, 0.95)  # at chance: no learning, whatever its status says
    assert not G.learnt("diverged", float("nan"), chance, 0.95)


def test_a_run_that_did_not_learn_cuts_the_curve_instead_of_making_a_plateau():
    b = [8, 16, 32, 64, 128]
    t = [400, 200, 100, 50, np.inf]  # perfect scaling, then the largest batch stays at chance
    bb, tt, cut = G.learning_curve(b, t, [True, True, True, True, False])
    assert list(bb) == [8, 16, 32, 64] and cut == 128
    # counted as a point, the dead run would look like a plateau (no gain at the largest batch)
    assert G.regimes(b, t)["plateau"]
    assert not G.regimes(bb, tt)["plateau"]
    assert G.curve_stats(bb, tt)["lower_bound"]  # efficiency never fell: B* is only a lower bound
    assert math.isnan(G.learning_curve(b, t, [True] * 5)[2])


def test_exponents_censor_never_reached_at_twice_the_cap():
    assert list(G.censored([10, np.inf], 600)) == [10, 1200]
    ex = G.exponent_summary([8, 16, 32, 64], [400, 200, 190, np.inf], cap=600)
    assert ex["alpha_first"] == pytest.approx(1.0)
    # 190 -> 1,200 (censored): a finite, strongly negative exponent instead of -inf
    assert ex["alpha_last"] == pytest.approx(math.log2(190 / 1200))
    assert list(ex["mid_log2"]) == pytest.approx([3.5, 4.5, 5.5])
    assert math.isnan(G.exponent_summary([8, 16], [10, 5], 600)["alpha_first"])


def test_the_redefined_g1_parts_can_pass_and_can_fail():
    """G1 on per-seed exponents: a McCandlish curve passes all three parts, perfect scaling fails
    the plateau part, a flat curve fails the near-linear part (the old rule could not pass)."""
    from largebatch.stats import NOT_REPRODUCED, REPRODUCED, combine, decide_one_sample, decide_trend

    rng = np.random.default_rng(0)

    def g1(curve):
        firsts, lasts, mids, alphas = [], [], [], []
        for _ in range(5):
            t = curve * np.exp(rng.normal(0, 0.03, B.size))
            ex = G.exponent_summary(B, t, cap=10_000)
            firsts.append(ex["alpha_first"])
            lasts.append(ex["alpha_last"])
            mids += list(ex["mid_log2"])
            alphas += list(ex["alpha"])
        return combine([decide_one_sample(firsts, "greater", G.LINEAR_ALPHA, 0.0),
                        decide_trend(mids, alphas, "less", 0.0),
                        decide_one_sample(lasts, "less", G.PLATEAU_ALPHA, 0.0)])["verdict"]

    assert g1(100 * (1 + 128 / B)) == REPRODUCED
    assert g1(8000 / B) == NOT_REPRODUCED
    assert g1(np.full(B.size, 50.0)) == NOT_REPRODUCED


def test_the_cpu_protocol_has_five_seeds_and_states_its_claim_preconditions():
    import yaml
    from pathlib import Path

    config = yaml.safe_load((Path(__file__).resolve().parents[1] / "config.yaml").read_text())
    block = config["scales"]["cpu"]["golmant"]
    assert len(block["seeds"]) >= 5
    # thresholds near the chance loss would make a plateau out of no learning: the bar is well below it
    assert block["claims"]["max_threshold_vs_chance"] <= 0.5
    assert block["claims"]["no_learning"] < 1
