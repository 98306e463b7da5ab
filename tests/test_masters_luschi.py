"""Masters & Luschi 2018: the run plan (plain SGD, linear scaling, grid, networks, separate
selection and test seeds, ghost BN, warm-up, one stack per (network, norm, m)) and the declaration (outputs by study, the section's benchmark inputs).
The analysis behind the claims is tested in test_analysis_masters_luschi.py."""

import ast
import copy
from pathlib import Path

import pytest
import yaml

from largebatch import paths
from largebatch.experiments import build_plan, build_registry
from largebatch.experiments import masters_luschi as ml
from largebatch.spec import effective_lr, group_key, normalize, run_id

REPO = Path(__file__).resolve().parents[1]

SCALE = {"datasets": {"d": {"kind": "mnist1d", "num_samples": 2200, "train_split": 0.5, "seed": 1}}}  # 1,100 train
BLOCK = {
    "run": {"dataset": "d", "optimizer": "sgd", "momentum": 0.0, "epochs": 8, "schedule": "step",
            "milestones": [4, 6]},
    "networks": {"alex": {"model": "shallow_conv", "width": 2, "weight_decay": 5e-4},
                 "res": {"model": "resnet", "depth": 8, "width": 2, "weight_decay": 1e-4}},
    "batch_sizes": [2, 4, 8, 16, 32, 64, 128, 256],
    "base_lrs_log2": [-9, -7, -5],
    "norms": ["batch", "none"],
    "seeds": [0, 1],
    "test_seeds": [5, 6, 7],
    "bn_batch": {"network": "res", "batch_sizes": [16, 64], "bn_batch_sizes": [2, 4, 8, 16, 32], "base_lrs_log2": [-7],
                 "reference": 4},
    "warmup": {"batch_sizes": [128, 256], "epochs": 0.5},
    "stable_tolerance_pp": 5.0,
}


def plan(block=BLOCK):
    return ml.plan(copy.deepcopy(block), SCALE)


def test_sweep_uses_linear_scaling_over_the_full_grid():
    rows = [(l, normalize(s)) for l, s in plan() if l["part"] == "sweep"]
    cells = {(l["net"], l["norm"], l["m"], l["lr_log2"], l["seed"]) for l, _ in rows}
    assert len(cells) == len(rows) == 2 * 2 * 8 * 3 * 5  # every (net, norm, m, eta_base, seed) once
    for labels, spec in rows:
        # eta = m * eta_base: the same average update per gradient computation
        assert effective_lr(spec) == pytest.approx(labels["m"] * 2.0 ** labels["lr_log2"])
        assert spec["batch_size"] == labels["m"] and spec["norm"] == labels["norm"]
        assert spec["optimizer"] == "sgd" and spec["momentum"] == 0  # the paper's plain SGD
        # each network's own keys (model, its weight decay) over the shared run keys
        assert spec["model"] == BLOCK["networks"][labels["net"]]["model"]
        assert spec["weight_decay"] == BLOCK["networks"][labels["net"]]["weight_decay"]
        assert spec["epochs"] == 8 and spec["warmup_epochs"] == 0  # fixed epoch budget for every m
        assert spec["milestones"] == [4, 6]  # lr /10 at 50% and 75%


def test_every_run_of_a_network_norm_and_batch_size_stacks_in_one_group():
    """lr, seed and warm-up are free keys: all eta_base x seeds (and the warm-up runs) of one
    (network, norm, m) share one spec.group_key, so the vectorised trainer can stack them."""
    keys = {}
    for l, s in plan():
        if l["part"] in ("sweep", "warmup"):
            keys.setdefault((l["net"], l["norm"], l["m"]), set()).add(group_key(s))
    assert len(keys) == 2 * 2 * 8 and all(len(k) == 1 for k in keys.values())
    assert len({k for ks in keys.values() for k in ks}) == len(keys)  # and different cells differ


