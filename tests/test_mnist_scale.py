"""The `mnist` scale: the papers' F1 experiments on real MNIST (config.yaml, scales.mnist).

Checks the plan (runs, sharing, the stated stop rule, the Hoffer cuts) from config.yaml, the
scale's own list of sections (`papers_of`), and that Snakemake plans the scale's DAG from
`--config scale=mnist` alone; nothing trains and nothing is downloaded here.
"""

import copy
import math
from pathlib import Path

import pytest
import yaml

from conftest import REPO, copy_workflow, run_snakemake
from largebatch.experiments import ConfigError, build_registry, papers_of
from largebatch.spec import normalize
from largebatch.train import update_stop_reason

PAPERS = ["baseline", "keskar", "hoffer"]


@pytest.fixture(scope="module")
def mnist():
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config.update(scale="mnist")  # no papers=: the scale says which sections it builds
    runs, tables = build_registry(config)
    assert list(tables) == PAPERS
    return config["scales"]["mnist"], runs, tables


def test_keskar_f1_at_the_papers_protocol_and_shared_with_the_baseline(mnist):
    scale, runs, tables = mnist
    assert scale["datasets"]["mnist"]["kind"] == "mnist"
    main = [r for r in tables["keskar"] if r["main"]]
    assert sorted({(r["arm"], r["batch_size"]) for r in main}) == [("LB", 6000), ("SB", 256)]
    assert sorted({r["seed"] for r in main}) == [0, 1, 2, 3, 4]
    for row in main:
        spec = runs[row["run"]]
        assert (spec["dataset"], spec["model"], spec["width"], spec["depth"]) == ("mnist", "mlp", 512, 5)
        assert (spec["optimizer"], spec["lr"], spec["lr_scaling"]) == ("adam", 0.001, "none")
        # one stop rule for both arms: patience on the whole training set with a stated tolerance
        assert (spec["patience"], spec["min_delta"], spec["min_delta_mode"]) == (5, 1e-4, "abs")
        assert spec["eval_train_samples"] is None and spec["epochs"] is None
    # the baseline's runs are Keskar's F1 runs (same specs), trained once
    assert {r["run"] for r in tables["baseline"]} == {r["run"] for r in main}


def test_hoffer_f1_keeps_network_and_regime_and_cuts_ra_seeds_then_the_large_batch(mnist):
    scale, runs, tables = mnist
    rows = tables["hoffer"]
    by_arm = {}
    for row in rows:
        by_arm.setdefault(row["arm"], []).append(runs[row["run"]])
    assert sorted(by_arm) == sorted(["SB", "LB", "+LR", "+GBN", "+RA"])
    for arm, specs in by_arm.items():
        for spec in specs:
            assert (spec["model"], spec["width"], spec["depth"], spec["dataset"]) == ("mlp", 512, 5, "mnist")
            assert (spec["optimizer"], spec["momentum"], spec["weight_decay"], spec["max_grad_norm"]) == \
                ("sgd", 0.9, 1e-4, 5)
            # the 50-epoch regime with drops at 10/20/30, stretched x16 by regime adaptation only
            factor = 2048 // 128 if arm == "+RA" else 1
            assert spec["epochs"] == 50 * factor
            assert spec["milestones"] == [10 * factor, 20 * factor, 30 * factor]
            assert spec["batch_size"] == (128 if arm == "SB" else 2048)  # LB 2,048: bigBatch's MNIST script
    # cut 1: +RA on one seed (the poster's table is one run per cell); the other arms on 3
    seeds = {arm: sorted(row["seed"] for row in rows if row["arm"] == arm) for arm in by_arm}
    assert seeds == {"SB": [0, 1, 2], "LB": [0, 1, 2], "+LR": [0, 1, 2], "+GBN": [0, 1, 2], "+RA": [0]}
    assert by_arm["+GBN"][0]["ghost_batch_size"] == 128
    assert math.isclose(by_arm["+LR"][0]["lr"] * math.sqrt(2048 / 128), 0.4)  # sqrt scaling from the SB lr


def test_absolute_tolerance_stops_a_loss_that_creeps_down():
    """A loss falling by 3% a step near 3e-5 (an LB run long after it fitted its data) never
    stops under the relative rule; the absolute rule stops it after `patience` evaluations."""
    losses = [0.5, 0.1, 0.01, 1e-3] + [3e-5 * 0.97 ** k for k in range(40)]

    def stop_after(mode):
        spec = normalize({"epochs": 1, "patience": 5, "min_delta": 1e-4, "min_delta_mode": mode})
        state = {"best": math.inf, "bad_evals": 0, "stop_reason": None}
        for i, loss in enumerate(losses):
            update_stop_reason(state, spec, {"train_loss": loss, "train_acc": 1.0})
            if state["stop_reason"]:
                return i, state["stop_reason"]
        return None, None

    assert stop_after("rel") == (None, None)
    assert stop_after("abs") == (9, "patience")  # 1e-3 -> 3e-5 (index 4) counts, then 5 evaluations without


