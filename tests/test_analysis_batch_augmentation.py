"""The batch-augmentation section's analysis (largebatch.analysis.batch_augmentation) on small
synthetic runs whose answers are known: steps to τ, the claims' decisions and preconditions,
and the evidence tables."""

import matplotlib

matplotlib.use("Agg")
import numpy as np
import pandas as pd
import pytest

from largebatch.analysis import batch_augmentation as A
from largebatch.analysis import batch_augmentation_figures as F
from largebatch.ba import predicted_variance
from largebatch.stats import decide_noninferior, finalize_claims

B, N = 8, 400
SEEDS = (0, 1, 2)
#: final test accuracy (%) per arm and compared M, one value per seed
TEST = {("BA", 1): [60.0, 61.0, 59.5], ("BA", 4): [70.0, 71.5, 70.5],
        ("longer", 4): [69.0, 70.0, 71.0], ("distinct", 4): [80.0, 81.0, 79.0]}
BLOCK = {"run": {"dataset": "mnist1d", "model": "mlp", "width": 16, "depth": 2, "optimizer": "sgd", "lr": 0.1,
                 "momentum": 0.9, "weight_decay": 1e-4, "epochs": 2, "milestones": [1.5], "augment": "mnist1d",
                 "batch_size": B},
         "multiplicities": [1, 4], "seeds": list(SEEDS), "longer_baselines": [4], "distinct_controls": [4],
         "min_train_acc_pp": 50, "plateau": {"fraction": 0.1, "max_rise_pp": 1.0},
         "claims": {"BA1": {"margin_pp": 0.25}, "BA2": {"margin_pct": 2.5}, "BA3": {"margin_pp": 1.0},
                    "BA4": {"margin_pp": 1.0}, "BA5": {"margin_ratio": 0.05}, "BA6": {"margin_ratio": 0.05}}}
STEPS = 100


def make_runs(test=TEST, train_offset=5.0, status="ok", rising=()):
    """Runs and histories: test accuracy rises linearly to the final value over STEPS steps
    (longer baselines over 4x the steps), evaluated every 10 steps; train accuracy reaches its
    final value at 80% of the steps and stays there (a plateau), or, for the (arm, M) keys in
    ``rising``, rises linearly to the end (not converged)."""
    runs, hist = [], []
    for (arm, k), values in test.items():
        m = k if arm == "BA" else 1
        steps = STEPS * (k if arm == "longer" else 1)
        for seed, acc in zip(SEEDS, values):
            rid = f"{arm}{k}-s{seed}"
            runs.append({"run": rid, "arm": arm, "multiplicity": m, "compare_m": k, "epoch_factor": 1, "seed": seed,
                         "test_acc": acc / 100, "train_acc": (acc + train_offset) / 100, "test_loss": 1 - acc / 100,
                         "steps": steps, "wall_s": 1.0 * m, "status": status, "stop_reason": "budget",
                         "epochs": 2.0 * (k if arm == "longer" else 1)})
            end = 1.0 if (arm, k) in rising else 0.8
            for step in range(0, steps + 1, 10):
                hist.append({"run": rid, "arm": arm, "multiplicity": m, "compare_m": k, "seed": seed, "step": step,
                             "samples": step * (B * k if arm == "distinct" else B), "test_acc": acc / 100 * step / steps,
                             "train_acc": (acc + train_offset) / 100 * min(1.0, step / (end * steps))})
    return pd.DataFrame(runs), pd.DataFrame(hist)


def make_gv(a=3.0, b=7.0, noise=0.02):
    """Gradient variances as the variance model predicts them (a between samples, b from
    augmentation), with a small per-seed multiplicative noise."""
    rng = np.random.default_rng(0)
    rows = []
    for seed in SEEDS:
        for model in ("initial", "final"):
            for scheme in ("ba", "distinct"):
                for m in (1, 4):
                    v = predicted_variance(a, b, B, m, N, scheme) * (1 + noise * rng.standard_normal())
                    rows.append({"run": f"BA1-s{seed}", "seed": seed, "model": model, "scheme": scheme,
                                 "multiplicity": m, "batch_size": B, "trace_cov": v, "draws": 8, "n_train": N})
    return pd.DataFrame(rows)


@pytest.fixture
def st():
    return A.study(*make_runs(), BLOCK)


