"""Keskar et al. 2017: the section's analysis on small synthetic run tables
(largebatch.analysis.keskar, keskar_claims, keskar_figures, keskar_text): the derived
quantities, the claims and their preconditions, the tables beside the published rows, the
summary, protocol and caveats, and the figures."""

from __future__ import annotations

import json
import re

import matplotlib

matplotlib.use("Agg")
import numpy as np
import pandas as pd
import pytest

from largebatch.analysis import keskar as A
from largebatch.analysis import keskar_claims as C
from largebatch.analysis import keskar_figures as F
from largebatch.analysis import keskar_text as T
from largebatch.experiments import keskar as K
from largebatch.stats import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED, finalize_claims

from test_keskar import BLOCK  # the Keskar block the planning tests use


# --------------------------------------------------------------------------- #
# derived quantities
# --------------------------------------------------------------------------- #
def test_endpoint_rise_known_answer():
    alphas = np.linspace(-1, 2, 25)
    f = np.where(alphas < 0, -2.0 * alphas, np.where(alphas > 1, 5.0 * (alphas - 1), 0.0)) + 0.1
    sb_rise, lb_rise = A.endpoint_rise(pd.DataFrame({"alpha": alphas, "train_loss": f}), delta=0.25)
    assert sb_rise == pytest.approx(0.5) and lb_rise == pytest.approx(1.25)
    with pytest.raises(ValueError, match="does not reach"):
        A.endpoint_rise(pd.DataFrame({"alpha": [0.0, 0.5, 1.0], "train_loss": [1.0, 1.0, 1.0]}))


def test_distance_ratios_pair_sb_and_lb_by_seed():
    runs = pd.DataFrame([
        {"network": "F1", "arm": "SB", "seed": 0, "w_dist": 12.0, "main": True},
        {"network": "F1", "arm": "LB", "seed": 0, "w_dist": 3.0, "main": True},
        {"network": "F1", "arm": "SB", "seed": 1, "w_dist": 10.0, "main": True},
        {"network": "F1", "arm": "LB", "seed": 1, "w_dist": 5.0, "main": True},
        {"network": "F1", "arm": "other", "seed": 0, "w_dist": 99.0, "main": False},
    ])
    r = A.distance_ratios(runs).sort_values("seed")
    assert r.ratio.tolist() == [4.0, 2.0]


def test_threshold_batch_is_the_first_size_that_drops():
    sweep = pd.DataFrame({"batch_size": [64, 64, 256, 1024, 4096], "test_acc": [0.90, 0.92, 0.905, 0.88, 0.80]})
    assert A.threshold_batch(sweep, drop=0.01) == 1024
    assert A.threshold_batch(sweep, drop=0.5) is None


def test_published_cells_are_the_reference_values():
    assert A.published_cell("table2", "F1", 2) == "98.03 ± 0.07"
    assert A.published_cell("table3", "C1", 1) == "707.23 ± 43.04"
    assert A.published_cell("table4", "F1", 3) == "9.17 ± 0.14"
    assert A.published_cell("table3", "X9", 0) == "–"



EPS2 = {**BLOCK["sharpness"], "epsilons": [1e-3, 5e-4]}
CLAIM_BLOCK = {**BLOCK, "sharpness": EPS2}


def fake_runs(net="C1", n=5, test=(0.80, 0.76), train=(0.99, 0.99), sharp=(1.0, 30.0), hess=(2.0, 9.0),
              dist=(10.0, 2.0), stop=("patience", "patience"), seed=0, sharp_eps2=None):
    """SB and LB run tables of one network, values around the given (SB, LB) means."""
    rng = np.random.default_rng(seed)
    rows = []
    for i, arm in enumerate(("SB", "LB")):
        for s in range(n):
            jitter = lambda v, rel=0.05: v * (1 + rel * rng.standard_normal())
            sh2 = sharp_eps2[i] if sharp_eps2 else sharp[i] / 3
            rows.append({"network": net, "arm": arm, "seed": s, "main": True, "sweep": False,
                         "stop_reason": stop[i] if s == 0 or stop[i] == "patience" else "patience",
                         "test_acc": test[i] + 0.003 * rng.standard_normal(),
                         "train_acc": train[i] + 0.001 * rng.standard_normal(),
                         "sharp_full_0.001": jitter(sharp[i]), "sharp_full_0.0005": jitter(sh2),
                         "sharp_subspace_0.001": jitter(sharp[i] / 10), "sharp_subspace_0.0005": jitter(sh2 / 10),
                         "hessian_max_eig": jitter(hess[i]), "w_dist": jitter(dist[i]), "epochs": 10.0,
                         "batch_size": 24 if arm == "SB" else 120})
    runs = pd.DataFrame(rows)
    rises = pd.DataFrame({"network": net, "seed": range(n), "sb_rise": 0.1 + 0.01 * rng.standard_normal(n),
                          "lb_rise": 0.5 + 0.02 * rng.standard_normal(n)})
    return runs, rises


