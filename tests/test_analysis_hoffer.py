"""Hoffer, Hubara & Soudry 2017: the section's analysis on small synthetic run tables
(largebatch.analysis.hoffer, hoffer_claims, hoffer_figures): the Fig. 2 fits per run, the
tables, the texts, the claims and their preconditions, and the figures."""

import matplotlib

matplotlib.use("Agg")
import numpy as np
import pandas as pd
import pytest
from matplotlib import pyplot as plt

from largebatch.analysis import hoffer as A
from largebatch.analysis import hoffer_claims as C
from largebatch.analysis import hoffer_figures as F
from largebatch.analysis.hoffer_claims import distance_claims, table_claims
from largebatch.experiments.hoffer import ARMS, PROTOCOL, SOURCE
from largebatch.stats import finalize_claims

MARGINS = {"H0": {"margin_pp": 1.22}, "H4": {"margin_pp": 0.61}, "H5": {"margin_pp": [0.5, 0.05, 0.93]},
           "H6": {"margin_pp": 0.05}}
DIST_CLAIMS = {"H1": {"r2_min": 0.95, "r2_margin": 0.01}, "H2": {"margin_log_ratio": 0.1},
               "H3": {"margin_log_ratio": 0.1}}
PRE = {"sb_train_acc_min_pp": 95, "max_train_gap_pp": 1.0, "min_fit_points": 3}


# ------------------------------------------------------------------ claims (decided by largebatch.stats)
def _arms(means, sd=0.3, n=5, seed=0):
    """Per-seed accuracies (%) around the given arm means."""
    rng = np.random.default_rng(seed)
    return {arm: pd.Series(m + sd * rng.standard_normal(n)) for arm, m in means.items()}


GOOD_TEST = {"SB": 90.0, "LB": 86.0, "+LR": 87.5, "+GBN": 88.5, "+RA": 90.2}
GOOD_TRAIN = {"SB": 99.5, "LB": 99.2, "+LR": 99.4, "+GBN": 99.3, "+RA": 99.6}


def _verdicts(rows):
    return {r["id"]: r["verdict"] for r in finalize_claims(rows)}


def test_table_claims_reproduce_the_papers_pattern_on_converged_arms():
    rows = table_claims("F1", "F1", _arms(GOOD_TEST), _arms(GOOD_TRAIN, sd=0.05), MARGINS, PRE)
    assert [r["id"] for r in rows] == ["H0", "H4", "H5", "H6"]
    assert all(r["precondition_ok"] for r in rows)
    assert set(_verdicts(rows).values()) == {"reproduced"}
    h4 = rows[1]
    assert h4["effect"] == pytest.approx(0.2, abs=0.5)  # reported as +RA - SB, not shifted by the margin
    assert h4["ci_low"] < h4["effect"] < h4["ci_high"]
    assert rows[0]["paper"] == "F1 on MNIST: SB 98.27, LB 97.05" and "poster" in rows[0]["paper_source"]
    multi = table_claims("C1", "C1-style", _arms(GOOD_TEST), _arms(GOOD_TRAIN, sd=0.05), MARGINS, PRE, multi=True)
    assert [r["id"] for r in multi] == ["H0-C1", "H4-C1", "H5-C1", "H6-C1"]


def test_an_underfit_small_batch_makes_the_comparisons_inconclusive():
    """Issue 16: +RA 18 points above an SB at 68% train accuracy is not evidence for H4."""
    test = {**GOOD_TEST, "SB": 64.0, "+RA": 82.0}
    train = {arm: 68.0 if arm == "SB" else 86.0 for arm in ARMS}
    rows = table_claims("F1", "F1", _arms(test), _arms(train, sd=0.05), MARGINS, PRE)
    by = {r["id"]: r for r in rows}
    assert by["H4"]["p_claim"] < 0.001  # the test alone would call it reproduced
    assert not by["H4"]["precondition_ok"] and "SB converged" in by["H4"]["precondition"]
    assert "68.0% NO" in by["H4"]["precondition"]
    assert set(_verdicts(rows).values()) == {"inconclusive"}


