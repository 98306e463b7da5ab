import pytest

from largebatch.estimate import estimate, forward_flops
from largebatch.spec import normalize


def test_mlp_forward_flops_are_the_matmuls():
    spec = normalize({"model": "mlp", "width": 64, "depth": 3, "epochs": 1})
    expected = 2 * (40 * 64 + 64 * 64 * 2 + 64 * 10)
    assert forward_flops(spec, (1, 40), 10) == pytest.approx(expected)


def test_estimate_grows_with_the_budget():
    import yaml

    from conftest import REPO

    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config.update(scale="tiny", papers=["baseline"])
    small = estimate(config, tflops=1.0, step_ms=0.0)[0]
    config["scales"]["tiny"]["baseline"]["run"]["epochs"] *= 2
    big = estimate(config, tflops=1.0, step_ms=0.0)[0]
    assert small["runs"] == big["runs"] == 6
    assert big["gpu_hours"] == pytest.approx(2 * small["gpu_hours"], rel=0.05)


def _tiny_config():
    import yaml

    from conftest import REPO

    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config.update(scale="tiny", papers=["baseline"])
    return config


def test_measured_step_costs_replace_the_assumed_rates(tmp_path):
    import math

    from largebatch.estimate import cost_key, load_costs
    from largebatch.experiments import build_registry
    from largebatch.gpucheck import cost_entry, step_groups, write_costs

    config = _tiny_config()
    groups = step_groups(config)
    assert sorted(g["spec"]["batch_size"] for g in groups) == [32, 120] and sum(g["runs"] for g in groups) == 6
    ms = {32: 2.0, 120: 5.0}  # made-up per-step costs
    path = tmp_path / "gpu_costs.json"
    write_costs(path, {"device": "test"}, [cost_entry(g, ms[g["spec"]["batch_size"]], 10) for g in groups])
    costs = load_costs(path)
    row = estimate(config, costs=costs)[0]
    runs, _ = build_registry(config)
    steps = {rid: math.ceil(s["epochs"] * (1200 // s["batch_size"])) for rid, s in runs.items()}
    assert row["measured"] == 6 and row["assumed"] == 0
    assert row["gpu_hours"] == pytest.approx(sum(steps[r] * ms[runs[r]["batch_size"]] for r in runs) / 3.6e6)
    # a step missing from the file keeps the assumed rate: those runs cost what they did without the file
    write_costs(path, {"device": "test"}, [cost_entry(g, ms[32], 10) for g in groups if g["spec"]["batch_size"] == 32])
    part = estimate(config, costs=load_costs(path))[0]
    assumed = estimate(config, costs=None)[0]
    assert part["measured"] == 3 and part["assumed"] == 3 and assumed["measured"] == 0
    lb_key = {cost_key(g["spec"], g["kind"]) for g in groups if g["spec"]["batch_size"] == 120}
    sb_assumed = estimate(config, costs={"step_ms": dict.fromkeys(lb_key, 0.0)})[0]["gpu_hours"]
    lb_assumed = assumed["gpu_hours"] - sb_assumed
    sb_measured = sum(steps[r] * ms[32] for r in runs if runs[r]["batch_size"] == 32) / 3.6e6
    assert lb_assumed > 0 and part["gpu_hours"] == pytest.approx(sb_measured + lb_assumed)


def test_estimate_command_says_where_its_costs_come_from(tmp_path, capsys):
    from conftest import REPO
    from largebatch.estimate import main
    from largebatch.gpucheck import cost_entry, step_groups, write_costs

    path = tmp_path / "gpu_costs.json"
    args = ["--config", str(REPO / "config.yaml"), "--scale", "tiny", "--papers", "baseline", "--costs", str(path)]
    main(args)
    out = capsys.readouterr().out
    assert "assumed 25 TFLOP/s, 1.5 ms/step (no measured costs" in out
    write_costs(path, {"device": "NVIDIA Test", "autocast": "bf16", "channels_last": True, "date": "today"},
                [cost_entry(g, 1000.0, 10) for g in step_groups(_tiny_config())])
    main(args)
    out = capsys.readouterr().out
    assert "measured by `make gpu-check`" in out and "NVIDIA Test" in out
    assert "| baseline | 6 | 6 | 0 |" in out
    main([*args, "--no-costs"])
    assert "no measured costs" in capsys.readouterr().out


def test_malformed_costs_file_names_the_problem_and_the_fix(tmp_path):
    from largebatch.estimate import load_costs

    path = tmp_path / "gpu_costs.json"
    path.write_text('{"entries": [{"dataset": "cifar10", "model": "resnet"}]}')
    with pytest.raises(ValueError, match=r"gpu_costs.json: entries\[0\] lacks width, .*step_ms; rerun `make gpu-check`"):
        load_costs(path)
    path.write_text("not json")
    with pytest.raises(ValueError, match="cannot read measured GPU costs.*delete"):
        load_costs(path)


def test_step_timing_gives_an_entry_estimate_reads(tmp_path):
    import torch

    from largebatch.estimate import cost_key, load_costs
    from largebatch.gpucheck import cost_entry, time_step, write_costs

    spec = normalize({"model": "shallow_conv", "width": 4, "batch_size": 16, "epochs": 1, "optimizer": "sgd",
                      "lr": 0.1, "augment": "crop_flip", "multiplicity": 2})
    ms = time_step(spec, "cifar10", 50000, torch.device("cpu"), steps=2, warmup=1, pool=64)
    assert ms > 0
    group = {"spec": spec, "kind": "cifar10", "n_train": 50000, "runs": 1}
    entry = cost_entry(group, ms, 2)
    assert entry["steps_per_epoch"] == 3125 and entry["epoch_s"] == pytest.approx(ms * 3125 / 1000)
    write_costs(tmp_path / "c.json", {}, [entry])
    assert load_costs(tmp_path / "c.json")["step_ms"] == {cost_key(spec, "cifar10"): ms}


def test_gpu_check_without_a_gpu_says_so_and_exits_0(tmp_path):
    import os
    import subprocess
    import sys

    out = tmp_path / "gpu_costs.json"
    proc = subprocess.run([sys.executable, "-m", "largebatch.gpucheck", "--out", str(out)], capture_output=True,
                          text=True, env={**os.environ, "CUDA_VISIBLE_DEVICES": ""}, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "no CUDA device is visible" in proc.stdout and "nothing written" in proc.stdout
    assert not out.exists()


def test_gpu_check_rehearsal_hook_plans_the_rehearsal_on_cuda(tmp_path, monkeypatch):
    import subprocess

    from conftest import LOCAL_ENV, REPO
    from largebatch.gpucheck import prepare_rehearsal, run_rehearsal

    monkeypatch.chdir(REPO)
    missing = run_rehearsal(str(tmp_path / "no-such-overlay.yaml"), tmp_path / "wd", "1")
    assert missing["status"].startswith("skipped: rehearsal overlay") and not (tmp_path / "wd").exists()
    overlay = REPO / "config" / "rehearsal.yaml"
    if not overlay.exists():
        pytest.skip("config/rehearsal.yaml (the rehearsal overlay) does not exist yet")
    cmd = prepare_rehearsal(str(overlay), tmp_path / "wd", "1")
    assert cmd[-3:] == ["device=cuda", "autocast=bf16", "channels_last=True"]
    import yaml

    root = yaml.safe_load(overlay.read_text()).get("data_root")
    if root:  # the fixture datasets are written where the overlay reads them
        assert any((tmp_path / "wd" / root).rglob("*"))
    plan = subprocess.run([*cmd, "-n"], cwd=tmp_path / "wd", capture_output=True, text=True, env=LOCAL_ENV,
                          timeout=600)
    assert plan.returncode == 0, plan.stdout[-2000:] + plan.stderr[-2000:]
    assert "report" in plan.stdout
