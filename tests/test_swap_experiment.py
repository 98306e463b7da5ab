"""SWAP's declaration (largebatch.experiments.swap): the runs it plans, its jobs (phase 3 per
seed, the analysis), the section's inputs and outputs, and that it stays light to import."""

import ast
import copy
from pathlib import Path

import pytest

from largebatch import paths
from largebatch.experiments import PAPERS, ConfigError, build_plan, build_registry
from largebatch.experiments import swap as S

BLOCK = {
    "run": {"dataset": "mnist1d", "model": "mlp", "width": 16, "depth": 2, "optimizer": "sgd", "momentum": 0.9,
            "lr": 0.05, "lr_scaling": "linear", "base_batch": 10, "warmup_epochs": 1, "schedule": "cosine"},
    "small_batch": 10,
    "large_batch": 80,
    "epochs": 4,
    "stop_train_acc": 0.6,
    "phase2_epochs": 1,
    "workers": 3,
    "seeds": [0, 1],
    "claims": {"S1": {"margin_pp": 1.0}, "S2": {"margin_pp": 1.0}, "S3": {"margin_ratio": 0.1},
               "S4": {"margin_pp": 1.0}},
    "preconditions": {"baseline_train_acc_min_pp": 95},
}


def config(block=BLOCK, job_seconds=0):
    return {"scale": "t", "papers": ["swap"], "packing": {"job_seconds": job_seconds}, "scales": {"t": {
        "datasets": {"mnist1d": {"kind": "mnist1d", "num_samples": 1000}},
        "defaults": {"eval_batch": 512}, "swap": copy.deepcopy(block)}}}


def test_plan_phases_and_baselines():
    runs, tables = build_registry(config())
    rows = tables["swap"]
    assert len(rows) == 2 * (3 + 3)  # per seed: SB, LB, phase 1, 3 workers
    for seed in (0, 1):
        mine = {(r["arm"], r["worker"]): runs[r["run"]] for r in rows if r["seed"] == seed}
        sb, lb, p1 = mine[("SB", -1)], mine[("LB", -1)], mine[("phase1", -1)]
        assert sb["batch_size"] == 10 and lb["batch_size"] == 80 and sb["epochs"] == lb["epochs"] == 4
        # phase 1 is the LB run with the stopping threshold and nothing else changed
        assert p1["stop_train_acc"] == 0.6
        assert {k: v for k, v in p1.items() if k != "stop_train_acc"} == {
            k: v for k, v in lb.items() if k != "stop_train_acc"}
        p1_id = next(r["run"] for r in rows if r["seed"] == seed and r["arm"] == "phase1")
        workers = [mine[("worker", w)] for w in range(3)]
        for w in workers:
            # every worker starts from this seed's phase-1 run (an id the registry knows)
            assert w["init_from"] == p1_id and p1_id in runs
            assert w["batch_size"] == 10 and w["epochs"] == 1 and w["schedule"] == "cosine"
            assert w["warmup_epochs"] == 0 and w["lr"] == 0.05 and w["lr_scaling"] == "none"
        data_seeds = [w["data_seed"] for w in workers]
        assert len(set(data_seeds)) == 3 and seed not in data_seeds  # own data order, not phase 1's
    all_data_seeds = [runs[r["run"]]["data_seed"] for r in rows if r["arm"] == "worker"]
    assert len(set(all_data_seeds)) == len(all_data_seeds)


def test_plan_rejects_bad_blocks():
    with pytest.raises(ConfigError, match="large_batch"):
        build_registry(config({**BLOCK, "large_batch": 10}))
    with pytest.raises(ConfigError, match="epochs"):
        build_registry(config({**BLOCK, "run": {**BLOCK["run"], "epochs": 3}}))
    with pytest.raises(ConfigError, match="phase2_epochs"):
        build_registry(config({k: v for k, v in BLOCK.items() if k != "phase2_epochs"}))