def test_generalisation_claims_need_comparable_train_accuracy():
    train = {**GOOD_TRAIN, "LB": 96.0}  # converged, but 3.5 points below SB: an optimisation gap
    rows = table_claims("F1", "F1", _arms(GOOD_TEST), _arms(train, sd=0.05), MARGINS, PRE)
    by = {r["id"]: r for r in rows}
    assert not by["H0"]["precondition_ok"] and "LB - SB = -3.5" in by["H0"]["precondition"]
    assert by["H4"]["precondition_ok"] and by["H6"]["precondition_ok"]


def test_h5_is_refuted_by_one_refuted_step_and_needs_every_step():
    lowered = {**GOOD_TEST, "+GBN": 85.0}  # +GBN clearly below +LR
    by = _verdicts(table_claims("F1", "F1", _arms(lowered), _arms(GOOD_TRAIN, sd=0.05), MARGINS, PRE))
    assert by["H5"] == "not reproduced" and by["H6"] == "not reproduced"
    flat = {**GOOD_TEST, "+GBN": 87.5}  # +GBN equal to +LR: step 2 not shown, the others are
    rows = table_claims("F1", "F1", _arms(flat, sd=1.0), _arms(GOOD_TRAIN, sd=0.05), MARGINS, PRE)
    h5 = next(r for r in rows if r["id"] == "H5")
    assert h5["p_claim"] > 0.05 and _verdicts(rows)["H5"] != "reproduced"
    with pytest.raises(ValueError, match="H5.margin_pp: give 3 margins"):
        table_claims("F1", "F1", _arms(GOOD_TEST), _arms(GOOD_TRAIN), {**MARGINS, "H5": {"margin_pp": [1.0]}}, PRE)


def _fits(slopes, r2_log=0.99, r2_sqrt=0.9, points=6, n=5, seed=0):
    """distance_fits-like rows: slopes = {(condition, batch): mean slope}."""
    rng = np.random.default_rng(seed)
    rows = []
    for (cond, b), m in slopes.items():
        for s in range(n):
            rows.append({"condition": cond, "batch_size": b, "seed": s, "run": f"{cond}{b}s{s}",
                         "slope": m * (1 + 0.03 * rng.standard_normal()), "points": points,
                         "r2_log": min(r2_log + 0.003 * rng.standard_normal(), 1.0),
                         "r2_sqrt": r2_sqrt + 0.003 * rng.standard_normal()})
    return pd.DataFrame(rows)


PAPER_SHAPE = {("before", 50): 2.0, ("after", 50): 2.0, ("before", 800): 0.6, ("after", 800): 1.95}


def test_distance_claims_on_the_papers_shape():
    rows = distance_claims(_fits(PAPER_SHAPE), 50, DIST_CLAIMS)
    assert [r["id"] for r in rows] == ["H1", "H2", "H3"]
    assert set(_verdicts(rows).values()) == {"reproduced"}


def test_distance_claims_against_the_paper():
    # a random walk (sqrt fit better) and slopes that do not depend on the batch size
    same = {k: 2.0 for k in PAPER_SHAPE}
    by = _verdicts(distance_claims(_fits(same, r2_log=0.9, r2_sqrt=0.99), 50, DIST_CLAIMS))
    assert by["H1"] == "not reproduced"
    assert by["H2"] == "not reproduced"  # slopes equal within a log ratio of 0.1
    short = _fits(PAPER_SHAPE)
    short.loc[short.batch_size == 800, "points"] = 2
    rows = distance_claims(short, 50, DIST_CLAIMS)
    assert not any(r["precondition_ok"] for r in rows) and "before B=800" in rows[0]["precondition"]
    assert set(_verdicts(rows).values()) == {"inconclusive"}