def test_study_finds_tau_and_the_steps_to_reach_it(st):
    assert st.tau == pytest.approx(np.mean(TEST[("BA", 1)]))
    assert st.budget == STEPS and st.ms == [1, 4] and st.m_top == 4 and st.n_seeds == 3
    ba = st.ba.set_index("run")
    # M = 4 (about 70%) passes τ ≈ 60.2% part-way: its first evaluation at or above τ
    acc = TEST[("BA", 4)][0]
    expected = next(s for s in range(0, STEPS + 1, 10) if acc * s / STEPS >= st.tau)
    assert ba.loc["BA4-s0", "steps_to_tau"] == expected
    # the M = 1 seed below τ never reaches it: counted at the budget
    assert np.isnan(ba.loc["BA1-s2", "steps_to_tau"])
    assert ba.loc["BA1-s2", "steps_to_tau_censored"] == STEPS and ba.loc["BA1-s2", "steps_pct"] == 100
    assert ba.loc["BA4-s0", "steps_pct"] == pytest.approx(expected)
    assert list(st.runs.set_index("run").label[["BA4-s0", "longer4-s0", "distinct4-s0"]]) == \
        ["BA, M = 4", "M = 1, 4× epochs", "32 distinct (M = 4)"]
    # examples seen: batch seen per step (B x M) x steps
    h = st.hist.set_index(["run", "step"])
    assert h.loc[("BA4-s0", 50), "examples"] == 50 * B * 4 and h.loc[("BA4-s0", 50), "test_pp"] == pytest.approx(35.0)


def test_noninferiority_decisions_and_unshifted_effect():
    from largebatch.stats import NOT_REPRODUCED, REPRODUCED, verdict_of

    noise = np.random.default_rng(0).standard_normal((2, 8)) * 0.1
    b = 80 + noise[1]
    equal = decide_noninferior(80 + noise[0], b, 1.0, label="equal")  # equal means, tight: within the 1-point margin
    assert equal["verdict"] == REPRODUCED and equal["label"] == "equal"
    assert abs(equal["effect"] - (noise[0].mean() - noise[1].mean())) < 1e-9  # reported unshifted
    assert equal["ci_low"] < equal["effect"] < equal["ci_high"]
    worse = decide_noninferior(77 + noise[0], b, 1.0)  # 3 points below: more than the margin
    assert worse["verdict"] == NOT_REPRODUCED and abs(worse["effect"] + 3 - (noise[0].mean() - noise[1].mean())) < 1e-9
    slightly = decide_noninferior(79.5 + noise[0], b, 0.0)  # no margin: the plain superiority test, refuted
    assert slightly["verdict"] == NOT_REPRODUCED
    # the verdict is the library's three-way rule on the decision's p-values
    for d in (equal, worse, slightly):
        assert d["verdict"] == verdict_of(d["p_claim"], d["p_against"])
    with pytest.raises(ValueError, match="margin"):
        decide_noninferior([1, 2], [1, 2], -1)


def test_converged_fails_on_divergence_or_low_train_accuracy(st):
    ok, text = A.converged([st.at(1), st.at(4)], 50)
    assert ok and text.startswith("met:") and "BA, M = 1, BA, M = 4" in text
    ok, text = A.converged([st.at(1)], 70)
    assert not ok and "train accuracy 65.2% < 70%" in text
    bad = st.at(4).assign(status=["ok", "diverged", "ok"])
    ok, text = A.converged([bad], 50)
    assert not ok and "1 of 3 runs diverged" in text


def test_converged_fails_on_every_arm_problem_and_without_a_plateau(st):
    """A run stopped at the safety cap, one that did not learn and an arm still learning at the
    end of its schedule all make the precondition fail (stopping.arm_problems + plateau)."""
    ok, text = A.converged([st.at(1), st.at(4)], 50, 1.0)
    assert ok and "plateaued (rise < 1 pp)" in text
    capped = st.at(4).assign(stop_reason=["budget", "cap", "budget"])
    ok, text = A.converged([st.at(1), capped], 50, 1.0)
    assert not ok and "BA, M = 4: 1 of 3 runs stopped at the safety cap" in text
    flat = st.at(1).assign(status=["no_learning", "ok", "ok"])
    ok, text = A.converged([flat], 50, 1.0)
    assert not ok and "did not learn" in text and "diverged" not in text
    runs, hist = make_runs(rising=[("distinct", 4)])
    rising = A.study(runs, hist, BLOCK)
    d4 = rising.arm("distinct")
    # linear to the end: the last 10% of the steps add 10% of the final train accuracy
    assert d4.rise_pp.to_numpy() == pytest.approx(0.1 * (np.array(TEST[("distinct", 4)]) + 5.0))
    assert rising.at(4).rise_pp.to_numpy() == pytest.approx(0.0)  # flat from 80% of the steps on
    ok, text = A.converged([rising.at(4), d4], 50, 1.0)
    assert not ok and "still rising" in text and "distinct" in text
    assert A.converged([d4], 50)[0]  # no plateau rule: not checked
    r = {x["id"]: x for x in finalize_claims(A.claims(rising, make_gv(), BLOCK))}
    assert not r["BA4"]["precondition_ok"] and r["BA4"]["verdict"] == "inconclusive"
    assert r["BA1"]["precondition_ok"] and r["BA3"]["precondition_ok"]  # arms without the distinct control


