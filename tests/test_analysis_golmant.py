"""Golmant et al. 2018 analysis (largebatch.analysis.golmant*): thresholds, steps, regimes and
critical batch of one curve; the section's pipeline, claims and tables on a synthetic sweep whose
steps follow McCandlish et al.'s model T(B) = S_min (1 + B_noise/B); the noise measurement."""

import math

import numpy as np
import pandas as pd
import pytest

from largebatch.analysis import golmant as G
from largebatch.analysis import golmant_claims as GC
from largebatch.analysis import golmant_evidence as E
from largebatch.experiments import build_plan
from largebatch.spec import normalize
from largebatch.stats import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED, finalize_claims


def _hist(steps, losses):
    return pd.DataFrame({"step": steps, "train_loss": losses, "test_loss": np.asarray(losses) + 0.1})


def test_reference_thresholds_are_the_lowest_quartile_of_the_reference_curves():
    """The paper's threshold: the q-quantile (q = 0.25, the lowest quartile) of the largest batch's
    loss curve, read on a uniform step grid (not the evaluation grid), the largest over its runs."""
    a = _hist([0, 40], [2.0, 1.0])  # linear 2 -> 1 over the budget: lowest quartile 1.25
    b = _hist([0, 40], [2.0, 0.6])  # 2 -> 0.6: 0.95
    t = G.reference_thresholds([(a, 40), (b, 40)], [0.25, 0.5]).set_index(["metric", "frac"]).threshold
    assert t[("train_loss", 0.25)] == pytest.approx(1.25, abs=2e-3)  # every reference run reaches it
    assert t[("train_loss", 0.5)] == pytest.approx(1.5, abs=2e-3)
    assert t[("test_loss", 0.25)] == pytest.approx(1.35, abs=2e-3)
    # the same curve evaluated on a log grid (most points early, at high loss) gives the same value
    steps = np.unique(np.r_[0, np.geomspace(1, 40, 30).round()])
    log_grid = _hist(steps, 2.0 - steps / 40)
    assert G.curve_quantile(log_grid, "train_loss", 0.25, 40) == pytest.approx(1.25, abs=2e-3)
    # a run evaluated only to step 20 of its 40-step budget holds its last value to the end
    assert G.curve_quantile(_hist([0, 20], [2.0, 1.0]), "train_loss", 0.25, 40) == pytest.approx(1.0)


def test_steps_table_marks_never_reached_as_infinite():
    runs = pd.DataFrame({"run": ["a", "b"], "dataset": ["d", "d"], "batch_size": [8, 16]})
    hist = {"a": _hist([0, 10, 20], [2.0, 1.0, 0.5]), "b": _hist([0, 10, 20], [2.0, 1.5, 1.2])}
    thr = pd.DataFrame({"dataset": ["d"], "metric": ["train_loss"], "frac": [1.0], "threshold": [1.0]})
    st = G.steps_table(runs, hist, thr).set_index("run")
    assert st.loc["a", "steps"] == 10 and st.loc["a", "reached"]
    assert st.loc["b", "steps"] == math.inf and not st.loc["b", "reached"]


B = np.array([8, 16, 32, 64, 128, 256, 512, 1024, 4096], dtype=float)


def test_regimes_of_a_mccandlish_curve_perfect_scaling_and_a_flat_curve():
    mcc = 100 * (1 + 128 / B)  # S = S_min (1 + B_noise/B): linear, then diminishing, then flat
    r = G.regimes(B, mcc)
    assert r["near_linear"] and r["diminishing"] and r["plateau"] and r["three_regimes"]
    # with B_noise = 512 the grid ends (at 8 B_noise) while the last quadrupling still gains 1.33x
    assert not G.regimes(B, 100 * (1 + 512 / B))["plateau"]
    perfect = 8000 / B
    r = G.regimes(B, perfect)
    assert r["near_linear"] and not r["diminishing"] and not r["plateau"]
    flat = np.full(B.size, 50.0)
    r = G.regimes(B, flat)
    assert not r["near_linear"] and r["plateau"]
    # a large batch that never reaches the threshold is a plateau (no gain), not a gap
    broke = perfect.copy()
    broke[-1] = np.inf
    assert G.regimes(B, broke)["plateau"] and G.scaling_exponents(B, broke)[-1] == -np.inf


