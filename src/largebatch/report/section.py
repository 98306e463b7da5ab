"""A paper's section of the report.

An analysis notebook fills a ``Section`` with text, a protocol table (paper vs ours),
tables (CSV + HTML), figures (PNG) and the claims table, then ``save()`` writes them
under ``results/<paper>/`` with ``section.json`` listing them in order.  The report
rule turns every section.json into one HTML page, in the order summary, claims, evidence
(tables and figures, numbered), protocol, caveats:

* ``summary(text)`` -- the section's opening paragraph (else the first text before any
  table or figure is taken as the summary);
* ``scope(text)`` -- one or two sentences on what this scale can and cannot test (shown in
  the report's summary; else the report says it from the scale);
* ``caveats(text)`` -- what limits the reading of the results (shown last);
* ``text(text, heading)`` -- any other paragraph, in the evidence, where it was written;
* ``table(..., supports=["K1"])`` / ``figure(..., supports=[...])`` -- the claims an item
  is evidence for; the claims table links to it (a claim row may also carry ``evidence``:
  a list of item names).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from .. import paths
from ..common import atomic_write
from ..stats import CLAIM_COLUMNS, VERDICTS, finalize_claims

#: where a text item goes in the report (None: with the evidence, in order)
PARTS = (None, "summary", "scope", "caveats")


def load_runs(rows: list[dict], files: dict[str, str]) -> pd.DataFrame:
    """The paper's run table (labels + run id) joined with each run's metrics.json
    (``files``: run id -> its metrics.json, as the section rule's inputs give them)."""
    out = []
    for row in rows:
        with open(files[row["run"]]) as f:
            metrics = json.load(f)
        metrics.pop("run", None)
        clash = set(metrics) & set(row)
        out.append({**{k: v for k, v in metrics.items() if k not in clash}, **row})
    return pd.DataFrame(out)


def load_histories(rows: list[dict], files: dict[str, str]) -> pd.DataFrame:
    """Every run's history.csv (``files``: run id -> path), with the paper's labels as extra
    columns (long format)."""
    frames = []
    for row in rows:
        h = pd.read_csv(files[row["run"]])
        for k, v in row.items():
            if k not in h.columns:
                h[k] = v
        frames.append(h)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


class Section:
    """``declared``: the paper's tables and figures (``experiments.base.Output``, from its
    ``PAPER.outputs``); ``files``: name -> path of each, as the section rule's ``output:``
    gives them (default: the conventional paths under ``outdir``). A name not declared is an
    error, and so is a declared item the notebook never adds (at ``save``)."""

    def __init__(self, paper: str, title: str, declared, outdir: str | os.PathLike | None = None,
                 files: dict[str, str] | None = None):
        self.paper = paper
        self.title = title
        self.outdir = Path(outdir or paths.paper_file(paper))
        self.declared = {o.name: o for o in declared}
        files = files or {}
        sub = {"table": ("tables", "csv"), "figure": ("figures", "png")}
        self.files = {name: Path(files.get(name) or self.outdir / sub[o.kind][0] / f"{name}.{sub[o.kind][1]}")
                      for name, o in self.declared.items()}
        self.items: list[dict] = []
        self._claims: list[dict] | None = None
        self._protocol: list[dict] | None = None
        self._evidence: dict[str, list[str]] = {}
        for path in self.files.values():
            path.parent.mkdir(parents=True, exist_ok=True)
        self.outdir.mkdir(parents=True, exist_ok=True)

    def _declared(self, name: str, kind: str):
        out = self.declared.get(name)
        if out is None or out.kind != kind:
            names = sorted(n for n, o in self.declared.items() if o.kind == kind)
            raise ValueError(f"section {self.paper!r}: {kind} {name!r} is not declared in the paper's PAPER.outputs "
                             f"(declared {kind}s: {names}); declare it there with its caption")
        return out

    def _rel(self, path: Path) -> str:
        return os.path.relpath(path, self.outdir)

    def text(self, text: str, heading: str | None = None, part: str | None = None) -> None:
        """A paragraph of plain text (escaped in the report; blank lines split paragraphs).
        part: None (evidence, in order), or one of "summary", "scope", "caveats"."""
        if part not in PARTS:
            raise ValueError(f"section {self.paper!r}: text part = {part!r}; use one of {PARTS}")
        self.items.append({"kind": "text", "text": text, "heading": heading, "part": part})

    def summary(self, text: str) -> None:
        """The section's opening paragraph: what was run and what it found."""
        self.text(text, part="summary")

    def scope(self, text: str) -> None:
        """What this scale can and cannot test for the paper (one or two sentences)."""
        self.text(text, part="scope")

    def caveats(self, text: str, heading: str | None = None) -> None:
        """What limits the reading of the results; shown at the end of the section."""
        self.text(text, heading=heading, part="caveats")

    def _supports(self, supports) -> list[str]:
        if supports is None:
            return []
        if isinstance(supports, str):
            supports = [supports]
        return [str(c) for c in supports]

    def _check_name(self, name: str, kind: str) -> None:
        if any(i.get("name") == name and i["kind"] == kind for i in self.items):
            raise ValueError(f"section {self.paper!r}: {kind} {name!r} is added twice; give each a unique name")

    def protocol(self, rows: list[dict]) -> None:
        """Rows of {'aspect', 'paper', 'ours'}: how our protocol differs from the paper's."""
        self._protocol = [{"aspect": r["aspect"], "paper": r["paper"], "ours": r["ours"]} for r in rows]

    def table(self, name: str, df: pd.DataFrame, supports=None, **fields) -> Path:
        """A declared table: CSV (the report embeds it as a download and renders it with fixed
        decimals, collapsed when long) and an HTML fragment. ``fields`` fill its declared caption;
        supports: claim ids it is evidence for."""
        out = self._declared(name, "table")
        caption = out.fill(**fields)
        self._check_name(name, "table")
        csv = self.files[name]
        html = csv.with_suffix(".html")
        df.to_csv(csv, index=False)
        html.write_text(df.to_html(index=False, escape=True, na_rep="–", classes="data", border=0))
        self.items.append({"kind": "table", "name": name, "csv": self._rel(csv), "html": self._rel(html),
                           "caption": caption, "rows": int(len(df)), "columns": int(len(df.columns)),
                           "supports": self._supports(supports)})
        return csv

    def figure(self, name: str, fig, supports=None, alt: str | None = None, dpi: int = 200, **fields) -> Path:
        """A declared figure; ``fields`` fill its declared caption; ``alt``: what the figure shows,
        in words (the report's alt text; default the caption). Saved as PNG at ``dpi`` (200 = twice
        the 100 px/inch the report shows it at, sharp on high-density screens), with its caption as
        reStructuredText beside it in captions/ (for ``snakemake --report``). supports: claim ids it
        is evidence for."""
        out = self._declared(name, "figure")
        caption = out.fill(**fields)
        self._check_name(name, "figure")
        path = self.files[name]
        fig.savefig(path, dpi=dpi, bbox_inches="tight")
        import matplotlib.pyplot as plt

        plt.close(fig)
        rst = self.outdir / "captions" / f"{name}.rst"
        rst.parent.mkdir(parents=True, exist_ok=True)
        rst.write_text(caption + "\n")
        self.items.append({"kind": "figure", "name": name, "png": self._rel(path), "caption": caption,
                           "alt": alt or caption, "dpi": dpi, "supports": self._supports(supports)})
        return path

    def claims(self, rows: list[dict]) -> Path:
        """The paper's claims table: rows from ``stats.claim_row``. Holm-Bonferroni across the
        rows, then each verdict (``stats.finalize_claims``); written to claims.csv."""
        for r in rows:
            missing = set(CLAIM_COLUMNS) - set(r)
            if missing:
                raise ValueError(f"claim {r.get('id')!r} lacks {sorted(missing)}; build it with largebatch.stats.claim_row")
            if r["verdict"] not in VERDICTS:
                raise ValueError(f"claim {r['id']!r}: verdict {r['verdict']!r} is not allowed")
        final = finalize_claims(rows)
        self._claims = [{c: r[c] for c in CLAIM_COLUMNS} for r in final]
        self._evidence = {r["id"]: self._supports(r.get("evidence")) for r in final if r.get("evidence")}
        path = self.outdir / "claims.csv"
        pd.DataFrame(self._claims, columns=CLAIM_COLUMNS).to_csv(path, index=False)
        return path

    def evidence(self) -> dict[str, list[str]]:
        """Claim id -> names of the tables/figures that are its evidence (from ``supports=`` and
        from claim rows' ``evidence``); unknown claim ids or item names are an error."""
        ids = [c["id"] for c in self._claims or []]
        names = {i["name"] for i in self.items if i["kind"] in ("table", "figure")}
        out: dict[str, list[str]] = {cid: list(v) for cid, v in self._evidence.items()}
        for item in self.items:
            for cid in item.get("supports", []):
                if cid not in ids:
                    raise ValueError(f"section {self.paper!r}: {item['kind']} {item['name']!r} supports claim {cid!r}, "
                                     f"which is not in the claims table ({ids}); fix the id or add the claim")
                out.setdefault(cid, [])
                if item["name"] not in out[cid]:
                    out[cid].append(item["name"])
        for cid, refs in out.items():
            unknown = [r for r in refs if r not in names]
            if unknown:
                raise ValueError(f"section {self.paper!r}: claim {cid!r} cites {unknown}, which are not tables or "
                                 f"figures of this section ({sorted(names)})")
        return out

    def save(self, path: str | os.PathLike | None = None) -> Path:
        if self._claims is None:
            raise ValueError(f"section {self.paper!r}: call claims() before save(); every paper has a claims table")
        path = Path(path or self.outdir / "section.json")
        added = {i["name"] for i in self.items if i["kind"] in ("table", "figure")}
        missing = [n for n in self.declared if n not in added]
        if missing:
            raise ValueError(f"section {self.paper!r}: declared {missing} but never added them; add them "
                             f"(sec.table / sec.figure) or remove them from the paper's PAPER.outputs")
        evidence = self.evidence()
        doc = {"paper": self.paper, "title": self.title, "protocol": self._protocol, "items": self.items,
               "claims": "claims.csv", "evidence": evidence}
        with atomic_write(path) as f:
            f.write(json.dumps(doc, indent=2))
        return path
