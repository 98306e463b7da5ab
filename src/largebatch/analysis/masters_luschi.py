"""Masters & Luschi 2018: from runs to cells, selected cells and the section's tables.

A *cell* is one point of a grid (dataset, network, normalisation, m, eta_base); its seeds are split
into selection seeds, which pick the best cell, and test seeds, on which that cell's
accuracy is then measured (``experiments.masters_luschi``: no winner's curse). ``study``
turns the run table into everything the claims (``masters_luschi_claims``), the figures
(``masters_luschi_figures``) and the tables below read; the notebook only narrates.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..stats import describe

#: a run trained stably only if its final training loss fell below this fraction of the loss at
#: initialisation: a network driven to chance by a large lr ends at about its initial loss (ln 10
#: for 10 classes) without a NaN, on either side of it by noise, and has not trained at all
STABLE_LOSS_FRACTION = 0.95
#: the paper's metric: the median test accuracy of the evaluations in the last this many epochs
LAST_EPOCHS = 5
#: the columns that name a cell of the sweep
CELL = ["dataset", "net", "norm", "m", "lr_log2"]
#: the BN-batch study's cells (one dataset, BatchNorm only)
BN_CELL = ["m", "m_bn", "lr_log2"]
NORM_NAME = {"batch": "BatchNorm", "none": "no BN"}


def pct(v: float, d: int = 1) -> str:
    return f"{v:.{d}f}" if np.isfinite(v) else "n/a"


def eta(k) -> str:
    """A base learning rate 2**k as text ("2^-7"), "n/a" for none."""
    return f"2^{int(k)}" if k is not None and np.isfinite(k) else "n/a"


def history_summary(files: dict[str, str], last_epochs: int = LAST_EPOCHS) -> pd.DataFrame:
    """Per run id (``files``: run id -> its history.csv): ``init_loss``, the training loss at
    initialisation (the first row), and ``test_median``, the paper's metric: the median test
    accuracy of the evaluations in the last ``last_epochs`` epochs (rows with epoch > final epoch
    - last_epochs; with one evaluation per epoch, the last 5 epochs' ends)."""
    recs = {}
    for r, f in files.items():
        h = pd.read_csv(f, usecols=["epoch", "train_loss", "test_acc"])
        tail = h[h.epoch > h.epoch.iloc[-1] - last_epochs + 1e-9]
        recs[r] = {"init_loss": float(h.train_loss.iloc[0]), "test_median": float(tail.test_acc.median())}
    return pd.DataFrame.from_dict(recs, orient="index", columns=["init_loss", "test_median"])


def initial_losses(files: dict[str, str]) -> pd.Series:
    """The training loss at initialisation (the first history row) of every run, by run id."""
    return history_summary(files).init_loss


def run_stability(runs: pd.DataFrame, initial_loss: pd.Series) -> pd.Series:
    """True where a run trained stably: not diverged (NaN/inf) and its final training loss is
    below ``STABLE_LOSS_FRACTION`` x the training loss at initialisation.  `initial_loss` is
    indexed by run id.  A ``no_learning`` run (final loss at chance) is trained, not diverged:
    its accuracy counts in its cell, but it did not train stably (it failed to lower its loss)."""
    init = runs["run"].map(initial_loss)
    final = pd.to_numeric(runs["train_loss"], errors="coerce")
    ok = ~runs["status"].eq("diverged") & np.isfinite(final) & (final < STABLE_LOSS_FRACTION * init)
    return ok


def cell_table(runs: pd.DataFrame, by: list[str], value: str = "test_acc") -> pd.DataFrame:
    """One row per cell (`by`): mean/std/n of the accuracy column `value` over seeds, how many
    seeds diverged, and the fraction of seeds that trained stably (column ``stable`` per run)."""
    def agg(g: pd.DataFrame) -> pd.Series:
        acc = g[value].where(~g["status"].eq("diverged"))  # a no_learning run has a (chance) accuracy
        return pd.Series({
            "acc_mean": acc.mean() if acc.notna().all() else float("nan"),
            "acc_std": acc.std(ddof=1) if acc.notna().sum() > 1 else float("nan"),
            "n": len(g),
            "n_diverged": int(g["status"].eq("diverged").sum()),
            "stable_frac": float(g["stable"].mean()),
            "train_mean": g["train_pct"].where(~g["status"].eq("diverged")).mean() if "train_pct" in g else np.nan,
            "accs": list(g[value]),
        })

    rows = []
    for key, g in runs.groupby(by, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        rows.append({**dict(zip(by, key)), **agg(g).to_dict()})
    return pd.DataFrame(rows)


def stable_cells(cells: pd.DataFrame, tol: float, group: list[str]) -> pd.Series:
    """True for a cell whose eta_base lies in the stable range of its group: no seed
    diverged, every seed trained stably, and the mean test accuracy is within `tol`
    (absolute) of the best mean of the group (group = [..., "m"]: the best at that batch
    size; group without "m": the best over every batch size)."""
    acc = cells["acc_mean"]
    best = cells.groupby(group)["acc_mean"].transform("max")
    return (cells["n_diverged"].eq(0) & cells["stable_frac"].eq(1.0) & acc.notna()
            & (acc >= best - tol))


def select_best(cells: pd.DataFrame) -> pd.Series | None:
    """The cell with the highest mean accuracy among `cells` (a ``cell_table`` of the
    selection seeds; cells with a diverged seed have no mean and are never selected), or
    None when no cell has a mean."""
    ok = cells[cells["acc_mean"].notna()]
    if not len(ok):
        return None
    return ok.loc[ok["acc_mean"].idxmax()]


def on_grid_edge(lr_log2: float, grid) -> bool:
    """True when a selected eta_base is the smallest or largest of its grid (the optimum is
    not bracketed: a wider grid could move it)."""
    return lr_log2 in (min(grid), max(grid))


def widths_per_seed(runs: pd.DataFrame, level: float, tol: float) -> pd.DataFrame:
    """Width of the acceptable eta_base range per (m, seed): the number of grid points at which
    that seed trained stably (column ``stable``) with an accuracy (column ``acc``) of at least
    ``level - tol``.  ``level`` is fixed from other seeds (the global best cell of the selection
    seeds), so the widths of every m are measured against one common bar."""
    ok = runs["stable"] & runs["acc"].ge(level - tol)
    return (runs.assign(acceptable=ok).groupby(["m", "seed"], as_index=False)["acceptable"].sum()
            .rename(columns={"acceptable": "width"}))


def stable_fraction_per_seed(runs: pd.DataFrame) -> pd.DataFrame:
    """Per (m, seed): the fraction of the eta_base grid at which the run trained stably."""
    return runs.groupby(["m", "seed"], as_index=False)["stable"].mean().rename(columns={"stable": "stable_frac"})


def sizes_without_unstable_cell(cells: pd.DataFrame) -> list[int]:
    """Batch sizes at which every eta_base cell had a seed that trained stably: the grid does
    not reach the stability limit there (claim M2's precondition).  A cell beyond the limit
    has no stable seed: its runs diverged (NaN/inf) or ended above their initial training
    loss (a network driven to chance, which at large lr is how this MLP fails more often
    than by NaN)."""
    worst = cells.groupby("m")["stable_frac"].min()
    return [int(m) for m, f in worst.items() if f > 0]


# ------------------------------------------------------------------------ selected cells

def cells_of(df: pd.DataFrame, role: str, by: list[str] = CELL) -> pd.DataFrame:
    """``cell_table`` of the runs of one seed role (select | test), on the accuracy in %."""
    return cell_table(df[df.seed_role == role], by, value="acc")


def test_accs(cells: pd.DataFrame, row, keys: list[str] = CELL) -> list[float]:
    """Test-seed accuracies (the ``accs`` of `cells`) of the cell `row` selected on the
    selection seeds; [] for no row or a cell without test seeds."""
    if row is None:
        return []
    hit = cells
    for k in keys:
        hit = hit[hit[k] == row[k]]
    return [float(a) for a in hit.accs.iloc[0]] if len(hit) else []


def arm_runs(df: pd.DataFrame, row, keys: list[str] = CELL) -> pd.DataFrame:
    """The test-seed runs of the cell `row` (none for no row): an arm of a claim."""
    if row is None:
        return df.iloc[:0]
    hit = df[df.seed_role == "test"]
    for k in keys:
        hit = hit[hit[k] == row[k]]
    return hit


def train_of(df: pd.DataFrame, row, keys: list[str] = CELL) -> list[float]:
    """Final train accuracies (%) of the test seeds of the cell `row`."""
    return list(arm_runs(df, row, keys).train_pct)


@dataclass
class Study:
    """The run table with its per-run verdicts and the sweep's cells (see ``study``)."""

    runs: pd.DataFrame  # every run, with columns stable, diverged, acc (%), train_pct (%)
    sweep: pd.DataFrame  # the runs of the sweep
    datasets: list[str]
    nets: list[str]
    norms: list[str]
    grid: list[int]  # the sweep's eta_base exponents
    ms: list[int]  # the sweep's batch sizes
    n_sel: int  # selection seeds per cell
    n_test: int  # test seeds per cell
    sel_cells: pd.DataFrame  # cells of the selection seeds
    test_cells: pd.DataFrame  # cells of the test seeds
    all_cells: pd.DataFrame  # cells of every seed (the heat map, the M2 precondition)
    per_m: pd.DataFrame  # per (dataset, net, norm, m): the cell selected there and its test seeds

    def panels(self) -> list[tuple[str, str, str]]:
        """Every (dataset, network, norm) of the sweep: one heat map, one set of claims M1-M4."""
        return [(ds, net, norm) for ds in self.datasets for net in self.nets for norm in self.norms]

    def panel(self, df: pd.DataFrame, ds: str, net: str, norm: str) -> pd.DataFrame:
        return df[(df.dataset == ds) & (df.net == net) & (df.norm == norm)]


def study(runs: pd.DataFrame, init_loss: pd.Series, test_median: pd.Series | None = None) -> Study:
    """Mark every run (stable: not diverged and final train loss below 95% of the initial;
    diverged; test accuracy in %: the paper's median of the last 5 epochs, ``test_median`` by
    run id, or the final one without it; final train accuracy in %), build the sweep's cells per
    seed role and select the best eta_base at each (dataset, net, norm, m) on the selection seeds."""
    runs = runs.copy()
    if "net" not in runs:
        runs["net"] = "net"
    runs["stable"] = run_stability(runs, init_loss)
    runs["diverged"] = runs["status"].eq("diverged")
    test = runs["run"].map(test_median) if test_median is not None else runs["test_acc"]
    runs["acc"] = 100 * pd.to_numeric(test, errors="coerce")
    runs["train_pct"] = 100 * pd.to_numeric(runs["train_acc"], errors="coerce")
    sweep = runs[runs.part == "sweep"].copy()
    sel_cells, test_cells = cells_of(sweep, "select"), cells_of(sweep, "test")
    per_m = []
    for (ds, net, norm, m), g in sel_cells.groupby(["dataset", "net", "norm", "m"]):
        best = select_best(g)
        accs = test_accs(test_cells, best)
        r = sweep[(sweep.dataset == ds) & (sweep.net == net) & (sweep.norm == norm) & (sweep.m == m)]
        per_m.append({"dataset": ds, "net": net, "norm": norm, "m": m,
                      "lr_log2": best.lr_log2 if best is not None else np.nan,
                      "sel_acc": best.acc_mean if best is not None else np.nan, "test_accs": accs,
                      "test_mean": np.mean(accs) if accs else np.nan,
                      "test_sd": np.std(accs, ddof=1) if len(accs) > 1 else np.nan,
                      "train": describe(train_of(sweep, best), 1) if best is not None else "n/a",
                      "stable_frac": float(r.stable.mean()), "diverged_frac": float(r.diverged.mean())})
    return Study(runs=runs, sweep=sweep, datasets=list(dict.fromkeys(sweep.dataset)),
                 nets=list(dict.fromkeys(sweep.net)), norms=list(dict.fromkeys(sweep.norm)), grid=sorted(sweep.lr_log2.unique()),
                 ms=sorted(sweep.m.unique()), n_sel=sweep[sweep.seed_role == "select"].seed.nunique(),
                 n_test=sweep[sweep.seed_role == "test"].seed.nunique(), sel_cells=sel_cells,
                 test_cells=test_cells, all_cells=cell_table(sweep, CELL, value="acc"), per_m=pd.DataFrame(per_m))


@dataclass
class BNStudy:
    """The BN-batch study: its runs, cells of the selection and test seeds, and per (m, m_BN)
    the eta_base selected on the selection seeds with its test-seed accuracies."""

    runs: pd.DataFrame
    sel: pd.DataFrame
    test: pd.DataFrame
    best: pd.DataFrame  # m, m_bn, lr_log2, sel_acc, sel_sd, test_accs, n_diverged


def bn_study(runs: pd.DataFrame) -> BNStudy | None:
    """None without BN-batch runs (a block without ``bn_batch``)."""
    bnr = runs[runs.part == "bn_batch"].copy()
    if not len(bnr):
        return None
    bsel = cells_of(bnr, "select", BN_CELL)
    btest = cells_of(bnr, "test", BN_CELL) if (bnr.seed_role == "test").any() else bsel.iloc[:0]
    recs = []
    for (m, b), g in bsel.groupby(["m", "m_bn"]):
        best = select_best(g)
        accs = test_accs(btest, best, BN_CELL) if best is not None else []
        recs.append({"m": m, "m_bn": b, "lr_log2": best.lr_log2 if best is not None else np.nan,
                     "sel_acc": best.acc_mean if best is not None else np.nan,
                     "sel_sd": best.acc_std if best is not None else np.nan, "test_accs": accs,
                     "test_train": train_of(bnr, best, BN_CELL) if best is not None else [],
                     "test_runs": arm_runs(bnr, best, BN_CELL).to_dict("records"),
                     "n_diverged": int(g.n_diverged.sum())})
    return BNStudy(bnr, bsel, btest, pd.DataFrame(recs))


def warmup_best_per_m(warm: pd.DataFrame) -> list[tuple[int, float, float]]:
    """Per batch size of warm-up runs: (m, test-seed mean, sd) of the cell selected at that m
    on the selection seeds (NaN mean without test accuracies, sd 0 with fewer than two)."""
    wsel, wtest = cells_of(warm, "select"), cells_of(warm, "test")
    pts = []
    for m, g in wsel.groupby("m"):
        a = test_accs(wtest, select_best(g))
        pts.append((m, np.mean(a) if a else np.nan, np.std(a, ddof=1) if len(a) > 1 else 0.0))
    return pts


# ------------------------------------------------------------------------------- tables

def per_batch_size_table(st: Study) -> pd.DataFrame:
    """Per (dataset, network, norm, m): the selected eta_base, its test and final train accuracy on the test
    seeds, and the share of the m's runs that trained stably / diverged."""
    per_m = st.per_m
    tab = per_m.assign(**{
        "normalisation": per_m.norm.map(NORM_NAME),
        "selected eta_base": [eta(k) for k in per_m.lr_log2],
        "test accuracy (%)": [describe(a, 1) for a in per_m.test_accs],
        "train accuracy (%)": per_m.train,
        "trained stably": [f"{f:.0%}" for f in per_m.stable_frac],
        "diverged": [f"{f:.0%}" for f in per_m.diverged_frac],
    })
    tab = tab.rename(columns={"net": "network"})
    cols = ((["dataset"] if len(st.datasets) > 1 else []) + (["network"] if len(st.nets) > 1 else [])
            + ["normalisation", "m", "selected eta_base", "test accuracy (%)", "train accuracy (%)",
               "trained stably", "diverged"])
    return tab[cols]


def sweep_cells_table(st: Study) -> pd.DataFrame:
    """Every cell of the sweep over all seeds (the heat map's numbers), accuracies rounded."""
    c = st.all_cells
    return c.assign(eta_base=[eta(k) for k in c.lr_log2], accuracy_pct=c.acc_mean.round(2), sd_pct=c.acc_std.round(2),
                    final_train_pct=c.train_mean.round(2))[
        ["dataset", "net", "norm", "m", "eta_base", "accuracy_pct", "sd_pct", "final_train_pct", "n", "n_diverged",
         "stable_frac"]]


def bn_batch_table(bn: BNStudy) -> pd.DataFrame:
    """Per (m, m_BN): the selected eta_base, the selection seeds' and the test seeds' accuracy."""
    best, bsel = bn.best, bn.sel
    sel = [bsel[(bsel.m == r.m) & (bsel.m_bn == r.m_bn) & (bsel.lr_log2 == r.lr_log2)].accs.iloc[0]
           if np.isfinite(r.lr_log2) else [] for r in best.itertuples()]
    return pd.DataFrame({
        "m": best.m, "m_BN": best.m_bn, "selected eta_base": [eta(k) for k in best.lr_log2],
        "selection seeds (%)": [describe(a, 1) for a in sel],
        "test seeds (%)": [describe(a, 1) if len(a) else "not trained" for a in best.test_accs],
        "test seeds, final train (%)": [describe(a, 1) if len(a) else "not trained" for a in best.test_train],
        "diverged runs": best.n_diverged})


def job_times(files: list[str], run_ids: list[str]) -> pd.DataFrame:
    """Wall and CPU seconds of the jobs that trained the runs, from their Snakemake benchmark
    files: ``files[i]`` is the benchmark of the job that trained ``run_ids[i]`` (a pack's
    file repeats for each of its runs). One row per job: job (file stem), runs it trained for
    this section, wall, cpu (NaN where the file has no cpu_time); the last record of a file
    counts (a retried job appends one)."""
    if len(files) != len(run_ids):
        raise ValueError(f"{len(files)} benchmark files for {len(run_ids)} runs: give one per run")
    runs_of: dict[str, set] = {}
    for f, r in zip(files, run_ids):
        runs_of.setdefault(f, set()).add(r)
    recs = []
    for f, ids in runs_of.items():
        b = pd.read_csv(f, sep="\t")
        recs.append({"job": os.path.basename(f).removesuffix(".tsv"), "runs": len(ids), "wall": float(b.s.iloc[-1]),
                     "cpu": float(b.cpu_time.iloc[-1]) if "cpu_time" in b else float("nan")})
    return pd.DataFrame(recs, columns=["job", "runs", "wall", "cpu"])


def timing_table(times: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"training job": times.job, "runs": times.runs,
                         "wall time (s)": times.wall.map(lambda v: f"{v:.1f}"),
                         "CPU time (s)": times.cpu.map(lambda v: f"{v:.1f}")}).sort_values("training job")