def test_critical_batch_of_each_curve():
    mcc = 100 * (1 + 512 / B)
    assert G.curve_stats(B, mcc)["b_crit"] == pytest.approx(512 + 2 * 8, rel=0.1)
    perfect = G.curve_stats(B, 8000 / B)
    assert perfect["lower_bound"] and perfect["b_crit"] == 4096
    # only B0 reached: half-way (in log2) to the next batch, as efficiency 1 -> 0 crosses 0.5
    only = G.curve_stats(B, [100] + [np.inf] * (B.size - 1))
    assert only["b_crit"] == pytest.approx(math.sqrt(8 * 16)) and not only["lower_bound"]


def test_mean_curve_is_geometric_and_never_reached_wins():
    df = pd.DataFrame({"batch_size": [8, 8, 16, 16], "steps": [100, 400, 50, np.inf]})
    mc = G.mean_curve(df).set_index("batch_size").steps
    assert mc[8] == pytest.approx(200) and mc[16] == math.inf


def test_measure_noise_reads_each_checkpoint(tiny_data_path, tiny_data, tmp_path):
    from largebatch.analysis.golmant_noise import measure_noise
    from largebatch.train import train_run

    spec = normalize({"model": "mlp", "width": 8, "depth": 1, "norm": "none", "optimizer": "sgd", "lr": 0.05,
                      "batch_size": 8, "steps": 20})
    train_run(spec, tiny_data, tmp_path / "r0", checkpoint_every_s=None, log=lambda s: None)
    points = [{"data": "standard", "dataset": "mnist1d", "seed": 0, "frac": 1.0, "run": "r0"}]
    out = measure_noise(points, {"mnist1d": str(tiny_data_path)}, [str(tmp_path / "r0" / "model.pt")], {"r0": spec},
                        {"b_small": 8, "b_big": 256, "n_estimates": 8}, log=lambda s: None)
    assert len(out) == 1 and out.step.iloc[0] == 20
    assert out.trace_sigma.iloc[0] > 0 and out.g2.iloc[0] > 0
    assert out.b_simple.iloc[0] == pytest.approx(out.trace_sigma.iloc[0] / out.g2.iloc[0])
    with pytest.raises(ValueError, match="one per point"):
        measure_noise(points, {"mnist1d": str(tiny_data_path)}, [], {"r0": spec}, {"b_small": 8, "b_big": 256,
                                                                                   "n_estimates": 8})


def test_chance_loss_and_the_no_learning_flag():
    assert G.chance_loss("mnist1d") == pytest.approx(math.log(10))
    assert G.chance_loss("cifar100") == pytest.approx(math.log(100))
    with pytest.raises(ValueError, match="CLASSES"):
        G.chance_loss("imagenet")
    chance = math.log(10)
    assert G.learnt("ok", 0.5, chance, 0.95)
    assert not G.learnt("ok", 2.301, chance, 0.95)  # at chance: no learning, whatever its status says
    assert not G.learnt("diverged", float("nan"), chance, 0.95)


def test_a_run_that_did_not_learn_cuts_the_curve_instead_of_making_a_plateau():
    b = [8, 16, 32, 64, 128]
    t = [400, 200, 100, 50, np.inf]  # perfect scaling, then the largest batch stays at chance
    bb, tt, cut = G.learning_curve(b, t, [True, True, True, True, False])
    assert list(bb) == [8, 16, 32, 64] and cut == 128
    # counted as a point, the dead run would look like a plateau (no gain at the largest batch)
    assert G.regimes(b, t)["plateau"]
    assert not G.regimes(bb, tt)["plateau"]
    assert G.curve_stats(bb, tt)["lower_bound"]  # efficiency never fell: B* is only a lower bound
    assert math.isnan(G.learning_curve(b, t, [True] * 5)[2])


