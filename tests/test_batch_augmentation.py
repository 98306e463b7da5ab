"""Batch augmentation (Hoffer et al. 2019) as the engine runs it, and the paper's run plan.

The engine's BA batch is captured by wrapping largebatch.augment.batch_augment (the engine
imports it when a run starts)."""

import copy

import pandas as pd
import pytest
import torch

import largebatch.augment as augment_mod
from largebatch.augment import augment_1d
from largebatch.experiments import ConfigError, build_registry
from largebatch.experiments.batch_augmentation import distinct_spec, plan
from largebatch.spec import lr_at, normalize
from largebatch.train import train_run

SPEC = {"dataset": "mnist1d", "model": "mlp", "width": 16, "depth": 2, "optimizer": "sgd", "lr": 0.05,
        "momentum": 0.9, "batch_size": 32, "augment": "mnist1d", "seed": 3}


@pytest.fixture
def captured(monkeypatch):
    batches = []
    real = augment_mod.batch_augment

    def spy(x, y, m, aug, g):
        out = real(x, y, m, aug, g)
        batches.append((x.clone(), y.clone(), out[0].clone(), out[1].clone()))
        return out

    monkeypatch.setattr(augment_mod, "batch_augment", spy)
    return batches


def test_engine_trains_on_m_augmented_copies_with_their_labels(tiny_data, tmp_path, captured):
    m = 4
    metrics = train_run({**SPEC, "multiplicity": m, "steps": 3}, tiny_data, tmp_path, log=lambda s: None,
                        checkpoint_every_s=None)
    assert len(captured) == 3
    x, y, xa, ya = captured[0]
    b = SPEC["batch_size"]
    assert xa.shape == (m * b, *x.shape[1:]) and torch.equal(ya, y.repeat_interleave(m))
    blocks = xa.view(b, m, -1)
    src = x.view(b, 1, -1)
    # every copy is closest to its own source sample, once the (unknown) shift of at most 3 is undone ...
    length = x.shape[-1]
    pos = torch.arange(length)
    shifted = torch.stack([x.view(b, -1)[:, (pos - s).clamp(0, length - 1)] for s in range(-3, 4)])
    d = torch.cdist(xa.view(1, m * b, -1).expand(7, -1, -1), shifted).amin(0)
    assert torch.equal(d.argmin(1), torch.arange(b).repeat_interleave(m))
    # ... and the M copies of a sample are all different augmentations of it
    for i in range(b):
        for a in range(m):
            for c in range(a + 1, m):
                assert not torch.equal(blocks[i, a], blocks[i, c])
    assert not torch.equal(blocks[:, 0], src[:, 0])
    # the B distinct samples come from the training set with their own labels
    rows = (tiny_data.x_train.view(tiny_data.n_train, 1, -1) == x.view(1, b, -1)).all(-1).float().argmax(0)
    assert torch.equal(tiny_data.y_train[rows], y)
    h = pd.read_csv(tmp_path / "history.csv")
    assert h.samples.iloc[-1] == 3 * b  # `samples` counts the B distinct samples per step
    assert metrics["steps_per_epoch"] == tiny_data.n_train // b  # steps per epoch as for M = 1


def test_m1_is_the_plain_augmented_pipeline(tiny_data, tmp_path, captured):
    train_run({**SPEC, "multiplicity": 1, "steps": 2}, tiny_data, tmp_path, log=lambda s: None,
              checkpoint_every_s=None)
    # replay the engine's data stream: one permutation per epoch, then the augmenter on each batch
    g = torch.Generator().manual_seed(SPEC["seed"])
    perm = torch.randperm(tiny_data.n_train, generator=g)
    b = SPEC["batch_size"]
    for k, (x, y, xa, ya) in enumerate(captured):
        idx = perm[k * b:(k + 1) * b]
        assert torch.equal(x, tiny_data.x_train[idx]) and torch.equal(ya, tiny_data.y_train[idx])
        assert torch.equal(xa, augment_1d(tiny_data.x_train[idx], g))


