"""The report page built from synthetic sections (no training): formatting helpers, the
summary matrix, section order, numbering, downloads, provenance and the unique-id check."""

import base64
import re
from html.parser import HTMLParser
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from conftest import REPO  # noqa: E402
from largebatch.experiments.base import Figure, Table  # noqa: E402
from largebatch.report import Section, build_report  # noqa: E402
from largebatch.report.html import png_size  # noqa: E402
from largebatch.report.fmt import (format_effect, format_number, format_p, format_table, format_text,  # noqa: E402
                                   is_fragile)
from largebatch.report.provenance import scale_config, training_benchmarks  # noqa: E402
from largebatch.report.summary import claim_anchor, fragile, headline, totals  # noqa: E402
from largebatch.stats import claim_row, decide  # noqa: E402

CONFIG = {"scale": "tiny", "papers": ["hoffer", "golmant"], "threads": 1,
          "scales": {"tiny": {"gpu": False, "hoffer": {"seeds": [0, 1], "claims": {"H1": {"margin_pp": 0.5}}}}, "cpu": {"gpu": False, "hoffer": {"seeds": [0]}}}}


# ---------------------------------------------------------------- formatting helpers

def test_numbers_read_without_float_noise():
    assert format_number(float("nan")) == "–"
    assert format_number(None) == "–"
    assert format_number(float("inf")) == "∞"
    assert format_number(-np.inf) == "−∞"
    assert format_number(True) == "yes" and format_number(np.bool_(False)) == "no"
    assert format_number(np.int64(12345)) == "12,345"
    assert format_number(0.1 + 0.2) == "0.300"
    assert format_number(2.0) == "2"
    assert format_number(0.00012) == "1.20×10⁻⁴"
    assert format_number(0.5, decimals=2) == "0.50"
    assert format_number(-1.25, decimals=1) == "−1.2"  # round-half-even, real minus sign


def test_text_cells_lose_raw_spellings():
    assert format_text("nan") == "–" and format_text("-inf") == "−∞" and format_text("True") == "yes"
    assert format_text("2^[np.int64(-10), np.int64(-8)]") == "2^[-10, -8]"
    assert format_text("loss NaN/inf in 3 runs") == "loss NaN/inf in 3 runs"  # prose is left alone


def test_p_values_and_effects():
    assert format_p(0.0004) == "< 0.001" and format_p(0.995) == "> 0.99" and format_p(0.04211) == "0.042"
    assert format_p(float("nan")) == "–" and format_p(None) == "–"
    text = format_effect(1.234, 0.4, 2.06)
    assert text.startswith("+1.23 [") and text.endswith("]") and "0.40" in text
    assert format_effect(-0.5, -0.9, -0.1) == "−0.500 [−0.900, −0.100]"
    assert format_effect(float("nan"), float("nan"), float("nan")) == "–"
    assert format_effect(2.0, 2.0, 2.0) == "+2"  # exact (no spread): no interval


def test_fragile_is_within_a_factor_two_of_alpha():
    assert is_fragile(0.03) and is_fragile(0.09) and is_fragile(0.025)
    assert not is_fragile(0.001) and not is_fragile(0.2) and not is_fragile(float("nan"))


def test_table_columns_get_one_number_of_decimals():
    df = pd.DataFrame({"acc": [0.91234, 0.9, np.nan], "steps": [100.0, 2000.0, np.inf], "ok": [True, False, True],
                       "note": ["a", "nan", "np.float64(0.5)"]})
    out = format_table(df)
    assert out["acc"].tolist() == ["0.912", "0.900", "–"]
    assert out["steps"].tolist() == ["100", "2,000", "∞"]
    assert out["ok"].tolist() == ["yes", "no", "yes"]
    assert out["note"].tolist() == ["a", "–", "0.5"]


def test_active_scale_config_only():
    block = scale_config(CONFIG)
    assert list(block["scales"]) == ["tiny"] and block["threads"] == 1


def test_training_benchmarks_follow_packs():
    tables = {"a": [{"run": "r1"}, {"run": "r2"}, {"run": "r1"}], "b": [{"run": "r3"}]}
    out = training_benchmarks(tables, {"p0": ["r2", "r3"]})
    assert out == {"a": ["results/benchmarks/train/r1.tsv", "results/benchmarks/packs/p0.tsv"],
                   "b": ["results/benchmarks/packs/p0.tsv"]}


# ---------------------------------------------------------------- synthetic sections

def _claims(prefix):
    rng = np.random.default_rng(0)
    big, small = rng.normal(1.0, 0.1, 5), rng.normal(0.0, 0.1, 5)
    same = rng.normal(0.0, 0.1, 5)
    return [
        claim_row(f"{prefix}1", "Large batches generalise worse.", "test accuracy (%)", decide(big, small, "greater", 0.05),
                  rule="one-sided Welch, margin 0.05", paper="95.1", paper_source="Table 2"),
        claim_row(f"{prefix}2", "Ghost batch norm closes the gap.", "test accuracy (%)", decide(small, big, "greater", 0.05),
                  rule="one-sided Welch, margin 0.05"),
        claim_row(f"{prefix}3", "Nothing changes.", "loss", decide(same, small, "greater", 0.0), rule="Welch",
                  precondition="both arms converged", precondition_ok=False),
    ]


