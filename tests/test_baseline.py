"""The batch-size baseline's declaration: its run plan (SB and LB arms, every seed, the same
spec but the batch size; a spec that equals Keskar's F1 runs is trained once) and its
section's tables and figures. Its claims are tested in test_analysis_baseline.py."""

import copy

import yaml

from largebatch.experiments import build_plan, build_registry

BLOCK = {"run": {"dataset": "mnist1d", "model": "mlp", "width": 16, "depth": 2, "optimizer": "adam", "lr": 0.001,
                 "epochs": 2},
         "small_batch": 24, "large_batch": 120, "seeds": [0, 1, 2], "similar_train_acc_pp": 2.0,
         "claims": {"B1": {"margin_pp": 0.22}, "B2": {"margin_pp": 0.22}}}


def config(block=BLOCK, papers=("baseline",)):
    return {"scale": "s", "papers": list(papers), "packing": {"job_seconds": 0},
            "scales": {"s": {"gpu": False, "datasets": {"mnist1d": {"kind": "mnist1d", "num_samples": 1500}},
                             "baseline": copy.deepcopy(block)}}}


def test_plan_has_both_arms_at_every_seed_differing_only_in_the_batch():
    runs, tables = build_registry(config())
    rows = tables["baseline"]
    assert [(r["arm"], r["batch_size"], r["seed"]) for r in rows] == [
        (a, b, s) for a, b in (("SB", 24), ("LB", 120)) for s in (0, 1, 2)]
    by = {(r["arm"], r["seed"]): runs[r["run"]] for r in rows}
    for s in (0, 1, 2):
        sb, lb = by[("SB", s)], by[("LB", s)]
        assert {k for k in sb if sb[k] != lb[k]} == {"batch_size"}


def test_declaration_has_no_jobs_and_its_two_items():
    plan = build_plan(config())
    assert plan.jobs["baseline"] == []
    outs = {o.name: o for o in plan.outputs["baseline"]}
    assert {n: o.kind for n, o in outs.items()} == {"summary": "table", "learning_curves": "figure"}
    assert outs["learning_curves"].label == "learning curves" and not outs["summary"].fields
    assert plan.sections["baseline"].output["summary"] == "results/baseline/tables/summary.csv"


def test_at_the_cpu_and_mnist_scales_the_baseline_shares_keskars_f1_runs():
    cfg = yaml.safe_load(open("config.yaml"))
    for scale in ("cpu", "mnist"):
        runs, tables = build_registry({**cfg, "scale": scale, "papers": ["baseline", "keskar"]})
        base = {r["run"] for r in tables["baseline"]}
        f1 = {r["run"] for r in tables["keskar"] if r["main"] and r["network"] == "F1"}
        assert base == f1, scale
