"""Masters & Luschi 2018: the run plan (linear scaling, grid, separate selection and test seeds,
ghost BN, warm-up) and the declaration (outputs by study, the section's benchmark inputs).
The analysis behind the claims is tested in test_analysis_masters_luschi.py."""

import ast
import copy
from pathlib import Path

import pytest
import yaml

from largebatch import paths
from largebatch.experiments import build_plan, build_registry
from largebatch.experiments import masters_luschi as ml
from largebatch.spec import effective_lr, normalize, run_id

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


def test_config_blocks_plan_the_required_sweep():
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    for scale in ("tiny", "cpu", "paper"):
        cfg = {**config, "scale": scale, "papers": ["masters_luschi"]}
        runs, tables = build_registry(cfg)
        sweep = [r for r in tables["masters_luschi"] if r["part"] == "sweep"]
        assert {r["seed"] for r in sweep} >= {0, 1} and {r["norm"] for r in sweep} == {"batch", "none"}
        if scale != "tiny":
            ms = sorted({r["m"] for r in sweep})
            assert ms[0] == 2 and ms[-1] >= 1024 and all(b == 2 * a for a, b in zip(ms, ms[1:]))
    cpu = build_registry({**config, "scale": "cpu", "papers": ["masters_luschi"]})[1]["masters_luschi"]
    assert not any("pack" in r for r in cpu)  # packing is largebatch.packing's, not a label of the plan
    # power (issue 16): >= 3 selection seeds per grid cell, >= 5 separate test seeds per compared arm,
    # and the paper's eta_base grid up to 2^0
    sweep = [r for r in cpu if r["part"] == "sweep"]
    assert len({r["seed"] for r in sweep if r["seed_role"] == "select"}) >= 3
    assert len({r["seed"] for r in sweep if r["seed_role"] == "test"}) >= 5
    assert max(r["lr_log2"] for r in sweep) == 0


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