def test_jobs_average_each_seed_then_analyse():
    plan = build_plan(config())
    rows, jobs = plan.tables["swap"], {j.name: j for j in plan.jobs["swap"]}
    assert list(jobs) == ["swap_average_0", "swap_average_1", "swap_analysis"]
    for seed in (0, 1):
        job = jobs[f"swap_average_{seed}"]
        workers = S.worker_runs(rows, seed)
        assert len(workers) == 3 and job.params["workers"] == workers and job.params["seed"] == seed
        # phase 3 reads exactly this seed's worker models, in worker order, and the shared dataset
        assert job.input == {"data": paths.data_file("mnist1d"),
                             "workers": [paths.run_file(r, "model.pt") for r in workers]}
        assert job.params["phase1"] == S.run_of(rows, "phase1", seed)
        assert job.params["spec"] == plan.runs[workers[0]] and job.params["bn_batch"] == 10  # default: small batch
        assert job.output == {"metrics": f"results/swap/average/{seed}.json",
                              "model": f"results/swap/average/{seed}.pt"}
    analysis = jobs["swap_analysis"]
    assert analysis.input["averages"] == ["results/swap/average/0.pt", "results/swap/average/1.pt"]
    assert analysis.input["phase1"] == [paths.run_file(S.run_of(rows, "phase1", s), "model.pt") for s in (0, 1)]
    # the script splits the flat worker list by params.workers, seed by seed
    flat = [r for s in analysis.params["seeds"] for r in analysis.params["workers"][s]]
    assert analysis.input["workers"] == [paths.run_file(r, "model.pt") for r in flat]
    assert analysis.params["plane"] == {} and set(analysis.output) == {"curve", "plane", "points"}
    block = {**BLOCK, "bn_batch": 40, "plane": {"grid": 5}}
    analysis = build_plan(config(block)).jobs["swap"][-1]
    assert analysis.params["bn_batch"] == 40 and analysis.params["plane"] == {"grid": 5}


def test_section_reads_every_runs_job_time_and_the_averages():
    plan = build_plan(config())
    io, ids = plan.sections["swap"], list(dict.fromkeys(r["run"] for r in plan.tables["swap"]))
    assert io.input["run_benchmarks"] == [paths.train_benchmark(r) for r in ids]  # no packs: one job per run
    assert io.input["averages"] == ["results/swap/average/0.json", "results/swap/average/1.json"]
    assert io.input["average_benchmarks"] == [paths.benchmark_file("swap", f"swap_average_{s}") for s in (0, 1)]
    jobs = plan.jobs["swap"]
    assert {k: io.input[k] for k in ("curve", "plane", "points")} == jobs[-1].output
    assert set(io.output) == {"section", "claims", "summary", "times", "sanity", "test_accuracy",
                              "accuracy_time", "loss_plane"}


def test_swap_runs_train_alone_even_where_packing_is_on():
    """S3 compares run times: SWAP declares packable=False, so its runs get one job each."""
    plan = build_plan(config(job_seconds=1e6))  # everything that could stack would share a job
    ids = set(dict.fromkeys(r["run"] for r in plan.tables["swap"]))
    assert not PAPERS["swap"].packable and not plan.packs
    assert plan.sections["swap"].input["run_benchmarks"] == [paths.train_benchmark(r) for r in plan.view("swap").ids]
    assert ids


def test_outputs_declare_captions_and_report_labels():
    outs = {o.name: o for o in PAPERS["swap"].outputs_for(BLOCK, {})}
    assert [o.kind for o in outs.values()] == ["table"] * 3 + ["figure"] * 3
    assert outs["test_accuracy"].label == "test accuracy over training" and outs["loss_plane"].label == "loss plane"
    assert outs["accuracy_time"].label is None
    assert outs["sanity"].fill(stop_pct=95.0).count("95% training-accuracy threshold") == 1
    assert "(seed 3)" in outs["loss_plane"].fill(seed=3)
    with pytest.raises(ValueError, match="seed"):
        outs["loss_plane"].fill()


def test_protocol_facts_carry_a_source():
    assert all(paper and source for paper, source in S.PROTOCOL.values())
    assert S.SOURCE.startswith("Gupta, Akle Serrano & DeCoste 2020")


def test_the_declaration_is_light_to_import():
    """The Snakefile imports it while parsing: it imports only the planning modules, at module
    level and nowhere else (no numpy, pandas, torch or matplotlib, no package __init__)."""
    tree = ast.parse(Path(S.__file__).read_text())
    imports = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert all(n in tree.body for n in imports)  # no function-local imports
    assert {(n.level, n.module) for n in imports if isinstance(n, ast.ImportFrom)} == {
        (0, "__future__"), (2, None), (2, "spec"), (1, "base")}
    assert not [n for n in imports if isinstance(n, ast.Import)]
