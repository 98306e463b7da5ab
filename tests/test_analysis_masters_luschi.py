"""Masters & Luschi 2018 analysis (largebatch.analysis.masters_luschi*): per-run stability,
cells, selection on one set of seeds and test on another, the claims M1-M5 on synthetic run
tables with a known answer, the tables and the figures."""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
from matplotlib.patches import Rectangle

from largebatch.analysis import masters_luschi as A
from largebatch.analysis import masters_luschi_claims as C
from largebatch.analysis import masters_luschi_figures as F
from largebatch.experiments.masters_luschi import CLASSES, PUBLISHED
from largebatch.stats import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED, decide_trend, finalize_claims

INIT = 2.3  # initial training loss of every synthetic run (ln 10)
SELECT, TEST = [0, 1], [5, 6, 7, 8, 9]
MS, GRID = [2, 8, 64, 256], [-9, -7, -5]
CLAIMS = {"M1": {"margin_pp": 1.0}, "M2": {"margin": 0.25}, "M3": {"margin": 0.02}, "M4": {"margin_pp": 1.0},
          "M5": {"margin_pp": 1.0}}
BLOCK = {"claims": CLAIMS, "stable_tolerance_pp": 5.0, "bn_batch": {"reference": 4},
         "warmup": {"batch_sizes": [64, 256], "epochs": 0.5}}


def small_batches_win(part: str, m: int, k: int, seed: int, m_bn: int | None = None) -> tuple[str, float, float]:
    """(status, final train loss, test accuracy %) of a landscape where m <= 32 wins by 20 points,
    the best eta_base is 2^-7 (inside the grid) at every m, 2^-5 is 8 points below it (outside the
    5-point acceptable range), and the stable range narrows with m:
    at m >= 64 eta_base 2^-5 fails to train (loss stays at its initial value) and at m = 256 it
    diverges. In the BN-batch study m_BN = 4 beats m_BN = m."""
    noise = 0.3 * ((seed * 7 + m + k) % 5 - 2)
    acc = (80.0 if m <= 32 else 60.0) - {-9: 3.0, -7: 0.0, -5: 8.0}[k] + noise
    if part == "warmup":
        acc -= 5.0
    if part == "bn_batch" and m_bn == 4:  # ghost BN over 4 samples beats full BN by 5 points
        acc += 5.0
    if k == -5 and m == 256:
        return "diverged", float("nan"), 10.0
    if k == -5 and m >= 64:
        return "ok", INIT * 0.99, 10.0 + noise
    return "ok", 0.5, acc


