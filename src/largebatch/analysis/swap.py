"""SWAP (Gupta, Akle Serrano & DeCoste 2020): the analysis behind its section
(``workflow/notebooks/swap.py``).

From the run table (``ctx.runs()``), phase 3's metrics and the job-time records it builds one
row per seed (``per_seed``: accuracies in %, times in seconds), decides the claims S1-S4 on
those rows (``decide_claims``) and builds the section's tables and protocol rows. The
figures are drawn in ``swap_figures``; the plan, the jobs and the paper's facts are in
``largebatch.experiments.swap``; the torch side (phase 3, k-worker averages, loss plane) in
``largebatch.swap``.

Time is measured two ways: the training loop's own clock (``wall_s`` of a run, ``average_s``
of phase 3: no interpreter start-up, no data load), on which S3 is decided, and the job's
wall time from its Snakemake benchmark record, shown beside it.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from ..experiments.swap import PROTOCOL, SOURCE, SOURCE_FIG1
from ..report.provenance import benchmark_seconds
from ..stats import claim_row, decide, decide_one_sample, describe
from ..stats import mean_sd as ms
from ..stats import decide_noninferior as non_inferior
from ..stopping import arm_problems

#: per-seed columns ``decide_claims`` needs (accuracies in %, times in seconds)
PER_SEED = ("seed", "sb_acc", "lb_acc", "swap_acc", "best_worker_acc", "p1_acc", "sb_train", "lb_train",
            "p1_stop", "loop_parallel", "loop_sb", "t_parallel", "t_sb")


# ----------------------------------------------------------------------------- inputs
def bench_s(path) -> float:
    """Wall seconds of one job from its Snakemake benchmark file (column s); NaN if absent."""
    s = benchmark_seconds(path)
    return float("nan") if s is None else s


def job_seconds(runs: pd.DataFrame, run_benchmarks) -> pd.Series:
    """Job time of every row of ``runs``: its training job's benchmark record (SWAP's runs
    train one per job, ``PAPER.packable`` is False).

    ``run_benchmarks``: one file per run id, in the order the ids first appear in ``runs``
    (the section input). Where a record is missing, the run's training-loop time
    (``wall_s``) stands in."""
    ids = list(dict.fromkeys(runs.run))
    files = list(run_benchmarks)
    if len(files) != len(ids):
        raise ValueError(f"swap: {len(files)} training-job benchmark files for {len(ids)} runs")
    job_of = {r: bench_s(f) for r, f in zip(ids, files)}
    return runs.run.map(job_of).astype(float).fillna(runs.wall_s)


def load_averages(metrics_files, benchmark_files) -> pd.DataFrame:
    """Phase 3's metrics per seed (``swap_average`` jobs) with each job's time (``job_s``; its
    averaging time where the record is missing)."""
    rows = []
    for f in metrics_files:
        with open(f) as fh:
            rows.append(json.load(fh))
    avg = pd.DataFrame(rows)
    avg["job_s"] = [bench_s(b) for b in benchmark_files]
    avg["job_s"] = avg.job_s.fillna(avg.average_s)
    return avg


def arms(runs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The SB, LB, phase-1 and worker rows of the run table."""
    return tuple(runs[runs.arm == a] for a in ("SB", "LB", "phase1", "worker"))


#: the arms of the run table as the preconditions name them
ARM_NAMES = {"SB": "SB", "LB": "LB", "phase1": "phase 1", "worker": "phase-2 workers"}
#: the runs each claim rests on: SWAP itself is phase 1 + the workers (phase 3 trains nothing)
CLAIM_ARMS = {"S1": ("SB", "phase1", "worker"), "S2": ("LB", "phase1", "worker"),
              "S3": ("SB", "phase1", "worker"), "S4": ("phase1", "worker")}


def run_problems(runs: pd.DataFrame) -> dict[str, list[str]]:
    """Arm -> ``stopping.arm_problems`` of its runs (stopped at a safety cap, did not learn,
    diverged), for every arm of ``ARM_NAMES``; an empty list where none has a problem."""
    return {a: arm_problems(runs[runs.arm == a].to_dict("records"), ARM_NAMES[a]) for a in ARM_NAMES}


