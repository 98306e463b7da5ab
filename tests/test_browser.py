"""The tiny-scale report opened in a real browser (Debian's Chromium driven by Playwright)."""

import shutil
from pathlib import Path

import pytest
import yaml

from conftest import REPO

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = REPO / "test-artifacts"


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


def test_report_renders_offline_with_every_section(browser, tiny_run):
    report = tiny_run / "results" / "report.html"
    papers = yaml.safe_load((tiny_run / "config.yaml").read_text())["papers"]
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    errors, requests = [], []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    page.goto(report.as_uri(), wait_until="load")

    assert errors == []
    assert [u for u in requests if not u.startswith(("file:", "data:"))] == []  # nothing leaves the file
    images = page.eval_on_selector_all("img", "els => els.map(e => [e.alt, e.complete, e.naturalWidth])")
    assert images and all(done and width > 0 for _, done, width in images), images
    for paper in papers:
        section = page.locator(f"section#{paper}")
        assert section.count() == 1, paper
        assert section.locator("table.claims tr").count() >= 2, paper  # header + at least one claim
    assert page.locator("#provenance").inner_text().count("Git commit") == 1
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    page.close()
