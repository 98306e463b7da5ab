"""A tiny end-to-end Snakemake run in a temporary directory, and config errors that stop
the run before any job starts."""

import re

import pandas as pd
import pytest

from conftest import copy_workflow, run_snakemake


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    wd = copy_workflow(tmp_path_factory.mktemp("wf"))
    proc = run_snakemake(wd, "--cores", "2", "--config", "scale=tiny")
    assert proc.returncode == 0, proc.stderr[-4000:]
    return wd


def test_tiny_run_builds_the_report(tiny_run):
    html = (tiny_run / "results" / "report.html").read_text()
    assert "Provenance" in html and 'id="baseline"' in html
    assert "http://" not in html.replace("http://www.w3.org", "") and "<script" not in html.lower()
    assert re.search(r'<img alt="learning_curves" src="data:image/png;base64,', html)
    claims = pd.read_csv(tiny_run / "results" / "baseline" / "claims.csv")
    assert set(claims.verdict) <= {"reproduced", "not reproduced", "inconclusive"} and len(claims) >= 2
    runs = list((tiny_run / "results" / "runs").iterdir())
    assert all((r / "metrics.json").exists() and (r / "model.pt").exists() for r in runs)
    assert len(list((tiny_run / "results" / "benchmarks" / "train").glob("*.tsv"))) == len(runs)


def test_second_run_has_nothing_to_do(tiny_run):
    proc = run_snakemake(tiny_run, "-n", "--cores", "1", "--config", "scale=tiny")
    assert proc.returncode == 0
    assert "Nothing to be done" in proc.stdout + proc.stderr


@pytest.mark.parametrize("override, words", [
    ("scale=huge", r"scale"),
    ("threads=0", r"threads"),
    ("papers=[]", r"papers"),
    ("device=tpu", r"device"),
    ("checkpoint_every_s=-1", r"checkpoint_every_s"),
])
def test_bad_config_stops_before_any_job(tmp_path, override, words):
    wd = copy_workflow(tmp_path)
    proc = run_snakemake(wd, "-n", "--cores", "1", "--config", override)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert re.search(words, out), out[-2000:]
    assert not (wd / "results").exists()


def test_semantic_config_error_names_key(tmp_path):
    wd = copy_workflow(tmp_path)
    text = (wd / "config.yaml").read_text().replace("large_batch: 120", "large_batch: 5000", 1)
    (wd / "config.yaml").write_text(text)
    proc = run_snakemake(wd, "-n", "--cores", "1", "--config", "scale=tiny")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "scales.tiny.baseline" in out and "larger than the training set" in out, out[-2000:]
