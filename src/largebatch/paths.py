"""Where the workflow keeps its files, in one place.

The Snakefile builds every rule's ``input:``/``output:`` from these functions, and scripts
and notebooks receive the paths from Snakemake (``snakemake.input``/``output``), so no
other module writes a path as a string. Paths are relative to the workflow directory.
"""

from __future__ import annotations

RESULTS = "results"
#: the files every training run writes under results/runs/<run>/
RUN_OUTPUTS = ("metrics.json", "history.csv", "model.pt", "spec.json")


def run_file(run: str, name: str = "metrics.json") -> str:
    return f"{RESULTS}/runs/{run}/{name}"


def data_file(dataset: str) -> str:
    """A prepared dataset (``largebatch.data.prepare_dataset``)."""
    return f"{RESULTS}/data/{dataset}.pt"


def checksum_file(dataset: str) -> str:
    return data_file(dataset) + ".sha256"


def paper_file(paper: str, *parts: str) -> str:
    """A file of a paper's analysis or section: results/<paper>/<parts...>."""
    return "/".join((RESULTS, paper, *parts))


def section_file(paper: str) -> str:
    return paper_file(paper, "section.json")


def claims_file(paper: str) -> str:
    return paper_file(paper, "claims.csv")


def item_file(paper: str, kind: str, name: str) -> str:
    """A section's table (CSV) or figure (PNG)."""
    return paper_file(paper, "tables", f"{name}.csv") if kind == "table" else paper_file(paper, "figures", f"{name}.png")


def caption_file(paper: str, name: str) -> str:
    """The caption of a figure as reStructuredText, written beside it by ``Section`` (read by
    ``snakemake --report``)."""
    return paper_file(paper, "captions", f"{name}.rst")


def log_file(*parts: str) -> str:
    return "/".join((RESULTS, "logs", *parts)) + ".log"


def benchmark_file(*parts: str) -> str:
    return "/".join((RESULTS, "benchmarks", *parts)) + ".tsv"


def train_benchmark(run: str) -> str:
    """Benchmark of the job that trains a single run (rule ``train``)."""
    return benchmark_file("train", run)


def pack_benchmark(pack: str) -> str:
    """Benchmark of a training pack's job (rule ``train_pack_<pack>``)."""
    return benchmark_file("packs", pack)


REPORT = f"{RESULTS}/report.html"