DECLARED = [Table("short", "Final accuracy per arm."), Table("per_curve", "Critical batch per {unit}."),
            Table("wide", "A table wider than the page: it scrolls inside its own box."),
            Figure("curves", "Test accuracy per epoch.", label="curves")]


def make_section(root: Path, paper: str, prefix: str, long_rows: int = 40, scope: str | None = None) -> Path:
    sec = Section(paper, f"Synthetic {paper}", DECLARED, outdir=root / paper)
    sec.summary(f"We ran the {paper} protocol on synthetic numbers.")
    if scope:
        sec.scope(scope)
    sec.protocol([{"aspect": "data", "paper": "CIFAR-10 [V]", "ours": "MNIST-1D"}])
    sec.table("short", pd.DataFrame({"batch size": [32, 4096], "test accuracy (%)": [91.234567, 88.1],
                                     "converged": [True, False]}), supports=[f"{prefix}1"])
    sec.table("per_curve", pd.DataFrame({"curve": range(long_rows), "b_crit": np.r_[np.inf, np.nan,
                                                                                   np.linspace(1, 2, long_rows - 2)]}),
              unit="curve")
    sec.table("wide", pd.DataFrame({f"critical batch, curve {i}": [2.0 ** i, np.nan] for i in range(24)}))
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot([1, 2, 3], [3, 1, 2])
    sec.figure("curves", fig, alt="Line chart: accuracy rises, then falls.",
               supports=[f"{prefix}2"])
    sec.text("Something in between the evidence.", heading="Reading")
    sec.claims(_claims(prefix))
    sec.caveats("Synthetic data decide nothing.")
    return sec.save()


@pytest.fixture
def report(tmp_path):
    paths = [make_section(tmp_path, "hoffer", "H"), make_section(tmp_path, "golmant", "G", scope="Tests the shape only.")]
    bench = tmp_path / "b.tsv"
    bench.write_text("s\th:m:s\n12.5\t0:00:12\n")
    checksum = tmp_path / "mnist1d.pt.sha256"
    checksum.write_text("ab" * 32 + "  mnist1d.pt\n")
    out = build_report([str(p) for p in paths], tmp_path / "report.html", CONFIG, benchmarks=[str(bench)],
                       template_dir=REPO / "report", workdir=REPO, runs=7,
                       paper_benchmarks={"hoffer": [str(bench)], "golmant": [str(tmp_path / "missing.tsv")]},
                       data_checksums=[str(checksum)], estimate=False)
    return out.read_text()