def test_plateau_rise_is_the_end_minus_the_last_evaluation_before_the_final_fraction():
    h = pd.DataFrame({"step": [0, 50, 80, 90, 95, 100], "train_acc": [0.1, 0.5, 0.7, 0.72, 0.74, 0.75]})
    assert A.plateau_rise(h, 0.1) == pytest.approx(3.0)  # 75% - 72% (step 90 = 0.9 x 100)
    assert A.plateau_rise(h.sample(frac=1, random_state=0), 0.2) == pytest.approx(5.0)  # 75% - 70% (step 80)
    assert np.isnan(A.plateau_rise(h[h.step >= 95], 0.5))  # no evaluation at or before step 50


def test_claims_decide_trends_controls_and_variance(st):
    rows = A.claims(st, make_gv(), BLOCK)
    assert [r["id"] for r in rows] == ["BA1", "BA2", "BA3", "BA4", "BA5", "BA6"]
    r = {x["id"]: x for x in finalize_claims(rows)}
    # BA1: slope per doubling of M = (mean M=4 - mean M=1) / 2 doublings
    slope = (np.mean(TEST[("BA", 4)]) - np.mean(TEST[("BA", 1)])) / 2
    assert r["BA1"]["effect"] == pytest.approx(slope) and r["BA1"]["verdict"] == "reproduced"
    assert "(100)" in r["BA1"]["claim"] and r["BA1"]["precondition_ok"]
    assert r["BA2"]["effect"] < 0  # fewer steps to τ with larger M
    # BA3: BA M=4 (70.67) vs longer (70.0) is within the 1 pp margin; effect reported unshifted
    assert r["BA3"]["effect"] == pytest.approx(np.mean(TEST[("BA", 4)]) - np.mean(TEST[("longer", 4)]))
    # BA4: distinct samples are 10 pp better: BA is inferior, the claim is refuted
    assert r["BA4"]["effect"] == pytest.approx(np.mean(TEST[("BA", 4)]) - np.mean(TEST[("distinct", 4)]))
    assert r["BA4"]["verdict"] == "not reproduced"
    # BA5: the model with b = 7 of 10 predicts a ratio well below 1; BA6: distinct lower still
    assert r["BA5"]["verdict"] == "reproduced" and r["BA5"]["effect"] < 0
    assert r["BA6"]["verdict"] == "reproduced"
    assert "1 ± 0.05" in r["BA5"]["rule"]


def test_claims_without_controls_and_with_an_unmet_precondition():
    runs, hist = make_runs({k: v for k, v in TEST.items() if k[0] == "BA"}, train_offset=-30.0)
    st = A.study(runs, hist, BLOCK)
    rows = finalize_claims(A.claims(st, make_gv(), BLOCK))
    assert [r["id"] for r in rows] == ["BA1", "BA2", "BA5", "BA6"]
    assert all(not r["precondition_ok"] and r["verdict"] == "inconclusive" for r in rows)
    assert "< 50%" in rows[0]["precondition"]


def test_final_budget_table(st):
    t = A.final_budget_table(st).set_index("M")
    assert t.loc[1, "Δ test vs M = 1 (pp) [95% CI]"] == "reference"
    d = t.loc[4, "Δ test vs M = 1 (pp) [95% CI]"]
    assert d.startswith(f"{np.mean(TEST[('BA', 4)]) - np.mean(TEST[('BA', 1)]):+.2f} [")
    assert t.loc[4, "batch seen (B·M)"] == 4 * B and t.loc[4, "examples seen"] == STEPS * 4 * B
    assert t.loc[1, "reached τ"] == "1 of 3"  # only the 61% seed reaches τ = 60.17%
    assert t.loc[4, "reached τ"] == "3 of 3"
    assert t.loc[1, "test accuracy (%)"] == f"{np.mean(TEST[('BA', 1)]):.2f} ± {np.std(TEST[('BA', 1)], ddof=1):.2f}"
    # convergence beside the test accuracy: final train accuracy and its rise at the end
    assert float(t.loc[4, "train accuracy (%)"].split(" ± ")[0]) == pytest.approx(np.mean(TEST[("BA", 4)]) + 5, abs=0.01)
    assert float(t.loc[4, "train rise, end (pp)"].split(" ± ")[0]) == 0.0  # flat from 80% of the steps on


