"""The rehearsal of the paper scale (largebatch.rehearsal, config/rehearsal.yaml): the paper
scale's plans at rehearsal size keep every network and option, and the whole workflow runs
them, on fixture datasets in torchvision's layout, to a built report."""

import json
import math
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import REPO, copy_workflow, run_snakemake
from largebatch.experiments import PAPERS, build_registry, dataset_sizes, scale_block
from largebatch.rehearsal import DEFAULTS, fixture_sizes, rehearse_scale

#: what makes two runs the same kind of job: every choice the rehearsal must keep
KIND = ("model", "width", "depth", "norm", "dropout", "optimizer", "momentum", "nesterov", "weight_decay",
        "max_grad_norm", "lr_scaling", "schedule", "gamma", "augment", "eval_bn", "patience", "stop_train_acc")


def _config(rehearsal):
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    cfg["scale"] = "paper"
    cfg["papers"] = [p for p in PAPERS if p in cfg["scales"]["paper"]]
    if rehearsal:
        cfg["rehearsal"] = rehearsal
    return cfg


def _kinds(runs, scale):
    out = set()
    for spec in runs.values():
        kind = scale["datasets"][spec["dataset"]].get("kind", spec["dataset"])
        out.add((kind, *(json.dumps(spec[k]) for k in KIND), spec["warmup_epochs"] > 0, spec["multiplicity"] > 1,
                 spec["init_from"] is not None, bool(spec["milestones"])))
    return out


@pytest.fixture(scope="module")
def registries():
    paper_cfg, reh_cfg = _config(None), _config(True)
    return (build_registry(paper_cfg), scale_block(paper_cfg)), (build_registry(reh_cfg), scale_block(reh_cfg))


def test_rehearsal_keeps_every_kind_of_paper_run(registries):
    ((paper_runs, paper_tables), paper_scale), ((runs, tables), scale) = registries
    assert len(runs) < len(paper_runs) / 5
    missing = _kinds(paper_runs, paper_scale) - _kinds(runs, scale)
    assert not missing, f"{len(missing)} kinds of paper-scale run are not rehearsed, e.g. {sorted(missing)[:3]}"
    # every paper, every network of Keskar and Hoffer, every Golmant dataset and strategy
    assert set(tables) == set(paper_tables)
    for paper, key in (("keskar", "network"), ("hoffer", "network"), ("golmant", "data"), ("golmant", "strategy"),
                       ("masters_luschi", "part"), ("swap", "arm"), ("batch_augmentation", "arm")):
        assert {r[key] for r in tables[paper]} == {r[key] for r in paper_tables[paper]}, (paper, key)
    # one seed per paper; grids thinned to their ends (BA keeps M = 40 and the M its controls match)
    for paper, rows in tables.items():
        assert len({r["seed"] for r in rows if r.get("seed_role", "select") == "select"}) == 1, paper
    assert sorted({r["multiplicity"] for r in tables["batch_augmentation"]}) == [1, 2, 40]