def test_exponents_censor_never_reached_at_twice_the_cap():
    assert list(G.censored([10, np.inf], 600)) == [10, 1200]
    ex = G.exponent_summary([8, 16, 32, 64], [400, 200, 190, np.inf], cap=600)
    assert ex["alpha_first"] == pytest.approx(1.0)
    # 190 -> 1,200 (censored): a finite, strongly negative exponent instead of -inf
    assert ex["alpha_last"] == pytest.approx(math.log2(190 / 1200))
    assert list(ex["mid_log2"]) == pytest.approx([3.5, 4.5, 5.5])
    assert math.isnan(G.exponent_summary([8, 16], [10, 5], 600)["alpha_first"])


def test_the_redefined_g1_parts_can_pass_and_can_fail():
    """G1 on per-seed exponents: a McCandlish curve passes all three parts, perfect scaling fails
    the plateau part, a flat curve fails the near-linear part (the old rule could not pass)."""
    from largebatch.stats import NOT_REPRODUCED, REPRODUCED, combine, decide_one_sample, decide_trend

    rng = np.random.default_rng(0)

    def g1(curve):
        firsts, lasts, mids, alphas = [], [], [], []
        for _ in range(5):
            t = curve * np.exp(rng.normal(0, 0.03, B.size))
            ex = G.exponent_summary(B, t, cap=10_000)
            firsts.append(ex["alpha_first"])
            lasts.append(ex["alpha_last"])
            mids += list(ex["mid_log2"])
            alphas += list(ex["alpha"])
        return combine([decide_one_sample(firsts, "greater", G.LINEAR_ALPHA, 0.0),
                        decide_trend(mids, alphas, "less", 0.0),
                        decide_one_sample(lasts, "less", G.PLATEAU_ALPHA, 0.0)])["verdict"]

    assert g1(100 * (1 + 128 / B)) == REPRODUCED
    assert g1(8000 / B) == NOT_REPRODUCED
    assert g1(np.full(B.size, 50.0)) == NOT_REPRODUCED




# ----------------------------------------------------------------------------- the section on a synthetic sweep

CHANCE = math.log(10)
#: B_noise of each data role: easy < standard = small < hard (complexity moves it, size does not);
#: the second network (role arch, on the standard data) has a larger one (architecture moves it)
BNOISE = {"standard": 64, "arch": 512, "easy": 16, "hard": 256, "small": 64}
EPOCHS = 20


def _config(claims=None):
    block = {
        "run": {"model": "mlp", "width": 8, "depth": 1, "norm": "none", "optimizer": "sgd", "lr": 0.01,
                "momentum": 0.9},
        "epochs": EPOCHS,
        "batch_sizes": [8, 16, 32, 64, 128, 256, 512, 1024],
        "max_batch_fraction": 0.5,
        "thresholds": [0.25, 0.5],
        "strategies": {"fixed": {"lr_scaling": "none"}, "lsr": {"lr_scaling": "linear", "warmup_steps": 10}},
        "datasets": {"standard": {"name": "std", "strategies": ["fixed", "lsr"]},
                     "arch": {"name": "std", "strategies": ["lsr"], "run": {"model": "shallow_conv", "width": 4}},
                     "easy": {"name": "easy", "strategies": ["lsr"]},
                     "hard": {"name": "hard", "strategies": ["lsr"]},
                     "small": {"name": "small", "strategies": ["lsr"]}},
        "seeds": [0, 1, 2, 3],
        "noise": {"b_small": 8, "b_big": 64, "n_estimates": 4, "snapshots": [0.25]},
        "claims": claims or {"max_threshold_vs_chance": 0.5, "no_learning": 0.95, "medium_batch": [2, 16],
                             "G1": {"margin": 0.0}, "G2": {"reference_fraction": 0.1, "margin": 0.5},
                             "G3": {"margin": 0.25}, "G4": {"margin": 0.5}, "G5": {"margin": 0.5},
                             "GX1": {"within": 2.0}},
    }
    datasets = {name: {"kind": "mnist1d", "num_samples": n} for name, n in
                (("std", 50000), ("easy", 50000), ("hard", 50000), ("small", 5000))}
    return {"scale": "s", "papers": ["golmant"], "scales": {"s": {"gpu": False, "datasets": datasets,
                                                                    "golmant": block}}}


