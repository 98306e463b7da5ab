"""Report building blocks: per-paper sections (written by the analysis notebooks)
and the one self-contained HTML report (written by the report rule)."""

from .section import Section, load_histories, load_runs
from .html import build_report

__all__ = ["Section", "load_runs", "load_histories", "build_report"]