def test_controls_table(st):
    t = A.controls_table(st)
    assert list(t["matched on"]) == ["examples seen (compute)", "steps and batch seen"]
    assert list(t["control"]) == ["M = 1, 4× epochs", "32 distinct (M = 4)"]
    assert list(t["control steps"]) == [4 * STEPS, STEPS] and list(t["control epochs"]) == ["8", "2"]
    assert float(t["control train (%)"].iloc[1].split(" ± ")[0]) == pytest.approx(np.mean(TEST[("distinct", 4)]) + 5)
    assert [float(v.split(" ± ")[0]) for v in t["control train rise, end (pp)"]] == [0.0, 0.0]
    diff = np.mean(TEST[("BA", 4)]) - np.mean(TEST[("distinct", 4)])
    assert t["BA − control (pp) [95% CI]"].iloc[1].startswith(f"{diff:+.2f} [")


def test_variance_table_and_model_fit_recover_the_model():
    gv = make_gv(noise=0.0)
    t = A.variance_table(gv, [1, 4])
    assert list(t.weights) == ["initial", "initial", "final", "final"]
    row = t[(t.weights == "final") & (t.M == 4)].iloc[0]
    ratio = predicted_variance(3, 7, B, 4, N, "ba") / predicted_variance(3, 7, B, 1, N, "ba")
    assert row["BA / M = 1"] == f"{ratio:.3f} ± 0.000" and row["1/M"] == "0.250"
    assert t[t.M == 1]["BA / M = 1"].eq("1 (reference)").all()
    fits = A.variance_fits(gv)
    assert len(fits) == 6
    assert fits.a.to_numpy() == pytest.approx(3.0) and fits.b.to_numpy() == pytest.approx(7.0)
    assert A.augmentation_share(fits) == pytest.approx(0.7)
    ft = A.fit_table(fits)
    assert list(ft.weights) == ["initial", "final"] and ft["augmentation share (%)"].iloc[0] == "70 ± 0"


def test_protocol_and_scope_follow_the_scale(st):
    rows = {r["aspect"]: r["ours"] for r in A.protocol_rows(BLOCK["run"], st)}
    assert rows["controls"] == "M = 1 trained 4× longer; M·B distinct samples at equal steps for M in [4]"
    assert rows["batch"] == f"B = {B}, M in [1, 4]" and rows["seeds"] == "3 per arm"
    assert rows["schedule"] == "2 epochs, lr /10 at 1.5" and "convergence" not in rows
    rows = {r["aspect"]: r["ours"] for r in A.protocol_rows(BLOCK["run"], st, BLOCK["plateau"])}
    assert rows["convergence"].endswith("rise < 1 pp over the last 10% of its steps")
    small = A.scope_text(BLOCK["run"], 4)
    assert small.startswith("This scale tests the mechanism") and "MLP on mnist1d" in small and "up to 4" in small
    paper = A.scope_text({"dataset": "cifar10", "model": "resnet", "depth": 44, "augment": "crop_flip_cutout"}, 40)
    assert "headline run" in paper and "instead of" not in paper


def test_figures_draw_every_arm(st):
    fig = F.accuracy_vs_m(st, F.chance_pp("mnist1d"))
    left, right = fig.axes[:2]
    assert {"BA, one seed", "BA, mean over seeds", "M = 1, 4× epochs", "32 distinct (M = 4)"} <= \
        set(left.get_legend_handles_labels()[1])
    assert any(list(line.get_ydata()) == [10.0, 10.0] for line in right.lines)  # chance
    fig = F.accuracy_vs_examples(st)
    assert "M = 1, 4× epochs" in fig.axes[0].get_legend_handles_labels()[1]
    gv = make_gv()
    fig = F.variance_vs_m(gv, A.variance_fits(gv), B, [1, 4])
    assert [ax.get_title() for ax in fig.axes] == ["initial weights of the M = 1 runs", "final weights of the M = 1 runs"]
    assert F.chance_pp("cifar100") == 1.0