def decided(runs, rises, block=CLAIM_BLOCK, net="C1"):
    sb, lb = runs[runs.arm == "SB"], runs[runs.arm == "LB"]
    rows = finalize_claims(C.sb_lb_claims(net, sb, lb, rises, A.distance_ratios(runs), block))
    return {r["id"].split("-")[0]: r for r in rows}


def test_clear_effects_are_reproduced_with_the_papers_values_beside_them():
    rows = decided(*fake_runs())
    assert {k: r["verdict"] for k, r in rows.items()} == {
        "K1": REPRODUCED, "K2": REPRODUCED, "K3": REPRODUCED, "K4": REPRODUCED, "K5": REPRODUCED,
        "K6": REPRODUCED, "K7": REPRODUCED}
    assert all(r["precondition_ok"] for r in rows.values())
    assert rows["K1"]["paper"].startswith("test SB 80.04 ± 0.12 % vs LB 77.26 ± 0.42 %")
    assert "Table 2" in rows["K1"]["paper_source"] and "Table 3" in rows["K2"]["paper_source"]
    assert rows["K1"]["effect"] == pytest.approx(-4.0, abs=0.5)  # percentage points, LB - SB
    assert re.fullmatch(r"test SB \d+\.\d\d ± \d\.\d\d % \(n=5\) vs LB 7\d\.\d\d ± .* % \(n=5\); train .*", rows["K1"]["ours"])
    assert "margin: smallest SB − LB test gap in Keskar et al. 2017, Table 2" in rows["K1"]["rule"]
    # every published value names where in the paper it is printed
    assert all(r["paper_source"].startswith("Keskar et al. 2017, ") for r in rows.values())


def test_k2_needs_both_epsilons():
    # LB far sharper at eps = 1e-3 but clearly flatter at eps = 5e-4: the two-part claim is refuted
    rows = decided(*fake_runs(sharp=(1.0, 30.0), sharp_eps2=(10.0, 1.0)))
    assert rows["K2"]["verdict"] == NOT_REPRODUCED
    # LB sharper at eps = 1e-3, equal at eps = 5e-4: shown within a factor 8.7 there (TOST), so the
    # claim that LB is sharper at every epsilon is refuted
    rows = decided(*fake_runs(sharp_eps2=(1.0, 1.02)))
    assert rows["K2"]["verdict"] == NOT_REPRODUCED
    assert "ε=0.0005" in rows["K2"]["test"] and "ε=0.001" in rows["K2"]["test"]


def test_equal_arms_within_the_margin_are_not_reproduced_and_noise_is_inconclusive():
    runs, rises = fake_runs(sharp=(5.0, 5.0), hess=(3.0, 3.0), dist=(4.0, 4.0), test=(0.80, 0.80))
    rows = decided(runs, rises)
    assert rows["K2"]["verdict"] == NOT_REPRODUCED  # ratio 1, far inside a factor 8.7
    assert rows["K6"]["verdict"] == NOT_REPRODUCED  # ratio 1, inside a factor 3
    assert rows["K7"]["verdict"] == NOT_REPRODUCED  # ratio 1 is below the published 3-10
    assert rows["K4"]["verdict"] == INCONCLUSIVE  # no margin for the eigenvalue: equal is not evidence


