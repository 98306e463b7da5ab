"""A paper's section of the report.

An analysis notebook fills a ``Section`` with text, a protocol table (paper vs ours),
tables (CSV + HTML), figures (PNG) and the claims table, then ``save()`` writes them
under ``results/<paper>/`` with ``section.json`` listing them in order.  The report
rule turns every section.json into one HTML page.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from ..stats import CLAIM_COLUMNS, VERDICTS, finalize_claims


def load_runs(rows: list[dict], root: str = "results/runs") -> pd.DataFrame:
    """The paper's run table (labels + run id) joined with each run's metrics.json."""
    out = []
    for row in rows:
        with open(Path(root) / row["run"] / "metrics.json") as f:
            metrics = json.load(f)
        metrics.pop("run", None)
        clash = set(metrics) & set(row)
        out.append({**{k: v for k, v in metrics.items() if k not in clash}, **row})
    return pd.DataFrame(out)


def load_histories(rows: list[dict], root: str = "results/runs") -> pd.DataFrame:
    """Every run's history.csv, with the paper's labels as extra columns (long format)."""
    frames = []
    for row in rows:
        h = pd.read_csv(Path(root) / row["run"] / "history.csv")
        for k, v in row.items():
            if k not in h.columns:
                h[k] = v
        frames.append(h)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


class Section:
    def __init__(self, paper: str, title: str, outdir: str | os.PathLike | None = None):
        self.paper = paper
        self.title = title
        self.outdir = Path(outdir or f"results/{paper}")
        self.items: list[dict] = []
        self._claims: list[dict] | None = None
        self._protocol: list[dict] | None = None
        for sub in ("tables", "figures"):
            (self.outdir / sub).mkdir(parents=True, exist_ok=True)

    def _rel(self, path: Path) -> str:
        return os.path.relpath(path, self.outdir)

    def text(self, text: str, heading: str | None = None) -> None:
        """A paragraph of plain text (escaped in the report; blank lines split paragraphs)."""
        self.items.append({"kind": "text", "text": text, "heading": heading})

    def protocol(self, rows: list[dict]) -> None:
        """Rows of {'aspect', 'paper', 'ours'}: how our protocol differs from the paper's."""
        self._protocol = [{"aspect": r["aspect"], "paper": r["paper"], "ours": r["ours"]} for r in rows]

    def table(self, name: str, df: pd.DataFrame, caption: str) -> Path:
        csv = self.outdir / "tables" / f"{name}.csv"
        html = self.outdir / "tables" / f"{name}.html"
        df.to_csv(csv, index=False)
        html.write_text(df.to_html(index=False, escape=True, na_rep="–", classes="data", border=0))
        self.items.append({"kind": "table", "name": name, "csv": self._rel(csv), "html": self._rel(html),
                           "caption": caption})
        return csv

    def figure(self, name: str, fig, caption: str, dpi: int = 110, alt: str | None = None) -> Path:
        """A figure; ``alt``: what the figure shows, in words (the report's alt text)."""
        path = self.outdir / "figures" / f"{name}.png"
        fig.savefig(path, dpi=dpi, bbox_inches="tight")
        import matplotlib.pyplot as plt

        plt.close(fig)
        self.items.append({"kind": "figure", "name": name, "png": self._rel(path), "caption": caption,
                           "alt": alt or caption})
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
        self._claims = [{c: r[c] for c in CLAIM_COLUMNS} for r in finalize_claims(rows)]
        path = self.outdir / "claims.csv"
        pd.DataFrame(self._claims, columns=CLAIM_COLUMNS).to_csv(path, index=False)
        return path

    def save(self, path: str | os.PathLike | None = None) -> Path:
        if self._claims is None:
            raise ValueError(f"section {self.paper!r}: call claims() before save(); every paper has a claims table")
        path = Path(path or self.outdir / "section.json")
        doc = {"paper": self.paper, "title": self.title, "protocol": self._protocol, "items": self.items,
               "claims": "claims.csv"}
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(doc, indent=2))
        os.replace(tmp, path)
        return path
