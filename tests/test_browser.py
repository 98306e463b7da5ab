"""The report opened in a real browser (Debian's Chromium driven by Playwright): a report built
from synthetic sections (seconds, no training) and the tiny-scale workflow's report."""

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from conftest import REPO

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = REPO / "test-artifacts"
WIDTHS = (1400, 900)
# a table cell that is a raw Python/numpy spelling instead of a value for a reader
RAW_CELL = re.compile(r"^\s*[-+]?(nan|NaN|inf|Inf|infinity|True|False|None)\s*$")
# raw spellings inside text: numpy reprs, and lower-case nan/inf as words (not 'NaN/inf' prose)
RAW_TEXT = re.compile(r"\bnp\.[a-z_]+\d*\(|\bnp\.(float|int|bool)|(?<![\w/])-?(nan|inf)(?![\w/])")


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed, so the report was NOT checked in a browser: "
                    "`apt-get install chromium` (or `make system-deps`) and rerun")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run", "--disable-quic"])
        yield b
        b.close()


def open_report(browser, path: Path, width: int, height: int = 900):
    page = browser.new_page(viewport={"width": width, "height": height})
    errors, requests = [], []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    page.goto(path.as_uri(), wait_until="load")
    return page, errors, requests


def check_page(browser, path: Path) -> dict:
    """Every check of issue 20 point 7 at each width; returns page heights (px) per width."""
    heights = {}
    for width in WIDTHS:
        page, errors, requests = open_report(browser, path, width)
        assert errors == [], errors
        assert [u for u in requests if not u.startswith(("file:", "data:"))] == []  # nothing leaves the file
        # no horizontal scroll of the page: wide tables scroll inside their own wrapper
        overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, f"page scrolls sideways by {overflow} px at {width} px"
        wide = page.evaluate("""() => [...document.querySelectorAll('table')].filter(t => {
            const r = t.getBoundingClientRect(); return r.right > document.documentElement.clientWidth + 1
              && !t.closest('.scroll'); }).map(t => t.className)""")
        assert wide == [], f"tables wider than the page outside a scroll wrapper: {wide}"
        heights[width] = page.evaluate("document.documentElement.scrollHeight")
        if width == WIDTHS[0]:
            check_content(page)
        page.close()
    return heights


def check_content(page) -> None:
    # every verdict chip links to an existing claim row
    chips = page.eval_on_selector_all("#summary-matrix a.chip", "els => els.map(e => e.getAttribute('href'))")
    assert chips, "the summary has no verdict chips"
    missing = page.evaluate("""hrefs => hrefs.filter(h => { const el = document.getElementById(h.slice(1));
        return !el || !el.closest('table.claims'); })""", chips)
    assert missing == [], f"chips linking to no claim row: {missing}"
    rows = page.eval_on_selector_all("table.claims tr[id]", "els => els.length")
    assert rows == len(chips)
    # every evidence link in a claims table points at a numbered table or figure
    refs = page.eval_on_selector_all("table.claims .refs a", "els => els.map(e => e.getAttribute('href'))")
    assert page.evaluate("hs => hs.filter(h => !document.getElementById(h.slice(1)))", refs) == []
    # figures: loaded, with alt text that describes them (not a file name)
    images = page.eval_on_selector_all("img", "els => els.map(e => [e.alt, e.complete, e.naturalWidth])")
    assert images and all(done and w > 0 for _, done, w in images), images
    bad_alt = [a for a, _, _ in images if len(a) < 15 or " " not in a.strip() or re.search(r"\.(png|svg)$", a)
               or re.fullmatch(r"[\w-]+", a)]
    assert bad_alt == [], f"figures without a real alt text: {bad_alt}"
    # no raw nan / inf / True / np. spellings
    cells = page.eval_on_selector_all("td", "els => els.map(e => e.innerText)")
    assert [c for c in cells if RAW_CELL.match(c)] == []
    text = page.inner_text("body")
    assert not RAW_TEXT.search(text), RAW_TEXT.search(text).group(0) + ": " + \
        text[max(0, RAW_TEXT.search(text).start() - 80):RAW_TEXT.search(text).end() + 40]
    # no pointer to a file the reader of the HTML cannot open
    for name in ("REFERENCE.md", "results/", "tables/"):
        assert name not in text, f"the page refers to {name!r}, which a reader of the HTML cannot open"
    # the summary (totals and verdict matrix) is on the first screen
    bottom = page.evaluate("document.getElementById('summary-matrix').getBoundingClientRect().bottom")
    assert bottom <= page.viewport_size["height"], f"the verdict matrix ends at {bottom} px, below the first screen"
    assert page.locator("#verdict-rules").count() == 1
    assert page.locator("#provenance").inner_text().count("Git commit") == 1


def test_synthetic_report_in_browser(browser, tmp_path):
    from test_report import CONFIG, make_section

    from largebatch.report import build_report

    paths = [make_section(tmp_path, "hoffer", "H"), make_section(tmp_path, "golmant", "G", long_rows=60)]
    out = build_report([str(p) for p in paths], tmp_path / "report.html", CONFIG, template_dir=REPO / "report",
                       workdir=REPO, estimate=False)
    check_page(browser, out)
    # a long table is collapsed until opened
    page, _, _ = open_report(browser, out, 1400)
    assert not page.locator("#tab-golmant-per_curve table").is_visible()
    page.locator("#tab-golmant-per_curve summary").click()
    assert page.locator("#tab-golmant-per_curve table").is_visible()
    page.close()


def test_report_renders_offline_with_every_section(browser, tiny_run):
    report = tiny_run / "results" / "report.html"
    papers = yaml.safe_load((tiny_run / "config.yaml").read_text())["papers"]
    heights = check_page(browser, report)
    page, _, _ = open_report(browser, report, 1400)
    for paper in papers:
        section = page.locator(f"section#{paper}")
        assert section.count() == 1, paper
        assert section.locator("table.claims tr").count() >= 2, paper  # header + at least one claim
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "report-top.png"))  # the first screen
    shot = ARTIFACTS / "report.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    (ARTIFACTS / "report-metrics.json").write_text(json.dumps(
        {"page_height_px": heights, "bytes": report.stat().st_size}, indent=1))
    page.close()
