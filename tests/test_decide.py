"""The one decision rule: three outcomes, error rates near nominal, Holm by hand."""

import numpy as np
import pytest

from largebatch import stats as S
from largebatch.stats import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED


def _rates(verdicts):
    v = np.array(verdicts)
    return (v == REPRODUCED).mean(), (v == NOT_REPRODUCED).mean()


def test_equal_means_rarely_decide_either_way():
    rng = np.random.default_rng(0)
    out = [S.decide(rng.normal(0, 1, 5), rng.normal(0, 1, 5), "greater", margin=0.0)["verdict"] for _ in range(2000)]
    rep, notrep = _rates(out)
    # one-sided tests at alpha = 0.05: each wrong call at about the nominal rate (binomial slack)
    assert rep < 0.07 and notrep < 0.07
    assert (np.array(out) == INCONCLUSIVE).mean() > 0.85


def test_equal_means_with_margin_are_refuted_only_by_equivalence():
    rng = np.random.default_rng(1)
    # tight samples, equal means, generous margin: equivalence shown -> not reproduced
    tight = [S.decide(rng.normal(0, 0.05, 6), rng.normal(0, 0.05, 6), "greater", margin=0.5) for _ in range(200)]
    assert _rates([d["verdict"] for d in tight])[1] > 0.95
    assert all(d["p_equivalence"] < 0.05 for d in tight if d["verdict"] == NOT_REPRODUCED)
    # noisy samples, tiny margin: equivalence cannot be shown; the rule stays near nominal
    noisy = [S.decide(rng.normal(0, 1, 5), rng.normal(0, 1, 5), "greater", margin=0.01)["verdict"] for _ in range(1000)]
    assert _rates(noisy)[1] < 0.07


def test_clear_effect_in_claimed_direction_is_reproduced_and_reversed_is_not():
    a, b = [10.1, 10.3, 9.9, 10.2, 10.0], [8.0, 8.2, 7.9, 8.1, 8.3]
    d = S.decide(a, b, "greater", margin=0.5)
    assert d["verdict"] == REPRODUCED and d["p_claim"] < 1e-4
    assert d["effect"] == pytest.approx(np.mean(a) - np.mean(b))
    assert d["ci_low"] < d["effect"] < d["ci_high"] and d["ci_low"] > 0
    r = S.decide(b, a, "greater", margin=0.5)
    assert r["verdict"] == NOT_REPRODUCED and r["p_reverse"] < 1e-4
    assert S.decide(b, a, "less", margin=0.5)["verdict"] == REPRODUCED


def test_right_direction_not_significant_is_inconclusive_both_ways():
    a, b = [1.0, 1.4, 0.8], [0.9, 1.2, 0.8]
    assert S.decide(a, b, "greater", 0.0)["verdict"] == INCONCLUSIVE
    # the lopsided old rule called any wrong-signed difference "not reproduced"; this one needs a test
    assert S.decide(b, a, "greater", 0.0)["verdict"] == INCONCLUSIVE


def test_too_few_values_and_no_spread():
    assert S.decide([1.0], [0.0, 0.1], "greater", 0.1)["verdict"] == INCONCLUSIVE
    assert S.decide([1.0, 1.0], [0.0, 0.0], "greater", 0.1)["verdict"] == REPRODUCED
    assert S.decide([0.0, 0.0], [1.0, 1.0], "greater", 0.1)["verdict"] == NOT_REPRODUCED
    assert S.decide([0.0, 0.0], [0.0, 0.0], "greater", 0.1)["verdict"] == NOT_REPRODUCED  # equal within margin
    with pytest.raises(ValueError, match="direction"):
        S.decide([1, 2], [1, 2], "bigger", 0.0)
    with pytest.raises(ValueError, match="margin"):
        S.decide([1, 2], [1, 2], "greater", -1)