def per_seed(runs: pd.DataFrame, avg: pd.DataFrame) -> pd.DataFrame:
    """One row per seed: test/train accuracies (%), phase 1's stop, and times in seconds --
    job times (``t_*``; SWAP in parallel = phase 1 + slowest worker + averaging, one after
    another = phase 1 + every worker + averaging) and training-loop times (``loop_*``).
    ``runs`` needs ``job_s`` (``job_seconds``)."""
    sb_rows, lb_rows, p1_rows, wk_rows = arms(runs)
    out = []
    for s in sorted(runs.seed.unique()):
        p1 = p1_rows[p1_rows.seed == s].iloc[0]
        wk = wk_rows[wk_rows.seed == s]
        a = avg[avg.seed == s].iloc[0]
        sb = sb_rows[sb_rows.seed == s].iloc[0]
        lb = lb_rows[lb_rows.seed == s].iloc[0]
        out.append({
            "seed": s, "sb_acc": 100 * sb.test_acc, "lb_acc": 100 * lb.test_acc, "p1_acc": 100 * p1.test_acc,
            "swap_acc": 100 * a.test_acc, "best_worker_acc": 100 * wk.test_acc.max(),
            "mean_worker_acc": 100 * wk.test_acc.mean(), "sb_train": 100 * sb.train_acc,
            "lb_train": 100 * lb.train_acc, "p1_stop": p1.stop_reason, "p1_epochs": p1.epochs, "p1_loop": p1.wall_s,
            "t_sb": sb.job_s, "t_lb": lb.job_s, "t_p1": p1.job_s, "t_worker_max": wk.job_s.max(), "t_avg": a.job_s,
            "t_parallel": p1.job_s + wk.job_s.max() + a.job_s, "t_sequential": p1.job_s + wk.job_s.sum() + a.job_s,
            "loop_sb": sb.wall_s, "loop_lb": lb.wall_s, "loop_parallel": p1.wall_s + wk.wall_s.max() + a.average_s,
        })
    return pd.DataFrame(out)


# ----------------------------------------------------------------------------- claims
def decide_claims(per_seed, claims: dict, pre: dict, stop_train_acc: float,
                  problems: dict[str, list[str]] | None = None) -> list[dict]:
    """Claims S1-S4 from one row per seed (columns ``PER_SEED``).

    claims: the block's ``claims`` ({S1, S2, S4: {margin_pp}, S3: {margin_ratio}}); pre: its
    ``preconditions`` ({baseline_train_acc_min_pp}); problems: ``run_problems`` of the run
    table (None: not checked, for tables without runs). Every claim needs no run of its arms
    (``CLAIM_ARMS``) with a problem and phase 1 stopped at its training-accuracy threshold in
    every seed (the stricter rule: else SWAP's protocol did not run); S1 needs SB converged,
    S2 LB converged (mean final train accuracy >= ``baseline_train_acc_min_pp``). S3 compares
    training-loop time (the engine's clock: no interpreter start-up or data load), the job
    time is shown beside it.
    """
    missing = set(PER_SEED) - set(per_seed.columns)
    if missing:
        raise ValueError(f"swap claims: per-seed table lacks {sorted(missing)}")
    stops = list(per_seed.p1_stop)
    p1_ok = all(s == "train_acc" for s in stops)
    p1 = (p1_ok, f"phase 1 stopped at {100 * stop_train_acc:g}% train accuracy in every seed: "
                 + ("yes" if p1_ok else f"NO (stop reasons: {', '.join(map(str, stops))})"))
    lo = float(pre["baseline_train_acc_min_pp"])

    def converged(name, col):
        m = float(np.nanmean(per_seed[col]))
        ok = bool(np.isfinite(m) and m >= lo)
        return ok, f"{name} converged (final train accuracy >= {lo:g}%): {m:.1f}% {'yes' if ok else 'NO'}"

    def clean(cid):
        found = [t for a in CLAIM_ARMS[cid] for t in (problems or {}).get(a, [])]
        names = ", ".join(ARM_NAMES[a] for a in CLAIM_ARMS[cid])
        return (not found, f"no run of {names} at a safety cap, without learning or diverged: "
                           + ("yes" if not found else f"NO ({', '.join(found)})"))

    def pre_of(cid, *checks):
        checks = (clean(cid), *checks) if problems is not None else checks
        return {"precondition_ok": all(ok for ok, _ in checks), "precondition": "; ".join(t for _, t in checks)}

    s = per_seed
    m1 = float(claims["S1"]["margin_pp"])
    m2 = float(claims["S2"]["margin_pp"])
    m3 = float(claims["S3"]["margin_ratio"])
    m4 = float(claims["S4"]["margin_pp"])
    ratio = (s.loop_parallel / s.loop_sb).to_numpy(float)
    d3 = decide_one_sample(ratio, "less", 1.0, m3)
    d3["ours"] = (f"training loop (s): SWAP {describe(s.loop_parallel, 1)} vs SB {describe(s.loop_sb, 1)}, "
                  f"ratio {describe(ratio, 2)}; job time (s), not decided on: SWAP {describe(s.t_parallel, 1)} vs "
                  f"SB {describe(s.t_sb, 1)}, ratio {describe(s.t_parallel / s.t_sb, 2)}")

    def named(d, a, b, col_a, col_b):
        d["ours"] = f"{a} {describe(s[col_a])} vs {b} {describe(s[col_b])}"
        return d

    d4 = decide_one_sample((s.swap_acc - s.best_worker_acc).to_numpy(float), "greater", 0.0, m4)
    d4["ours"] = (f"SWAP {describe(s.swap_acc)} vs best worker {describe(s.best_worker_acc)}; SWAP ahead in "
                  f"{int((s.swap_acc > s.best_worker_acc).sum())} of {len(s)} seeds")
    return [
        claim_row("S1", "SWAP generalises as well as small-batch training (SB).", "final test accuracy (%), SWAP vs SB",
                  named(non_inferior(s.swap_acc, s.sb_acc, m1), "SWAP", "SB", "swap_acc", "sb_acc"),
                  rule=f"non-inferiority: Welch one-sided SWAP > SB - {m1:g} points; against: SWAP more than "
                       f"{m1:g} points below SB", paper="claim only: 'generalize equally well as those trained "
                  "with small mini-batches'", paper_source=SOURCE, **pre_of("S1", p1, converged("SB", "sb_train"))),
        claim_row("S2", "SWAP generalises better than large-batch training (LB) of the same epoch budget.",
                  "final test accuracy (%), SWAP vs LB",
                  named(decide(s.swap_acc, s.lb_acc, "greater", m2), "SWAP", "LB", "swap_acc", "lb_acc"),
                  rule=f"Welch one-sided SWAP > LB; against: reverse test or equivalence within ±{m2:g} points",
                  paper="claim only (table values not available to us)", paper_source=SOURCE,
                  **pre_of("S2", p1, converged("LB", "lb_train"))),
        claim_row("S3", "SWAP takes less time than SB when the workers run in parallel.",
                  "training-loop time: (phase 1 + slowest worker + averaging) / SB, per seed", d3,
                  rule=f"one-sample t-test of the per-seed time ratio < 1; against: > 1, or within 1 ± {m3:g}",
                  paper="claim only: 'substantially shorter time'", paper_source=SOURCE, **pre_of("S3", p1)),
        claim_row("S4", "The averaged model is more accurate than every single worker.",
                  "test accuracy (%): SWAP minus the best worker, per seed", d4,
                  rule=f"one-sample t-test of the per-seed difference > 0; against: < 0, or within ±{m4:g} points",
                  paper="claim only (Fig. 1 curves)", paper_source=SOURCE_FIG1, **pre_of("S4", p1)),
    ]