def make_runs(landscape=small_batches_win, norms=("batch",), datasets=("d",), bn=True, warm=True,
              nets=("net",)) -> pd.DataFrame:
    rows = []

    def add(part, ds, norm, m, k, seed, m_bn=None, warmup=0.0, net=nets[0]):
        status, loss, acc = landscape(part, m, k, seed, m_bn=m_bn)
        rows.append({"run": f"{part}-{ds}-{net}-{norm}-m{m}-b{m_bn}-k{k}-s{seed}", "part": part, "dataset": ds,
                     "net": net, "norm": norm, "m": m, "stop_reason": "budget", "m_bn": m if m_bn is None else m_bn, "lr_log2": k,
                     "lr_base": 2.0 ** k, "seed": seed, "seed_role": "select" if seed in SELECT else "test",
                     "warmup_epochs": warmup, "status": status, "train_loss": loss, "test_acc": acc / 100,
                     "train_acc": min(acc + 5, 100) / 100, "steps_per_epoch": 1024 // m})

    for ds in datasets:
        for net in nets:
            for norm in norms:
                for m in MS:
                    for k in GRID:
                        for seed in SELECT + TEST:
                            add("sweep", ds, norm, m, k, seed, net=net)
    if warm:
        for net in nets:
            for norm in norms:
                for m in (64, 256):
                    for k in GRID:
                        for seed in SELECT + TEST:
                            add("warmup", datasets[0], norm, m, k, seed, warmup=0.5, net=net)
    if bn:
        for m in (16, 64):
            for b in (4, m):
                for seed in (SELECT + TEST):
                    add("bn_batch", datasets[0], "batch", m, -7, seed, m_bn=b)
    return pd.DataFrame(rows)


def init_of(runs: pd.DataFrame) -> pd.Series:
    return pd.Series(INIT, index=runs.run.unique())


def study(**kw) -> A.Study:
    runs = make_runs(**kw)
    return A.study(runs, init_of(runs))


# ------------------------------------------------------------------------------ run level

def _runs(rows):
    return pd.DataFrame(rows, columns=["run", "m", "lr_log2", "seed", "status", "train_loss", "test_acc"])


def test_stability_flags_divergence_and_loss_increase():
    runs = _runs([("a", 2, -8, 0, "ok", 1.0, 0.5), ("b", 2, -8, 1, "diverged", float("nan"), 0.1),
                  ("c", 2, -4, 0, "ok", 3.0, 0.1), ("d", 2, -4, 1, "ok", 2.2, 0.2),
                  ("e", 2, -2, 0, "ok", 2.29, 0.1)])
    init = pd.Series({"a": 2.3, "b": 2.3, "c": 2.3, "d": 2.3, "e": 2.3})
    # e: a network driven to chance sits at its initial loss without a NaN; it has not trained
    assert list(A.run_stability(runs, init)) == [True, False, False, False, False]
    assert A.run_stability(runs.assign(train_loss=2.0), init).iloc[3]


def test_history_summary_reads_the_initial_loss_and_the_median_of_the_last_5_epochs(tmp_path):
    """The paper's metric: the median test accuracy of the last 5 epochs, not the final value
    (nor the best): 8 epochs evaluated once each, the last 5 are epochs 4..8."""
    acc = [0.1, 0.5, 0.9, 0.95, 0.60, 0.70, 0.80, 0.75, 0.65]  # epochs 0..8; epoch 3 is the best
    pd.DataFrame({"step": range(9), "epoch": range(9), "train_loss": [2.31] + [0.5] * 8, "test_acc": acc}
                 ).to_csv(tmp_path / "a.csv", index=False)
    pd.DataFrame({"step": [0, 5, 7], "epoch": [0.0, 2.5, 3.5], "train_loss": [2.1, 1.0, float("nan")],
                  "test_acc": [0.1, 0.4, 0.1]}).to_csv(tmp_path / "b.csv", index=False)  # diverged at 3.5
    h = A.history_summary({"a": tmp_path / "a.csv", "b": tmp_path / "b.csv"})
    assert h.loc["a", "init_loss"] == 2.31 and h.loc["a", "test_median"] == pytest.approx(0.70)
    assert h.loc["b", "init_loss"] == 2.1 and h.loc["b", "test_median"] == pytest.approx(0.1)  # all within 5 epochs
    assert A.initial_losses({"a": tmp_path / "a.csv"}).to_dict() == {"a": 2.31}
    # the study decides on that metric, not on metrics.json's final test accuracy
    runs = pd.DataFrame([{"run": r, "part": "sweep", "dataset": "d", "norm": "none", "m": 2, "lr_log2": -7,
                          "seed": i, "seed_role": role, "status": "ok", "train_loss": 0.5, "test_acc": 0.65,
                          "train_acc": 0.9} for i, (r, role) in enumerate([("a", "select"), ("b", "test")])])
    assert list(A.study(runs, h.init_loss, h.test_median).runs.acc) == [pytest.approx(70.0), pytest.approx(10.0)]


def test_a_run_without_learning_is_trained_not_diverged_and_not_stable():
    """status no_learning (final train loss at chance): its accuracy counts in its cell (the
    cell is not dropped as if it had diverged), it is not stable (M2, M3), and it is a problem
    of a claim's arm (stopping.arm_problems): M1 becomes inconclusive."""
    runs = _runs([("a", 2, -8, 0, "ok", 1.0, 0.60), ("b", 2, -8, 1, "no_learning", 2.25, 0.11)])
    runs["stable"] = A.run_stability(runs, pd.Series({"a": 2.3, "b": 2.3}))
    assert list(runs.stable) == [True, False]
    cell = A.cell_table(runs, ["m", "lr_log2"]).iloc[0]
    assert cell.acc_mean == pytest.approx(0.355) and cell.n_diverged == 0 and cell.stable_frac == 0.5

    def stuck(part, m, k, seed, m_bn=None):
        status, loss, acc = small_batches_win(part, m, k, seed, m_bn)
        if part == "sweep" and m <= 32 and k == -7 and seed == TEST[0]:  # whichever small m is selected
            return "no_learning", INIT * 0.99, 11.0
        return status, loss, acc

    st = study(landscape=stuck, bn=False, warm=False)
    row = {r["id"]: r for r in finalize_claims(C.sweep_claims(st, BLOCK)[0])}
    assert "did not learn" in row["M1a"]["precondition"] and row["M1a"]["verdict"] == INCONCLUSIVE


def test_a_run_stopped_at_a_cap_is_not_evidence():
    def capped(part, m, k, seed, m_bn=None):
        return small_batches_win(part, m, k, seed, m_bn)

    runs = make_runs(landscape=capped, bn=False)
    runs.loc[(runs.part == "warmup") & (runs.m == 64) & (runs.seed == TEST[0]), "stop_reason"] = "cap"
    runs.loc[(runs.part == "sweep") & (runs.m == 256) & (runs.seed == TEST[1]), "stop_reason"] = "cap"
    st = A.study(runs, init_of(runs))
    row = {r["id"]: r for r in finalize_claims(C.sweep_claims(st, BLOCK)[0])}
    assert "safety cap" in row["M4a"]["precondition"] and row["M4a"]["verdict"] == INCONCLUSIVE
    for cid in ("M2a", "M3a"):  # the grid claims: a capped run anywhere in the panel
        assert "safety cap" in row[cid]["precondition"] and row[cid]["verdict"] == INCONCLUSIVE


def test_cell_table_and_stable_range():
    runs = _runs([
        ("a", 2, -8, 0, "ok", 1, 0.60), ("b", 2, -8, 1, "ok", 1, 0.62),  # best at m=2
        ("c", 2, -6, 0, "ok", 1, 0.58), ("d", 2, -6, 1, "ok", 1, 0.58),  # within 0.05
        ("e", 2, -4, 0, "ok", 1, 0.50), ("f", 2, -4, 1, "ok", 1, 0.52),  # too far below
        ("g", 8, -8, 0, "ok", 1, 0.40), ("h", 8, -8, 1, "ok", 1, 0.40),  # best at m=8
        ("i", 8, -6, 0, "ok", 1, 0.39), ("j", 8, -6, 1, "diverged", float("nan"), 0.1),  # a seed diverged
        ("k", 8, -4, 0, "ok", 1, 0.38), ("l", 8, -4, 1, "ok", 1, 0.38),
    ])
    runs["stable"] = [True] * 9 + [False] + [False, True]  # k: loss went up
    runs["norm"] = "none"
    cells = A.cell_table(runs, ["norm", "m", "lr_log2"])
    c = cells.set_index(["m", "lr_log2"])
    assert c.loc[(2, -8), "acc_mean"] == pytest.approx(0.61) and c.loc[(2, -8), "n"] == 2
    assert np.isnan(c.loc[(8, -6), "acc_mean"]) and c.loc[(8, -6), "n_diverged"] == 1
    assert c.loc[(8, -4), "stable_frac"] == 0.5
    in_range = A.stable_cells(cells, 0.05, ["norm", "m"]).to_numpy()
    # m=2: -8 and -6 (not -4: 0.09 below); m=8: only -8 (-6 diverged, -4 unstable)
    assert list(in_range) == [True, True, False, True, False, False]
    # against the best over every m, nothing at m=8 is acceptable
    assert list(A.stable_cells(cells, 0.05, ["norm"])) == [True, True, False, False, False, False]


def test_selection_ignores_diverged_cells_and_flags_the_grid_edge():
    cells = pd.DataFrame({"m": [2, 2, 2, 8], "lr_log2": [-9, -7, -5, -9],
                          "acc_mean": [60.0, float("nan"), 55.0, 40.0], "n_diverged": [0, 1, 0, 0],
                          "stable_frac": [1.0, 0.0, 1.0, 0.5]})
    best = A.select_best(cells)
    assert best.lr_log2 == -9 and best.m == 2  # the NaN (diverged) cell is never selected
    assert A.select_best(cells.assign(acc_mean=float("nan"))) is None
    assert A.on_grid_edge(-9, [-9, -7, -5]) and A.on_grid_edge(-5, [-9, -7, -5])
    assert not A.on_grid_edge(-7, [-9, -7, -5])
    # the precondition of M2: batch sizes at which every eta_base cell had a stable seed (at m = 8
    # half the seeds failed, but no cell failed with every seed: the grid stops short there)
    assert A.sizes_without_unstable_cell(cells) == [8]


def test_widths_are_measured_against_one_common_bar():
    runs = pd.DataFrame({"m": [2, 2, 2, 64, 64, 64], "seed": [5] * 6, "lr_log2": [-9, -7, -5] * 2,
                         "acc": [60.0, 58.0, 50.0, 52.0, 51.0, 20.0],
                         "stable": [True, True, True, True, True, False]})
    w = A.widths_per_seed(runs, level=60.0, tol=5.0).set_index("m").width
    # m = 2: 60 and 58 are within 5 of the global best 60; m = 64: nothing is, although 52 and 51
    # are within 5 of the best at m = 64 (the old per-m rule would have called that range 2 wide)
    assert w[2] == 2 and w[64] == 0
    frac = A.stable_fraction_per_seed(runs).set_index("m").stable_frac
    assert frac[2] == 1.0 and frac[64] == pytest.approx(2 / 3)


def test_the_width_trend_is_decided_by_the_library_both_ways():
    m = np.log2([2, 4, 8, 16, 32, 64, 128] * 3)
    narrowing = [7, 6, 6, 5, 3, 2, 1] * 3
    assert decide_trend(m, np.array(narrowing) + np.repeat([0, 0.1, -0.1], 7), "less", 0.25)["verdict"] == REPRODUCED
    widening = [1, 2, 3, 3, 4, 5, 6] * 3
    assert decide_trend(m, np.array(widening) + np.repeat([0, 0.1, -0.1], 7), "less", 0.25)["verdict"] == NOT_REPRODUCED


def test_a_divergent_run_is_a_result(tiny_data, tmp_path):
    """A huge base lr diverges; the run still writes its files with status 'diverged', and the
    analysis counts it as unstable and keeps its cell out of the stable range."""
    from largebatch.train import train_run

    spec = {"dataset": "t", "model": "mlp", "width": 8, "depth": 1, "optimizer": "sgd", "momentum": 0.9,
            "schedule": "step", "milestones": [1, 1.5], "batch_size": 32, "lr": 2.0 ** 6, "lr_scaling": "linear",
            "base_batch": 1, "norm": "none", "epochs": 1}
    metrics = train_run(spec, tiny_data, tmp_path, log=lambda s: None)
    assert metrics["status"] == "diverged"
    hist = pd.read_csv(tmp_path / "history.csv")
    runs = pd.DataFrame([{"run": "x", "m": 32, "lr_log2": 6, "seed": 0, "norm": "none", **metrics}])
    runs["stable"] = A.run_stability(runs, pd.Series({"x": hist.train_loss.iloc[0]}))
    assert not runs.stable.iloc[0]
    cells = A.cell_table(runs, ["norm", "m", "lr_log2"])
    assert cells.n_diverged.iloc[0] == 1 and not A.stable_cells(cells, 0.05, ["norm", "m"]).iloc[0]


# ------------------------------------------------------------------------------ study

def test_study_selects_on_the_selection_seeds_and_reports_the_test_seeds():
    st = study()
    assert (st.ms, st.grid, st.n_sel, st.n_test, st.datasets, st.norms) == (MS, GRID, 2, 5, ["d"], ["batch"])
    per_m = st.per_m.set_index("m")
    assert list(per_m.lr_log2) == [-7] * 4  # the best eta_base at every m
    # the reported accuracy is the test seeds' mean, not the selection seeds' maximum
    tests = st.sweep[(st.sweep.m == 2) & (st.sweep.lr_log2 == -7) & (st.sweep.seed_role == "test")].acc
    assert per_m.loc[2, "test_mean"] == pytest.approx(tests.mean())
    assert len(per_m.loc[2, "test_accs"]) == 5
    # at m = 256 one of three eta_base diverges for every seed; at m = 64 one fails to train
    assert per_m.loc[256, "diverged_frac"] == pytest.approx(1 / 3)
    assert per_m.loc[64, "stable_frac"] == pytest.approx(2 / 3) and per_m.loc[64, "diverged_frac"] == 0
    assert per_m.loc[2, "stable_frac"] == 1.0


def test_the_cell_is_selected_on_the_selection_seeds_only():
    def lucky(part, m, k, seed, m_bn=None):
        status, loss, acc = small_batches_win(part, m, k, seed, m_bn)
        if k == -9 and seed in SELECT:
            acc += 10.0  # the selection seeds favour 2^-9; the test seeds still favour 2^-7
        return status, loss, acc

    st = study(landscape=lucky, bn=False, warm=False)
    row = st.per_m.set_index("m").loc[2]
    assert row.lr_log2 == -9
    tests = st.sweep[(st.sweep.m == 2) & (st.sweep.lr_log2 == -9) & (st.sweep.seed_role == "test")].acc
    assert row.test_mean == pytest.approx(tests.mean()) and row.sel_acc > row.test_mean + 5


def test_claims_on_a_landscape_where_small_batches_win():
    st = study()
    claims, facts = C.sweep_claims(st, BLOCK)
    claims += C.bn_claim(A.bn_study(st.runs), BLOCK)
    verdict = {r["id"]: r["verdict"] for r in finalize_claims(claims)}
    assert set(verdict) == {"M1a", "M2a", "M3a", "M4a", "M5"}
    assert verdict["M1a"] == REPRODUCED  # 80% vs 60% on the test seeds
    assert verdict["M3a"] == REPRODUCED  # the stable fraction falls with m
    assert verdict["M4a"] == REPRODUCED  # warm-up does not reach the small batches
    # M2: the bar is the global best (~80%): no cell at m >= 64 is acceptable, so the range falls
    # from 2 octaves to 0, but at m = 2 and 8 the grid never reaches the stability limit
    row = {r["id"]: r for r in claims}
    assert facts.width[("batch", "d", "net")].to_dict() == {2: 2.0, 8: 2.0, 64: 0.0, 256: 0.0}
    assert not row["M2a"]["precondition_ok"] and "m = 2, 8" in row["M2a"]["precondition"]
    assert verdict["M2a"] == INCONCLUSIVE
    assert "m = 2 at 2^-7" in row["M1a"]["ours"] or "m = 8 at 2^-7" in row["M1a"]["ours"]
    assert row["M1a"]["paper"] == PUBLISHED["M1"][0] and row["M1a"]["paper_source"] == PUBLISHED["M1"][1]
    assert verdict["M5"] == REPRODUCED  # m_BN = 4 beats m_BN = m at m = 16 and at m = 64
    assert row["M1a"]["precondition_ok"] and "no run with a problem" in row["M1a"]["precondition"]
    text = C.summary(st, facts, verdict, epochs=2)
    assert "4 batch sizes (m = 2..256) x 3 base learning rates" in text
    assert f"M1 {REPRODUCED}" in text and f"BN batch (M5): {REPRODUCED}." in text


def test_a_selected_eta_base_at_the_grid_edge_makes_m1_inconclusive():
    def edge(part, m, k, seed, m_bn=None):
        status, loss, acc = small_batches_win(part, m, k, seed, m_bn)
        return status, loss, acc + (10.0 if k == -9 and status == "ok" else 0.0)

    st = study(landscape=edge, bn=False, warm=False)
    claims, _ = C.sweep_claims(st, BLOCK)
    row = {r["id"]: r for r in finalize_claims(claims)}
    assert "at the edge of the grid" in row["M1a"]["precondition"] and row["M1a"]["verdict"] == INCONCLUSIVE
    assert "M4a" not in row  # no warm-up runs, no M4


def test_claim_ids_per_norm_and_dataset():
    st = study(norms=("batch", "none"), datasets=("d", "e"), bn=False, warm=False)
    claims, _ = C.sweep_claims(st, BLOCK)
    assert [c["id"] for c in claims] == ["M1a-d", "M2a-d", "M3a-d", "M1b-d", "M2b-d", "M3b-d",
                                        "M1a-e", "M2a-e", "M3a-e", "M1b-e", "M2b-e", "M3b-e"]
    assert C.bn_claim(None, BLOCK) == []
    # several networks: one set of claims per (network, norm), the network in the id
    st = study(norms=("batch", "none"), nets=("alex", "res"), bn=False, warm=True)
    assert [c["id"] for c in C.sweep_claims(st, BLOCK)[0]] == [
        f"M{i}{n}-{net}" for net in ("alex", "res") for n in "ab" for i in (1, 2, 3, 4)]
    assert C.bn_claim(A.bn_study(study().runs), {**BLOCK, "bn_batch": {}}) == []  # no reference, no M5


def test_m5_needs_every_m_above_the_reference():
    def ghost_helps_at_16_only(part, m, k, seed, m_bn=None):
        status, loss, acc = small_batches_win(part, m, k, seed, m_bn)
        if part == "bn_batch" and m_bn == 4 and m == 64:
            acc -= 5.0  # at m = 64 m_BN = 4 is no better than m_BN = m
        return status, loss, acc

    bn = A.bn_study(study(landscape=ghost_helps_at_16_only).runs)
    (row,) = finalize_claims(C.bn_claim(bn, BLOCK))
    assert "m = 16:" in row["ours"] and "m = 64:" in row["ours"]
    assert row["verdict"] != REPRODUCED  # the intersection-union test needs m = 64 too


# ------------------------------------------------------------------------------ tables

def test_tables():
    st = study()
    per = A.per_batch_size_table(st)
    assert list(per.columns) == ["normalisation", "m", "selected eta_base", "test accuracy (%)",
                                 "train accuracy (%)", "trained stably", "diverged"]
    assert per.iloc[-1]["diverged"] == "33%" and per.iloc[0]["selected eta_base"] == "2^-7"
    assert "dataset" in A.per_batch_size_table(study(datasets=("d", "e"), bn=False, warm=False)).columns
    cells = A.sweep_cells_table(st)
    assert len(cells) == len(MS) * len(GRID)
    div = cells[(cells.m == 256) & (cells.eta_base == "2^-5")].iloc[0]
    assert div.n_diverged == 7 and np.isnan(div.accuracy_pct) and div.stable_frac == 0
    bn = A.bn_study(st.runs)
    tab = A.bn_batch_table(bn)
    assert list(tab.m_BN) == [4, 16, 4, 64] and (tab["test seeds (%)"] != "not trained").all()
    assert (tab["test seeds, final train (%)"] != "not trained").all()  # convergence beside the test accuracy
    assert "final_train_pct" in cells.columns and cells.final_train_pct.notna().any()
    assert A.bn_study(st.runs[st.runs.part != "bn_batch"]) is None
    _, facts = C.sweep_claims(st, BLOCK)
    warm = C.warmup_table(st, facts)
    assert len(warm) == 1 and warm.iloc[0]["best warm-up cell"].startswith("m = 64")
    assert {"with warm-up, final train (%)", "same m, no warm-up, final train (%)"} <= set(warm.columns)
    facts.warm[("batch", "d", "net")] = C.Warm(None, [], None, [])
    assert len(C.warmup_table(st, facts)) == 0 and "with warm-up (%)" in C.warmup_table(st, facts).columns


def test_job_times_count_the_runs_of_each_job(tmp_path):
    pack, single = tmp_path / "packs-00.tsv", tmp_path / "run-x.tsv"
    pack.write_text("s\th:m:s\tcpu_time\n10.0\t0:00:10\t8.0\n12.5\t0:00:12\t9.5\n")  # a retried job: last counts
    single.write_text("s\th:m:s\n3.0\t0:00:03\n")  # no cpu_time column
    times = A.job_times([str(pack), str(single), str(pack)], ["a", "x", "b"])
    t = times.set_index("job")
    assert t.loc["packs-00", "runs"] == 2 and t.loc["packs-00", "wall"] == 12.5 and t.loc["packs-00", "cpu"] == 9.5
    assert t.loc["run-x", "runs"] == 1 and np.isnan(t.loc["run-x", "cpu"])
    assert list(A.timing_table(times)["training job"]) == ["packs-00", "run-x"]
    with pytest.raises(ValueError, match="one per run"):
        A.job_times([str(pack)], ["a", "b"])


# ------------------------------------------------------------------------------ figures

def test_figures_mark_the_selected_cells_and_draw_every_panel():
    st = study(norms=("batch", "none"))
    fig = F.heatmap(st)
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == ["d, BatchNorm", "d, no BN"]
    red = [p for p in panels[0].patches if isinstance(p, Rectangle) and p.get_edgecolor()[:3] == (1.0, 0.0, 0.0)]
    assert len(red) == len(MS)  # one selected cell per batch size
    assert any("div" in t.get_text() for t in panels[0].texts)  # m = 256 at 2^-5 diverged
    chance = F.chance_levels(["d"], {"d": {"kind": "cifar100"}}, CLASSES)
    assert chance == {1.0}
    fig = F.best_vs_m(st, chance)
    assert len(fig.axes[0].containers) == 2 * 2  # per norm: no warm-up and warm-up
    assert len(F.stable_range(st, 5.0).axes) == 2
    assert F.bn_batch(A.bn_study(st.runs)).axes[0].get_xscale() == "log"
