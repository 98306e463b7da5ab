"""Each paper's analysis is a jupytext percent file that opens as a notebook in Jupyter."""

import jupytext
import pytest
import yaml

from conftest import REPO

NOTEBOOKS = sorted((REPO / "workflow" / "notebooks").glob("*.py"))


def test_every_enabled_paper_has_a_notebook():
    papers = yaml.safe_load((REPO / "config.yaml").read_text())["papers"]
    names = {p.stem for p in NOTEBOOKS}
    assert set(papers) <= names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_round_trips_through_jupytext(path):
    nb = jupytext.read(path)
    kinds = [c.cell_type for c in nb.cells]
    assert kinds.count("code") >= 2 and "markdown" in kinds
    assert nb.metadata["jupytext"]["text_representation"]["format_name"] == "percent"
    # the notebook gets its inputs from Snakemake, or rebuilds them from config.yaml in Jupyter
    assert "context(" in path.read_text()
    again = jupytext.reads(jupytext.writes(nb, fmt="py:percent"), fmt="py:percent")
    assert [c.source for c in again.cells] == [c.source for c in nb.cells]