def test_bn_batch_runs_use_ghost_bn_and_share_the_full_batch_runs():
    rows = plan()
    sweep_ids = {run_id(s) for l, s in rows if l["part"] == "sweep"}
    bn = [(l, normalize(s)) for l, s in rows if l["part"] == "bn_batch"]
    assert {l["net"] for l, _ in bn} == {"res"} and {s["model"] for _, s in bn} == {"resnet"}
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
    assert {l["m"] for l, _ in warm} == {128, 256} and len(warm) == 2 * 2 * 2 * 3 * 5
    sweep = {(l["net"], l["norm"], l["m"], l["lr_log2"], l["seed"]): normalize(s)
             for l, s in rows if l["part"] == "sweep"}
    for labels, spec in warm:
        twin = dict(sweep[(labels["net"], labels["norm"], labels["m"], labels["lr_log2"], labels["seed"])])
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
                roles.setdefault((l["net"], l["norm"], l["m"], l["lr_log2"]), set()).add(l["seed_role"])
        assert all(r == {"select", "test"} for r in roles.values())
    # the BN-batch study tests only m_BN = reference (4) and m_BN = m, the cells claim M5 compares
    tested = {(l["m"], l["m_bn"]) for l, _ in rows if l["part"] == "bn_batch" and l["seed_role"] == "test"}
    assert tested == {(16, 4), (16, 16), (64, 4), (64, 64)}
    with pytest.raises(ValueError, match="separate"):
        plan({**BLOCK, "test_seeds": [1, 9]})


@pytest.mark.parametrize("change, message", [
    ({"bn_batch": {"batch_sizes": [24], "bn_batch_sizes": [16], "base_lrs_log2": [-7]}}, "does not divide"),
    ({"warmup": {"batch_sizes": [64], "epochs": 8}}, "shorter than the budget"),
    ({"run": {**BLOCK["run"], "optimizer": "adam"}}, "SGD"),
    ({"run": {**BLOCK["run"], "momentum": 0.9}}, "momentum"),  # the paper: plain SGD
    ({"bn_batch": {**BLOCK["bn_batch"], "network": "vgg"}}, "not one of networks"),
    ({"base_lrs_log2": [-7, 0.5]}, "integer"),
    ({"norms": ["ghost"]}, "choose batch or none"),
])
def test_bad_blocks_are_rejected_with_the_key(change, message):
    with pytest.raises(ValueError, match=message):
        plan({**BLOCK, **change})


def test_config_blocks_plan_the_required_sweep():
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    for scale in ("tiny", "cpu", "paper"):
        cfg = {**config, "scale": scale, "papers": ["masters_luschi"]}
        runs, tables = build_registry(cfg)
        sweep = [r for r in tables["masters_luschi"] if r["part"] == "sweep"]
        assert {r["seed_role"] for r in sweep} == {"select", "test"} and {r["norm"] for r in sweep} == {"batch", "none"}
        specs = [runs[r["run"]] for r in sweep]
        assert all(s["optimizer"] == "sgd" and s["momentum"] == 0 for s in specs)  # the paper's plain SGD
        if scale != "tiny":
            ms = sorted({r["m"] for r in sweep})
            assert ms[0] == 2 and ms[-1] >= 128 and all(b == 2 * a for a, b in zip(ms, ms[1:]))
            # the paper's budget shape: 82 epochs (CIFAR-10), lr /10 at 50% and 75%
            assert all(s["epochs"] == 82 and s["milestones"] == [41, 61.5] for s in specs)
    cpu = build_registry({**config, "scale": "cpu", "papers": ["masters_luschi"]})
    runs, cpu = cpu[0], cpu[1]["masters_luschi"]
    assert not any("pack" in r for r in cpu)  # packing is largebatch.packing's, not a label of the plan
    # issue 17: the paper's conv nets (AlexNet- and ResNet-8-style), each with and without BN, with
    # the paper's weight decays; >= 3 test seeds per compared arm; the paper's eta_base grid 2^-12..2^0
    sweep = [r for r in cpu if r["part"] == "sweep"]
    models = {(r["net"], runs[r["run"]]["model"], runs[r["run"]]["weight_decay"]) for r in sweep}
    assert models == {("alexnet", "shallow_conv", 5e-4), ("resnet8", "resnet", 1e-4)}
    assert {runs[r["run"]]["depth"] for r in sweep if r["net"] == "resnet8"} == {8}
    assert len({r["seed"] for r in sweep if r["seed_role"] == "test"}) >= 3
    assert sorted({r["lr_log2"] for r in sweep}) == list(range(-12, 1))
    # warm-up over the first 5% of the 82 epochs
    warm = {runs[r["run"]]["warmup_epochs"] for r in cpu if r["part"] == "warmup"}
    assert len(warm) == 1 and warm.pop() == pytest.approx(0.05 * 82)


