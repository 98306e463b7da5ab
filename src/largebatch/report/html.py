"""Render every paper section into one self-contained HTML page.

The page opens on a summary (verdict matrix, totals, one line per paper, how verdicts are
decided); each section then shows, in this order, its summary, claims, evidence (numbered
tables and figures), protocol and caveats; provenance and the bibliography close the page.
Figures are inlined as base64 PNG, tables are rendered from their CSV with fixed decimals
(long ones collapsed) and each CSV is embedded as a download, so the page needs no network
and refers to no file the reader cannot open. Every string from config or results goes
through Jinja2's autoescaping, so a ``<script>`` in a label shows as text.
"""

from __future__ import annotations

import base64
import json
import os
import struct
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from ..common import atomic_write_text
from ..stats import ALPHA, CLAIM_COLUMNS
from . import provenance as prov
from .bibliography import PAPERS, REFERENCES, SOURCE_TAGS, cite
from .fmt import as_bool, format_effect, format_number, format_p, format_table, format_text, numeric_columns
from .summary import (SCALE_SCOPE, VERDICT_CLASS, check_unique_claims, claim_anchor, fragile, margins, paper_lines,
                      totals, verdict_rules)

# kept importable from here (older callers)
git_commit, hardware, versions, benchmark_summary = prov.git_commit, prov.hardware, prov.versions, prov.benchmark_summary

#: tables with more rows than this are collapsed in a <details> element
COLLAPSE_ROWS = 15
#: figures are shown at this many CSS pixels per inch of the matplotlib figure
CSS_PX_PER_INCH = 100


def data_url(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height of a PNG from its IHDR chunk."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG file")
    return struct.unpack(">II", data[16:24])


def _alt(item: dict) -> str:
    """The figure's alt text: its description, never just its file name."""
    alt = (item.get("alt") or "").strip()
    if not alt or alt in (item.get("name"), Path(item.get("png", "")).stem):
        alt = item.get("caption") or ""
    return format_text(alt)


def _figure(item: dict, base: Path, number: str, anchor: str) -> dict:
    data = (base / item["png"]).read_bytes()
    width, height = png_size(data)
    scale = CSS_PX_PER_INCH / float(item.get("dpi") or CSS_PX_PER_INCH)
    return {**item, "number": number, "anchor": anchor, "src": data_url(data, "image/png"), "alt": _alt(item),
            "width": round(width * scale), "height": round(height * scale), "caption": format_text(item["caption"])}


def _table(item: dict, base: Path, number: str, anchor: str) -> dict:
    csv = base / item["csv"]
    raw = csv.read_bytes()
    try:
        df = pd.read_csv(csv)
    except pd.errors.EmptyDataError:
        df = pd.DataFrame()
    text = format_table(df)
    return {**item, "number": number, "anchor": anchor, "header": list(text.columns),
            "numeric": numeric_columns(df), "body": text.values.tolist(), "n_rows": len(df),
            "collapsed": len(df) > COLLAPSE_ROWS, "download": data_url(raw, "text/csv"),
            "filename": f"{item['name']}.csv", "caption": format_text(item["caption"])}


def _claims(base: Path, doc: dict, refs: dict[str, dict]) -> list[dict]:
    df = pd.read_csv(base / doc["claims"], keep_default_na=True)
    missing = [c for c in CLAIM_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{base / doc['claims']}: lacks the claims-table columns {missing}; write it with "
                         f"Section.claims(rows of largebatch.stats.claim_row) and rerun the section's rule")
    evidence = doc.get("evidence") or {}
    rows = []
    for r in df.to_dict("records"):
        r = {k: (None if isinstance(v, float) and v != v else v) for k, v in r.items()}
        r["id"] = str(r["id"])
        ok = as_bool(r.get("precondition_ok", True))
        rows.append({**r, "anchor": claim_anchor(r["id"]), "cls": VERDICT_CLASS.get(r["verdict"], "inconclusive"),
                     "fragile": fragile(r), "precondition_ok": ok,
                     "ours_text": format_number(r.get("ours")), "paper_text": format_number(r.get("paper")),
                     "paper_source": format_text(r["paper_source"]) if r.get("paper_source") else "",
                     "effect_text": format_effect(r.get("effect"), r.get("ci_low"), r.get("ci_high")),
                     "p_claim_text": format_p(r.get("p_claim_adj")), "p_against_text": format_p(r.get("p_against_adj")),
                     "evidence_refs": [refs[n] for n in evidence.get(r["id"], []) if n in refs]})
    return rows