def test_an_arm_on_one_seed_makes_the_claims_that_test_it_inconclusive_by_precondition():
    """+RA on one seed (arm_seeds): H4 and H5 need a Welch test on it, so their precondition
    fails (not an error, whatever the values), its value is shown beside the published one;
    H0 and H6 do not test it and are decided as before."""
    acc, train = _arms(GOOD_TEST), _arms(GOOD_TRAIN, sd=0.05)
    acc["+RA"], train["+RA"] = acc["+RA"].iloc[:1], train["+RA"].iloc[:1]
    rows = table_claims("F1", "F1", acc, train, MARGINS, PRE)
    by, verdicts = {r["id"]: r for r in rows}, _verdicts(rows)
    for cid in ("H4", "H5"):
        assert not by[cid]["precondition_ok"] and verdicts[cid] == "inconclusive"
        assert by[cid]["precondition"].endswith("a test needs >= 2 seeds per arm: NO, +RA one seed: not testable; "
                                                "shown beside the published value")
    assert "(n=1)" in by["H4"]["ours"] and by["H4"]["paper"] == "F1 on MNIST: SB 98.27, +RA 98.53"
    assert by["H0"]["precondition_ok"] and by["H6"]["precondition_ok"]
    assert verdicts["H0"] == verdicts["H6"] == "reproduced"
    assert "seeds per arm" not in by["H0"]["precondition"]
    # with every arm on >= 2 seeds the check is not listed: the texts are as before
    full = table_claims("F1", "F1", _arms(GOOD_TEST), _arms(GOOD_TRAIN, sd=0.05), MARGINS, PRE)
    assert not any("seeds per arm" in r["precondition"] for r in full)
    # a network the poster does not have: the value is shown, not beside a published one
    mine = {r["id"]: r for r in table_claims("Mine", "Mine", acc, train, MARGINS, PRE)}
    assert mine["H4"]["precondition"].endswith("+RA one seed: not testable")


def test_fig2_claims_that_need_an_arm_on_one_seed_are_inconclusive_by_precondition():
    fits = _fits(PAPER_SHAPE)
    fits = fits[~((fits.condition == "after") & (fits.batch_size == 800) & (fits.seed > 0))]
    rows = distance_claims(fits, 50, DIST_CLAIMS, n_seeds={"SB": 5, "LB": 5, "+RA": 1})
    by, verdicts = {r["id"]: r for r in rows}, _verdicts(rows)
    assert not by["H1"]["precondition_ok"] and not by["H3"]["precondition_ok"]  # panel (b) is +RA's
    assert "+RA one seed: not testable" in by["H3"]["precondition"]
    assert "published" not in by["H3"]["precondition"]  # Fig. 2 prints no values
    assert verdicts["H1"] == verdicts["H3"] == "inconclusive"
    assert by["H2"]["precondition_ok"] and verdicts["H2"] == "reproduced"  # panel (a): SB and LB on 5
    assert _verdicts(distance_claims(_fits(PAPER_SHAPE), 50, DIST_CLAIMS)) == {"H1": "reproduced", "H2": "reproduced",
                                                                                "H3": "reproduced"}


# ------------------------------------------------------------------ a synthetic section
SB, LB = 50, 800
RUN = {"dataset": "mnist1d", "model": "mlp", "width": 8, "depth": 2, "optimizer": "sgd", "lr": 0.1,
       "momentum": 0.9, "weight_decay": 1e-4, "max_grad_norm": 5, "epochs": 10, "milestones": [2, 4, 6]}
#: arm -> (test accuracy, train accuracy) in [0, 1]
LEVELS = {"SB": (0.90, 0.995), "LB": (0.86, 0.992), "+LR": (0.875, 0.994), "+GBN": (0.885, 0.993),
          "+RA": (0.902, 0.996)}
#: Fig. 2 shape: slope of d = a + b ln t per (arm, batch)
SLOPES = {("SB", SB): 2.0, ("LB", LB): 0.6, ("+RA", LB): 1.9}


def _net(name="F1", dataset="mnist1d"):
    return {"label": f"{name} net", "run": {**RUN, "dataset": dataset}, "small_batch": SB, "large_batch": LB,
            "claims": MARGINS}


def _block(**nets):
    nets = nets or {"F1": _net()}
    return {"seeds": [0, 1, 2], "networks": nets, "claims": DIST_CLAIMS, "preconditions": PRE,
            "distance": {"network": next(iter(nets)), "batch_sizes": [SB, LB], "log_points": 12, "fit_min_step": 1}}


