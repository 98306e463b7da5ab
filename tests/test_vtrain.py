"""Vectorised packs (largebatch.vtrain): a stack of runs gives each run what train_run gives it.

Tolerance (stated in README "Performance"): with SGD (+ momentum) every history column and
every weight agree with sequential train_run to 1e-5; with Adam the mini-batch losses agree
to 1e-5 but evaluated losses only to 1e-2 and accuracies to 3 test samples, because the
bias of a Linear layer followed by BatchNorm has a zero gradient up to rounding, which
Adam normalises into full-size steps: vmap's batched products round differently, so those
biases walk differently (the running means absorb most of it).
"""

import json
import re

import pandas as pd
import pytest
import torch

from largebatch.train import HISTORY_COLUMNS, train_run
from largebatch.vtrain import (MAX_STEP_FLOPS, group_key, plan_groups, prefer_vectorised, step_flops, train_group,
                               train_many)

QUIET = dict(checkpoint_every_s=None, log=lambda s: None)
BASE = {"model": "mlp", "width": 16, "depth": 2, "batch_size": 32, "epochs": 2}


def history(path):
    return pd.read_csv(path / "history.csv").drop(columns="wall_s")


def sequential(specs, data, root):
    return [train_run(s, data, root / f"s{i}", **QUIET) for i, s in enumerate(specs)]


def stacked(specs, data, root, **kw):
    return train_group(specs, data, [root / f"v{i}" for i in range(len(specs))], **{**QUIET, **kw})