def test_m_changes_the_run_but_not_its_steps(tiny_data, tmp_path):
    one = train_run({**SPEC, "multiplicity": 1, "epochs": 1}, tiny_data, tmp_path / "1", log=lambda s: None,
                    checkpoint_every_s=None)
    four = train_run({**SPEC, "multiplicity": 4, "epochs": 1}, tiny_data, tmp_path / "4", log=lambda s: None,
                     checkpoint_every_s=None)
    assert one["steps"] == four["steps"] and one["run"] != four["run"]
    assert one["test_loss"] != four["test_loss"]


BLOCK = {"run": {**{k: v for k, v in SPEC.items() if k != "seed"}, "epochs": 4, "schedule": "step",
                 "milestones": [3.24]},
         "multiplicities": [1, 2, 8], "seeds": [0, 1], "longer_baselines": [2], "distinct_controls": [2, 8]}
SCALE = {"datasets": {"mnist1d": {"kind": "mnist1d", "num_samples": 1500}}, "defaults": {}}
N_TRAIN = 1200


def first_drop(spec, steps_per_epoch, total):
    lrs = [lr_at(spec, s, steps_per_epoch, total) for s in range(total)]
    return next(s for s, lr in enumerate(lrs) if lr < lrs[0])


def test_plan_every_m_and_seed_plus_longer_baselines():
    runs = plan(copy.deepcopy(BLOCK), SCALE)
    ba = [(lab, s) for lab, s in runs if lab["arm"] == "BA"]
    assert sorted((lab["multiplicity"], lab["seed"]) for lab, _ in ba) == [(m, s) for m in (1, 2, 8) for s in (0, 1)]
    assert all(s["multiplicity"] == lab["multiplicity"] == lab["compare_m"] and s["epochs"] == 4
               and s["milestones"] == [3.24] and s["seed"] == lab["seed"] for lab, s in ba)
    longer = [(lab, s) for lab, s in runs if lab["arm"] == "longer"]
    assert len(longer) == 2
    assert all(s["multiplicity"] == 1 and s["epochs"] == 8 and s["milestones"] == [6.48] and lab["epoch_factor"] == 2
               and lab["compare_m"] == 2 for lab, s in longer)
    # the labels say what a run is, not where it trains (largebatch.packing decides that)
    assert all(set(lab) == {"arm", "multiplicity", "compare_m", "epoch_factor", "seed"} for lab, _ in runs)


