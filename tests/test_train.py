import json
import math

import pandas as pd
import pytest
import torch

from largebatch.train import CheckpointError, HISTORY_COLUMNS, train_run

SPEC = {"model": "mlp", "width": 16, "depth": 2, "batch_size": 32, "epochs": 3, "optimizer": "adam", "lr": 3e-3}


def test_loss_decreases_and_outputs_are_written(tiny_data, tmp_path):
    m = train_run({**SPEC, "lr": 1e-2}, tiny_data, tmp_path, checkpoint_every_s=None, log=lambda s: None)
    h = pd.read_csv(tmp_path / "history.csv")
    assert list(h.columns) == HISTORY_COLUMNS
    assert h.train_loss.iloc[-1] < 0.75 * h.train_loss.iloc[0]
    assert m["status"] == "ok" and m["steps"] == 3 * (480 // 32)
    assert h.w_dist.iloc[0] == 0 and h.w_dist.iloc[-1] > 0
    assert json.loads((tmp_path / "metrics.json").read_text())["test_acc"] == m["test_acc"]
    state = torch.load(tmp_path / "model.pt", weights_only=True)
    assert any(k.endswith("weight") for k in state)
    assert not (tmp_path / "checkpoint.pt").exists()


def test_same_seed_same_history(tiny_data, tmp_path):
    a = train_run(SPEC, tiny_data, tmp_path / "a", checkpoint_every_s=None, log=lambda s: None)
    b = train_run(SPEC, tiny_data, tmp_path / "b", checkpoint_every_s=None, log=lambda s: None)
    ha = pd.read_csv(tmp_path / "a" / "history.csv").drop(columns="wall_s")
    hb = pd.read_csv(tmp_path / "b" / "history.csv").drop(columns="wall_s")
    pd.testing.assert_frame_equal(ha, hb)
    c = train_run({**SPEC, "seed": 1}, tiny_data, tmp_path / "c", checkpoint_every_s=None, log=lambda s: None)
    assert c["test_loss"] != a["test_loss"]


def test_diverging_lr_is_a_result_not_a_crash(tiny_data, tmp_path):
    spec = {**SPEC, "optimizer": "sgd", "lr": 1e6, "norm": "none", "epochs": 2}
    m = train_run(spec, tiny_data, tmp_path, checkpoint_every_s=None, log=lambda s: None)
    assert m["status"] == "diverged" and m["stop_reason"] == "diverged"
    assert m["steps"] < 2 * (480 // 32)
    assert (tmp_path / "history.csv").exists() and (tmp_path / "model.pt").exists()


class Interrupt(Exception):
    pass


def test_interrupted_run_resumes_to_identical_result(tiny_data, tmp_path):
    spec = {**SPEC, "dropout": 0.1, "augment": "mnist1d"}
    ref = train_run(spec, tiny_data, tmp_path / "ref", checkpoint_every_s=None, log=lambda s: None)

    def kill_at(step):
        if step == 23:
            raise Interrupt

    with pytest.raises(Interrupt):
        # checkpoint after every step, then die mid-epoch
        train_run(spec, tiny_data, tmp_path / "run", checkpoint_every_s=0.0, on_step=kill_at, log=lambda s: None)
    assert (tmp_path / "run" / "checkpoint.pt").exists()
    logs = []
    res = train_run(spec, tiny_data, tmp_path / "run", checkpoint_every_s=0.0, log=logs.append)
    assert any("resumed" in line for line in logs)
    for key in ("train_loss", "test_loss", "test_acc", "w_dist", "steps"):
        assert res[key] == ref[key], key
    h1 = pd.read_csv(tmp_path / "ref" / "history.csv").drop(columns="wall_s")
    h2 = pd.read_csv(tmp_path / "run" / "history.csv").drop(columns="wall_s")
    pd.testing.assert_frame_equal(h1, h2)


def test_truncated_checkpoint_names_file_and_fix(tiny_data, tmp_path):
    (tmp_path / "checkpoint.pt").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(CheckpointError, match=r"checkpoint.pt.*rm "):
        train_run(SPEC, tiny_data, tmp_path, log=lambda s: None)


def test_batch_larger_than_dataset_is_refused(tiny_data, tmp_path):
    with pytest.raises(ValueError, match="larger than the training set"):
        train_run({**SPEC, "batch_size": 10_000}, tiny_data, tmp_path, log=lambda s: None)


def test_patience_stops_and_micro_batches_match_full_batch(tiny_data, tmp_path):
    m = train_run({**SPEC, "epochs": 200, "patience": 2, "min_delta": 0.5}, tiny_data, tmp_path / "p",
                  checkpoint_every_s=None, log=lambda s: None)
    assert m["stop_reason"] == "patience" and m["epochs"] < 200
    # a run whose stop rule never fires ends at its budget: with a stop rule that budget is a
    # safety cap ("cap": the protocol was cut), without one the protocol's own ("budget")
    capped = train_run({**SPEC, "epochs": 2, "patience": 50}, tiny_data, tmp_path / "c", checkpoint_every_s=None,
                       log=lambda s: None)
    assert capped["stop_reason"] == "cap" and capped["epochs"] == 2
    assert train_run({**SPEC, "epochs": 1}, tiny_data, tmp_path / "d", checkpoint_every_s=None,
                     log=lambda s: None)["stop_reason"] == "budget"
    # without BatchNorm, gradient accumulation over micro-batches equals one big batch
    spec = {**SPEC, "norm": "none", "optimizer": "sgd", "lr": 0.05, "batch_size": 64, "epochs": 1}
    a = train_run(spec, tiny_data, tmp_path / "a", checkpoint_every_s=None, log=lambda s: None)
    b = train_run({**spec, "micro_batch": 16}, tiny_data, tmp_path / "b", checkpoint_every_s=None, log=lambda s: None)
    assert math.isclose(a["train_loss"], b["train_loss"], rel_tol=1e-4)


def test_kept_final_checkpoint_rebuilds_outputs_without_training(tiny_data, tmp_path):
    ref = train_run(SPEC, tiny_data, tmp_path, checkpoint_every_s=None, keep_checkpoint=True, log=lambda s: None)
    assert (tmp_path / "checkpoint.pt").exists()
    for name in ("metrics.json", "history.csv", "model.pt", "spec.json"):
        (tmp_path / name).unlink()  # what Snakemake does to the outputs of a failed pack job
    steps = []
    again = train_run(SPEC, tiny_data, tmp_path, keep_checkpoint=True, on_step=steps.append, log=lambda s: None)
    assert steps == []  # nothing retrained
    assert {k: again[k] for k in ("test_acc", "train_loss", "steps")} == {k: ref[k] for k in ("test_acc", "train_loss", "steps")}


def test_kept_checkpoint_is_not_reused_for_other_data(tiny_data, tmp_path):
    import dataclasses

    train_run(SPEC, tiny_data, tmp_path, checkpoint_every_s=None, keep_checkpoint=True, log=lambda s: None)
    changed = dataclasses.replace(tiny_data, checksum="another-dataset")
    steps, logs = [], []
    train_run(SPEC, changed, tmp_path, keep_checkpoint=True, on_step=steps.append, log=logs.append)
    assert len(steps) == 3 * (480 // 32)  # trained again from scratch
    assert any("from scratch" in line for line in logs)


def test_bf16_autocast_trains_in_bfloat16_and_is_recorded(tiny_data, tmp_path):
    spec = {**SPEC, "lr": 1e-2}
    fp32 = train_run(spec, tiny_data, tmp_path / "fp32", checkpoint_every_s=None, log=lambda s: None)
    bf16 = train_run(spec, tiny_data, tmp_path / "bf16", checkpoint_every_s=None, log=lambda s: None,
                     autocast="bf16")
    h = pd.read_csv(tmp_path / "bf16" / "history.csv")
    assert h.train_loss.iloc[-1] < 0.75 * h.train_loss.iloc[0]
    assert bf16["execution"] == {"autocast": "bf16", "channels_last": False}
    assert fp32["execution"] == {"autocast": "none", "channels_last": False}
    # the forward pass really ran in bfloat16: same seed and data, other numbers
    assert bf16["train_loss"] != fp32["train_loss"]
    assert abs(bf16["test_acc"] - fp32["test_acc"]) < 0.1
    state = torch.load(tmp_path / "bf16" / "model.pt", weights_only=True)
    assert all(t.dtype == torch.float32 for t in state.values() if t.is_floating_point())
    with pytest.raises(ValueError, match="autocast = 'fp8'; choose one of"):
        train_run(SPEC, tiny_data, tmp_path / "bad", autocast="fp8", log=lambda s: None)


def test_channels_last_conv_matches_default_memory_order(tmp_path):
    from largebatch.data import Dataset

    g = torch.Generator().manual_seed(0)
    images = Dataset(torch.randn(64, 3, 8, 8, generator=g), torch.randint(0, 4, (64,), generator=g),
                     torch.randn(32, 3, 8, 8, generator=g), torch.randint(0, 4, (32,), generator=g), 4, "img")
    spec = {"model": "shallow_conv", "width": 4, "batch_size": 16, "epochs": 2, "optimizer": "sgd", "lr": 0.05,
            "augment": "crop_flip"}
    a = train_run(spec, images, tmp_path / "a", checkpoint_every_s=None, log=lambda s: None)
    b = train_run(spec, images, tmp_path / "b", checkpoint_every_s=None, log=lambda s: None, channels_last=True)
    assert b["execution"]["channels_last"] and not a["execution"]["channels_last"]
    ha = pd.read_csv(tmp_path / "a" / "history.csv").drop(columns="wall_s")
    hb = pd.read_csv(tmp_path / "b" / "history.csv").drop(columns="wall_s")
    pd.testing.assert_frame_equal(ha, hb, rtol=1e-4, atol=1e-5)
    # 1-D data has no channels-last order: the option is a recorded no-op
    c = train_run(SPEC, _tiny_1d(), tmp_path / "c", checkpoint_every_s=None, log=lambda s: None, channels_last=True)
    assert c["execution"]["channels_last"] is False


def _tiny_1d():
    from largebatch.data import Dataset

    g = torch.Generator().manual_seed(1)
    return Dataset(torch.randn(64, 1, 10, generator=g), torch.randint(0, 3, (64,), generator=g),
                   torch.randn(16, 1, 10, generator=g), torch.randint(0, 3, (16,), generator=g), 3, "sig")


PROGRESS = r"^(\S+): step (\d+)/(\d+) epoch [\d.]+/[\d.]+ lr \S+ train loss \S+ acc \S+ test loss \S+ acc \S+ \| " \
           r"(\?|[\d,]+) samples/s ETA (\?|\d+:\d\d:\d\d)$"


def test_progress_line_per_evaluation_and_history_written_as_it_grows(tiny_data, tmp_path):
    import re

    spec = {**SPEC, "log_points": 6}
    seen = {}

    def check(step):  # mid-run: history.csv already holds every evaluation up to this step
        seen[step] = pd.read_csv(tmp_path / "history.csv").step.tolist()

    logs = []
    m = train_run(spec, tiny_data, tmp_path, checkpoint_every_s=None, log=logs.append, on_step=check)
    h = pd.read_csv(tmp_path / "history.csv")
    evals = h.step.tolist()
    assert len(evals) > 5 and evals[-1] == m["steps"]
    for step, rows in seen.items():
        assert rows == [s for s in evals if s <= step], step
    lines = [re.match(PROGRESS, line) for line in logs]
    progress = [x for x in lines if x]
    assert len(progress) == len(evals) == len(logs) - 1  # one line per evaluation, then the summary
    assert [int(x.group(2)) for x in progress] == evals
    assert {x.group(1) for x in progress} == {m["run"]} and {int(x.group(3)) for x in progress} == {m["steps"]}
    assert progress[0].group(4) == "?" and all(x.group(4) != "?" and x.group(5) != "?" for x in progress[1:])
    assert progress[-1].group(5) == "0:00:00"


def test_job_log_file_shows_progress_while_training(tiny_data, tmp_path):
    import sys

    from largebatch.logs import job_logger

    hook = sys.excepthook
    log = job_logger(str(tmp_path / "job.log"), name="largebatch.test_progress")
    sizes = []
    try:
        m = train_run(SPEC, tiny_data, tmp_path / "run", checkpoint_every_s=None, log=log.info,
                      on_step=lambda step: sizes.append(len((tmp_path / "job.log").read_text().splitlines())))
    finally:
        sys.excepthook = hook
        for handler in log.handlers:
            handler.close()
    lines = (tmp_path / "job.log").read_text().splitlines()
    n_evals = len(pd.read_csv(tmp_path / "run" / "history.csv"))
    assert sum(f"{m['run']}: step " in line for line in lines) == n_evals
    assert sizes[0] >= 1 and sizes[-1] == n_evals  # the file had the lines during the run, not only at its end


def test_crashed_run_keeps_its_curve_and_resume_does_not_duplicate_rows(tiny_data, tmp_path):
    ref = train_run(SPEC, tiny_data, tmp_path / "ref", checkpoint_every_s=None, log=lambda s: None)

    def kill_at(step):
        if step == 30:  # an evaluation step: its row is on disk, the last checkpoint (step 29) predates it
            raise Interrupt

    with pytest.raises(Interrupt):
        train_run(SPEC, tiny_data, tmp_path / "run", checkpoint_every_s=0.0, on_step=kill_at, log=lambda s: None)
    kept = pd.read_csv(tmp_path / "run" / "history.csv")
    assert kept.step.tolist() == [0, 15, 30]
    assert torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["state"]["step"] == 29
    train_run(SPEC, tiny_data, tmp_path / "run", checkpoint_every_s=0.0, log=lambda s: None)
    h1 = pd.read_csv(tmp_path / "ref" / "history.csv").drop(columns="wall_s")
    h2 = pd.read_csv(tmp_path / "run" / "history.csv").drop(columns="wall_s")
    pd.testing.assert_frame_equal(h1, h2)


def test_long_analyses_log_progress(caplog):
    import logging

    import torch.nn.functional as F

    from largebatch.models import build_model
    from largebatch.noise import gradient_noise_stats
    from largebatch.sharpness import epsilon_sharpness, hessian_max_eigenvalue, parametric_curve

    torch.manual_seed(0)
    from largebatch.spec import normalize

    model = build_model(normalize({"model": "mlp", "width": 8, "depth": 1, "norm": "none", "epochs": 1}), (1, 10), 3)
    x, y = torch.randn(64, 1, 10), torch.randint(0, 3, (64,))
    caplog.set_level(logging.INFO, logger="largebatch")

    def lines(prefix):
        return [r.getMessage() for r in caplog.records if r.getMessage().startswith(prefix)]

    epsilon_sharpness(model, F.cross_entropy, x, y, 1e-3, subspace_dim=5, max_iter=3)
    its = lines("epsilon-sharpness (subspace p=5, eps 0.001): iteration")
    assert 1 <= len(its) <= 3 and its[0].startswith("epsilon-sharpness (subspace p=5, eps 0.001): iteration 1/3")
    assert all("ETA" in line for line in its)
    hessian_max_eigenvalue(model, F.cross_entropy, x, y, iters=4, tol=0.0)
    assert [line.split(":")[0] for line in lines("Hessian")] == [f"Hessian power iteration {i}/4" for i in (1, 2, 3, 4)]
    parametric_curve(model, model.state_dict(), model.state_dict(), [0.0, 0.5, 1.0], lambda m: {})
    assert len(lines("parametric plot point")) == 3
    gradient_noise_stats(model, F.cross_entropy, x, y, 4, 16, n_estimates=20)
    draws = lines("noise scale (b 4 vs 16): draw")
    assert [line.split(",")[0].rsplit(" ", 1)[1] for line in draws] == [f"{k}/20" for k in range(2, 21, 2)]
    assert draws[-1].endswith("ETA 0:00:00")
    from largebatch.train import progress_label

    caplog.clear()
    with progress_label("run-7"):  # a job measuring several runs names the one it is on
        hessian_max_eigenvalue(model, F.cross_entropy, x, y, iters=2, tol=0.0)
    hessian_max_eigenvalue(model, F.cross_entropy, x, y, iters=1, tol=0.0)
    assert [line.split(":")[0] for line in lines("")] == ["run-7", "run-7", "Hessian power iteration 1/1"]


def test_run_setup_step_loop_transitions(tiny_data, tmp_path):
    """The skeleton both trainers walk (largebatch.runsetup.RunSetup): data position, loss
    flushes, a divergence, a checkpoint and its resume, all through RunSetup's methods."""
    from largebatch.runsetup import FLUSH_EVERY, RunSetup

    spec = {**SPEC, "epochs": 4}
    run = RunSetup(spec, tiny_data, tmp_path / "a", torch.device("cpu"))
    run.begin()
    assert [r["step"] for r in run.state["history"]] == [0] and run.step == 0
    assert run.epoch_ends()
    seen = []
    for _ in range(run.steps_per_epoch):  # one epoch: one permutation, B fresh samples a step
        seen.append(run.batch())
        assert run.advance() == len(seen) and run.position == len(seen) * run.B
    assert run.epoch_ends() and len(torch.cat(seen).unique()) == run.steps_per_epoch * run.B
    assert run.flush_due(run.steps_per_epoch) and run.flush_due(FLUSH_EVERY) and not run.flush_due(FLUSH_EVERY + 1)
    assert run.flush_losses(2.0 * run.steps_per_epoch, 0.1) is False and not run.stopped
    assert run.evaluate_and_stop(0.1) is False
    row = run.state["history"][-1]
    assert row["step"] == run.steps_per_epoch and row["batch_loss"] == 2.0 and row["lr"] == 0.1

    run.batch()
    run.advance()
    run.checkpoint(torch.tensor(1.5))
    again = RunSetup(spec, tiny_data, tmp_path / "a", torch.device("cpu"))
    pending = again.resume()
    assert pending.item() == 1.5 and again.step == run.step and again.position == run.position
    assert torch.equal(again.batch(), run.batch())  # the same data order goes on
    assert [r["step"] for r in again.state["history"]] == [0, run.steps_per_epoch]

    assert again.flush_losses(float("nan"), 0.1) is True  # a non-finite loss sum: diverged, row recorded
    assert again.diverged and again.state["history"][-1]["step"] == again.step
    metrics = again.finish({"autocast": "none", "channels_last": False}, False, torch.tensor(0.0))
    assert metrics["status"] == "diverged" and metrics["steps"] == again.step
    assert not (tmp_path / "a" / "checkpoint.pt").exists()
    assert pd.read_csv(tmp_path / "a" / "history.csv").step.tolist() == [0, run.steps_per_epoch, again.step]
