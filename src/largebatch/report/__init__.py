"""Report building blocks: per-paper sections (written by the analysis notebooks)
and the one self-contained HTML report (written by the report rule).

``Section`` (section.py) is what a notebook fills; ``build_report`` (html.py) renders every
section with the summary (summary.py), the bibliography (bibliography.py), provenance
(provenance.py) and the reader-facing number formats (fmt.py).
"""

from .bibliography import PAPERS, SOURCE_TAGS, cite
from .fmt import format_effect, format_number, format_p, format_table
from .html import build_report, load_section
from .section import Section, load_histories, load_runs

__all__ = ["Section", "load_runs", "load_histories", "build_report", "load_section", "PAPERS", "SOURCE_TAGS",
           "cite", "format_number", "format_p", "format_effect", "format_table"]