def test_distinct_control_matches_ba_steps_batch_and_lr_drop():
    runs = plan(copy.deepcopy(BLOCK), SCALE)
    b = SPEC["batch_size"]
    ba = {(lab["multiplicity"], lab["seed"]): normalize(s) for lab, s in runs if lab["arm"] == "BA"}
    ctl = [(lab, normalize(s)) for lab, s in runs if lab["arm"] == "distinct"]
    assert sorted((lab["compare_m"], lab["seed"]) for lab, _ in ctl) == [(2, 0), (2, 1), (8, 0), (8, 1)]
    for lab, s in ctl:
        m, twin = lab["compare_m"], ba[(lab["compare_m"], lab["seed"])]
        # M*B distinct samples, one augmented copy each, the same seed and hyper-parameters
        assert s["batch_size"] == m * b and s["multiplicity"] == 1 and twin["batch_size"] * twin["multiplicity"] == m * b
        assert {k: v for k, v in s.items() if k not in ("batch_size", "multiplicity", "steps", "epochs", "milestones",
                                                       "eval_every")} == \
               {k: v for k, v in twin.items() if k not in ("batch_size", "multiplicity", "steps", "epochs", "milestones",
                                                           "eval_every")}
        # the same number of steps as the BA run, the learning-rate drop at the same step, evaluations every BA epoch
        ba_epoch = N_TRAIN // b
        total = int(round(twin["epochs"] * ba_epoch))
        assert s["steps"] == total and s["epochs"] is None and s["eval_every"] == ba_epoch
        assert first_drop(s, N_TRAIN // (m * b), s["steps"]) == first_drop(twin, ba_epoch, total)
        assert lab["epoch_factor"] == m  # it passes over the data M times as often


def test_distinct_control_trains_the_same_steps_on_distinct_samples(tiny_data, tmp_path, captured):
    m, run = 4, {k: v for k, v in SPEC.items() if k != "seed"}
    twin = train_run({**run, "epochs": 1, "multiplicity": m, "seed": 0}, tiny_data, tmp_path / "ba",
                     log=lambda s: None, checkpoint_every_s=None)
    captured.clear()
    spec = {**distinct_spec({**run, "epochs": 1}, m, tiny_data.n_train), "seed": 0}
    ctl = train_run(spec, tiny_data, tmp_path / "d", log=lambda s: None, checkpoint_every_s=None)
    assert ctl["steps"] == twin["steps"]
    x, y, xa, ya = captured[0]
    assert xa.shape[0] == m * SPEC["batch_size"] and torch.equal(ya, y)  # one copy of each of M*B samples
    assert len(torch.unique(x, dim=0)) == m * SPEC["batch_size"]


@pytest.mark.parametrize("change, words", [
    ({"multiplicities": [2, 4]}, "must include 1"),
    ({"longer_baselines": [4]}, "one of multiplicities"),
    ({"distinct_controls": [4]}, "distinct_controls has 4"),
    ({"distinct_controls": [1]}, "distinct_controls has 1"),
    ({"multiplicities": [1, 64], "longer_baselines": [], "distinct_controls": []}, "exceeds the 1200 training samples"),
    ({"multiplicities": [1, 1]}, "distinct"),
    ({"run": {**BLOCK["run"], "steps": 10}}, "run.steps must not be set"),
])
def test_plan_refuses_impossible_blocks(change, words):
    with pytest.raises(ValueError, match=words):
        plan({**copy.deepcopy(BLOCK), **change}, SCALE)


def test_registry_names_the_block_on_errors():
    config = {"scale": "t", "papers": ["batch_augmentation"],
              "scales": {"t": {**SCALE, "batch_augmentation": {**copy.deepcopy(BLOCK), "multiplicities": [2]}}}}
    with pytest.raises(ConfigError, match=r"scales\.t\.batch_augmentation: multiplicities"):
        build_registry(config)
    config["scales"]["t"]["batch_augmentation"]["multiplicities"] = [1, 2, 8]
    runs, tables = build_registry(config)
    # 3 M x 2 seeds + 2 longer baselines + 2 distinct controls x 2 seeds
    assert len(tables["batch_augmentation"]) == 12 and len(runs) == 12


def _plan(block):
    from largebatch.experiments import build_plan

    config = {"scale": "t", "papers": ["batch_augmentation"], "packing": {"job_seconds": 0},
              "scales": {"t": {**SCALE, "batch_augmentation": block}}}
    return build_plan(config)


def test_gradient_variance_job_reads_every_seeds_m1_run_and_feeds_the_section():
    from largebatch import paths
    from largebatch.experiments.batch_augmentation import GRADVAR

    block = {**copy.deepcopy(BLOCK), "seeds": [5, 2], "gradient_variance": {"draws": 7}}
    p = _plan(block)
    (job,) = p.jobs["batch_augmentation"]
    assert job.name == "batch_augmentation_gradient_variance" and job.script == "batch_augmentation_gradvar.py"
    base = [r for r in p.tables["batch_augmentation"] if r["arm"] == "BA" and r["multiplicity"] == 1]
    assert [r["seed"] for r in job.params["runs"]] == [2, 5]  # seed order, whatever the config's order
    ids = [r["run"] for r in job.params["runs"]]
    assert sorted(ids) == sorted(r["run"] for r in base) and all(p.runs[r]["multiplicity"] == 1 for r in ids)
    assert job.input["specs"] == [paths.run_file(r, "spec.json") for r in ids]
    assert job.input["models"] == [paths.run_file(r, "model.pt") for r in ids]
    assert job.input["data"] == paths.data_file("mnist1d")
    assert job.params["draws"] == 7 and job.params["multiplicities"] == [1, 2, 8]
    assert job.output == {"gradvar": GRADVAR} and job.device
    assert p.sections["batch_augmentation"].input["gradvar"] == GRADVAR
    # without the block's setting the job draws the schema's default
    block.pop("gradient_variance")
    assert _plan(block).jobs["batch_augmentation"][0].params["draws"] == 32


def test_controls_table_is_declared_only_with_a_control_arm():
    names = lambda block: [o.name for o in _plan(block).outputs["batch_augmentation"]]
    full = names(copy.deepcopy(BLOCK))
    assert "controls" in full
    assert set(full) == {"final_budget", "accuracy_vs_m", "controls", "accuracy_vs_examples", "variance_vs_m",
                         "gradient_variance", "variance_model"}
    bare = names({**copy.deepcopy(BLOCK), "longer_baselines": [], "distinct_controls": []})
    assert set(full) - set(bare) == {"controls"}
    assert "controls" in names({**copy.deepcopy(BLOCK), "distinct_controls": []})
    labelled = {o.name: o.label for o in _plan(copy.deepcopy(BLOCK)).outputs["batch_augmentation"] if o.label}
    assert labelled == {"accuracy_vs_m": "test accuracy vs M, with the controls",
                        "accuracy_vs_examples": "test accuracy vs examples seen", "variance_vs_m": "gradient variance"}


def test_cpu_protocol_is_the_papers_schedule_to_convergence_with_stackable_seeds():
    """The default (cpu) protocol as config.yaml states it (issue 17): the authors' code's
    100 epochs with lr /10 at epoch 81, SGD 0.1 / momentum 0.9 / weight decay 1e-4, B = 64; the
    longer baseline's schedule stretched whole; the distinct control at BA's steps with the drop
    at BA's step; the plateau rule in the block; and every arm's seeds one stack (equal
    group_key), which is what keeps the section's cost down."""
    from pathlib import Path

    import yaml

    from largebatch.experiments.base import dataset_sizes
    from largebatch.spec import group_key

    config = yaml.safe_load((Path(__file__).resolve().parents[1] / "config.yaml").read_text())
    scale = config["scales"]["cpu"]
    block = scale["batch_augmentation"]
    assert block["plateau"] == {"fraction": 0.1, "max_rise_pp": 1.0} and block["min_train_acc_pp"] == 70
    n = dataset_sizes(scale)[block["run"]["dataset"]]
    assert n == 4000  # MNIST-1D's standard training-set size
    runs = plan(copy.deepcopy(block), scale)
    per_epoch = n // 64
    stacks: dict = {}
    for lab, s in runs:
        assert (s["optimizer"], s["lr"], s["momentum"], s["weight_decay"], s["schedule"]) == ("sgd", 0.1, 0.9, 1e-4,
                                                                                             "step")
        if lab["arm"] == "BA":
            assert s["batch_size"] == 64 and s["epochs"] == 100 and s["milestones"] == [81]
        elif lab["arm"] == "longer":
            assert s["epochs"] == 100 * lab["compare_m"] and s["milestones"] == [81 * lab["compare_m"]]
        else:  # distinct: BA's steps, the drop at BA's step 81 x per_epoch
            m = lab["compare_m"]
            assert s["batch_size"] == 64 * m and s["steps"] == 100 * per_epoch
            assert s["milestones"][0] * (n // (64 * m)) == pytest.approx(81 * per_epoch)
        stacks.setdefault((lab["arm"], lab["compare_m"]), set()).add(group_key(s))
    assert all(len(keys) == 1 for keys in stacks.values()), stacks
    assert len(stacks) == 8 and len(runs) == 8 * len(block["seeds"])