def test_a_capped_arm_makes_every_sb_lb_claim_inconclusive():
    # C1's SB stopped at the safety cap on updates (the issue-16 case): clear effects, still no verdict
    rows = decided(*fake_runs(stop=("cap", "patience")))
    assert all(r["verdict"] == INCONCLUSIVE and not r["precondition_ok"] for r in rows.values())
    assert "SB: 1 of 5 runs stopped at the safety cap (the protocol was cut)" in rows["K2"]["precondition"]
    assert rows["K2"]["p_claim"] < 0.05  # the test itself still shows the effect
    # the paper's rule is stricter than arm_problems: a run ended any other way did not converge
    rows = decided(*fake_runs(stop=("patience", "budget")))
    assert all(r["verdict"] == INCONCLUSIVE for r in rows.values())
    assert "LB: 1 of 5 runs stopped by budget, not by patience" in rows["K6"]["precondition"]


def test_a_run_that_did_not_learn_or_diverged_makes_the_claims_inconclusive():
    runs, rises = fake_runs()
    runs["status"] = "ok"
    runs.loc[(runs.arm == "LB") & (runs.seed == 2), "status"] = "no_learning"  # stopped by patience, at chance
    rows = decided(runs, rises)
    assert all(r["verdict"] == INCONCLUSIVE for r in rows.values())
    assert "LB: 1 of 5 runs did not learn (final train loss at chance)" in rows["K1"]["precondition"]
    runs.loc[runs.status == "no_learning", ["status", "stop_reason"]] = ["diverged", "diverged"]
    assert "LB: 1 of 5 runs diverged" in decided(runs, rises)["K3"]["precondition"]


def test_train_accuracies_too_far_apart_make_the_generalisation_claim_inconclusive():
    rows = decided(*fake_runs(train=(0.76, 0.94)))
    assert rows["K1"]["verdict"] == INCONCLUSIVE and not rows["K1"]["precondition_ok"]
    # the minimisers' sharpness and distance are still compared: both arms converged
    assert all(rows[k]["verdict"] == REPRODUCED and rows[k]["precondition_ok"] for k in ("K2", "K3", "K6"))
    assert rows["K1"]["precondition"].startswith(
        "both arms converged (every run stopped by patience; none at the safety cap, without learning or diverged), "
        "mean train accuracies within 2 pp")
    assert "failed: " in rows["K1"]["precondition"] and "pp apart" in rows["K1"]["precondition"]
    runs = fake_runs()[0]
    ok, text = C.arm_check({"SB": runs[runs.arm == "SB"], "LB": runs[runs.arm == "LB"]}, similar_train_pp=2.0)
    assert ok and text.startswith("met: SB: 5 of 5 stopped by patience")


def test_distance_ratio_range_claim():
    assert decided(*fake_runs(dist=(10.0, 2.0)))["K7"]["verdict"] == REPRODUCED  # ratio 5
    assert decided(*fake_runs(dist=(40.0, 2.0)))["K7"]["verdict"] == NOT_REPRODUCED  # ratio 20 > 10