def _tau(spec: dict, role: str, rng, dead_from: float) -> float:
    """Loss time constant of a run: McCandlish's S_min (1 + B_noise/B), slower under the fixed lr
    above B0, a little noise per run; infinite (no learning) from batch `dead_from` on."""
    b = spec["batch_size"]
    if b >= dead_from:
        return math.inf
    tau = 300 * (1 + BNOISE[role] / b) / (1 + BNOISE[role] / 8)
    if b > 8 and spec["lr_scaling"] == "none":
        tau *= 1.5
    return tau * math.exp(rng.normal(0, 0.01))


def _budget(spec: dict, sizes: dict) -> int:
    return spec["steps"] if spec.get("steps") else int(spec["epochs"] * (sizes[spec["dataset"]] // spec["batch_size"]))


def synthetic(dead_from: float = math.inf, config=None, cap: tuple | None = None):
    """(Setup, rows, runs, long histories, noise table) as the section rule would give them:
    each run's loss on a log grid of ~300 evaluations over its budget (20 epochs); a run from
    batch `dead_from` on stays at chance (status no_learning); `cap` = (role, strategy, B): those
    runs stopped at a safety cap."""
    config = config or _config()
    plan = build_plan(config)
    rows = plan.tables["golmant"]
    sizes = {k: int(0.8 * v["num_samples"]) for k, v in config["scales"]["s"]["datasets"].items()}
    rng = np.random.default_rng(0)
    role = {r["run"]: r["data"] for r in rows}
    hists, metrics = {}, {}
    for rid in dict.fromkeys(r["run"] for r in rows):
        spec = plan.runs[rid]
        tau = _tau(spec, role[rid], rng, dead_from)
        n = _budget(spec, sizes)
        step = np.unique(np.r_[0, np.geomspace(1, n, 300).round().astype(int)])
        loss = CHANCE * np.exp(-step / tau)
        hists[rid] = pd.DataFrame({"step": step, "train_loss": loss, "test_loss": 1.1 * loss})
        stuck = bool(loss[-1] >= 0.95 * CHANCE)
        metrics[rid] = {"status": "no_learning" if stuck else "ok", "stop_reason": "budget",
                        "train_loss": float(loss[-1]), "train_acc": 0.1 if stuck else 0.9,
                        "test_loss": float(1.1 * loss[-1]), "test_acc": 0.1 if stuck else 0.8}
    runs = pd.DataFrame([{**metrics[r["run"]], **r} for r in rows])
    if cap is not None:
        hit = (runs.data == cap[0]) & (runs.strategy == cap[1]) & (runs.batch_size == cap[2])
        runs.loc[hit, "stop_reason"] = "cap"
    long = pd.concat([hists[r["run"]].assign(**{k: v for k, v in r.items()}) for r in rows], ignore_index=True)
    b0_budget = EPOCHS * (sizes["std"] // 8)
    noise = pd.DataFrame([{"data": d, "frac": f, "seed": s, "step": int(f * b0_budget), "train_loss_sample": 0.1,
                           "b_simple": BNOISE[d] * math.exp(rng.normal(0, 0.05))}
                          for d in BNOISE for f in (0.25, 1.0) for s in range(4)])
    S = G.setup(config["scales"]["s"]["golmant"], config["scales"]["s"]["datasets"])
    return S, rows, runs, long, noise


def results(S, rows, runs, long, noise) -> G.Results:
    """The notebook's pipeline, step by step."""
    hist = G.histories_by_run(long, rows)
    sweep = G.sweep_runs(S, runs)
    b0 = G.smallest_batches(sweep, S.roles)
    thresholds = G.threshold_table(S, sweep, b0, hist)
    st = G.steps_to_thresholds(S, sweep, hist, thresholds)
    per_seed = G.seed_curves(st, thresholds, S.steps)
    summary, curves = G.mean_curves(st, per_seed, thresholds, S.steps)
    nz = G.noise_summary(noise)
    summary = G.with_prediction(summary, nz, b0, st)
    return G.Results(S, sweep, b0, hist, thresholds, st, per_seed, summary, curves, nz)


@pytest.fixture(scope="module")
def mccandlish():
    return results(*synthetic())


def test_setup_reads_the_strategies_roles_and_chance_losses():
    S = synthetic()[0]
    assert S.roles == ["standard", "arch", "easy", "hard", "small"] and S.strats == ["fixed", "lsr"]
    assert S.fixed == "fixed" and S.scaled == ["lsr"] and S.lsr == "lsr" and S.var_strat == "lsr"
    assert S.chance["hard"] == pytest.approx(CHANCE) and S.maxf == 0.5 and S.fracs == [0.25, 0.5]
    assert S.n_std == 40000 and S.sizes["small"] == 4000
    # equal epochs at every batch size: B0 makes the most updates
    assert S.epochs == EPOCHS and S.budget("standard", 8) == S.steps == 100_000
    assert S.budget("standard", 1024) == 20 * 39 and S.budget("small", 1024) == 20 * 3
    assert S.slabel == {"fixed": "fixed LR", "lsr": "LSR (linear)"}


def test_histories_by_run_keeps_one_copy_of_a_shared_run():
    S, rows, runs, long, noise = synthetic()
    hist = G.histories_by_run(long, rows)
    shared = [r["run"] for r in rows if r["data"] == "standard" and r["batch_size"] == 8 and r["kind"] == "sweep"]
    assert len(shared) == 8 and len(set(shared)) == 4  # the B0 run of each seed serves both strategies
    h = hist[shared[0]]
    assert h.step.iloc[-1] == 100_000 and h.step.is_monotonic_increasing and h.index[0] == 0


def test_thresholds_come_from_the_largest_batch_and_are_eligible_below_the_bar(mccandlish):
    R = mccandlish
    t = R.thresholds.set_index(["data", "metric", "frac"])
    assert len(t) == 5 * 2 * 2
    assert (t.ref_batch == 1024).all()  # the largest batch of every role learnt
    # small data, 3 steps an epoch at B = 1024: the lowest quartile of its 60-step curve is about
    # the loss at step 45, chance x exp(-45 / tau), tau = 300 (1 + 64/1024) / (1 + 64/8)
    tau = 300 * (1 + 64 / 1024) / 9
    assert t.loc[("small", "train_loss", 0.25), "threshold"] == pytest.approx(CHANCE * math.exp(-45 / tau), rel=0.1)
    assert t.eligible.all()
    # every batch size reaches every threshold within its budget
    assert R.st.reached.all()
    assert R.b0 == {"standard": 8, "arch": 8, "easy": 8, "hard": 8, "small": 8} and R.n_seeds == 4
    assert R.grid == [8, 16, 32, 64, 128, 256, 512, 1024]


def test_the_critical_batch_follows_the_noise_scale(mccandlish):
    s = mccandlish.summary.set_index(["data", "strategy", "metric", "frac"])
    for role, bn in BNOISE.items():
        # McCandlish's model: B* (efficiency 0.5) = B_noise + 2 B0, up to the log2 interpolation
        assert s.loc[(role, "lsr", "train_loss", 0.25), "b_crit"] == pytest.approx(bn + 16, rel=0.15)
        assert s.loc[(role, "lsr", "train_loss", 0.25), "b_pred"] == pytest.approx(bn + 16, rel=0.1)
    assert not s.lower_bound.any() and s.cut.isna().all()
    # the seed-mean curve starts at speed-up 1
    c = mccandlish.curves
    assert (c[c.batch_size == 8].speedup == 1).all()


def test_claims_on_a_mccandlish_sweep(mccandlish):
    rows = finalize_claims(GC.claims(mccandlish))
    verdict = {r["id"]: r["verdict"] for r in rows}
    assert list(verdict) == ["G1", "G2", "G3", "G4", "G5", "GX1"]
    assert all(r["precondition_ok"] for r in rows), [r["precondition"] for r in rows]
    assert verdict["G1"] == REPRODUCED  # near-linear, diminishing, flat
    assert verdict["G2"] == REPRODUCED  # B* ~ 80 of 40,000
    assert verdict["G4"] == REPRODUCED  # hard vs easy: 3 octaves; standard vs small: none
    assert verdict["G5"] == REPRODUCED  # the second network: B* 528 vs 80, 2.7 octaves
    assert verdict["GX1"] == REPRODUCED  # the prediction is B_noise + 2 B0 itself
    # the fixed lr is 1.5x slower at every B > B0: LSR is faster at the largest batch too
    assert verdict["G3"] == NOT_REPRODUCED


def test_a_sweep_above_the_bar_decides_nothing():
    config = _config()
    config["scales"]["s"]["golmant"]["claims"]["max_threshold_vs_chance"] = 1e-200
    R = results(*synthetic(config=config))
    assert not R.thresholds.eligible.any()
    rows = finalize_claims(GC.claims(R))
    assert {r["verdict"] for r in rows} == {INCONCLUSIVE}
    assert not any(r["precondition_ok"] for r in rows)
    assert "0 of 4 thresholds are below 1e-200 x the chance loss" in GC.elig_text(R)


def test_a_claim_arm_stopped_at_a_cap_is_not_evidence():
    """arm_problems in every precondition: one LSR run cut by a safety cap makes G1, G2 (and G4,
    G5, GX1, which read the standard LSR curve) inconclusive; G3 reads the strategies' runs too."""
    R = results(*synthetic(cap=("standard", "lsr", 64)))
    rows = {r["id"]: r for r in finalize_claims(GC.claims(R))}
    for cid in ("G1", "G2", "G3", "G4", "G5", "GX1"):
        assert not rows[cid]["precondition_ok"] and rows[cid]["verdict"] == INCONCLUSIVE, cid
        assert "stopped at the safety cap" in rows[cid]["precondition"]


def test_runs_that_did_not_learn_cut_the_curves():
    R = results(*synthetic(dead_from=512))
    assert not R.sweep[R.sweep.batch_size >= 512].learnt.any()
    assert (R.sweep[R.sweep.batch_size >= 512].status == "no_learning").all()
    # they never set a threshold: the reference is the largest batch at which every run learnt
    assert (R.thresholds.ref_batch == 256).all()
    # ... nor count against a claim's arms (they end the curve; the arm is the curve before it)
    rows = {r["id"]: r for r in finalize_claims(GC.claims(R))}
    assert rows["G1"]["precondition_ok"] and "runs did not learn" not in rows["G1"]["precondition"]
    # G3's largest batch is the largest at which every strategy learnt
    assert "B = 256 is the largest batch at which every strategy learnt" in rows["G3"]["ours"]
    st = R.st[R.st.batch_size >= 512]
    assert np.isinf(st.steps).all()
    assert (R.per_seed.cut == 512).all() and (R.per_seed.n_points == 6).all()
    # counted per strategy and seed: 2 strategies x 4 seeds on the standard data
    text = GC.cut_text(R.per_seed[R.per_seed.data == "standard"])
    assert text == "runs that did not learn cut the curve at B = 512 (8 seed(s))"
    assert GC.cut_text(R.per_seed[R.per_seed.cut.isna()]) == "every run learnt"
    table = E.curve_summary_table(R)
    assert (table["did not learn from"] == "512").all()


def test_tables(mccandlish):
    R = mccandlish
    thr = E.thresholds_table(R)
    assert list(thr.columns) == ["data", "loss", "q", "reference batch", "its budget (steps)", "threshold",
                                 "chance loss", "x chance", "decided on"]
    assert set(thr["reference batch"]) == {1024} and set(thr["decided on"]) == {"yes"}
    assert set(thr["its budget (steps)"]) == {20 * 39, 20 * 3}
    final = E.final_table(R)
    assert {"train loss", "train acc %", "test loss", "test acc %", "status", "stop"} <= set(final.columns)
    assert len(final) == 8 * 2 + 8 * 4  # standard: 2 strategies, arch/easy/hard/small: 1; 8 batch sizes
    assert set(final.stop) == {"budget 4"} and set(final["train acc %"]) == {90.0}
    wide = E.steps_wide_table(R)
    assert [c for c in wide.columns if c.startswith("B = ")] == [f"B = {b}" for b in R.grid]
    assert len(wide) == 2 * 2 * 2  # loss x f x strategy
    noise = E.noise_table(R).set_index(["data", "share of B0's budget"])
    assert noise.loc[("hard", "1"), "seeds"] == 4
    assert noise.loc[("hard", "1"), "B_simple (geometric mean)"] == pytest.approx(256, rel=0.1)
    crit = E.critical_batch_table(R)
    assert len(crit) == len(R.summary) and crit["B* (mean curve)"].str.match(r"^\d[\d,]*$").all()
    summary = E.curve_summary_table(R)
    assert len(summary) == (2 + 4) * 2  # (standard: 2 strategies + arch + 3 variants) x 2 losses
    assert set(summary["data"]) == {"arch (40,000)", "easy (40,000)", "hard (40,000)", "small (4,000)",
                                    "standard (40,000)"}


def test_figures_draw_every_panel(mccandlish):
    from matplotlib import pyplot as plt

    R = mccandlish
    for build, panels in ((E.threshold_curves, 5), (E.steps_to_threshold, 4), (E.speedup, 2), (E.cost, 2),
                          (E.data_complexity, 2)):
        fig = build(R)
        assert len(fig.axes) == panels, build.__name__
        plt.close(fig)
    fig = E.noise_prediction(R, GC.prediction_points(R))
    assert len(fig.axes[0].collections) >= 4
    plt.close(fig)
    assert len(GC.prediction_points(R)) == 5 * 2


def test_runs_that_learnt_and_then_fell_back_are_told_apart():
    S, rows, runs, long, noise = synthetic()
    hist = G.histories_by_run(long, rows)
    sweep = G.sweep_runs(S, runs)
    assert G.collapsed_runs(S, sweep, hist).empty  # the synthetic sweep learns everywhere
    run = sweep[(sweep.data == "standard") & (sweep.batch_size == 64)].run.iloc[0]
    h = hist[run].copy()
    h.loc[h.index[-1], "train_loss"] = CHANCE  # it had learnt; its last evaluation is back at chance
    hist[run] = h
    sweep.loc[sweep.run == run, "learnt"] = False
    fell = G.collapsed_runs(S, sweep, hist)
    assert list(fell.batch_size) == [64] and fell.final_train_loss.iloc[0] == pytest.approx(CHANCE)
    assert fell.best_train_loss.iloc[0] < S.maxf * CHANCE
    # a run that never left chance is not one of them
    h2 = hist[run].assign(train_loss=CHANCE)
    hist[run] = h2
    assert G.collapsed_runs(S, sweep, hist).empty
