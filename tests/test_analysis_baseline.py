"""The batch-size baseline's claims (largebatch.analysis.baseline): decided by largebatch.stats,
inconclusive when the arms do not fit the training set about equally well (an optimisation gap
is not a generalisation gap)."""

import numpy as np
import pandas as pd

from largebatch.analysis import baseline as B
from largebatch.stats import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED, finalize_claims

BLOCK = {"run": {"epochs": 20}, "similar_train_acc_pp": 2.0,
         "claims": {"B1": {"margin_pp": 0.22}, "B2": {"margin_pp": 0.22}}}


def runs(train=(0.97, 0.97), test=(0.80, 0.76), n=5, stop="budget", seed=0, noise=0.003):
    rng = np.random.default_rng(seed)
    return pd.DataFrame([{"arm": arm, "seed": s, "stop_reason": stop, "batch_size": b,
                          "train_acc": train[i] + 0.001 * rng.standard_normal(),
                          "test_acc": test[i] + noise * rng.standard_normal()}
                         for i, (arm, b) in enumerate((("SB", 64), ("LB", 1600))) for s in range(n)])


def verdicts(df):
    return {r["id"]: r for r in finalize_claims(B.claims(df, BLOCK))}


def test_a_gap_at_equal_train_accuracy_is_reproduced():
    rows = verdicts(runs())
    assert rows["B1"]["verdict"] == REPRODUCED and rows["B2"]["verdict"] == REPRODUCED
    assert rows["B1"]["precondition_ok"] and rows["B1"]["effect"] < -3  # percentage points


def test_an_underfit_large_batch_is_inconclusive_not_reproduced():
    # issue 16: LB at 88% train accuracy against SB at 97% says nothing about generalisation
    rows = verdicts(runs(train=(0.97, 0.88)))
    assert {r["verdict"] for r in rows.values()} == {INCONCLUSIVE}
    assert "within 2 pp: failed: train accuracy SB 97" in rows["B1"]["precondition"]


def test_equal_arms_are_not_reproduced_and_a_diverged_run_blocks_the_verdict():
    equal = runs(test=(0.80, 0.80), noise=0.0005)
    assert verdicts(equal)["B1"]["verdict"] == NOT_REPRODUCED  # within ±0.22 pp (TOST)
    diverged = runs()
    diverged.loc[0, ["stop_reason", "status"]] = ["diverged", "diverged"]
    row = verdicts(diverged)["B1"]
    assert row["verdict"] == INCONCLUSIVE and "SB: 1 of 5 runs diverged" in row["precondition"]


def test_a_run_that_did_not_learn_blocks_the_verdict():
    # stopping.run_status: a run whose final train loss is at chance is 'no_learning', not 'ok'
    flat = runs().assign(status="ok")
    flat.loc[flat.arm == "LB", "status"] = ["no_learning"] + ["ok"] * 4
    row = verdicts(flat)["B2"]
    assert row["verdict"] == INCONCLUSIVE and "LB: 1 of 5 runs did not learn" in row["precondition"]


def test_with_a_patience_rule_a_capped_run_blocks_the_verdict():
    # a baseline trained like Keskar et al. (until the loss stops improving) must stop by patience
    patience = {**BLOCK, "run": {"patience": 5, "steps": 1000}}
    capped = runs(stop="patience")
    capped.loc[capped.arm == "LB", "stop_reason"] = "cap"
    row = finalize_claims(B.claims(capped, patience))[0]
    assert row["verdict"] == INCONCLUSIVE
    assert "LB: 5 of 5 runs stopped at the safety cap (the protocol was cut)" in row["precondition"]
    assert row["precondition"].startswith("both arms converged (every run stopped by patience; none at the safety cap")
    # the stricter rule: with a patience rule any other ending is not convergence either
    other = runs(stop="patience")
    other.loc[0, "stop_reason"] = "budget"
    row = finalize_claims(B.claims(other, patience))[0]
    assert row["verdict"] == INCONCLUSIVE and "SB: 1 of 5 runs stopped by budget, not by patience" in row["precondition"]
    assert finalize_claims(B.claims(runs(stop="patience"), patience))[0]["verdict"] == REPRODUCED
    # a fixed budget is the protocol there; a safety cap is never evidence, with or without patience
    assert verdicts(other)["B1"]["verdict"] == REPRODUCED
    assert verdicts(capped)["B1"]["verdict"] == INCONCLUSIVE