def test_unknown_tolerance_mode_is_rejected():
    from largebatch.spec import SpecError

    with pytest.raises(SpecError, match=r"min_delta_mode = 'absolute' is not allowed; choose one of \['rel', 'abs'\]"):
        normalize({"epochs": 1, "min_delta_mode": "absolute"})


def test_mnist_scale_dag_plans(tmp_path):
    """`snakemake -n --config scale=mnist`, with no papers=, plans the scale's three sections."""
    wd = copy_workflow(tmp_path)
    proc = run_snakemake(wd, "-n", "--config", "scale=mnist", timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = proc.stdout + proc.stderr
    counts = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            counts[parts[0]] = int(parts[1])
    # 10 Keskar F1 runs (shared with the baseline) + 4 Hoffer arms x 3 seeds + +RA on 1 seed;
    # one MNIST preparation; one section per paper of the scale and no other
    sharpness = sum(n for job, n in counts.items() if job.startswith("keskar_sharpness_"))
    assert counts["train"] == 23 and counts["prepare_data"] == 1 and sharpness == 10
    assert all(counts.get(p) == 1 for p in PAPERS) and counts["report"] == 1
    assert not {"masters_luschi", "golmant", "swap", "batch_augmentation"} & set(counts)
    assert "results/data/mnist.pt" in out


def test_papers_of_a_scale_default_to_its_own_list_narrowed_by_the_top_level():
    """A scale's `papers` is its default; the top-level `papers` (what --config papers= sets)
    narrows it, in the top-level order; an empty intersection or a name that is not a paper
    is a ConfigError naming the key; a scale without the key builds the top-level list."""
    every = ["baseline", "keskar", "hoffer", "masters_luschi", "golmant", "swap", "batch_augmentation"]
    scales = {"mnist": {"papers": ["hoffer", "baseline", "keskar"]}, "cpu": {}}
    assert papers_of({"scale": "mnist", "papers": every, "scales": scales}) == ["baseline", "keskar", "hoffer"]
    assert papers_of({"scale": "mnist", "papers": ["hoffer", "swap", "keskar"], "scales": scales}) == ["hoffer",
                                                                                                      "keskar"]
    assert papers_of({"scale": "cpu", "papers": ["swap", "baseline"], "scales": scales}) == ["swap", "baseline"]
    with pytest.raises(ConfigError, match=r"scale 'mnist' builds only \['hoffer', 'baseline', 'keskar'\] "
                                          r"\(scales.mnist.papers\), and papers = \['swap'\] names none of them"):
        papers_of({"scale": "mnist", "papers": ["swap"], "scales": scales})
    with pytest.raises(ConfigError, match=r"scales.mnist.papers lists 'nonsense', which is not a paper"):
        papers_of({"scale": "mnist", "papers": every, "scales": {"mnist": {"papers": ["keskar", "nonsense"]}}})
    with pytest.raises(ConfigError, match=r"papers lists 'nonsense', which is not a paper"):
        papers_of({"scale": "mnist", "papers": ["nonsense", "keskar"], "scales": scales})


def test_papers_on_the_command_line_narrow_the_scales_list(tmp_path):
    """`--config scale=mnist papers=[hoffer]` plans Hoffer's section alone; a list with none of
    the scale's papers stops before any job with the reason."""
    wd = copy_workflow(tmp_path)
    proc = run_snakemake(wd, "-n", "--config", "scale=mnist", "papers=[hoffer,swap]", timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "hoffer " in out and "keskar_sharpness_" not in out and "\nswap " not in out
    proc = run_snakemake(wd, "-n", "--config", "scale=mnist", "papers=[swap]", timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "names none of them" in out and "Traceback" not in out


def test_mnist_dataset_sources_are_checked_by_the_config_schema(tmp_path):
    wd = copy_workflow(tmp_path)
    config = yaml.safe_load((wd / "config.yaml").read_text())
    bad = copy.deepcopy(config)
    bad["scales"]["mnist"]["datasets"]["mnist"]["sources"] = ["local", "web"]
    (wd / "config.yaml").write_text(yaml.safe_dump(bad))
    proc = run_snakemake(wd, "-n", "--config", "scale=mnist", timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "'web'" in out and "['sources']" in out