def _section(block, seeds=(0, 1, 2), diverged=(), no_learning=(), capped=()):
    """Run table and histories as ctx.runs() / ctx.histories() give them: every table arm of
    every network, with a high-LR phase of 8 (LB) or 64 (SB, +RA) updates and d = b ln t."""
    runs, hists = [], []
    for name, net in block["networks"].items():
        for arm in ARMS:
            b = SB if arm == "SB" else LB
            steps = 80 if arm in ("SB", "+RA") else 10
            for s in seeds:
                rid = f"{name}-{arm}-{s}"
                test, train = LEVELS[arm]
                runs.append({"network": name, "label": net["label"], "arm": arm, "batch_size": b, "seed": s,
                             "table": True, "run": rid,
                             "status": "diverged" if rid in diverged else "no_learning" if rid in no_learning else "ok",
                             "stop_reason": "diverged" if rid in diverged else "cap" if rid in capped else "budget",
                             "steps": steps, "epochs": 10 * (16 if arm == "+RA" else 1),
                             "lr_peak": 0.1 if arm in ("SB", "LB") else 0.4,
                             "test_acc": test + 0.002 * s, "train_acc": train - 0.001 * s})
                t = np.arange(0, steps + 1)
                slope = SLOPES.get((arm, b), 1.0) * (1 + 0.01 * s)
                lr = np.where(t <= 0.8 * steps, 0.4, 0.04)
                hists.append(pd.DataFrame({"run": rid, "step": t, "lr": lr, "w_dist": slope * np.log(np.maximum(t, 1)),
                                           "test_acc": test * (1 - np.exp(-t / 5)), "network": name, "arm": arm,
                                           "table": True, "seed": s, "batch_size": b}))
    return pd.DataFrame(runs), pd.concat(hists, ignore_index=True)


def test_run_fits_give_each_panel_its_runs_and_recover_the_slopes():
    block = _block()
    runs, hist = _section(block, diverged={"F1-LB-2"})
    fits = A.run_fits(runs, hist, {**block["distance"], "log_points": 80})
    by = fits.groupby(["condition", "batch_size"]).run.apply(sorted).to_dict()
    # SB's run is in both panels, LB only before, +RA only after; +LR/+GBN and diverged runs are not fitted
    assert by == {("before", SB): ["F1-SB-0", "F1-SB-1", "F1-SB-2"], ("before", LB): ["F1-LB-0", "F1-LB-1"],
                  ("after", SB): ["F1-SB-0", "F1-SB-1", "F1-SB-2"], ("after", LB): ["F1-+RA-0", "F1-+RA-1", "F1-+RA-2"]}
    sb0 = fits[(fits.run == "F1-SB-0")].iloc[0]
    assert sb0.slope == pytest.approx(2.0) and sb0.r2_log == pytest.approx(1.0) and sb0.t_drop == 64
    assert fits[fits.run == "F1-LB-1"].slope.iloc[0] == pytest.approx(0.606)
    table = A.fit_table(fits)
    assert list(table.panel) == ["(a) before", "(a) before", "(b) after", "(b) after"]
    assert list(table.batch) == [SB, LB, SB, LB] and list(table.seeds) == [3, 2, 3, 3]
    assert table.iloc[0]["slope b"] == "2.020 ± 0.020" and table.iloc[0]["updates in the phase"] == 64


def test_accuracy_table_lays_out_ours_beside_the_poster_row():
    block = _block(F1=_net(), Mine=_net("Mine"))
    runs, _ = _section(block)
    table = A.accuracy_table(block["networks"], A.table_runs(runs))
    assert list(table.columns) == ["network", "source", "SB / LB batch", "SB", "LB", "LB +LR", "LB +LR +GBN",
                                   "LB +LR +GBN +RA"]
    assert list(table.network) == ["F1 net", "F1 (MNIST)", "Mine net"]  # published row only where the poster has one
    assert table.iloc[0]["SB"] == "90.20 ± 0.20" and table.iloc[0]["SB / LB batch"] == "50 / 800"
    assert table.iloc[1]["source"] == SOURCE and table.iloc[1]["LB +LR +GBN +RA"] == "98.53"


