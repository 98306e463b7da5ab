"""Smoke test of the benchmark code (tiny sizes, one repeat): every benchmark runs, and the
table and files hold one row per comparison with a goal and a verdict.  No timing is
asserted: the numbers of a quick run mean nothing."""

import json
import math
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.__main__ import BENCHMARKS, main  # noqa: E402
from benchmarks.common import Result  # noqa: E402


def test_quick_run_writes_a_row_per_comparison(tmp_path, capsys):
    assert main(["--quick", "--out", str(tmp_path / "bench")]) == 0
    printed = capsys.readouterr().out
    rows = json.loads((tmp_path / "bench.json").read_text())["rows"]
    names = [r["name"] for r in rows]
    for prefix in ("engine overhead", "data path", "compute", "vmap pack", "threads", "orchestration"):
        assert any(n.startswith(prefix) for n in names), prefix
    assert any("per-job fixed cost" in n for n in names)
    for r in rows:
        assert math.isfinite(r["measured"]) and math.isfinite(r["baseline"]) and r["measured"] >= 0, r
        assert r["goal"] and isinstance(r["passed"], bool)
        assert f"| {r['name']} |" in printed
    md = (tmp_path / "bench.md").read_text()
    assert "| benchmark | measured | baseline | unit | ratio | goal | pass |" in md and "QUICK" in md


def test_result_goal_logic():
    assert Result("a", 2, 1, "x", 2.0, 0.95).passed
    assert not Result("b", 1, 2, "x", 0.5, 0.95).passed
    lower = Result("c", 12, 10, "s", 12.0, 10.0, higher_is_better=False, ratio_unit="s")
    assert not lower.passed and lower.goal_text == "<= 10 s"
    assert Result("d", 1, 1, "%", 60.0, 50.0, ratio_unit="%").goal_text == ">= 50%"
    assert set(BENCHMARKS) == {"engine", "datapath", "flops", "vmap", "floor", "convstack", "threads",
                               "orchestration"}