# ------------------------------------------------------------------------------ declaration

def test_outputs_follow_the_studies_of_the_block():
    names = [o.name for o in ml.PAPER.outputs_for(BLOCK, SCALE)]
    assert names == ["accuracy_heatmap", "best_vs_m", "stable_range", "per_batch_size", "sweep_cells",
                     "bn_batch_accuracy", "bn_batch", "warmup", "timing"]
    bare = {k: v for k, v in BLOCK.items() if k not in ("bn_batch", "warmup")}
    assert [o.name for o in ml.PAPER.outputs_for(bare, SCALE)] == [
        "accuracy_heatmap", "best_vs_m", "stable_range", "per_batch_size", "sweep_cells", "timing"]
    labels = {o.name: o.label for o in ml.PAPER.outputs_for(BLOCK, SCALE) if o.kind == "figure"}
    assert all(labels.values())  # every figure is flagged for `snakemake --report`
    # the captions are templates the notebook fills; a missing field is an error, not a blank
    out = {o.name: o for o in ml.PAPER.outputs_for(BLOCK, SCALE)}
    assert "within 5 points" in out["stable_range"].fill(tol=5.0)
    assert "m = [128, 256]" in out["warmup"].fill(epochs=0.5, batch_sizes=[128, 256])
    with pytest.raises(ValueError, match="ref"):
        out["bn_batch"].fill()


def _config(scale: str, **extra) -> dict:
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    return {**config, "scale": scale, "papers": ["masters_luschi"], **extra}


@pytest.mark.parametrize("job_seconds", [0, 150])
def test_section_reads_the_benchmark_of_the_job_that_trained_each_run(job_seconds):
    plan = build_plan(_config("tiny", packing={"job_seconds": job_seconds}))
    io = plan.sections["masters_luschi"]
    ids = list(dict.fromkeys(r["run"] for r in plan.tables["masters_luschi"]))
    bench = io.input["benchmarks"]
    assert len(bench) == len(ids) == len(io.input["metrics"])  # one per run, aligned with the run ids
    pack_of = {r: p for p, members in plan.packs.items() for r in members}
    for rid, path in zip(ids, bench):
        assert path == (paths.pack_benchmark(pack_of[rid]) if rid in pack_of else paths.train_benchmark(rid))
    if job_seconds:
        assert plan.packs and set(bench) == {paths.pack_benchmark(p) for p in plan.packs}
    else:
        assert not plan.packs and len(set(bench)) == len(ids)
    assert io.output["bn_batch"].endswith("tables/bn_batch.csv")
    assert io.output["bn_batch_accuracy"].endswith("figures/bn_batch_accuracy.png")
    assert plan.jobs["masters_luschi"] == []  # no analysis job besides the section


def test_the_declaration_imports_no_numerical_library():
    """The Snakefile imports the paper modules at parse time: planning stays light (it imports
    only the declaration helpers, at module level and nowhere else)."""
    tree = ast.parse((REPO / "src/largebatch/experiments/masters_luschi.py").read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add("." * node.level + (node.module or ""))
    assert imported == {"__future__", ".base"}