def test_one_sample_trend_rank_and_proportion():
    assert S.decide_one_sample([1.2, 1.3, 1.25, 1.22], "greater", 1.0, 0.05)["verdict"] == REPRODUCED
    assert S.decide_one_sample([1.001, 0.999, 1.0, 1.0005], "greater", 1.0, 0.05)["verdict"] == NOT_REPRODUCED
    x = np.arange(8.0)
    assert S.decide_trend(x, 3 - 0.5 * x + [0.01, -0.02, 0.0, 0.02, -0.01, 0.0, 0.01, -0.01], "less")["verdict"] == REPRODUCED
    assert S.decide_trend(x, 3 + 0.5 * x + [0.01, -0.02, 0.0, 0.02, -0.01, 0.0, 0.01, -0.01], "less")["verdict"] == NOT_REPRODUCED
    flat = S.decide_trend(x, [0.01, -0.02, 0.0, 0.02, -0.01, 0.0, 0.01, -0.01], "less", margin=0.05)
    assert flat["verdict"] == NOT_REPRODUCED and flat["p_equivalence"] < 0.05
    assert S.decide_rank(x, x ** 2, "greater")["verdict"] == REPRODUCED
    assert S.decide_rank(x, -x, "greater")["verdict"] == NOT_REPRODUCED
    assert S.decide_proportion(11, 12, "greater", 0.5)["verdict"] == REPRODUCED
    assert S.decide_proportion(1, 12, "greater", 0.5)["verdict"] == NOT_REPRODUCED
    assert S.decide_proportion(6, 12, "greater", 0.5)["verdict"] == INCONCLUSIVE


def test_combine_all_and_any():
    yes = S.decide([10, 10.2, 10.1], [8, 8.1, 8.2], "greater", 0.0)
    no = S.decide([8, 8.1, 8.2], [10, 10.2, 10.1], "greater", 0.0)
    unsure = S.decide([1.0, 1.4, 0.8], [0.9, 1.2, 0.8], "greater", 0.0)
    assert S.combine([yes, yes])["verdict"] == REPRODUCED
    assert S.combine([yes, unsure])["verdict"] == INCONCLUSIVE
    assert S.combine([yes, no])["verdict"] == NOT_REPRODUCED
    assert S.combine([unsure, yes], how="any")["verdict"] == REPRODUCED


def test_holm_matches_a_hand_computed_case():
    # sorted p: 0.01, 0.02, 0.03, 0.04 -> x4, x3, x2, x1 = 0.04, 0.06, 0.06 (monotone), 0.06
    p = [0.03, 0.01, 0.04, 0.02, np.nan]
    adj = S.holm(p)
    assert adj[1] == pytest.approx(0.04)
    assert adj[3] == pytest.approx(0.06)
    assert adj[0] == pytest.approx(0.06)
    assert adj[2] == pytest.approx(0.06)
    assert np.isnan(adj[4])


def test_finalize_claims_adjusts_and_honours_preconditions():
    d = S.decide([10, 10.2, 10.1], [8, 8.1, 8.2], "greater", 0.0)
    rows = [S.claim_row("A1", "a", "m", d, rule="r"),
            S.claim_row("A2", "b", "m", d, rule="r", precondition="SB did not converge", precondition_ok=False)]
    out = S.finalize_claims(rows)
    assert out[0]["verdict"] == REPRODUCED
    assert out[0]["p_claim_adj"] == pytest.approx(min(2 * d["p_claim"], 1.0))
    assert out[1]["verdict"] == INCONCLUSIVE  # a failed precondition never reproduces
    borderline = dict(d, p_claim=0.03)
    out = S.finalize_claims([S.claim_row(f"B{i}", "c", "m", borderline, rule="r") for i in range(3)])
    assert all(r["verdict"] == INCONCLUSIVE for r in out)  # 0.03 x 3 > 0.05 after Holm
    with pytest.raises(ValueError, match="unique"):
        S.finalize_claims(rows + rows)


def test_readable_digits_keep_two_significant_figures_of_small_means():
    assert S.readable_digits([6.9, 7.1]) == 3  # the default where 3 decimals already show them
    assert S.readable_digits([0.054, 0.02]) == 3
    assert S.readable_digits([3.9e-4, 3.8e-4]) == 5  # 0.00039, not 0.000
    assert S.readable_digits([0.0, 0.0]) == 3 and S.readable_digits([float("nan")]) == 3
    assert S.mean_std([3.9e-4, 3.7e-4], S.readable_digits([3.9e-4, 3.7e-4])) == "0.00038 ± 0.00001"
