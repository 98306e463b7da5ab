"""A tiny end-to-end Snakemake run in a temporary directory, and config errors that stop
the run before any job starts."""

import re

import pandas as pd
import pytest

from conftest import run_snakemake


def test_tiny_run_builds_the_report(tiny_run):
    html = (tiny_run / "results" / "report.html").read_text()
    assert "Provenance" in html and 'id="baseline"' in html
    assert "http://" not in html.replace("http://www.w3.org", "") and "<script" not in html.lower()
    # figures are inlined, with alt text that says what they show (not the file name)
    alts = re.findall(r'<img src="data:image/png;base64,[^"]+" alt="([^"]*)"', html)
    assert alts and all(len(a) > 20 and a != "learning_curves" for a in alts)
    claims = pd.read_csv(tiny_run / "results" / "baseline" / "claims.csv")
    assert set(claims.verdict) <= {"reproduced", "not reproduced", "inconclusive"} and len(claims) >= 2
    runs = list((tiny_run / "results" / "runs").iterdir())
    assert all((r / "metrics.json").exists() and (r / "model.pt").exists() for r in runs)
    # every training job (single run or pack) left a Snakemake benchmark record
    assert list((tiny_run / "results" / "benchmarks").glob("*/*.tsv"))


def test_second_run_has_nothing_to_do(tiny_run):
    proc = run_snakemake(tiny_run, "-n", "--cores", "1", "--config", "scale=tiny")
    assert proc.returncode == 0
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_every_paper_section_is_in_the_report(tiny_run):
    import yaml

    html = (tiny_run / "results" / "report.html").read_text()
    papers = yaml.safe_load((tiny_run / "config.yaml").read_text())["papers"]
    for paper in papers:
        assert f'<section id="{paper}"' in html, paper
        claims = pd.read_csv(tiny_run / "results" / paper / "claims.csv")
        assert len(claims) >= 1 and claims.verdict.notna().all(), paper
