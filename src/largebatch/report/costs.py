"""What each report section cost in a finished run, from Snakemake's benchmark records.

    python -m largebatch.report.costs [--workdir DIR] [--config KEY=VALUE ...]

prints, per section of the configured scale: its training jobs (single runs and packs), their
wall seconds and CPU seconds (columns ``s`` and ``cpu_time`` of the records), and the wall
seconds of its analysis and section jobs; then the totals over distinct jobs (runs shared by
two sections, e.g. the baseline's and Keskar's F1 runs, count once there). The README's
per-section cost table is this output. Jobs without a record (not run yet) are counted apart.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pandas as pd
import yaml

from .. import paths
from ..experiments import build_plan
from .provenance import benchmark_record as _record, training_benchmarks


def section_costs(config: dict) -> pd.DataFrame:
    """One row per section (and a ``total`` row): training jobs with a record / declared, their
    wall and CPU seconds, analysis + section job wall seconds. Paths are relative to the
    workflow directory (the current one)."""
    plan = build_plan(config)
    train_files = training_benchmarks(plan.tables, plan.packs)
    rows, seen_train, seen_other = [], {}, {}
    for paper in plan.sections:
        recs = {f: _record(f) for f in train_files.get(paper, [])}
        done = {f: r for f, r in recs.items() if r is not None}
        other = [paths.benchmark_file(paper, job.name) for job in plan.jobs.get(paper, [])]
        other.append(paths.benchmark_file(paper, "section"))
        other_done = {f: r for f, r in ((f, _record(f)) for f in other) if r is not None}
        seen_train.update(done)
        seen_other.update(other_done)
        rows.append({"section": paper, "training jobs": f"{len(done)}/{len(recs)}",
                     "training wall s": sum(r[0] for r in done.values()),
                     "training CPU s": sum(r[1] for r in done.values()),
                     "analysis + section wall s": sum(r[0] for r in other_done.values())})
    rows.append({"section": "total (distinct jobs)",
                 "training jobs": f"{len(seen_train)}/{len({f for fs in train_files.values() for f in fs})}",
                 "training wall s": sum(r[0] for r in seen_train.values()),
                 "training CPU s": sum(r[1] for r in seen_train.values()),
                 "analysis + section wall s": sum(r[0] for r in seen_other.values())})
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", default=".", help="the workflow directory of the finished run (holds results/)")
    ap.add_argument("--configfile", default="config.yaml", help="its config file, relative to --workdir")
    ap.add_argument("--config", nargs="*", default=[], metavar="KEY=VALUE",
                    help="top-level overrides as given to snakemake, e.g. scale=tiny")
    args = ap.parse_args(argv)
    os.chdir(args.workdir)
    if not Path(paths.RESULTS).is_dir():
        ap.error(f"no {paths.RESULTS}/ under {Path.cwd()}: run the workflow there first, or pass --workdir")
    with open(args.configfile) as f:
        config = yaml.safe_load(f)
    for item in args.config:
        key, sep, value = item.partition("=")
        if not sep:
            ap.error(f"--config {item!r}: expected KEY=VALUE")
        config[key] = yaml.safe_load(value)
    df = section_costs(config)
    print(df.to_markdown(index=False, floatfmt=".0f"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