def failed_preconditions(decided: list[dict]) -> list[str]:
    """'<id>: <the failed check>' for every claim whose precondition failed (the first failed
    check, marked NO in the precondition text)."""
    return [f"{c['id']}: {next(t for t in c['precondition'].split('; ') if 'NO' in t)}"
            for c in decided if not c["precondition_ok"]]


def phase1_sanity(per_seed) -> dict:
    """Sanity check, not a claim: SWAP against its own phase-1 model (stopped part-way through
    its learning-rate schedule, so a gain is expected by construction). Paired per seed."""
    return decide_one_sample((per_seed.swap_acc - per_seed.p1_acc).to_numpy(float), "greater", 0.0, 0.0)


# ----------------------------------------------------------------------------- tables
def stop_counts(reasons) -> str:
    """'budget 5' or 'cap 1, train_acc 4': each stop reason of metrics.json with its count."""
    return ", ".join(f"{r} {n}" for r, n in sorted(pd.Series(list(reasons)).astype(str).value_counts().items()))


def _row(method, batch, epochs, train_acc, test_acc, loop_s, job_s, stops=None) -> dict:
    return {"method": method, "batch": batch, "epochs": ms(epochs, 1),
            "stopped by": "–" if stops is None else stop_counts(stops),
            "train accuracy (%)": ms(100 * np.asarray(train_acc, float), 2),
            "test accuracy (%)": ms(100 * np.asarray(test_acc, float), 2),
            "training-loop time (s)": ms(loop_s, 1), "job time (s)": ms(job_s, 1),
            "seeds": len(list(test_acc))}


def summary_table(runs: pd.DataFrame, avg: pd.DataFrame, per_seed: pd.DataFrame, block: dict) -> pd.DataFrame:
    """Accuracy and time of every method, mean ± sd over seeds (phase 2: over every worker);
    SWAP's epochs and times along its critical path; the runs' stop reasons beside the final
    train accuracy, so convergence is visible."""
    sb, lb, p1, wk = arms(runs)
    w = int(block["workers"])
    return pd.DataFrame([
        _row("SB", block["small_batch"], sb.epochs, sb.train_acc, sb.test_acc, sb.wall_s, sb.job_s, sb.stop_reason),
        _row("LB", block["large_batch"], lb.epochs, lb.train_acc, lb.test_acc, lb.wall_s, lb.job_s, lb.stop_reason),
        _row("SWAP phase 1", block["large_batch"], p1.epochs, p1.train_acc, p1.test_acc, p1.wall_s, p1.job_s,
             p1.stop_reason),
        _row(f"SWAP phase 2 (each of {w} workers)", block["small_batch"], wk.epochs, wk.train_acc, wk.test_acc,
             wk.wall_s, wk.job_s, wk.stop_reason),
        _row("SWAP (average, phase 3)", "–", per_seed.p1_epochs + float(block["phase2_epochs"]), avg.train_acc,
             avg.test_acc, per_seed.loop_parallel, per_seed.t_parallel),
    ])


