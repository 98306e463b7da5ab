"""Golmant et al. 2018: run planning and the paper's declaration (jobs, section inputs, outputs).

The analysis (thresholds, regimes, critical batch, claims, noise measurement) is tested in
tests/test_analysis_golmant.py."""

import copy
import math

import pandas as pd
import pytest

from largebatch import paths
from largebatch.experiments import build_plan, build_registry
from largebatch.experiments import golmant as G
from largebatch.spec import lr_at, normalize


def _config(**block_changes):
    block = {
        "run": {"model": "mlp", "width": 8, "depth": 1, "norm": "none", "optimizer": "sgd", "lr": 0.01,
                "momentum": 0.9, "eval_every": 5},
        "steps": 40,
        "batch_sizes": [8, 16, 64, 256, 1024],
        "max_batch_fraction": 0.5,
        "thresholds": [0.25, 0.5],
        "strategies": {"fixed": {"lr_scaling": "none"}, "lsr": {"lr_scaling": "linear", "warmup_steps": 10},
                       "srsr": {"lr_scaling": "sqrt"}},
        "datasets": {"standard": {"name": "big", "strategies": ["fixed", "lsr", "srsr"]},
                     "small": {"name": "little", "strategies": ["lsr"]}},
        "seeds": [0, 1],
        "noise": {"b_small": 8, "b_big": 64, "n_estimates": 4, "snapshots": [0.25, 0.5]},
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


def test_an_epoch_budget_gives_every_batch_size_the_same_epochs_and_a_role_its_own_network():
    """`epochs`: every batch size trains that many epochs (the paper's per-model recipes), so the
    largest batch makes the fewest updates; a role's `run` overrides the network (role arch)."""
    cfg = _config(epochs=2.0, datasets={"standard": {"name": "big", "strategies": ["fixed", "lsr"]},
                                         "arch": {"name": "big", "strategies": ["lsr"],
                                                  "run": {"model": "shallow_conv", "width": 4}}})
    del cfg["scales"]["s"]["golmant"]["steps"]
    block = cfg["scales"]["s"]["golmant"]
    runs = G.plan(block, cfg["scales"]["s"])
    sweep = [(lab, spec) for lab, spec in runs if lab["kind"] == "sweep"]
    assert all(spec["epochs"] == 2.0 and "steps" not in spec for _, spec in sweep)
    assert {lab["model"] for lab, _ in sweep if lab["data"] == "arch"} == {"shallow_conv"}
    assert {spec["model"] for lab, spec in sweep if lab["data"] == "arch"} == {"shallow_conv"}
    assert {spec["model"] for lab, spec in sweep if lab["data"] == "standard"} == {"mlp"}
    assert G.budget_steps(block, 8, 2048) == 2 * 256 and G.budget_steps(block, 1024, 2048) == 4
    snaps = [(lab, spec) for lab, spec in runs if lab["kind"] == "snapshot"]
    assert sorted({spec["steps"] for _, spec in snaps}) == [128, 256]  # shares of B0's 512-step budget
    assert all(lab["batch_size"] == 8 for lab, _ in snaps)


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


def test_the_plan_leaves_packing_to_the_packing_policy(registry):
    """No run carries a pack label (largebatch.packing decides which runs share a job), and the
    block has no pack key: the default packing groups the sweep into jobs of similar cost."""
    runs, rows, _ = registry
    assert "pack" not in rows.columns
    plan = build_plan({**_config(), "packing": {"job_seconds": 5}})
    packed = [r for ids in plan.packs.values() for r in ids]
    assert plan.packs and len(packed) == len(set(packed)) and set(packed) <= set(runs)
    assert all(name.startswith("golmant-") for name in plan.packs)


def test_the_noise_job_lines_up_models_with_points_and_data_with_datasets(registry):
    plan = build_plan(_config())
    (job,) = plan.jobs["golmant"]
    assert job.name == "golmant_noise" and job.script == "golmant_noise.py" and job.device
    points = job.params["points"]
    assert points == G.noise_points(plan.tables["golmant"])
    assert job.input["models"] == [paths.run_file(p["run"], "model.pt") for p in points]
    assert job.input["data"] == [paths.data_file(d) for d in job.params["datasets"]] == [
        "results/data/big.pt", "results/data/little.pt"]
    assert job.params["specs"] == {p["run"]: plan.runs[p["run"]] for p in points}
    assert job.params["noise"] == _config()["scales"]["s"]["golmant"]["noise"]
    assert job.output == {"noise": "results/golmant/noise.csv"}
    # the section reads what the job writes
    assert plan.sections["golmant"].input["noise"] == job.output["noise"]


def test_every_declared_output_has_a_unique_name_and_a_fillable_caption():
    outs = G.PAPER.outputs_for({}, {})
    names = [o.name for o in outs]
    assert len(names) == len(set(names))
    assert {"thresholds", "noise_scale", "critical_batch", "steps", "curve_summary"} <= {
        o.name for o in outs if o.kind == "table"}
    labelled = {o.name: o.label for o in outs if o.label}
    assert labelled == {"steps_to_threshold": "steps to threshold vs batch size", "speedup": "speed-up vs batch size",
                        "cost": "total cost vs batch size", "data_complexity": "data complexity and size",
                        "noise_prediction": "noise scale vs critical batch"}
    fields = {o.name: set(o.fields) for o in outs}
    assert fields["thresholds"] == {"maxf"} and fields["steps"] == {"dataset", "epochs"}
    assert "final" in {o.name for o in outs if o.kind == "table"}
    assert "step budget (20 epochs); x" in next(o for o in outs if o.name == "steps_to_threshold").fill(dataset="d",
                                                                                          epochs="20 epochs")


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


def test_the_cpu_protocol_trains_epochs_on_two_networks_and_states_its_claim_preconditions():
    import yaml
    from pathlib import Path

    config = yaml.safe_load((Path(__file__).resolve().parents[1] / "config.yaml").read_text())
    block = config["scales"]["cpu"]["golmant"]
    assert len(block["seeds"]) >= 3
    # the protocol's own budget, equal epochs at every batch size (no step cap)
    assert block["epochs"] > 0 and "steps" not in block
    # the paper's threshold: the lowest quartile of the largest (learning) batch's loss curve
    assert block["thresholds"] == [0.25]
    # >= 2 architectures for the architecture claim G5
    arch = block["datasets"]["arch"]
    assert arch["name"] == block["datasets"]["standard"]["name"] and arch["run"]["model"] != block["run"]["model"]
    assert "G5" in block["claims"]
    # thresholds near the chance loss would make a plateau out of no learning: the bar is well below it
    assert block["claims"]["max_threshold_vs_chance"] <= 0.5
    assert block["claims"]["no_learning"] < 1
