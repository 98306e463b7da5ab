"""Which verdicts moved between two runs of the workflow.

    python -m largebatch.report.moved OLD NEW

OLD and NEW are folders holding ``<paper>/claims.csv`` (a run's ``results/``, or a kept copy
such as ``report/previous/cpu/``). Prints one row per claim id found in either, with the old
and new verdict and whether it moved, then the count per verdict on each side. A claim only
on one side is shown with the other verdict as ``-`` (a claim added or dropped).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd


def read_claims(folder: str | Path) -> pd.DataFrame:
    """paper, id, verdict of every ``<paper>/claims.csv`` under ``folder``."""
    frames = []
    for f in sorted(Path(folder).glob("*/claims.csv")):
        df = pd.read_csv(f, usecols=["id", "verdict"])
        frames.append(df.assign(paper=f.parent.name))
    if not frames:
        raise FileNotFoundError(f"{folder}: no <paper>/claims.csv here (give a run's results/ folder)")
    return pd.concat(frames, ignore_index=True)[["paper", "id", "verdict"]]


def compare(old: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    """One row per (paper, id): old and new verdict ('-' where absent) and ``moved``."""
    df = old.merge(new, on=["paper", "id"], how="outer", suffixes=("_old", "_new"), sort=False)
    df = df.fillna({"verdict_old": "-", "verdict_new": "-"})
    df["moved"] = df["verdict_old"] != df["verdict_new"]
    return df.rename(columns={"verdict_old": "old", "verdict_new": "new"})


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--moved-only", action="store_true", help="list only the claims whose verdict moved")
    args = ap.parse_args(argv)
    try:
        df = compare(read_claims(args.old), read_claims(args.new))
    except FileNotFoundError as err:
        ap.error(str(err))
    shown = df[df.moved] if args.moved_only else df
    print(shown.to_markdown(index=False))
    counts = pd.DataFrame({"old": df["old"].value_counts(), "new": df["new"].value_counts()}).fillna(0).astype(int)
    print(f"\n{int(df.moved.sum())} of {len(df)} verdicts moved\n")
    print(counts.to_markdown())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
