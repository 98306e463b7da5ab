"""Keskar et al. 2017: the run plan (LB = 10% of the training set, SB and LB share x0), the
declaration (sharpness and parametric jobs, section inputs and outputs) and the per-run
measurements those jobs make (``analysis.keskar_measure``). The section's analysis is tested
in test_analysis_keskar.py."""

from __future__ import annotations

import copy

import pytest
import torch

from largebatch import paths
from largebatch.analysis import keskar_measure as M
from largebatch.analysis.keskar import sharpness_columns
from largebatch.data import Dataset
from largebatch.experiments import ConfigError, build_plan, build_registry
from largebatch.experiments import keskar as K
from largebatch.models import build_model
from largebatch.spec import normalize
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


def config(num_samples=1500, block=BLOCK, job_seconds=0):
    return {"scale": "s", "scales": {"s": scale(num_samples, block)}, "papers": ["keskar"],
            "packing": {"job_seconds": job_seconds}}


def registry(num_samples=1500, block=BLOCK):
    return build_registry(config(num_samples, block))


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


@pytest.mark.parametrize("change, words", [
    ({"small_batch": 500}, "must be smaller than the large batch"),
    ({"sweep": {**BLOCK["sweep"], "network": "C9"}}, "sweep.network"),
    ({"networks": {"F1": {"dataset": "cifar10", "model": "mlp"}}}, "not defined under datasets"),
])
def test_bad_blocks_name_the_key(change, words):
    with pytest.raises(ConfigError, match=words):
        registry(block={**BLOCK, **change})


# --------------------------------------------------------------------------- #
# the declaration: jobs, section inputs and outputs
# --------------------------------------------------------------------------- #
def test_without_packs_every_run_has_its_own_sharpness_job_and_one_json():
    plan = build_plan(config())
    ids = list(dict.fromkeys(r["run"] for r in plan.tables["keskar"]))
    sharp = [j for j in plan.jobs["keskar"] if j.script == "keskar_sharpness.py"]
    assert [j.name for j in sharp] == [f"keskar_sharpness_{r}" for r in ids]
    for job, run in zip(sharp, ids):
        assert job.output == {"sharpness": [f"results/keskar/sharpness/{run}.json"]}
        assert job.input == {"data": ["results/data/mnist1d.pt"], "models": [paths.run_file(run, "model.pt")],
                             "specs": [paths.run_file(run, "spec.json")]}
        assert job.params == {"cfg": BLOCK["sharpness"]} and job.device


def test_sharpness_jobs_follow_the_training_packs():
    plan = build_plan(config(job_seconds=1e9))  # everything that stacks shares a pack
    assert plan.packs
    sharp = [j for j in plan.jobs["keskar"] if j.script == "keskar_sharpness.py"]
    measured = [out for j in sharp for out in j.output["sharpness"]]
    ids = list(dict.fromkeys(r["run"] for r in plan.tables["keskar"]))
    assert sorted(measured) == sorted(K.sharpness_file(r) for r in ids)  # every run once
    for job in sharp:
        runs = [p.split("/")[-1][:-5] for p in job.output["sharpness"]]
        pack = plan.view("keskar").pack_of(runs[0])
        assert job.name == f"keskar_sharpness_{pack or runs[0]}"
        assert all(plan.view("keskar").pack_of(r) == pack for r in runs)
        # inputs stay aligned with the outputs, one entry per run
        assert job.input["models"] == [paths.run_file(r, "model.pt") for r in runs]
        assert len(job.input["data"]) == len(job.input["specs"]) == len(runs)
    assert len(sharp) < len(ids)


def test_parametric_job_pairs_sb_and_lb_of_a_seed():
    runs, tables = registry()
    pairs = K.sb_lb_pairs(tables["keskar"], runs)
    assert len(pairs) == 2 * 3
    for p in pairs:
        assert runs[p["sb"]]["batch_size"] == 24 and runs[p["lb"]]["batch_size"] == 120
        assert runs[p["sb"]]["seed"] == runs[p["lb"]]["seed"] == p["seed"]
        assert p["data"] == "results/data/mnist1d.pt"
    plan = build_plan(config())
    job = next(j for j in plan.jobs["keskar"] if j.name == "keskar_parametric")
    assert job.input["sb"] == [paths.run_file(p["sb"], "model.pt") for p in pairs]
    assert job.input["lb"] == [paths.run_file(p["lb"], "model.pt") for p in pairs]
    assert job.output == {"curves": "results/keskar/parametric.csv"}
    assert [(p["network"], p["seed"]) for p in job.params["pairs"]] == [(p["network"], p["seed"]) for p in pairs]
    assert job.params["cfg"] == BLOCK["parametric"]


def test_section_reads_every_runs_sharpness_and_spec_and_declares_its_items():
    plan = build_plan(config())
    ids = list(dict.fromkeys(r["run"] for r in plan.tables["keskar"]))
    io = plan.sections["keskar"]
    assert io.input["sharpness"] == [K.sharpness_file(r) for r in ids]
    assert io.input["specs"] == [paths.run_file(r, "spec.json") for r in ids]
    assert io.input["parametric"] == "results/keskar/parametric.csv"
    outs = {o.name: o for o in plan.outputs["keskar"]}
    assert io.output["table2_accuracy"] == "results/keskar/tables/table2_accuracy.csv"
    assert io.output["sweep"] == "results/keskar/figures/sweep.png"
    assert {n: o.label for n, o in outs.items() if o.label} == {
        "learning_curves": "Fig. 2 learning curves", "parametric": "Fig. 3 parametric plot",
        "sweep": "Fig. 4 batch-size sweep"}
    # captions are templates the notebook fills; the published sources are in them already
    assert outs["table2_accuracy"].fields == ["train_set"] and "Keskar et al. 2017, Table 2" in outs["table2_accuracy"].caption
    assert set(outs["parametric"].fields) == {"train_set", "alpha_min", "alpha_max", "seed"}
    assert outs["table4_sharpness_subspace"].fill(subspace_dim=100).startswith(
        "Table 4 sharpness: ε-sharpness in random 100-dim subspaces")


def test_the_module_the_snakefile_imports_stays_light():
    import subprocess
    import sys

    code = ("import sys, largebatch.experiments.keskar; "
            "print(sorted(m for m in ('numpy', 'pandas', 'torch', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


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
    doc = M.run_sharpness(model, x, y, eval_bn="batch", epsilons=[1e-3, 5e-4], subspace_dim=4, max_iter=3,
                          seed=0, hessian_iters=5)
    cols = sharpness_columns(doc)
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
    batch = M.run_sharpness(model, x, y, eval_bn="batch", **kw)
    running = M.run_sharpness(model, x, y, eval_bn="running", **kw)
    with M.bn_mode(model, "running"):
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
    rows = M.parametric_rows(model, a.state_dict(), b.state_dict(), data, [-1.0, 0.0, 0.5, 1.0, 2.0],
                             eval_bn="running", eval_batch=64)
    assert [r["alpha"] for r in rows] == [-1.0, 0.0, 0.5, 1.0, 2.0]
    for alpha, ref in ((0.0, a), (1.0, b)):
        row = next(r for r in rows if r["alpha"] == alpha)
        assert row["train_loss"] == pytest.approx(evaluate(ref, data.x_train, data.y_train, 64, "running")[0], rel=1e-5)
        assert row["test_acc"] == pytest.approx(evaluate(ref, data.x_test, data.y_test, 64, "running")[1])


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
