"""largebatch.report.costs: per-section job cost from Snakemake benchmark records."""

import os
from pathlib import Path

import pytest
import yaml

from largebatch import paths
from largebatch.experiments import build_plan
from largebatch.report import costs
from largebatch.report.provenance import training_benchmarks

ROOT = Path(__file__).resolve().parents[1]


def _config(**over):
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config.update(over)
    return config


def _write(path: str, wall: float, cpu: float) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(f"s\th:m:s\tcpu_time\n{wall}\t0:00:01\t{cpu}\n")


def test_section_costs_sums_records_and_counts_shared_jobs_once(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = _config(scale="tiny")
    plan = build_plan(config)
    files = training_benchmarks(plan.tables, plan.packs)
    distinct = sorted({f for fs in files.values() for f in fs})
    for f in distinct[:-1]:  # the last job has not run: no record
        _write(f, 2.0, 1.5)
    _write(paths.benchmark_file("keskar", "section"), 7.0, 1.0)
    df = costs.section_costs(config).set_index("section")
    total = df.loc["total (distinct jobs)"]
    assert total["training jobs"] == f"{len(distinct) - 1}/{len(distinct)}"
    assert total["training wall s"] == pytest.approx(2.0 * (len(distinct) - 1))
    assert total["training CPU s"] == pytest.approx(1.5 * (len(distinct) - 1))
    assert df.loc["keskar", "analysis + section wall s"] == pytest.approx(7.0)
    # a section's row counts every job that trained one of its runs, shared or not
    k = [f for f in files["keskar"] if f != distinct[-1]]
    assert df.loc["keskar", "training wall s"] == pytest.approx(2.0 * len(k))


def test_cli_names_a_missing_results_folder(tmp_path, capsys):
    (tmp_path / "config.yaml").write_text((ROOT / "config.yaml").read_text())
    cwd = os.getcwd()
    try:
        with pytest.raises(SystemExit):
            costs.main(["--workdir", str(tmp_path)])
    finally:
        os.chdir(cwd)
    assert "no results/" in capsys.readouterr().err


def test_moved_lists_changed_added_and_dropped_claims(tmp_path, capsys):
    from largebatch.report import moved

    for side, rows in {"old": [("K1", "reproduced"), ("K2", "inconclusive"), ("K9", "reproduced")],
                       "new": [("K1", "reproduced"), ("K2", "not reproduced"), ("K10", "inconclusive")]}.items():
        (tmp_path / side / "keskar").mkdir(parents=True)
        lines = ["id,claim,verdict"] + [f"{i},x,{v}" for i, v in rows]
        (tmp_path / side / "keskar" / "claims.csv").write_text("\n".join(lines) + "\n")
    df = moved.compare(moved.read_claims(tmp_path / "old"), moved.read_claims(tmp_path / "new")).set_index("id")
    assert not df.loc["K1", "moved"]
    assert df.loc["K2", ["old", "new"]].tolist() == ["inconclusive", "not reproduced"] and df.loc["K2", "moved"]
    assert df.loc["K9", "new"] == "-" and df.loc["K10", "old"] == "-"
    assert moved.main([str(tmp_path / "old"), str(tmp_path / "new"), "--moved-only"]) == 0
    out = capsys.readouterr().out
    assert "3 of 4 verdicts moved" in out and "| K1 " not in out
    with pytest.raises(SystemExit):
        moved.main([str(tmp_path / "nothing"), str(tmp_path / "new")])