class Ids(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids, self.hrefs, self.imgs = [], [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.append(a["id"])
        if tag == "a" and "href" in a:
            self.hrefs.append((a.get("class", ""), a["href"]))
        if tag == "img":
            self.imgs.append(a)


def test_summary_matrix_links_every_claim(report):
    p = Ids()
    p.feed(report)
    chips = [h for cls, h in p.hrefs if "chip" in cls]
    assert len(chips) == 6
    assert all(h[1:] in p.ids for h in chips)
    assert [h for h in chips] == ["#claim-H1", "#claim-H2", "#claim-H3", "#claim-G1", "#claim-G2", "#claim-G3"]
    matrix = report[report.index('id="summary-matrix"'):report.index("</table>", report.index('id="summary-matrix"'))]
    assert 'class="chip reproduced" href="#claim-H1"' in matrix
    assert 'class="chip not-reproduced" href="#claim-H2"' in matrix
    assert 'class="chip inconclusive" href="#claim-H3"' in matrix  # failed precondition
    assert "Tests the shape only." in matrix  # the section's own scope line
    assert "cannot test the paper" in report  # the tiny scale's default, for the other section
    assert "(for Hoffer, Hubara &amp; Soudry 2017, which does not say it in its section)" in report
    assert "claims.H1.margin_pp = 0.5" in report  # margins of the active scale, from config
    assert report.index('id="summary"') < report.index('id="hoffer"') < report.index('id="provenance"')


def test_section_order_and_numbering(report):
    sec = report[report.index('<section id="hoffer"'):report.index('<section id="golmant"')]
    marks = [sec.index(m) for m in ("We ran the hoffer protocol", "<h3 id=\"hoffer-claims\">", "<h3>Evidence</h3>",
                                    "Table 1.1.", "Figure 1.1.", "Protocol: paper vs ours", "<h3>Caveats</h3>")]
    assert marks == sorted(marks)
    assert 'id="tab-hoffer-short"' in sec and 'id="fig-hoffer-curves"' in sec and "Table 1.2." in sec
    # the claims table cites its evidence by link
    row = sec[sec.index('id="claim-H1"'):sec.index("</tr>", sec.index('id="claim-H1"'))]
    assert 'href="#tab-hoffer-short">Table 1.1</a>' in row
    assert "95.1" in row and "Table 2" in row and "&lt; 0.001" in row
    assert "back to top" in sec and "Source tags:" in sec


def test_tables_fit_and_download(report):
    sec = report[report.index('<section id="hoffer"'):report.index('<section id="golmant"')]
    assert sec.count('<div class="scroll">') >= 3
    long = sec[sec.index('id="tab-hoffer-per_curve"'):]
    assert "<details><summary>Show all 40 rows</summary>" in long[:2000]
    short = sec[sec.index('id="tab-hoffer-short"'):sec.index('id="tab-hoffer-per_curve"')]
    assert "<details>" not in short
    assert "91.2" in short and "yes" in short and "91.234567" not in short
    link = re.search(r'download="hoffer-short.csv" href="data:text/csv;base64,([^"]+)"', sec)
    assert link and base64.b64decode(link.group(1)).decode().startswith("batch size,")
    assert "tables/short.csv" not in report  # no path the reader cannot open
    body = re.sub(r"<[^>]+>", " ", report)
    for raw in (r"\bnan\b", r"\binf\b", r"\bTrue\b", r"np\."):
        assert not re.search(raw, body), raw


def test_figures_are_2x_with_real_alt_text(report):
    p = Ids()
    p.feed(report)
    img = p.imgs[0]
    assert img["alt"] == "Line chart: accuracy rises, then falls."
    natural, _ = png_size(base64.b64decode(img["src"].split(",", 1)[1]))
    assert abs(int(img["width"]) - natural / 2) <= 1  # dpi 200 shown at 100 px per inch: 2x PNG


def test_provenance_shows_active_scale_and_compute(report):
    prov = report[report.index('<section id="provenance"'):]
    assert "cpu:" not in prov.split("Download the full")[0]  # the other scale's block is only in the download
    assert "abab" in prov and "mnist1d" in prov
    assert "12.5" in prov and "0 of 1" in prov  # golmant's declared record is missing
    assert re.search(r"Git commit</td><td>[0-9a-f]{12}", prov)
    assert 'download="config.yaml" href="data:application/x-yaml;base64,' in prov


def test_duplicate_claim_ids_fail_the_build(tmp_path):
    paths = [make_section(tmp_path, "hoffer", "X"), make_section(tmp_path, "golmant", "X")]
    with pytest.raises(ValueError, match=r"unique across the report.*'X1' in hoffer, golmant"):
        build_report([str(p) for p in paths], tmp_path / "r.html", CONFIG, template_dir=REPO / "report",
                     estimate=False)


def test_section_rejects_unknown_evidence(tmp_path):
    sec = Section("hoffer", "x", [Table("t", "cap")], outdir=tmp_path)
    sec.table("t", pd.DataFrame({"a": [1]}), supports=["H9"])
    sec.claims(_claims("H"))
    with pytest.raises(ValueError, match="supports claim 'H9'"):
        sec.save()


def test_headline_and_totals_from_claims():
    rows = [{"id": "A1", "claim": "x beats y", "verdict": "reproduced", "p_claim_adj": 0.03, "p_against_adj": 1.0,
             "precondition_ok": True},
            {"id": "A2", "claim": "z", "verdict": "not reproduced", "p_claim_adj": 1.0, "p_against_adj": 0.001,
             "precondition_ok": True}]
    assert fragile(rows[0]) and not fragile(rows[1])
    text = headline(rows)
    assert text.startswith("Main claim A1 (x beats y): reproduced. 1 of 2 reproduced.")
    assert "Evidence against: A2." in text and "1 fragile" in text
    t = totals([{"claims_rows": rows}])
    assert t["reproduced"] == 1 and t["not-reproduced"] == 1 and t["fragile"] == 1
    assert claim_anchor("K2-F1") == "claim-K2-F1" and claim_anchor("a b") == "claim-a-b"


def test_git_state_flags_a_dirty_tree(tmp_path):
    import subprocess

    from largebatch.report.provenance import git_state

    assert git_state(tmp_path)["commit"] is None  # not a checkout
    run = lambda *a: subprocess.run(["git", *a], cwd=tmp_path, check=True, capture_output=True)  # noqa: E731
    run("init", "-q")
    (tmp_path / "a.txt").write_text("1")
    run("add", "a.txt")
    run("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "x")
    clean = git_state(tmp_path)
    assert len(clean["commit"]) == 12 and clean["dirty"] is False
    (tmp_path / "a.txt").write_text("2")
    dirty = git_state(tmp_path)
    assert dirty["dirty"] is True and dirty["changed"] == ["a.txt"]
