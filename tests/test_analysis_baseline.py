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
    diverged.loc[0, "stop_reason"] = "diverged"
    row = verdicts(diverged)["B1"]
    assert row["verdict"] == INCONCLUSIVE and "SB: 1 of 5 runs stopped by divergence" in row["precondition"]


def test_with_a_patience_rule_a_capped_run_blocks_the_verdict():
    # a baseline trained like Keskar et al. (until the loss stops improving) must stop by patience
    capped = runs(stop="patience")
    capped.loc[capped.arm == "LB", "stop_reason"] = "budget"
    row = finalize_claims(B.claims(capped, {**BLOCK, "run": {"patience": 5, "steps": 1000}}))[0]
    assert row["verdict"] == INCONCLUSIVE and "LB: 5 of 5 runs stopped by the update cap" in row["precondition"]
    assert verdicts(capped)["B1"]["verdict"] == REPRODUCED  # a fixed budget is the protocol there