def test_arm_table_shows_train_beside_test_for_every_arm_and_says_which_runs_are_no_evidence():
    block = _block()
    runs, _ = _section(block, diverged={"F1-+GBN-1"}, no_learning={"F1-LB-0"}, capped={"F1-SB-2"})
    fig2 = runs[runs.arm == "LB"].assign(table=False, batch_size=200, run=lambda d: d.run + "-200",
                                         status="ok", stop_reason="budget")
    table = A.arm_table(block["networks"], pd.concat([fig2, runs]).sample(frac=1, random_state=0))
    # the table's arms in the table's order, then Fig. 2's other batch size
    assert list(table.arm) == ["SB", "LB", "LB +LR", "LB +LR +GBN", "LB +LR +GBN +RA", "LB"]
    assert list(table["in"]) == ["table"] * 5 + ["Fig. 2 only"] and list(table.batch) == [SB] + [LB] * 4 + [200]
    assert list(table.columns[7:10]) == ["train accuracy (%)", "test accuracy (%)", "train - test (points)"]
    assert list(table["stop (runs)"]) == ["budget 2, cap 1", "budget 3", "budget 3", "budget 2, diverged 1",
                                          "budget 3", "budget 3"]
    assert table.iloc[0]["problems"] == "1 of 3 runs stopped at the safety cap (the protocol was cut)"
    assert table.iloc[1]["problems"] == "1 of 3 runs did not learn (final train loss at chance)"
    assert table.iloc[3]["problems"] == "1 of 3 runs diverged" and table.iloc[4]["problems"] == "none"
    ra = table.iloc[4]
    assert (ra.batch, ra.updates, ra.epochs, ra["peak learning rate"]) == (LB, 80, "160", "0.4")
    assert ra["train - test (points)"] == "9.10 ± 0.30" and ra["train accuracy (%)"] == "99.50 ± 0.10"


@pytest.mark.filterwarnings("ignore:Precision loss")  # R² of an exact log curve is 1 in every run
def test_every_claim_needs_its_arms_free_of_capped_unlearnt_and_diverged_runs():
    """stopping.arm_problems is a precondition of every claim: a claim whose arm has a run stopped
    at a safety cap (or without learning, or diverged) is inconclusive whatever its test says;
    the claims that do not read that arm are decided as before."""
    block = _block()
    runs, hist = _section(block)
    tab, fits = A.table_runs(runs), A.run_fits(runs, hist, {**block["distance"], "log_points": 80})
    clean = {c["id"]: c for c in finalize_claims(C.section_claims(block, tab, fits, runs))}
    assert all(c["precondition_ok"] for c in clean.values())
    assert "no run of SB, LB stopped at a cap, without learning or diverged: yes" in clean["H0"]["precondition"]
    assert "no run of SB, LB, +RA stopped at a cap" in clean["H3"]["precondition"]
    runs, hist = _section(block, capped={"F1-+GBN-0"})
    by = {c["id"]: c for c in finalize_claims(C.section_claims(block, A.table_runs(runs), fits, runs))}
    assert {c for c in by if not by[c]["precondition_ok"]} == {"H5", "H6"}  # the claims that read +GBN
    assert by["H6"]["verdict"] == "inconclusive" and by["H6"]["p_claim"] == clean["H6"]["p_claim"]
    assert "NO (+GBN: 1 of 3 runs stopped at the safety cap (the protocol was cut))" in by["H6"]["precondition"]
    # a Fig. 2-only run (LB at another batch size) that did not learn: the Fig. 2 claims on LB fail
    extra = runs[runs.arm == "LB"].iloc[[0]].assign(table=False, batch_size=200, run="F1-LB-200",
                                                     status="no_learning", stop_reason="budget")
    by = {c["id"]: c for c in finalize_claims(C.section_claims(block, A.table_runs(runs), fits,
                                                               pd.concat([runs, extra])))}
    assert not by["H1"]["precondition_ok"] and not by["H2"]["precondition_ok"] and not by["H3"]["precondition_ok"]
    assert "LB: 1 of 4 runs did not learn" in by["H2"]["precondition"]
    # H0 reads SB and LB only: neither the capped +GBN run nor the Fig. 2 run blocks it
    assert by["H0"]["precondition_ok"]


def test_table_runs_keep_only_the_large_batch_rows():
    runs, _ = _section(_block())
    extra = runs.iloc[[1]].assign(table=False, arm="LB", batch_size=200, run="F1-LB200")
    tab = A.table_runs(pd.concat([runs, extra]))
    assert "F1-LB200" not in set(tab.run) and list(tab.arm.cat.categories) == list(ARMS)
    assert A.per_seed(tab, "F1", "SB", "test_acc").to_dict() == pytest.approx({0: 90.0, 1: 90.2, 2: 90.4})