def test_rehearsal_sizes(registries):
    _, ((runs, _), scale) = registries
    sizes = dataset_sizes(scale)
    assert sizes["cifar10"] == fixture_sizes("cifar10", DEFAULTS["batch_divisor"])[0] == 781
    assert sizes["cifar10_small"] == 781 // 4
    for rid, spec in runs.items():
        n = sizes[spec["dataset"]]
        assert 2 <= spec["batch_size"] <= n, rid
        steps = spec["steps"] or max(1, round(spec["epochs"] * (n // spec["batch_size"])))
        assert steps <= DEFAULTS["steps"], (rid, steps)
        assert spec["eval_train_samples"] is None or spec["eval_train_samples"] <= DEFAULTS["eval_samples"]


def test_rehearsal_scales_a_schedule_by_one_factor():
    scale = _config(None)["scales"]["paper"]
    out = rehearse_scale(scale, {"steps": 3})
    run, paper_run = out["hoffer"]["networks"]["C1"]["run"], scale["hoffer"]["networks"]["C1"]["run"]
    f = run["epochs"] / paper_run["epochs"]
    assert run["warmup_epochs"] == pytest.approx(paper_run["warmup_epochs"] * f)
    assert run["milestones"] == pytest.approx([m * f for m in paper_run["milestones"]])
    swap, paper_swap = out["swap"], scale["swap"]
    assert swap["phase2_epochs"] / swap["epochs"] == pytest.approx(paper_swap["phase2_epochs"] / paper_swap["epochs"])
    assert scale == _config(None)["scales"]["paper"]  # the paper block itself is untouched


def test_bad_rehearsal_settings_are_named():
    from largebatch.experiments import ConfigError

    with pytest.raises(ConfigError, match="rehearsal.steps"):
        scale_block(_config({"steps": 0}))
    with pytest.raises(ConfigError, match="unknown key"):
        scale_block(_config({"step": 2}))


def test_fixtures_read_through_torchvision(tmp_path):
    from largebatch.data import load_dataset, prepare_dataset
    from largebatch.fixtures import write_fixtures

    write_fixtures(tmp_path, batch_divisor=500)
    assert (tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte").exists()
    for kind, shape, classes in (("mnist", (1, 28, 28), 10), ("cifar10", (3, 32, 32), 10),
                                 ("cifar100", (3, 32, 32), 100)):
        out = tmp_path / f"{kind}.pt"
        prepare_dataset(kind, {"kind": kind, "verify_md5": False}, out, root=str(tmp_path))
        d = load_dataset(out)
        assert (d.n_train, d.x_test.shape[0]) == fixture_sizes(kind, 500)
        assert d.input_shape == shape and d.num_classes == classes
        assert 0 <= int(d.y_train.min()) and int(d.y_train.max()) < classes
    # without verify_md5: false, CIFAR's published md5 sums reject the fixture
    with pytest.raises(FileNotFoundError, match="cifar10"):
        prepare_dataset("cifar10", {"kind": "cifar10"}, tmp_path / "x.pt", root=str(tmp_path))


def test_warmup_shorter_than_one_step_never_exceeds_the_peak():
    # found by the rehearsal: lr_at returned peak * (step + 1) / warm, i.e. above the peak
    from largebatch.spec import effective_lr, lr_at, normalize

    spec = normalize({"epochs": 1, "warmup_epochs": 0.01, "lr": 0.1, "schedule": "cosine"})
    assert max(lr_at(spec, s, 10, 10) for s in range(10)) <= effective_lr(spec)


@pytest.fixture(scope="module")
def rehearsal_run(tmp_path_factory):
    """The rehearsal of every paper, end to end, in a fresh copy of the workflow."""
    from largebatch.fixtures import write_fixtures

    wd = copy_workflow(tmp_path_factory.mktemp("rehearsal"))
    shutil.copytree(REPO / "config", wd / "config")
    write_fixtures(wd / "results" / "rehearsal-data")
    proc = run_snakemake(wd, "--cores", "2", "--configfile", "config/rehearsal.yaml", timeout=3600)
    assert proc.returncode == 0, proc.stderr[-6000:]
    return wd


def _runs(wd: Path) -> pd.DataFrame:
    rows = []
    for d in (wd / "results" / "runs").iterdir():
        spec = json.loads((d / "spec.json").read_text())
        metrics = json.loads((d / "metrics.json").read_text())
        rows.append({**spec, "steps_done": metrics["steps"], "status": metrics["status"]})
    return pd.DataFrame(rows)


def test_rehearsal_builds_the_report(rehearsal_run):
    html = (rehearsal_run / "results" / "report.html").read_text()
    for paper in _config(None)["papers"]:
        assert f'<section id="{paper}"' in html, paper
        claims = pd.read_csv(rehearsal_run / "results" / paper / "claims.csv")
        assert len(claims) >= 1, paper


def test_every_paper_scale_network_and_option_trained(rehearsal_run):
    runs = _runs(rehearsal_run)
    assert (runs.steps_done >= 1).all()
    nets = set(zip(runs.dataset, runs.model, runs.width, runs.depth))
    for net in (("mnist", "mlp", 512, 5), ("cifar10", "shallow_conv", 64, 3), ("cifar100", "shallow_conv", 64, 3),
                ("cifar10", "vgg", 64, 3), ("cifar100", "vgg", 64, 3), ("cifar10", "resnet", 16, 20),
                ("cifar10", "resnet", 16, 44), ("cifar100", "wrn", 64, 16), ("cifar10", "resnet", 64, 20)):
        assert net in nets, net
    conv = runs[runs.model != "mlp"]
    assert {"crop_flip", "crop_flip_cutout"} <= set(conv.augment)
    assert "ghost" in set(conv.norm)  # GBN on 2-D convs (Hoffer's C1/C3/ResNet/WRN, Masters & Luschi)
    for schedule in ("step", "cosine"):
        assert (conv[conv.schedule == schedule].warmup_epochs > 0).any(), schedule
    ba = runs[(runs.model == "resnet") & (runs.depth == 44)]
    assert 40 in set(ba.multiplicity)
    swap_workers = runs[runs.init_from.notna() & (runs.model == "resnet")]
    assert len(swap_workers) >= 2  # SWAP phase 2 on a ResNet, from its phase-1 run
    assert (rehearsal_run / "results" / "swap" / "average" / "0.json").exists()
    # sharpness and the Hessian's top eigenvalue of a conv net (VGG, C2/C4)
    sharp = [json.loads(p.read_text()) for p in (rehearsal_run / "results" / "keskar" / "sharpness").glob("*vgg*.json")]
    assert sharp and all(math.isfinite(doc["hessian_max_eig"]) and doc["sharpness"] for doc in sharp)
    noise = pd.read_csv(rehearsal_run / "results" / "golmant" / "noise.csv")
    assert len(noise) >= 1