def test_sgd_stack_matches_sequential_runs(tiny_data, tmp_path):
    base = {**BASE, "optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "augment": "mnist1d", "multiplicity": 2,
            "max_grad_norm": 5.0}
    specs = [{**base, "seed": 0},
             {**base, "seed": 1, "lr": 0.15, "data_seed": 7, "nesterov": False},
             {**base, "seed": 2, "schedule": "cosine", "warmup_epochs": 0.5}]
    assert len({group_key(s) for s in specs}) == 1
    ref = sequential(specs, tiny_data, tmp_path)
    got = stacked(specs, tiny_data, tmp_path)
    for i, (a, b) in enumerate(zip(ref, got)):
        assert b["status"] == "ok" and b["steps"] == a["steps"] == 2 * (480 // 32)
        ha, hb = history(tmp_path / f"s{i}"), history(tmp_path / f"v{i}")
        assert list(hb.columns) == list(ha.columns) and len(ha) == len(hb)
        pd.testing.assert_frame_equal(ha, hb, check_exact=False, atol=1e-5, rtol=0)
        wa = torch.load(tmp_path / f"s{i}" / "model.pt", weights_only=True)
        wb = torch.load(tmp_path / f"v{i}" / "model.pt", weights_only=True)
        assert wa.keys() == wb.keys()
        for k in wa:  # weights and BatchNorm running statistics of each run
            torch.testing.assert_close(wb[k], wa[k], atol=1e-5, rtol=0)
    # the three runs really differ (own lr, init and data order)
    assert len({round(m["test_loss"], 6) for m in got}) == 3


def test_adam_stack_matches_sequential_runs_within_tolerance(tiny_data, tmp_path):
    base = {**BASE, "optimizer": "adam", "lr": 3e-3}
    specs = [{**base, "seed": 0}, {**base, "seed": 1, "lr": 1e-2}]
    ref = sequential(specs, tiny_data, tmp_path)
    got = stacked(specs, tiny_data, tmp_path)
    for i in range(2):
        ha, hb = history(tmp_path / f"s{i}"), history(tmp_path / f"v{i}")
        pd.testing.assert_series_equal(ha.batch_loss, hb.batch_loss, atol=1e-5, rtol=0)
        for col in ("train_loss", "test_loss"):
            pd.testing.assert_series_equal(ha[col], hb[col], atol=1e-2, rtol=0)
        assert (ha.test_acc - hb.test_acc).abs().max() <= 3 / 120 + 1e-9
        assert abs(ref[i]["w_dist"] - got[i]["w_dist"]) < 1e-2 * ref[i]["w_dist"]


def test_ghost_batch_norm_stack_matches_sequential_runs(tiny_data, tmp_path):
    base = {**BASE, "epochs": 1, "optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "norm": "ghost",
            "ghost_batch_size": 8}
    specs = [{**base, "seed": 0}, {**base, "seed": 1, "lr": 0.1}]
    sequential(specs, tiny_data, tmp_path)
    stacked(specs, tiny_data, tmp_path)
    for i in range(2):
        pd.testing.assert_frame_equal(history(tmp_path / f"s{i}"), history(tmp_path / f"v{i}"),
                                      check_exact=False, atol=1e-5, rtol=0)
        wa = torch.load(tmp_path / f"s{i}" / "model.pt", weights_only=True)
        wb = torch.load(tmp_path / f"v{i}" / "model.pt", weights_only=True)
        for k in wa:  # includes each ghost layer's running statistics
            torch.testing.assert_close(wb[k], wa[k], atol=1e-5, rtol=0)


def test_resnet_batch_norm_stack_matches_sequential_runs(tiny_data, tmp_path):
    """The 1-D ResNet (residual blocks, BatchNorm) stacks (as one grouped network): the same
    curves and weights, running statistics included, as one run at a time (Masters & Luschi's grid)."""
    base = {"model": "resnet", "depth": 8, "width": 4, "norm": "batch", "batch_size": 8, "epochs": 1,
            "optimizer": "sgd", "lr": 0.02, "momentum": 0.0, "weight_decay": 1e-4}
    specs = [{**base, "seed": 0}, {**base, "seed": 1, "lr": 0.05}, {**base, "seed": 2}]
    assert prefer_vectorised(specs[0], 3) and not prefer_vectorised({**specs[0], "batch_size": 256}, 3)
    sequential(specs, tiny_data, tmp_path)
    stacked(specs, tiny_data, tmp_path)
    for i in range(3):
        pd.testing.assert_frame_equal(history(tmp_path / f"s{i}"), history(tmp_path / f"v{i}"),
                                      check_exact=False, atol=1e-4, rtol=0)
        wa = torch.load(tmp_path / f"s{i}" / "model.pt", weights_only=True)
        wb = torch.load(tmp_path / f"v{i}" / "model.pt", weights_only=True)
        for k in wa:
            torch.testing.assert_close(wb[k].float(), wa[k].float(), atol=1e-4, rtol=0)


def test_same_stack_same_numbers(tiny_data, tmp_path):
    """A rerun of a pack reproduces it bit for bit.  (Its companions may change a run's last
    bits: batched products can round differently for another number of runs.)"""
    base = {**BASE, "epochs": 1, "optimizer": "adam", "lr": 3e-3, "augment": "mnist1d"}
    specs = [{**base, "seed": k, "lr": 3e-3 * (1 + k)} for k in range(3)]
    stacked(specs, tiny_data, tmp_path / "a")
    stacked(specs, tiny_data, tmp_path / "b")
    for i in range(3):
        pd.testing.assert_frame_equal(history(tmp_path / "a" / f"v{i}"), history(tmp_path / "b" / f"v{i}"))


def test_outputs_are_the_files_train_run_writes(tiny_data, tmp_path):
    spec = {**BASE, "epochs": 1, "optimizer": "adam", "lr": 1e-3}
    ref = train_run(spec, tiny_data, tmp_path / "s", **QUIET)
    got = train_group([spec, {**spec, "seed": 5}], tiny_data, [tmp_path / "v", tmp_path / "w"], **QUIET)[0]
    assert sorted(p.name for p in (tmp_path / "v").iterdir()) == sorted(p.name for p in (tmp_path / "s").iterdir())
    assert (tmp_path / "v" / "spec.json").read_text() == (tmp_path / "s" / "spec.json").read_text()
    assert list(pd.read_csv(tmp_path / "v" / "history.csv").columns) == HISTORY_COLUMNS
    assert set(got) == set(ref) and got["run"] == ref["run"]
    assert json.loads((tmp_path / "v" / "metrics.json").read_text())["test_acc"] == got["test_acc"]
    assert not (tmp_path / "v" / "checkpoint.pt").exists()


def test_a_diverging_or_stopping_run_leaves_the_others_going(tiny_data, tmp_path):
    base = {**BASE, "epochs": 3, "optimizer": "sgd", "lr": 0.05, "norm": "none"}
    specs = [{**base, "lr": 1e6},  # diverges
             {**base, "seed": 1, "stop_train_acc": 0.05},  # stops at its first evaluation
             {**base, "seed": 2},
             {**base, "seed": 3, "lr": 0.02}]
    ref = sequential(specs, tiny_data, tmp_path)
    got = stacked(specs, tiny_data, tmp_path)
    assert got[0]["status"] == "diverged" and got[0]["steps"] == ref[0]["steps"] < 3 * 15
    assert got[1]["stop_reason"] == "train_acc" and got[1]["steps"] == ref[1]["steps"] == 15
    for i in (2, 3):
        assert got[i]["status"] != "diverged" and got[i]["steps"] == 3 * 15
        pd.testing.assert_frame_equal(history(tmp_path / f"s{i}"), history(tmp_path / f"v{i}"),
                                      check_exact=False, atol=1e-5, rtol=0)
    for i in range(4):
        assert (tmp_path / f"v{i}" / "model.pt").exists() and (tmp_path / f"v{i}" / "metrics.json").exists()


def test_a_shrunk_stack_hands_its_last_runs_to_train_run(tiny_data, tmp_path):
    base = {**BASE, "epochs": 3, "optimizer": "sgd", "lr": 0.05, "momentum": 0.9}
    specs = [{**base, "seed": 1, "stop_train_acc": 0.05},  # stops at its first evaluation (step 15)
             {**base, "seed": 2}, {**base, "seed": 3, "lr": 0.02}]
    ref = sequential(specs, tiny_data, tmp_path)
    logs = []
    got = train_group(specs, tiny_data, [tmp_path / f"v{i}" for i in range(3)], checkpoint_every_s=None,
                      log=logs.append, min_stack=3)
    assert any("stack down to 2 run(s) at step 15" in line for line in logs)
    assert sum(line.startswith("resumed") for line in logs) == 2
    for i in range(3):
        assert got[i]["steps"] == ref[i]["steps"]
        pd.testing.assert_frame_equal(history(tmp_path / f"s{i}"), history(tmp_path / f"v{i}"),
                                      check_exact=False, atol=1e-5, rtol=0)
        assert not (tmp_path / f"v{i}" / "checkpoint.pt").exists()


class Interrupt(Exception):
    pass


def kill_at(n):
    """An ``on_step`` that kills the job (raises Interrupt) at step n."""
    def on_step(step):
        if step == n:
            raise Interrupt
    return on_step


def test_killed_pack_resumes_and_finished_runs_are_rebuilt_without_training(tiny_data, tmp_path):
    base = {**BASE, "epochs": 3, "optimizer": "sgd", "lr": 0.05, "momentum": 0.9}
    specs = [{**base, "seed": s} for s in range(3)]
    dirs = [tmp_path / f"r{i}" for i in range(3)]
    ref = stacked(specs, tiny_data, tmp_path / "ref")
    with pytest.raises(Interrupt):  # checkpoint after every step, die mid-epoch
        train_group(specs, tiny_data, dirs, checkpoint_every_s=0.0, on_step=kill_at(20), log=lambda s: None)
    assert all((d / "checkpoint.pt").exists() and not (d / "metrics.json").exists() for d in dirs)
    logs = []
    res = train_many(specs, {"mnist1d": tiny_data}, dirs, checkpoint_every_s=60, log=logs.append)
    assert sum(line.startswith("resumed") for line in logs) == 3  # each checkpoint picked up
    # as one stack, from the last checkpoint (written after step 19: the kill came before step 20's)
    assert any("stack of 3 runs" in line and "resumed at step 19" in line for line in logs)
    for i in range(3):  # with the numbers of the uninterrupted stack
        assert res[i]["steps"] == ref[i]["steps"]
        assert res[i]["test_loss"] == pytest.approx(ref[i]["test_loss"], abs=1e-6)
        pd.testing.assert_frame_equal(history(dirs[i]), history(tmp_path / "ref" / f"v{i}"), check_exact=False,
                                      atol=1e-6, rtol=0)
        assert (dirs[i] / "checkpoint.pt").exists()  # final checkpoint kept for rebuilds
    # the job dies later; Snakemake deletes the outputs of the failed job; a rerun rebuilds them
    for d in dirs:
        for name in ("metrics.json", "history.csv", "model.pt", "spec.json"):
            (d / name).unlink()
    logs.clear()
    again = train_many(specs, {"mnist1d": tiny_data}, dirs, checkpoint_every_s=60, log=logs.append)
    for a, b in zip(res, again):
        assert {k: v for k, v in a.items() if k not in ("wall_s", "steps_per_s")} == \
               {k: v for k, v in b.items() if k not in ("wall_s", "steps_per_s")}
    assert sum(f"at step {3 * 15}/{3 * 15}" in line for line in logs if line.startswith("resumed")) == 3


def test_checkpoints_of_different_steps_resume_one_by_one(tiny_data, tmp_path):
    base = {**BASE, "epochs": 3, "optimizer": "adam", "lr": 0.01}
    specs = [{**base, "seed": s} for s in range(4)]
    dirs = [tmp_path / f"r{i}" for i in range(4)]
    ref = stacked(specs, tiny_data, tmp_path / "ref")
    with pytest.raises(Interrupt):
        train_group(specs[:3], tiny_data, dirs[:3], checkpoint_every_s=0.0, on_step=kill_at(12), log=lambda s: None)
    with pytest.raises(Interrupt):  # the fourth run got further alone
        train_run(specs[3], tiny_data, dirs[3], checkpoint_every_s=0.0, on_step=kill_at(17), log=lambda s: None)
    logs = []
    res = train_many(specs, {"mnist1d": tiny_data}, dirs, checkpoint_every_s=60, log=logs.append)
    assert any("stack of 3 runs" in line and "resumed at step 11" in line for line in logs)
    assert sum(line.startswith("resumed") and "at step 16/" in line for line in logs) == 1  # train_run
    for i in range(3):  # Adam's moments came back into the stack: the uninterrupted stack's numbers
        pd.testing.assert_frame_equal(history(dirs[i]), history(tmp_path / "ref" / f"v{i}"), check_exact=False,
                                      atol=1e-6, rtol=0)
    assert all(r["steps"] == ref[0]["steps"] for r in res)


def test_pack_plan_stacks_only_where_the_rule_says():
    mlp = {**BASE, "optimizer": "adam", "lr": 1e-3}
    lrs = [1e-3, 3e-3, 1e-2, 3e-2]
    specs = (
        [{**mlp, "seed": k, "lr": lr} for k, lr in enumerate(lrs)]  # 0-3: one stack
        + [{**mlp, "seed": k, "dropout": 0.1, "lr": lr} for k, lr in enumerate(lrs)]  # 4-7: dropout
        + [{**mlp, "width": 128, "depth": 3, "batch_size": 256, "lr": lr} for lr in lrs]  # 8-11: step too costly
        + [{**mlp, "model": "shallow_conv", "width": 4, "batch_size": 256, "lr": lr} for lr in lrs]  # 12-15
        + [{**mlp, "width": 32, "seed": k} for k in range(2)]  # 16-17: too few for a stack
        + [{**mlp, "seed": 9, "schedule": "cosine", "warmup_epochs": 1.0}]  # 18: joins the first stack
    )
    groups = plan_groups(specs, lambda name: (1, 40))
    assert [0, 1, 2, 3, 18] in groups
    assert all(len(g) == 1 for g in groups if g != [0, 1, 2, 3, 18])
    assert sorted(i for g in groups for i in g) == list(range(len(specs)))
    assert prefer_vectorised(specs[0], 3) and not prefer_vectorised(specs[0], 2)
    assert step_flops(specs[8], (1, 40)) > MAX_STEP_FLOPS > step_flops(specs[0], (1, 40))
    assert prefer_vectorised({**specs[12], "batch_size": 128}, 4)  # conv steps up to 128 samples do stack
    everything = plan_groups(specs, rule=lambda s, n, shape: True)  # a rule may stack more, never dropout
    assert [8, 9, 10, 11] in everything and [16, 17] in everything and [4] in everything


def test_execution_options_train_one_run_at_a_time(tiny_data, tmp_path):
    """Stacks are float32 and default memory order: with bf16 autocast no run is stacked."""
    from largebatch.vtrain import train_many

    specs = [{"model": "mlp", "width": 16, "depth": 2, "batch_size": 32, "epochs": 1, "optimizer": "sgd",
              "lr": lr} for lr in (0.01, 0.02, 0.05)]
    lines = []
    out = train_many(specs, {"mnist1d": tiny_data}, [tmp_path / str(i) for i in range(3)],
                     checkpoint_every_s=None, log=lines.append, autocast="bf16")
    assert all(m["execution"]["autocast"] == "bf16" for m in out)
    assert "0 in 0 vectorised stack(s)" in lines[0]


def test_stack_logs_each_runs_progress_and_writes_history_as_it_grows(tiny_data, tmp_path):
    from test_train import PROGRESS

    specs = [{**BASE, "optimizer": "sgd", "lr": 0.05, "seed": s, "log_points": 5} for s in range(3)]
    dirs = [tmp_path / f"v{i}" for i in range(3)]
    seen = {}

    def check(step):
        seen[step] = [pd.read_csv(d / "history.csv").step.tolist() for d in dirs]

    logs = []
    got = train_group(specs, tiny_data, dirs, checkpoint_every_s=None, log=logs.append, on_step=check)
    evals = pd.read_csv(dirs[0] / "history.csv").step.tolist()
    assert len(evals) > 4
    for step, rows in seen.items():
        assert rows == [[s for s in evals if s <= step]] * 3, step
    progress = [re.match(PROGRESS, line) for line in logs]
    for m in got:  # one line per run per evaluation
        assert [int(x.group(2)) for x in progress if x and x.group(1) == m["run"]] == evals