@pytest.mark.filterwarnings("ignore:Precision loss")  # R² of an exact log curve is 1 in every run
def test_a_section_with_ra_on_one_seed_shows_n_and_says_why_claims_are_untested():
    """The mnist scale's cut (arm_seeds: {"+RA": [0]}): the section runs end to end, the table
    gives n per cell, the texts name the cut, and the claims that test +RA are inconclusive by
    precondition while H0, H2 and H6 are decided on 3 seeds."""
    block = _block(F1=_net(dataset="mnist"))
    block["networks"]["F1"]["arm_seeds"] = {"+RA": [0]}
    runs, hist = _section(block)
    keep = ~((runs.arm == "+RA") & (runs.seed > 0))
    runs, hist = runs[keep], hist[hist.run.isin(set(runs[keep].run))]
    tab, fits = A.table_runs(runs), A.run_fits(runs, hist, {**block["distance"], "log_points": 80})
    table = A.accuracy_table(block["networks"], tab)
    assert table.iloc[0]["LB +LR +GBN +RA"] == "90.20 (n=1)" and table.iloc[0]["SB"] == "90.20 ± 0.20 (n=3)"
    assert "(n: seeds with a value)" in table.iloc[0]["source"] and table.iloc[1]["LB +LR +GBN +RA"] == "98.53"
    # on the poster's data (MNIST) a third row gives ours − published; the mnist1d nets above have none
    assert table.iloc[2]["source"] == A.DIFFERENCE_SOURCE and len(table) == 3
    assert table.iloc[2]["SB"] == "-8.07" and table.iloc[2]["LB +LR +GBN +RA"] == "-8.33"  # 90.20 - 98.27, - 98.53
    assert list(A.arm_table(block["networks"], tab).seeds) == [3, 3, 3, 3, 1]
    assert list(A.fit_table(fits).seeds) == [3, 3, 3, 1]
    claims = finalize_claims(C.section_claims(block, tab, fits))
    by = {c["id"]: c for c in claims}
    assert {c for c in by if not by[c]["precondition_ok"]} == {"H1", "H3", "H4", "H5"}
    assert {c: by[c]["verdict"] for c in ("H1", "H3", "H4", "H5")} == dict.fromkeys(("H1", "H3", "H4", "H5"),
                                                                                   "inconclusive")
    assert by["H0"]["precondition_ok"] and by["H2"]["precondition_ok"] and by["H6"]["precondition_ok"]
    text = A.summary_text(block["networks"], [0, 1, 2], claims)
    assert text.startswith("Each arm trained with 3 seeds (+RA of F1 net: seed 0 only) on F1 net (SB 50, LB 800).")
    assert "H4 (a test needs >= 2 seeds per arm: NO, +RA one seed: not testable)" in text
    seeds_row = next(r for r in A.protocol_rows(block["networks"], block["distance"], [0, 1, 2])
                     if r["aspect"] == "seeds")
    assert seeds_row["ours"] == "3 (0, 1, 2) (+RA of F1 net: seed 0 only)"
    caveats = A.caveats_text(block["networks"], tab, fits, PRE)
    assert "F1 net: +RA trained with 1 seed (0), the other arms with the section's seeds" in caveats
    assert "its value is shown beside the published one" in caveats
    assert A.arm_seeds_note({"F1": _net()}) == ""
    fig = F.arm_accuracy_figure(block["networks"], tab)  # one +RA dot, no spread: still drawn
    assert len(fig.axes) == 1
    assert len(F.curves_figure(block["networks"], hist).axes[0].get_legend().get_texts()) == len(ARMS)
    after = F.distance_figure(fits, hist, 1).axes[1]
    assert [t.get_text() for t in after.get_legend().get_texts()][1].startswith("B=800: b=1.90")  # seed 0's slope
    plt.close("all")


def test_published_levels_are_compared_only_on_the_papers_data():
    assert A.same_data("F1", _net(dataset="mnist")) and not A.same_data("F1", _net())
    assert not A.same_data("Mine", _net("Mine", "mnist"))
    assert "not the published accuracy levels" in A.scope_text({"F1": _net()})
    assert A.scope_text({"F1": _net(dataset="mnist")}).startswith("Same networks and data")
    assert "not drawn" in F.published_note({"F1": _net()}) and "red diamonds" in F.published_note(
        {"F1": _net(dataset="mnist")})