def load_section(path: str | os.PathLike, index: int = 1) -> dict:
    """One section.json with its files read in: parts in report order, tables and figures
    numbered ``index.k``, claims formatted."""
    path = Path(path)
    doc = json.loads(path.read_text())
    base = path.parent
    paper = doc["paper"]
    summary, scope, caveats, evidence = [], [], [], []
    refs: dict[str, dict] = {}
    n_fig = n_tab = 0
    seen_figure_or_table = False
    for item in doc["items"]:
        kind = item["kind"]
        if kind == "text":
            part = item.get("part")
            t = {**item, "paragraphs": [format_text(p) for p in item["text"].split("\n\n") if p.strip()]}
            if part == "summary" or (part is None and not seen_figure_or_table and not summary
                                     and not any(i.get("part") == "summary" for i in doc["items"])):
                summary.append(t)
            elif part == "scope":
                scope.append(t)
            elif part == "caveats":
                caveats.append(t)
            else:
                evidence.append(t)
            continue
        seen_figure_or_table = True
        if kind == "figure":
            n_fig += 1
            it = _figure(item, base, f"{index}.{n_fig}", f"fig-{paper}-{item['name']}")
            refs[item["name"]] = {"label": f"Fig. {it['number']}", "href": "#" + it["anchor"]}
        elif kind == "table":
            n_tab += 1
            it = _table(item, base, f"{index}.{n_tab}", f"tab-{paper}-{item['name']}")
            refs[item["name"]] = {"label": f"Table {it['number']}", "href": "#" + it["anchor"]}
        else:
            raise ValueError(f"{path}: item kind {kind!r} is not text, table or figure")
        evidence.append(it)
    claims = _claims(base, doc, refs)
    bib = PAPERS.get(paper)
    # a section that is not one of the papers (e.g. the baseline) is named by its title
    return {"paper": paper, "title": doc["title"], "index": index, "cite": bib.cite if bib else doc["title"], "bib": bib,
            "summary": summary, "scope_text": " ".join(p for t in scope for p in t["paragraphs"]),
            "caveats": caveats, "evidence": evidence, "protocol": doc.get("protocol") or [],
            "claims_rows": claims, "claims_csv": data_url((base / doc["claims"]).read_bytes(), "text/csv")}


def build_report(section_paths: list[str], out_html: str | os.PathLike, config: dict, benchmarks: list[str] | None = None,
                 template_dir: str | os.PathLike = "report", workdir: str | os.PathLike = ".",
                 runs: int | None = None, paper_benchmarks: dict[str, list[str]] | None = None,
                 data_checksums: list[str] | None = None, estimate: bool = True) -> Path:
    """Write the report. benchmarks: every declared benchmark file (totals); paper_benchmarks:
    paper -> the benchmark files of its jobs (compute per paper); data_checksums: the
    ``.sha256`` files of the datasets used; estimate: add the paper-scale GPU-hour estimate."""
    env = Environment(loader=FileSystemLoader(str(template_dir)), autoescape=select_autoescape(["html", "j2"]),
                      undefined=StrictUndefined)
    template = env.get_template("template.html.j2")
    sections = [load_section(p, i) for i, p in enumerate(section_paths, start=1)]
    check_unique_claims(sections)
    cite_of = {s["paper"]: s["cite"] for s in sections}
    bench = prov.benchmark_summary(benchmarks or [])
    git = prov.git_state(workdir)
    scale = config.get("scale")
    provenance = {
        "git": git,
        "generated": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "scale": scale,
        "hardware": prov.hardware(),
        "versions": prov.versions(),
        "jobs": bench["jobs"],
        "runs": runs,
        "job_seconds": bench["seconds"],
        "per_paper": [{**r, "cite": cite_of.get(r["paper"], cite(r["paper"]))} for r in prov.compute_per_paper(paper_benchmarks or {})],
        "data": prov.data_hashes(data_checksums or []),
        "config": prov.dump_yaml(prov.scale_config(config)),
        "config_full": data_url(prov.dump_yaml(config).encode(), "application/x-yaml"),
        "estimate": prov.paper_scale_estimate(config) if estimate else None,
    }
    for r in (provenance["estimate"] or {}).get("rows", []):
        r["cite"] = cite_of.get(r["paper"], cite(r["paper"]))
    html = template.render(
        sections=sections, prov=provenance, lines=paper_lines(sections, scale), totals=totals(sections),
        rules=verdict_rules(ALPHA), alpha=ALPHA, margins=[{**m, "cite": cite_of.get(m["paper"], m["paper"])}
                                                          for m in margins(config)], tags=SOURCE_TAGS, collapse_rows=COLLAPSE_ROWS,
        papers=[p for p in PAPERS.values()], references=list(REFERENCES.values()),
        default_scope=SCALE_SCOPE.get(str(scale), f"Scale {scale!r}."))
    out = Path(out_html)
    atomic_write_text(out, html)
    return out

