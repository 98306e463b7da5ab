import copy

import pytest

from largebatch.experiments import ConfigError, build_registry
from largebatch.spec import SpecError, effective_lr, lr_at, normalize, run_id

BASE = {"batch_size": 64, "epochs": 2, "lr": 0.1}


def test_same_spec_same_id_and_defaults_do_not_matter():
    a = run_id(BASE)
    assert run_id(dict(BASE)) == a
    assert run_id({**BASE, "momentum": 0.0}) == a  # explicit default == implicit default
    assert run_id({**BASE, "epochs": 2.0}) == a  # 2.0 epochs is 2 epochs
    assert a.startswith("mnist1d-mlp-sgd-b64-s0-")


@pytest.mark.parametrize("change", [{"lr": 0.2}, {"seed": 1}, {"batch_size": 65}, {"norm": "none"},
                                    {"multiplicity": 2}, {"epochs": 3}, {"data_seed": 5}])
def test_different_spec_different_id(change):
    assert run_id({**BASE, **change}) != run_id(BASE)


@pytest.mark.parametrize("bad, words", [
    ({"batch_size": 0}, "batch_size"),
    ({"optimizer": "lamb"}, "optimizer"),
    ({"lr": -1}, "lr"),
    ({"epochs": None}, "exactly one of epochs / steps"),
    ({"steps": 10}, "exactly one of epochs / steps"),
    ({"norm": "ghost"}, "ghost_batch_size"),
    ({"norm": "ghost", "ghost_batch_size": 24}, "must divide"),
    ({"lr_scaling": "sqrt"}, "base_batch"),
    ({"colour": "red"}, "unknown key"),
    ({"milestones": [0]}, "milestones"),
    ({"stop_train_acc": 95}, "fraction"),
])
def test_bad_specs_name_the_key(bad, words):
    with pytest.raises(SpecError, match=words):
        normalize({**BASE, **bad})


def test_lr_scaling_rules_and_schedules():
    assert effective_lr(normalize({**BASE, "lr_scaling": "linear", "base_batch": 32})) == pytest.approx(0.2)
    assert effective_lr(normalize({**BASE, "lr_scaling": "sqrt", "base_batch": 16})) == pytest.approx(0.2)
    s = normalize({**BASE, "schedule": "step", "milestones": [1], "gamma": 0.5, "warmup_epochs": 0.5})
    # 10 steps per epoch: warm-up over 5 steps, halved from epoch 1 on
    assert lr_at(s, 0, 10, 20) == pytest.approx(0.02)
    assert lr_at(s, 4, 10, 20) == pytest.approx(0.1)
    assert lr_at(s, 9, 10, 20) == pytest.approx(0.1)
    assert lr_at(s, 10, 10, 20) == pytest.approx(0.05)
    c = normalize({**BASE, "schedule": "cosine"})
    assert lr_at(c, 0, 10, 20) == pytest.approx(0.1)
    assert lr_at(c, 10, 10, 20) == pytest.approx(0.05)


def _config():
    import yaml

    from conftest import REPO

    with open(REPO / "config.yaml") as f:
        return yaml.safe_load(f)


def test_registry_shares_runs_and_labels_them():
    cfg = _config()
    cfg["scale"] = "tiny"
    cfg["papers"] = ["baseline"]
    runs, tables = build_registry(cfg)
    rows = tables["baseline"]
    assert {r["arm"] for r in rows} == {"SB", "LB"}
    assert len(rows) == len({r["run"] for r in rows}) == len(runs) >= 6
    # building twice gives the same ids
    assert build_registry(copy.deepcopy(cfg))[0].keys() == runs.keys()


@pytest.mark.parametrize("mutate, words", [
    (lambda c: c["scales"]["tiny"]["baseline"].__setitem__("large_batch", 10**6), "larger than the training set"),
    (lambda c: c["scales"]["tiny"]["baseline"]["run"].__setitem__("dataset", "imagenet"), "not defined"),
    (lambda c: c["scales"]["tiny"]["baseline"].__setitem__("seeds", []), "seeds"),
    (lambda c: c.__setitem__("papers", ["baseline", "nonsense"]), "not a paper"),
    (lambda c: c["scales"]["tiny"]["baseline"]["run"].__setitem__("norm", "ghost"), "ghost_batch_size"),
])
def test_registry_errors_name_the_config_key(mutate, words):
    cfg = _config()
    cfg["scale"] = "tiny"
    mutate(cfg)
    with pytest.raises(ConfigError, match=words) as err:
        build_registry(cfg)
    assert "config.yaml" in str(err.value)


def test_warmup_start_ramps_from_a_fraction_of_the_peak_and_leaves_other_ids_alone():
    from largebatch.spec import lr_at, normalize, run_id

    base = {"dataset": "mnist1d", "lr": 0.32, "warmup_epochs": 1.0, "epochs": 4, "batch_size": 10}
    s = normalize({**base, "warmup_start": 1 / 32})
    assert lr_at(s, 0, 10, 40) == pytest.approx(0.01)  # eta / 32 at the first step (Masters & Luschi)
    assert lr_at(s, 5, 10, 40) == pytest.approx(0.32 * (1 / 32 + 31 / 32 * 0.5))
    assert lr_at(s, 10, 10, 40) == pytest.approx(0.32)
    plain = normalize(base)
    assert [lr_at(plain, k, 10, 40) for k in (0, 9)] == [pytest.approx(0.032), pytest.approx(0.32)]
    # a run that does not set the key keeps the id it had before the key existed
    legacy = {k: v for k, v in plain.items() if k != "warmup_start"}
    import hashlib

    from largebatch.spec import canonical_json
    assert run_id(base).endswith(hashlib.sha1(canonical_json(legacy).encode()).hexdigest()[:10])
    assert run_id({**base, "warmup_start": 1 / 32}) != run_id(base)
    with pytest.raises(Exception, match="warmup_start"):
        normalize({**base, "warmup_start": 1.0})