@pytest.mark.filterwarnings("ignore:Precision loss")  # R² of an exact log curve is 1 in every run
def test_section_claims_in_the_papers_order_and_per_network():
    block = _block()
    runs, hist = _section(block)
    tab, fits = A.table_runs(runs), A.run_fits(runs, hist, {**block["distance"], "log_points": 80})
    claims = C.section_claims(block, tab, fits)
    assert [c["id"] for c in claims] == ["H0", "H1", "H2", "H3", "H4", "H5", "H6"]
    assert C.claim_ids(claims, C.TABLE_CLAIMS) == ["H0", "H4", "H5", "H6"]
    two = _block(F1=_net(), C1=_net("C1"))
    runs2, hist2 = _section(two)
    ids = [c["id"] for c in C.section_claims(two, A.table_runs(runs2),
                                             A.run_fits(runs2, hist2, {**two["distance"], "log_points": 80}))]
    assert ids == ["H0-C1", "H0-F1", "H1", "H2", "H3", "H4-C1", "H4-F1", "H5-C1", "H5-F1", "H6-C1", "H6-F1"]
    assert C.claim_ids([{"id": i} for i in ids], C.FIG2_CLAIMS) == ["H1", "H2", "H3"]


@pytest.mark.filterwarnings("ignore:Precision loss")  # R² of an exact log curve is 1 in every run
def test_summary_names_the_verdicts_and_each_failed_precondition():
    block = _block()
    runs, hist = _section(block)
    runs.loc[runs.arm == "SB", "train_acc"] = 0.6  # SB did not fit its training set
    claims = C.section_claims(block, A.table_runs(runs), A.run_fits(runs, hist, {**block["distance"], "log_points": 80}))
    text = A.summary_text(block["networks"], [0, 1, 2], finalize_claims(claims))
    assert text.startswith("Each arm trained with 3 seeds on F1 net (SB 50, LB 800). Of 7 claims: ")
    assert "H0 (SB converged (final train accuracy >= 95%): 60.0% NO)" in text
    assert "H4 (SB converged" in text and "H1 (" not in text


def test_protocol_rows_put_ours_beside_every_paper_fact():
    block = _block()
    rows = A.protocol_rows(block["networks"], block["distance"], [0, 1, 2])
    assert [r["aspect"] for r in rows] == [a for a, _ in PROTOCOL]
    by = {r["aspect"]: r for r in rows}
    assert by["batch sizes (F1)"]["ours"] == "SB 50, LB 800 (B_L/B_S = 16)"
    assert by["regime (F1)"]["ours"] == "lr x0.1 at epochs 2, 4, 6; 10 epochs"
    assert by["optimiser (F1)"]["ours"] == "SGD lr 0.1, momentum 0.9, weight decay 0.0001, clip 5"
    assert by["seeds"] == {"aspect": "seeds", "paper": "1 (seed 123, authors' code)", "ours": "3 (0, 1, 2)"}


def test_caveats_give_sb_and_ra_fit_and_the_fig2_slopes():
    block = _block()
    runs, hist = _section(block)
    fits = A.run_fits(runs, hist, {**block["distance"], "log_points": 80})
    text = A.caveats_text(block["networks"], A.table_runs(runs), fits, PRE)
    assert "F1 net: SB ends its 10-epoch budget at train accuracy 99.4% and +RA at 99.5%" in text
    assert "(80 vs 80) but, with 16x the batch, sees 16x as many samples" in text
    assert "before: B=50: 2.02, B=800: 0.61; after: B=50: 2.02, B=800: 1.92" in text


def test_figures_draw_one_panel_per_network_and_both_fig2_panels():
    block = _block(F1=_net(dataset="mnist"), Mine=_net("Mine"))
    runs, hist = _section(block)
    tab = A.table_runs(runs)
    fig = F.arm_accuracy_figure(block["networks"], tab)
    f1, mine = fig.axes
    assert f1.get_title() == "F1 net" and len(fig.axes) == 2
    assert "published (poster)" in [t.get_text() for t in f1.get_legend().get_texts()]
    assert "published (poster)" not in [t.get_text() for t in mine.get_legend().get_texts()]
    curves = F.curves_figure(block["networks"], hist)
    assert curves.axes[0].get_xscale() == "log" and len(curves.axes[0].get_legend().get_texts()) == len(ARMS)
    fits = A.run_fits(runs, hist, {**block["distance"], "log_points": 80})
    dist = F.distance_figure(fits, hist, 1)
    before, after = dist.axes[:2]
    assert [t.get_text() for t in before.get_legend().get_texts()] == ["B=50: b=2.02, R²=1.000",
                                                                       "B=800: b=0.61, R²=1.000"]
    assert len(after.get_lines()) == 2 and before.get_title().startswith("(a) before")
    plt.close("all")