def sweep_runs(acc_slope, sharp_factor, seeds=3, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for k, b in enumerate([24, 48, 96, 192, 384]):
        for s in range(seeds):
            rows.append({"batch_size": b, "seed": s, "stop_reason": "patience",
                         "test_acc": 0.8 + acc_slope * k + 0.002 * rng.standard_normal(),
                         "sharp_full_0.001": 2.0 * sharp_factor ** k * (1 + 0.05 * rng.standard_normal())})
    return pd.DataFrame(rows)


def test_sweep_claim_needs_both_trends():
    assert C.sweep_claim(sweep_runs(-0.01, 1.5), CLAIM_BLOCK)["verdict"] == REPRODUCED
    assert C.sweep_claim(sweep_runs(+0.01, 1.5), CLAIM_BLOCK)["verdict"] == NOT_REPRODUCED
    assert C.sweep_claim(sweep_runs(-0.01, 1.0, seed=3), CLAIM_BLOCK)["verdict"] != REPRODUCED
    capped = sweep_runs(-0.01, 1.5)
    capped.loc[0, "stop_reason"] = "cap"  # a run of the smallest batch at the safety cap
    row = finalize_claims([C.sweep_claim(capped, CLAIM_BLOCK)])[0]
    assert row["verdict"] == INCONCLUSIVE
    assert "batch 24: 1 of 3 runs stopped at the safety cap" in row["precondition"]
    assert "batch 384: 3 of 3 stopped by patience" in row["precondition"]  # each batch size checked on its own


def test_all_claims_are_per_network_in_config_order_then_the_sweep():
    f1, rises_f1 = fake_runs(net="F1")
    c1, rises_c1 = fake_runs(net="C1", seed=1)
    main = pd.concat([c1, f1], ignore_index=True)  # table order must not decide the claim order
    sweep = sweep_runs(-0.01, 1.5)
    block = {**CLAIM_BLOCK, "networks": {"F1": {}, "C1": {}}}
    rows = C.all_claims(main, sweep, pd.concat([rises_c1, rises_f1]), A.distance_ratios(main), block)
    assert [r["id"] for r in rows] == [f"K{i}-{n}" for n in ("F1", "C1") for i in range(1, 8)] + ["K8-F1"]


# --------------------------------------------------------------------------- #
# reading the jobs' files
# --------------------------------------------------------------------------- #
def test_by_run_pairs_files_with_the_run_table_order():
    rows = [{"run": "a", "main": True}, {"run": "b"}, {"run": "a", "sweep": True}]
    assert A.by_run(rows, ["fa", "fb"]) == {"a": "fa", "b": "fb"}
    with pytest.raises(ValueError, match="3 files for 2 runs"):
        A.by_run(rows, ["fa", "fb", "fc"])


def test_with_sharpness_joins_each_runs_json(tmp_path):
    files = {}
    for run, scale in (("a", 1.0), ("b", 3.0)):
        doc = {"loss": 0.1 * scale, "hessian_max_eig": 2.0 * scale,
               "sharpness": [{"space": "full", "epsilon": 1e-3, "value": 5.0 * scale},
                             {"space": "subspace", "epsilon": 5e-4, "value": 0.5 * scale}]}
        files[run] = tmp_path / f"{run}.json"
        files[run].write_text(json.dumps(doc))
    runs = pd.DataFrame({"run": ["a", "b"], "test_acc": [0.9, 0.8]})
    out = A.with_sharpness(runs, files)
    assert out["sharp_full_0.001"].tolist() == [5.0, 15.0]
    assert out["sharp_subspace_0.0005"].tolist() == [0.5, 1.5]
    assert out["hessian_max_eig"].tolist() == [2.0, 6.0] and out["sharp_loss"].tolist() == pytest.approx([0.1, 0.3])
    assert A.sharp_col("subspace", 0.0005) == "sharp_subspace_0.0005"


def test_parametric_rises_follow_the_network_order_then_the_seed():
    alphas = np.linspace(-1, 2, 13)
    curves = pd.concat([pd.DataFrame({"network": n, "seed": s, "alpha": alphas,
                                      "train_loss": np.where(alphas > 1, k * (alphas - 1), 0.0)})
                        for n, k in (("C1", 3.0), ("F1", 2.0)) for s in (1, 0)])
    rises = A.parametric_rises(curves, 0.25, ["F1", "C1"])
    assert list(zip(rises.network, rises.seed)) == [("F1", 0), ("F1", 1), ("C1", 0), ("C1", 1)]
    assert rises.lb_rise.tolist() == pytest.approx([0.5, 0.5, 0.75, 0.75]) and (rises.sb_rise == 0).all()
    table = A.rise_table(rises)
    assert table.network.tolist() == ["F1", "C1"] and table.pairs.tolist() == [2, 2]
    assert table["rise at LB end"].tolist() == ["0.5000 ± 0.0000", "0.7500 ± 0.0000"]


# --------------------------------------------------------------------------- #
# tables and texts
# --------------------------------------------------------------------------- #
def two_nets():
    f1, _ = fake_runs(net="F1", n=3, seed=2)
    c1, _ = fake_runs(net="C1", n=3, seed=3)
    return pd.concat([f1, c1], ignore_index=True)


def test_accuracy_table_puts_our_row_beside_the_papers():
    main = two_nets()
    sources = A.row_sources("tiny", ["F1", "C1"], {"F1": "mnist1d", "C1": "mnist1d"})
    assert sources == ("ours (tiny scale, MNIST-1D)", "Keskar et al. 2017 (MNIST, TIMIT, CIFAR; full-size networks)")
    t = A.accuracy_table(main, ["F1", "C1"], sources)
    assert t.network.tolist() == ["F1", "F1", "C1", "C1", "F2", "F2"]
    assert t.source.tolist()[:2] == list(sources) and t.source.iloc[4] == "ours: not run (TIMIT not available)"
    sb = main[(main.network == "F1") & (main.arm == "SB")]
    assert t["test acc SB (%)"].iloc[0] == f"{100 * sb.test_acc.mean():.2f} ± {100 * sb.test_acc.std():.2f}"
    assert t.iloc[1].tolist()[2:6] == ["99.66 ± 0.05", "99.92 ± 0.01", "98.03 ± 0.07", "97.81 ± 0.07"]  # Table 2, F1
    assert t["test acc LB (%)"].iloc[5] == "59.45 ± 1.05"  # F2
    # convergence beside the accuracies: epochs and stop reasons of our arms; the paper gives none
    assert t.columns.tolist()[6:] == ["epochs SB", "epochs LB", "stopped by SB", "stopped by LB"]
    assert t["epochs LB"].iloc[0] == "10 ± 0" and t["stopped by SB"].iloc[2] == "patience 3"
    assert t["epochs SB"].iloc[1] == t["stopped by LB"].iloc[5] == "–"
    # on the paper's own data the paper's rows carry no disclaimer
    assert A.row_sources("paper", ["F1"], {"F1": "mnist"})[1] == "Keskar et al. 2017"


def test_on_the_papers_data_the_tables_give_ours_minus_published():
    main = two_nets()
    assert A.on_paper_data(["F1"], {"F1": "mnist"}) and not A.on_paper_data(["F1", "C1"], {"F1": "mnist", "C1": "mnist1d"})
    t = A.accuracy_table(main, ["F1", "C1"], ("ours", "paper"), compare=True)
    assert t.network.tolist() == ["F1"] * 3 + ["C1"] * 3 + ["F2", "F2"]
    diff = t.iloc[2]
    assert diff.source == A.DIFFERENCE_SOURCE and diff["epochs SB"] == "–"
    lb = main[(main.network == "F1") & (main.arm == "LB")]
    assert diff["test acc LB (%)"] == f"{100 * lb.test_acc.mean() - 97.81:+.2f}"  # Table 2, F1 test LB
    assert diff["train acc SB (%)"].startswith(("+", "-"))
    s = A.sharpness_table(main, ["F1"], "table3", "full", (1e-3, 5e-4), ("ours", "paper"), compare=True)
    sb = main[(main.network == "F1") & (main.arm == "SB")]["sharp_full_0.001"]
    assert s.iloc[2]["ε=0.001 SB"] == f"{sb.mean() - 1.23:+.3f}"  # Table 3, F1
    # sharpness far below 1e-3 (real MNIST's subspace values) keeps 2 significant figures
    tiny = main.assign(**{"sharp_subspace_0.001": main["sharp_subspace_0.001"] * 1e-4})
    t4 = A.sharpness_table(tiny, ["F1"], "table4", "subspace", (1e-3, 5e-4), ("ours", "paper"))
    assert not t4.iloc[0]["ε=0.001 SB"].startswith("0.000 ±")
    # without compare (another scale's data) there is no difference row
    assert A.DIFFERENCE_SOURCE not in set(A.accuracy_table(main, ["F1"], ("ours", "paper")).source)


def test_sharpness_table_orders_epsilon_then_arm():
    main = two_nets()
    t = A.sharpness_table(main, ["F1", "C1"], "table3", "full", (1e-3, 5e-4), ("ours", "paper"))
    assert list(t.columns) == ["network", "source", "ε=0.001 SB", "ε=0.001 LB", "ε=0.0005 SB", "ε=0.0005 LB"]
    lb = main[(main.network == "C1") & (main.arm == "LB")]["sharp_full_0.0005"]
    assert t["ε=0.0005 LB"].iloc[2] == f"{lb.mean():.3f} ± {lb.std():.3f}"
    assert t["ε=0.001 LB"].iloc[3] == "707.23 ± 43.04"  # Table 3, C1


def test_hessian_distance_table_reports_the_ratio_per_network():
    main = two_nets()
    t = A.hessian_distance_table(main, A.distance_ratios(main), ["F1", "C1"])
    assert t.network.tolist() == ["F1", "C1"] and (t["paper ratio"] == "3–10").all()
    ratio = A.distance_ratios(main)
    r = ratio[ratio.network == "C1"].ratio
    assert t["ratio SB/LB"].iloc[1] == f"{r.mean():.2f} ± {r.std():.2f}" and 4 < r.mean() < 6
    assert t["epochs SB"].iloc[0] == "10 ± 0"  # whole numbers print without decimals


def test_sweep_table_one_row_per_batch_size():
    sweep = sweep_runs(-0.01, 1.5).assign(train_acc=0.99, hessian_max_eig=1.0, epochs=12.0)
    t = A.sweep_table(sweep, 1e-3)
    assert t["batch size"].tolist() == [24, 48, 96, 192, 384] and (t.seeds == 3).all()
    assert list(t.columns)[3] == "ε-sharpness ε=0.001"
    means = [float(v.split(" ± ")[0]) for v in t["test acc (%)"]]
    assert means == pytest.approx([80, 79, 78, 77, 76], abs=0.3)  # percent, falling 1 point per doubling
    assert (t["stopped by"] == "patience 3").all() and t.columns.tolist()[1:3] == ["test acc (%)", "train acc (%)"]


def test_summary_counts_verdicts_and_names_blocked_networks():
    claims = pd.DataFrame({"id": ["K1-F1", "K2-F1", "K1-C1", "K8-F1"],
                           "verdict": [REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, INCONCLUSIVE],
                           "precondition_ok": [True, True, False, True]})
    text = A.summary_text(claims, ["F1", "C1"])
    assert text.startswith(f"4 claims: 1 {REPRODUCED} (K1-F1); 1 {NOT_REPRODUCED} (K2-F1); 2 {INCONCLUSIVE}. ")
    assert "1 inconclusive verdicts come from a failed precondition, not from the tests (C1:" in text
    assert "precondition" not in A.summary_text(claims.assign(precondition_ok=True), ["F1", "C1"])


def test_scope_says_whether_the_published_magnitudes_are_testable():
    assert "tests the direction of each effect" in A.scope_text(["F1", "C1"], {"F1": "mnist1d", "C1": "mnist1d"})
    own = A.scope_text(["F1", "C1"], {"F1": "mnist", "C1": "cifar10"})
    assert own.startswith("Networks F1, C1 on the paper's own data (CIFAR-10, MNIST)")
    assert A.same_data_as_paper("C1", "cifar10") and not A.same_data_as_paper("C1", "cifar100")


PROTO_BLOCK = {**CLAIM_BLOCK, "sharpness": {**EPS2, "samples": 2048}}


def proto_inputs(stop=("patience", "patience")):
    f1, _ = fake_runs(net="F1", n=3, stop=stop)
    c1, _ = fake_runs(net="C1", n=3, seed=1)
    main = pd.concat([f1, c1], ignore_index=True)
    spec = {"lr": 0.001, "patience": 2, "min_delta": 1e-4, "min_delta_mode": "abs", "eval_train_samples": 600,
            "eval_batch": 4096}
    specs = {"F1": {**spec, "steps": 150}, "C1": {**spec, "steps": 50}}
    sweep = pd.DataFrame({"batch_size": [24, 60, 120, 240]})
    return main, specs, sweep


def test_protocol_rows_pair_the_papers_facts_with_ours():
    main, specs, sweep = proto_inputs(stop=("cap", "patience"))
    rows = T.protocol_rows(PROTO_BLOCK, specs, main, sweep)
    assert [r["aspect"] for r in rows] == list(K.PAPER_PROTOCOL)
    got = {r["aspect"]: r for r in rows}
    assert got["batch sizes"]["ours"] == "SB 24; LB 10%: F1 120, C1 120"
    assert "safety cap F1: 150, C1: 50 updates" in got["stopping"]["ours"]
    assert "F1 SB: 10 epochs (stop reasons: cap 1, patience 2)" in got["stopping"]["ours"]
    assert got["sharpness objective"]["ours"] == "training loss on the first 2048 training samples, 2 iterations"
    assert got["batch-size sweep (Fig. 4)"]["ours"] == "F1, trained to the same patience rule, 4 sizes"
    assert all(re.search(r"\[[VC]\]", r["paper"]) for r in rows)  # each fact tagged with its source


def test_protocol_text_states_the_stop_rule_the_runs_used():
    main, specs, sweep = proto_inputs()
    text = T.protocol_text("tiny", PROTO_BLOCK, specs, main, sweep)
    assert text.startswith("Scale 'tiny'. Networks: F1: mlp on mnist1d, width 16, depth 2; C1: shallow_conv on "
                           "mnist1d, width 4, dropout 0.5. Adam (lr 0.001)")
    assert "has not improved by an absolute 0.0001 for 2 epochs" in text
    assert "evaluation batch 4,096" in text and "ε ∈ {0.001, 0.0005}" in text
    assert "Batch-size sweep: F1 at 24, 60, 120, 240 (1 seed for the extra sizes" in text


def test_caveats_name_the_networks_that_fail_a_precondition():
    main, _, _ = proto_inputs(stop=("cap", "patience"))
    text = T.caveats(main, PROTO_BLOCK, paper_data=False)
    assert text.startswith("F1: not every run converged (SB: 1 of 3 runs stopped at the safety cap")
    assert "C1: not every run" not in text
    assert "only a significant effect the other way refutes them" in text  # K4/K5/K8 margins are 0
    assert text.endswith("measured on the first 2,048 training samples, not the whole training set as in the paper.")
    main["train_acc"] = np.where(main.arm == "SB", 0.99, 0.94)
    assert "C1: SB and LB end 5.00 percentage points apart in train accuracy (limit 2)" in T.caveats(
        main, PROTO_BLOCK, paper_data=True)
    assert "narrow networks on other data" not in T.caveats(main, PROTO_BLOCK, paper_data=True)


# --------------------------------------------------------------------------- #
# figures
# --------------------------------------------------------------------------- #
def test_learning_curves_draw_the_papers_lines_only_on_its_data():
    hist = pd.DataFrame([{"network": n, "arm": a, "seed": s, "main": True, "epoch": e, "train_acc": 0.5 + 0.1 * e,
                          "test_acc": 0.5 + 0.05 * e} for n in ("F1", "C1") for a in ("SB", "LB") for s in (0, 1)
                         for e in range(4)])
    fig = F.learning_curves(hist, ["F1", "C1"], {"F1": "mnist", "C1": "mnist1d"})
    f1, c1 = fig.axes
    dashdot = lambda ax: [ln for ln in ax.get_lines() if ln.get_linestyle() == "-."]
    assert [ln.get_ydata()[0] for ln in dashdot(f1)] == [98.03, 97.81] and not dashdot(c1)
    assert len(c1.get_lines()) == 2 * 2 * 2 + 1  # train and test per arm and seed, and chance
    assert f1.get_title() == "F1 (MNIST)"


def test_parametric_figure_one_panel_per_network_with_an_accuracy_axis():
    alphas = np.linspace(-1, 2, 7)
    curves = pd.DataFrame([{"network": n, "seed": s, "alpha": a, "train_loss": 1 + a * a, "test_loss": 2 + a * a,
                            "train_acc": 0.9, "test_acc": 0.8} for n in ("F1", "C1") for s in (0, 1) for a in alphas])
    fig = F.parametric(curves, ["F1", "C1"], {"F1": "mnist1d", "C1": "mnist1d"}, seed=1)
    assert len(fig.axes) == 4 and fig.axes[0].get_title() == "F1, seed 1"
    assert fig.axes[0].get_yscale() == "linear"  # losses 1-6 span less than a decade


def test_sweep_figure_marks_the_papers_threshold_only_inside_the_sweep():
    sweep = sweep_runs(-0.01, 1.5).assign(hessian_max_eig=1.0)
    assert F.paper_threshold_here(50000) == 500 and F.paper_threshold_here(16000) == 160
    inside = F.sweep(sweep, 1e-3, "F1", 16000)  # 160 lies between 24 and 384
    assert any(ln.get_linestyle() == ":" for ln in inside.axes[0].get_lines())
    outside = F.sweep(sweep, 1e-3, "F1", 1000)  # 10 lies below the smallest batch
    assert not any(ln.get_linestyle() == ":" for ln in outside.axes[0].get_lines())
    assert inside.axes[0].get_xscale() == "log"
