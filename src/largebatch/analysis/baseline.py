"""The batch-size baseline's claims: B1 (the large batch reaches lower test accuracy) and B2
(its train-test gap is larger), with the preconditions and margins of Keskar et al.'s
design, which the baseline follows (``analysis.keskar_claims``)."""

from __future__ import annotations

import pandas as pd

from ..stats import claim_row, decide
from .keskar_claims import CONVERGED_STOPS, NO_PROBLEM, arm_check, describe_unit, margin_note


def claims(runs: pd.DataFrame, block: dict) -> list[dict]:
    """Claims B1 (LB's test accuracy is lower) and B2 (LB's train-test gap is larger), decided
    by ``largebatch.stats.decide`` on percentage points. Both are generalisation claims: they
    need no run of either arm with a problem (``stopping.arm_problems``: stopped at a safety
    cap, did not learn, diverged), every run stopped by the patience rule when the run spec has
    one (Keskar et al.'s "until the loss ceased to improve", the stricter check), and the arms'
    mean train accuracies within ``block["similar_train_acc_pp"]``; otherwise the verdict is
    inconclusive."""
    sb, lb = runs[runs.arm == "SB"], runs[runs.arm == "LB"]
    tol, cfg = block["similar_train_acc_pp"], block["claims"]
    # a fixed epoch budget is the protocol; with a patience rule (as Keskar et al.) a run must stop by it
    converged = CONVERGED_STOPS if block["run"].get("patience") else None
    ok, found = arm_check({"SB": sb, "LB": lb}, similar_train_pp=tol, converged=converged)
    need = (f"both arms converged (every run stopped by {'/'.join(converged)}; {NO_PROBLEM})" if converged
            else "no run of either arm at a safety cap, without learning or diverged")
    pre = dict(precondition=f"{need}, mean train accuracies within {tol:g} pp: {found}",
               precondition_ok=ok)
    test = lambda d: 100 * d.test_acc.to_numpy(float)
    gap = lambda d: 100 * (d.train_acc - d.test_acc).to_numpy(float)
    m1, m2 = float(cfg["B1"]["margin_pp"]), float(cfg["B2"]["margin_pp"])
    note = lambda m: margin_note("K1", m)  # B1/B2 take K1's margin: the smallest published test gap
    return [
        claim_row("B1", "At similar training accuracy, the large batch reaches lower test accuracy than the small "
                        "batch after the same epochs.",
                  "final test accuracy (%), LB vs SB",
                  decide(test(lb), test(sb), "less", m1),
                  rule=f"LB < SB: one-sided Welch t-test; against: reverse test, or equivalence within ±{m1:g} pp (TOST{note(m1)})",
                  ours=f"test SB {describe_unit(test(sb), '%')} vs LB {describe_unit(test(lb), '%')}; train SB "
                       f"{describe_unit(100 * sb.train_acc.to_numpy(float), '%')} vs LB "
                       f"{describe_unit(100 * lb.train_acc.to_numpy(float), '%')}",
                  paper="not published (baseline)", **pre),
        claim_row("B2", "The large batch has the larger train-test accuracy gap (it generalises worse).",
                  "train − test accuracy (pp), LB vs SB",
                  decide(gap(lb), gap(sb), "greater", m2),
                  rule=f"LB > SB: one-sided Welch t-test; against: reverse test, or equivalence within ±{m2:g} pp (TOST{note(m2)})",
                  ours=f"gap SB {describe_unit(gap(sb), 'pp')} vs LB {describe_unit(gap(lb), 'pp')}",
                  paper="not published (baseline)", **pre),
    ]
