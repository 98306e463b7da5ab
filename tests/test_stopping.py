"""Run status and the arm check every claim's precondition uses (largebatch.stopping)."""

import math

from largebatch.stopping import NO_LEARNING_FRACTION, arm_problems, end_reason, run_status


def test_run_status_flags_a_run_left_at_chance():
    chance = math.log(10)
    assert run_status("patience", 0.1, 10) == "ok"
    assert run_status(None, chance, 10) == "no_learning"
    assert run_status(None, NO_LEARNING_FRACTION * chance + 1e-6, 10) == "no_learning"
    assert run_status(None, NO_LEARNING_FRACTION * chance - 1e-3, 10) == "ok"
    assert run_status("diverged", float("nan"), 10) == "diverged"
    assert run_status(None, float("inf"), 10) == "diverged"


def test_end_reason_cap_only_where_a_stop_rule_should_have_ended_the_run():
    assert end_reason({"patience": 3, "stop_train_acc": None}) == "cap"
    assert end_reason({"patience": None, "stop_train_acc": 0.9}) == "cap"
    assert end_reason({"patience": None, "stop_train_acc": None}) == "budget"


def test_arm_problems_names_each_kind_of_bad_run():
    good = {"status": "ok", "stop_reason": "patience"}
    assert arm_problems([good, good]) == []
    rows = [good, {"status": "ok", "stop_reason": "cap"}, {"status": "no_learning", "stop_reason": "budget"},
            {"status": "diverged", "stop_reason": "diverged"}]
    problems = arm_problems(rows, "LB")
    assert problems == ["LB: 1 of 4 runs stopped at the safety cap (the protocol was cut)",
                        "LB: 1 of 4 runs did not learn (final train loss at chance)",
                        "LB: 1 of 4 runs diverged"]