def times_table(per_seed: pd.DataFrame) -> pd.DataFrame:
    """Per seed: the job times and the training-loop times of SB and SWAP, in seconds (one decimal)."""
    p = per_seed
    return pd.DataFrame({
        "seed": p.seed, "SB": p.t_sb, "LB": p.t_lb, "phase 1": p.t_p1, "slowest worker": p.t_worker_max,
        "averaging": p.t_avg, "SWAP, workers in parallel": p.t_parallel,
        "SWAP, workers one after another": p.t_sequential, "SB training loop": p.loop_sb,
        "SWAP training loops": p.loop_parallel,
    }).map(lambda v: f"{v:.1f}" if isinstance(v, float) else v)


def sanity_table(per_seed: pd.DataFrame) -> pd.DataFrame:
    """The paired SWAP-vs-phase-1 check (``phase1_sanity``) as one row."""
    san = phase1_sanity(per_seed)
    return pd.DataFrame([{
        "check": "SWAP average vs its phase-1 model",
        "SWAP (%)": ms(per_seed.swap_acc, 2), "phase 1 (%)": ms(per_seed.p1_acc, 2),
        "difference (points)": f"{san['effect']:+.2f}",
        "95% CI": f"{san['ci_low']:+.2f} to {san['ci_high']:+.2f}" if np.isfinite(san["ci_low"]) else "n/a (one seed)",
        "SWAP ahead in": f"{int((per_seed.swap_acc > per_seed.p1_acc).sum())} of {len(per_seed)} seeds",
    }])


def time_ratios(per_seed: pd.DataFrame) -> dict[str, float]:
    """Mean over seeds of SWAP's time / SB's: training loop, job time with the workers in
    parallel, and job time with the workers one after another."""
    p = per_seed
    return {"loop": float(np.mean(p.loop_parallel / p.loop_sb)), "job": float(np.mean(p.t_parallel / p.t_sb)),
            "sequential": float(np.mean(p.t_sequential / p.t_sb))}


# ----------------------------------------------------------------------------- protocol
def protocol_rows(block: dict, n_seeds: int) -> list[dict]:
    """The protocol table: the paper's side from ``experiments.swap.PROTOCOL``, ours from the
    block."""
    spec, w = block["run"], block["workers"]
    ours = {
        "data / network": f"{spec['dataset']}; {spec['model']} width {spec.get('width')} depth {spec.get('depth')} "
                          "(ResNet-9 is not in our model zoo)",
        "workers": f"{w}, each a separate Snakemake job (in parallel on a cluster)",
        "batch sizes": f"phase 1 / LB {block['large_batch']}, phase 2 / SB {block['small_batch']}",
        "optimiser": f"{spec['optimizer'].upper()}, momentum {spec.get('momentum', 0)}, Nesterov "
                     f"{spec.get('nesterov', False)}, weight decay {spec.get('weight_decay', 0)}; learning rate "
                     f"{spec['lr']} at batch {block['small_batch']} scaled {spec.get('lr_scaling', 'none')} with the "
                     f"batch, {spec.get('warmup_epochs', 0)} warm-up epoch(s), {spec.get('schedule', 'constant')} "
                     "schedule",
        "baselines": f"SB batch {block['small_batch']} and LB batch {block['large_batch']}, {block['epochs']} epochs "
                     "each",
        "phase 1 stop": f"training accuracy >= {100 * block['stop_train_acc']:g}% (checked once per epoch), cap "
                        f"{block['epochs']} epochs",
        "phase 2": f"{block['phase2_epochs']} epochs from learning rate {block.get('phase2_lr', spec['lr'])} to 0 "
                   "(cosine), fresh momentum, own data order",
        "phase 3": f"mean of the {w} workers (torch.optim.swa_utils), BN statistics over the training set in "
                   f"batches of {block.get('bn_batch', block['small_batch'])}",
        "time": "training-loop time (engine clock); SWAP = phase 1 + slowest worker + averaging; job wall times "
                "shown beside",
        "seeds": f"{n_seeds}",
    }
    return [{"aspect": a, "paper": paper, "ours": ours[a]} for a, (paper, _source) in PROTOCOL.items()]
