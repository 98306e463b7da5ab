"""Malformed configurations stop the workflow before any job runs, each with one clear
message naming the offending key (checked through the real `snakemake` command)."""

import re
from concurrent.futures import ThreadPoolExecutor

import pytest
import yaml

from conftest import copy_workflow, run_snakemake

T = "scales: {tiny: {baseline: %s}}"  # override of the tiny baseline block
R = "scales: {tiny: {baseline: {run: %s}}}"  # override of its run settings

CASES = [
    ("scale: huge", r"instance\['scale'\]"),
    ("threads: 0", r"instance\['threads'\]"),
    ("threads: two", r"instance\['threads'\]"),
    ("autocast: fp16", r"instance\['autocast'\]"),
    ("device: tpu", r"instance\['device'\]"),
    ("papers: []", r"instance\['papers'\]"),
    ("papers: [baseline, nonsense]", r"nonsense"),
    ("checkpoint_every_s: -5", r"checkpoint_every_s"),
    ("download: maybe", r"instance\['download'\]"),
    ("colour: red", r"'colour' was unexpected"),
    ("scales: {tiny: {datasets: {mnist1d: {kind: imagenet}}}}", r"\['mnist1d'\]\['kind'\]"),
    ("scales: {tiny: {datasets: {mnist1d: {num_samples: -3}}}}", r"\['num_samples'\]"),
    ("scales: {tiny: {gpu: sometimes}}", r"\['gpu'\]"),
    (T % "{small_batch: 0}", r"scales.tiny.baseline.*small_batch"),
    (T % "{large_batch: 5000}", r"scales.tiny.baseline: batch_size = 5000 is larger than the training set"),
    (T % "{seeds: []}", r"scales.tiny.baseline.*seeds"),
    (T % "{seeds: [-1]}", r"scales.tiny.baseline.*seeds"),
    (T % "{surprise: 1}", r"scales.tiny.baseline.*'surprise' was unexpected"),
    (R % "{optimizer: lamb}", r"optimizer"),
    (R % "{model: transformer}", r"model"),
    (R % "{lr: -0.1}", r"\['lr'\]"),
    (R % "{momentum: high}", r"momentum"),
    (R % "{norm: ghost, ghost_batch_size: 7}", r"ghost_batch_size = 7 must divide"),
    (R % "{norm: ghost}", r"ghost_batch_size"),
    (R % "{dataset: cifar10}", r"dataset 'cifar10' is not defined under scales.tiny.datasets"),
    (R % "{epochs: 0}", r"epochs"),
    (R % "{stop_train_acc: 1.5}", r"stop_train_acc"),
    (R % "{eval_bn: sometimes}", r"eval_bn"),
    (R % "{lr_scaling: sqrt}", r"lr_scaling = 'sqrt' needs base_batch"),
    (R % "{warmup_epochs: -1}", r"warmup_epochs"),
    # a Hoffer arm's own seeds: arms only, each a non-empty list of seeds
    ("scales: {tiny: {hoffer: {networks: {F1: {arm_seeds: {RA: [0]}}}}}}", r"scales.tiny.hoffer is invalid.*'RA'"),
    ("scales: {tiny: {hoffer: {networks: {F1: {arm_seeds: {'+RA': []}}}}}}", r"scales.tiny.hoffer is invalid.*\[\]"),
    # a scale's own list of sections: papers only, and the top-level papers must name one of them
    ("scales: {tiny: {papers: [baseline, nonsense]}}", r"scales.tiny.papers lists 'nonsense', which is not a paper"),
    ("scales: {tiny: {papers: []}}", r"\['tiny'\]\['papers'\]"),
    ("papers: [swap]\nscales: {tiny: {papers: [baseline, keskar]}}",
     r"scale 'tiny' builds only \['baseline', 'keskar'\] \(scales.tiny.papers\), and papers = \['swap'\] names none"),
]


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    """Dry-run every malformed config (a few at a time: each is its own snakemake process)."""
    workdir = copy_workflow(tmp_path_factory.mktemp("cfg"))

    def attempt(i):
        override = CASES[i][0]
        (workdir / f"bad{i}.yaml").write_text(override + "\n")
        extra = "scale=tiny" if "scale:" not in override else "threads=1"
        return run_snakemake(workdir, "-n", "--nolock", "--cores", "1", "--configfile", "config.yaml",
                             f"bad{i}.yaml", "--config", extra, timeout=300)

    with ThreadPoolExecutor(max_workers=3) as pool:
        procs = list(pool.map(attempt, range(len(CASES))))
    return workdir, procs


@pytest.mark.parametrize("i", range(len(CASES)), ids=[c[0][:40] for c in CASES])
def test_malformed_config_stops_before_any_job(outcomes, i):
    workdir, procs = outcomes
    override, message = CASES[i]
    yaml.safe_load(override)  # the override itself is valid YAML
    out = procs[i].stdout + procs[i].stderr
    assert procs[i].returncode != 0, out[-1500:]
    assert re.search(message, out, re.S), out[-2500:]
    assert "Traceback" not in out
    assert "Job stats" not in out and not (workdir / "results").exists()
