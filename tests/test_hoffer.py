"""Hoffer, Hubara & Soudry 2017: regime adaptation, the table's arms, the plan, the distance fits
on real runs, GBN as the models and the engine use it, and the paper's declaration. The
section's claims, tables and figures on synthetic data: tests/test_analysis_hoffer.py."""

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from largebatch.analysis.hoffer import distance_fits, high_lr_phase, log_fit, log_grid, sqrt_fit
from largebatch.experiments import ConfigError, build_plan, build_registry
from largebatch.experiments.hoffer import (ARMS, PAPER, PUBLISHED, arm_spec, plan, published_margins, ra_factor,
                                           regime_adaptation, seeds_by_arm)
from largebatch.gbn import GhostBatchNorm
from largebatch.models import build_model
from largebatch.spec import effective_lr, lr_at, normalize
from largebatch.train import eval_steps, train_run

MARGINS = {"H0": {"margin_pp": 1.22}, "H4": {"margin_pp": 0.61}, "H5": {"margin_pp": [0.5, 0.05, 0.93]},
           "H6": {"margin_pp": 0.05}}
DIST_CLAIMS = {"H1": {"r2_min": 0.95, "r2_margin": 0.01}, "H2": {"margin_log_ratio": 0.1},
               "H3": {"margin_log_ratio": 0.1}}
PRE = {"sb_train_acc_min_pp": 95, "max_train_gap_pp": 1.0, "min_fit_points": 3}
RUN = {"dataset": "mnist1d", "model": "mlp", "width": 8, "depth": 2, "optimizer": "sgd", "lr": 0.1,
       "momentum": 0.9, "weight_decay": 1e-4, "epochs": 10, "milestones": [2, 4, 6], "schedule": "step"}


# ------------------------------------------------------------------ regime adaptation
def test_regime_adaptation_multiplies_budget_and_every_lr_drop():
    run = {**RUN, "warmup_epochs": 0.5}
    out = regime_adaptation(run, 16)
    assert out["epochs"] == 160
    assert out["milestones"] == [32, 64, 96]
    assert out["warmup_epochs"] == 8
    assert {k: v for k, v in out.items() if k not in ("epochs", "milestones", "warmup_epochs")} == \
        {k: v for k, v in run.items() if k not in ("epochs", "milestones", "warmup_epochs")}
    assert run["epochs"] == 10 and run["milestones"] == [2, 4, 6]  # input untouched
    steps = regime_adaptation({"steps": 100, "milestones": [1.5]}, 3)
    assert steps["steps"] == 300 and steps["milestones"] == [4.5]
    with pytest.raises(ValueError, match="factor"):
        regime_adaptation(run, 0)


def test_ra_factor_is_the_rounded_up_batch_ratio():
    assert ra_factor(1600, 50) == 32  # the cpu scale's B_L/B_S, the paper's 4096/128
    assert ra_factor(1600, 100) == 16
    assert ra_factor(1000, 300) == 4  # ceil, as bigBatch's --regime_bb_fix
    with pytest.raises(ValueError):
        ra_factor(50, 100)


@pytest.mark.parametrize("sb, lb, n", [(50, 1600, 16000), (25, 200, 1200), (128, 4096, 65536)])
def test_ra_gives_lb_as_many_updates_and_the_same_drop_steps_as_sb(sb, lb, n):
    """Updates and LR-drop update numbers of +RA equal SB's (when both batches divide n)."""
    s_sb = normalize(arm_spec(RUN, "SB", lb, sb))
    s_ra = normalize(arm_spec(RUN, "+RA", lb, sb))
    spe_sb, spe_ra = n // sb, n // lb
    assert s_sb["epochs"] * spe_sb == s_ra["epochs"] * spe_ra
    tot = s_sb["epochs"] * spe_sb
    lrs_sb = [lr_at(s_sb, t, spe_sb, tot) for t in range(tot)]
    lrs_ra = [lr_at(s_ra, t, spe_ra, tot) for t in range(tot)]
    drops_sb = [t for t in range(1, tot) if lrs_sb[t] < lrs_sb[t - 1]]
    drops_ra = [t for t in range(1, tot) if lrs_ra[t] < lrs_ra[t - 1]]
    assert drops_sb == drops_ra and len(drops_sb) == 3
    assert lrs_ra[0] == pytest.approx(lrs_sb[0] * math.sqrt(lb / sb))  # +RA keeps +LR's sqrt scaling


def test_arms_add_one_adaptation_each():
    specs = {arm: normalize(arm_spec(RUN, arm, 800, 50)) for arm in ARMS}
    assert specs["SB"]["batch_size"] == 50 and all(specs[a]["batch_size"] == 800 for a in ARMS[1:])
    assert effective_lr(specs["LB"]) == pytest.approx(0.1)
    assert effective_lr(specs["+LR"]) == pytest.approx(0.4)  # 0.1 * sqrt(800 / 50)
    assert specs["+LR"]["norm"] == "batch"
    assert specs["+GBN"]["norm"] == "ghost" and specs["+GBN"]["ghost_batch_size"] == 50
    assert specs["+GBN"]["epochs"] == 10
    assert specs["+RA"]["epochs"] == 160 and specs["+RA"]["milestones"] == [32, 64, 96]
    assert effective_lr(specs["+RA"]) == pytest.approx(0.4) and specs["+RA"]["norm"] == "ghost"
    with pytest.raises(ValueError, match="multiple"):
        arm_spec(RUN, "+GBN", 120, 50)
    with pytest.raises(ValueError, match="arm"):
        arm_spec(RUN, "+XYZ", 800, 50)


def _block(**kw):
    block = {"seeds": [0, 1],
             "networks": {"F1": {"run": dict(RUN), "small_batch": 50, "large_batch": 800, "claims": MARGINS}},
             "distance": {"network": "F1", "batch_sizes": [50, 200, 800], "log_points": 20, "fit_min_step": 1},
             "claims": DIST_CLAIMS, "preconditions": PRE}
    block.update(kw)
    return block


def test_plan_lists_the_table_and_the_distance_batch_sizes():
    rows = plan(_block(), {})
    arms = [(lab["arm"], lab["batch_size"], lab["table"]) for lab, _ in rows if lab["seed"] == 0]
    assert arms == [("SB", 50, True), ("LB", 800, True), ("+LR", 800, True), ("+GBN", 800, True),
                    ("+RA", 800, True), ("LB", 200, False), ("+RA", 200, False)]
    assert all(spec["log_points"] == 20 and spec["seed"] == lab["seed"] for lab, spec in rows)
    assert all("pack" not in lab for lab, _ in rows)  # which runs share a job is largebatch.packing's choice
    ra200 = next(spec for lab, spec in rows if lab["arm"] == "+RA" and lab["batch_size"] == 200)
    assert ra200["epochs"] == 40 and ra200["ghost_batch_size"] == 50
    with pytest.raises(ValueError, match="multiple"):
        plan(_block(distance={"network": "F1", "batch_sizes": [50, 120], "log_points": 5}), {})
    with pytest.raises(ValueError, match="distance.network"):
        plan(_block(distance={"network": "C9", "batch_sizes": [50], "log_points": 5}), {})


def test_ra_is_evaluated_at_the_update_counts_of_sb():
    """With the training-set size known (the scale's datasets), +RA evaluates once per adapted
    epoch (B_L/B_S epochs), so its evaluations fall on SB's (plus the shared log grid), not
    B_L/B_S times as many; the other arms evaluate once per epoch as before."""
    scale = {"datasets": {"mnist1d": {"kind": "mnist1d", "num_samples": 20000}}}  # 16,000 train
    block = _block(networks={"F1": {"run": {**RUN, "epochs": 50, "milestones": [10, 20, 30]}, "small_batch": 50,
                                    "large_batch": 1600, "claims": MARGINS}},
                   distance={"network": "F1", "batch_sizes": [50, 400, 1600], "log_points": 60, "fit_min_step": 10})
    specs = {(lab["arm"], lab["batch_size"]): normalize(spec) for lab, spec in plan(block, scale) if lab["seed"] == 0}
    ra, sb = specs[("+RA", 1600)], specs[("SB", 50)]
    assert (ra["epochs"], ra["milestones"], ra["eval_every"]) == (1600, [320, 640, 960], 320)
    assert specs[("+RA", 400)]["eval_every"] == 320 and specs[("+RA", 400)]["epochs"] == 400
    assert all(specs[k]["eval_every"] is None for k in specs if k[0] != "+RA")
    total = 16000
    assert eval_steps(total, 320, 60) == eval_steps(total, 16000 // 50, 60)  # SB's evaluation steps
    assert ra["steps"] is None and sb["epochs"] * (16000 // 50) == ra["epochs"] * (16000 // 1600) == total
    # without the datasets (the plan of a unit test) +RA evaluates per epoch, as before
    assert all(normalize(spec)["eval_every"] is None for _, spec in plan(block, {}))


def test_an_arm_can_have_its_own_seeds_at_every_batch_size_it_trains():
    """arm_seeds: +RA on one seed (the cut of a budget), the other arms on the section's seeds;
    the arm's seeds hold for its Fig. 2 runs too, and other networks keep the section's."""
    block = _block(seeds=[0, 1, 2])
    block["networks"]["F1"]["arm_seeds"] = {"+RA": [0]}
    block["networks"]["F2"] = {**block["networks"]["F1"], "arm_seeds": {"LB": [4, 5]}}
    assert seeds_by_arm(block, "F1") == {"SB": [0, 1, 2], "LB": [0, 1, 2], "+LR": [0, 1, 2], "+GBN": [0, 1, 2],
                                         "+RA": [0]}
    rows = plan(block, {})
    seeds = {}
    for lab, spec in rows:
        assert spec["seed"] == lab["seed"]
        seeds.setdefault((lab["network"], lab["arm"], lab["batch_size"]), []).append(lab["seed"])
    assert seeds[("F1", "+RA", 800)] == seeds[("F1", "+RA", 200)] == [0]
    assert seeds[("F1", "LB", 200)] == seeds[("F1", "SB", 50)] == [0, 1, 2]
    assert seeds[("F2", "LB", 800)] == [4, 5] and seeds[("F2", "+RA", 800)] == [0, 1, 2]
    assert len(rows) == (4 * 3 + 1) + (3 + 1) + (4 * 3 + 2)  # F1: table, Fig. 2 at 200 (LB, +RA); F2: table
    # without arm_seeds every arm has the section's seeds, in the same order as before
    assert [lab["seed"] for lab, _ in plan(_block(), {}) if lab["arm"] == "+RA"] == [0, 1, 0, 1]
    bad = _block()
    bad["networks"]["F1"]["arm_seeds"] = {"RA": [0]}
    with pytest.raises(ValueError, match=r"networks.F1.arm_seeds: \['RA'\] are not arms; choose from"):
        plan(bad, {})
    bad["networks"]["F1"]["arm_seeds"] = {"+RA": []}
    with pytest.raises(ValueError, match=r"networks.F1.arm_seeds.\+RA = \[\]: give a non-empty list"):
        plan(bad, {})


def test_registry_reports_a_bad_block_with_its_key():
    block = _block()
    block["networks"]["F1"]["run"]["milestones"] = []
    config = {"scale": "s", "papers": ["hoffer"],
              "scales": {"s": {"datasets": {"mnist1d": {"kind": "mnist1d", "num_samples": 20000}}, "hoffer": block}}}
    with pytest.raises(ConfigError, match=r"scales.s.hoffer: networks.F1.run: give the LR-drop epochs"):
        build_registry(config)


# ------------------------------------------------------------------ distance analysis
def test_log_fit_recovers_a_logarithmic_curve_and_beats_the_random_walk_fit():
    t = np.geomspace(1, 5000, 30).round()
    d = 1.5 + 2.0 * np.log(t)
    a, b, r2 = log_fit(t, d)
    assert (a, b, r2) == pytest.approx((1.5, 2.0, 1.0))
    assert sqrt_fit(t, d)[2] < 0.9
    walk = 0.3 * np.sqrt(t)  # a diffusive random walk is not logarithmic
    assert sqrt_fit(t, walk)[2] == pytest.approx(1.0) and log_fit(t, walk)[2] < 0.9
    assert math.isnan(log_fit([1, 2], [0, 1])[2])  # too few points
    with pytest.raises(ValueError):
        log_fit([0, 1, 2], [0, 1, 2])


def test_log_grid_is_what_the_engine_evaluates():
    grid = log_grid(640, 40)
    assert grid[0] == 1 and grid[-1] == 640 and len(grid) == len(set(grid))
    assert set(grid) <= eval_steps(640, 10**6, 40)
    assert log_grid(100, 0) == []


def test_distance_fits_use_only_the_high_lr_phase(tiny_data, tmp_path):
    """A real run: the high-LR phase ends at the first drop; fits use its log-grid points."""
    spec = normalize({**RUN, "batch_size": 48, "epochs": 6, "milestones": [2, 4], "log_points": 25})
    metrics = train_run(spec, tiny_data, tmp_path / "r", log=lambda s: None, checkpoint_every_s=None)
    h = pd.read_csv(tmp_path / "r" / "history.csv")
    spe = tiny_data.n_train // 48
    phase = high_lr_phase(h)
    assert phase.step.min() == 1 and phase.step.max() == 2 * spe
    assert np.allclose(phase.lr, 0.1) and (h[h.step > 2 * spe].lr < 0.1).all()
    f = distance_fits(h, 25, metrics["steps"])
    assert f["t_drop"] == 2 * spe
    assert f["points"] == len([s for s in log_grid(metrics["steps"], 25) if s <= 2 * spe])
    assert f["d_drop"] == pytest.approx(float(h.loc[h.step == 2 * spe, "w_dist"].iloc[0]))
    assert f["slope"] > 0 and 0 <= f["r2_log"] <= 1
    late = distance_fits(h, 25, metrics["steps"], min_step=10)  # after momentum's build-up
    assert late["points"] == len([s for s in log_grid(metrics["steps"], 25) if 10 <= s <= 2 * spe])
    assert late["t_drop"] == f["t_drop"] and late["d_drop"] == f["d_drop"]
    assert math.isnan(distance_fits(h, 25, metrics["steps"], min_step=2 * spe)["slope"])  # < 3 points: no fit


def test_ra_run_makes_as_many_updates_as_sb(tiny_data, tmp_path):
    sb, lb = 24, 96  # 480 training samples: 20 and 5 updates per epoch
    assert tiny_data.n_train % lb == 0
    run = {**RUN, "epochs": 2, "milestones": [1]}
    m_sb = train_run(arm_spec(run, "SB", lb, sb), tiny_data, tmp_path / "sb", log=lambda s: None,
                     checkpoint_every_s=None)
    m_lb = train_run(arm_spec(run, "+GBN", lb, sb), tiny_data, tmp_path / "lb", log=lambda s: None,
                     checkpoint_every_s=None)
    m_ra = train_run(arm_spec(run, "+RA", lb, sb), tiny_data, tmp_path / "ra", log=lambda s: None,
                     checkpoint_every_s=None)
    assert m_sb["steps"] == m_ra["steps"] == 40 and m_lb["steps"] == 10
    h_sb, h_ra = (pd.read_csv(tmp_path / d / "history.csv") for d in ("sb", "ra"))
    assert high_lr_phase(h_sb).step.max() == high_lr_phase(h_ra).step.max() == 20


# ------------------------------------------------------------------ GBN in models and the engine
def test_models_switch_batchnorm_to_ghost_batchnorm_by_spec():
    spec = normalize({**RUN, "norm": "ghost", "ghost_batch_size": 25, "batch_size": 200})
    model = build_model(spec, (1, 40), 10)
    gbns = [m for m in model.modules() if isinstance(m, GhostBatchNorm)]
    assert len(gbns) == 2 and all(m.ghost_batch_size == 25 for m in gbns)
    conv = build_model(normalize({**spec, "model": "shallow_conv"}), (1, 40), 10)
    assert sum(isinstance(m, GhostBatchNorm) for m in conv.modules()) == 4
    plain = build_model(normalize({**RUN, "batch_size": 200}), (1, 40), 10)
    assert not any(isinstance(m, GhostBatchNorm) for m in plain.modules())


def test_gbn_gradients_equal_bigbatch_chunked_forward_backward():
    """bigBatch's GBN: per-chunk forward/backward with BatchNorm, gradients averaged over chunks."""
    torch.manual_seed(0)
    x, y = torch.randn(32, 6), torch.randint(0, 3, (32,))
    make = lambda norm: nn.Sequential(nn.Linear(6, 5), norm, nn.ReLU(), nn.Linear(5, 3))
    torch.manual_seed(1)
    ghost = make(GhostBatchNorm(5, 8))
    torch.manual_seed(1)
    chunked = make(nn.BatchNorm1d(5))
    nn.functional.cross_entropy(ghost(x), y).backward()
    for xc, yc in zip(x.split(8), y.split(8)):
        (nn.functional.cross_entropy(chunked(xc), yc) / 4).backward()
    for p, q in zip(ghost.parameters(), chunked.parameters()):
        torch.testing.assert_close(p.grad, q.grad)
    torch.testing.assert_close(ghost[1].running_mean, chunked[1].running_mean)
    torch.testing.assert_close(ghost[1].running_var, chunked[1].running_var)


def test_ghost_run_equals_micro_batched_batchnorm_run(tiny_data, tmp_path):
    """The engine with norm=ghost trains the same weights as BN over micro-batches of the ghost size."""
    base = {**RUN, "batch_size": 96, "epochs": 2, "milestones": [1]}
    train_run({**base, "norm": "ghost", "ghost_batch_size": 24}, tiny_data, tmp_path / "g", log=lambda s: None,
              checkpoint_every_s=None)
    train_run({**base, "micro_batch": 24}, tiny_data, tmp_path / "m", log=lambda s: None, checkpoint_every_s=None)
    wg = torch.load(tmp_path / "g" / "model.pt", weights_only=True)
    wm = torch.load(tmp_path / "m" / "model.pt", weights_only=True)
    assert wg.keys() == wm.keys()
    for k in wg:
        torch.testing.assert_close(wg[k].float(), wm[k].float(), rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------ config and declaration
def test_config_margins_follow_the_published_table():
    """Every network's accuracy margins in config.yaml are those its row of the poster implies."""
    import yaml

    with open(Path(__file__).parents[1] / "config.yaml") as f:
        scales = yaml.safe_load(f)["scales"]
    checked = 0
    for scale in scales.values():
        for name, net in (scale.get("hoffer") or {}).get("networks", {}).items():
            if name in PUBLISHED:
                want = published_margins(name)
                for c, v in net["claims"].items():
                    assert v["margin_pp"] == pytest.approx(want[c]), (name, c)
                checked += 1
    assert checked >= 3
    f1 = published_margins("F1")
    assert (f1["H0"], f1["H4"], f1["H6"]) == pytest.approx((1.22, 0.61, 0.05))
    assert f1["H5"] == pytest.approx([0.5, 0.05, 0.93])


@pytest.mark.parametrize("scale", ["tiny", "cpu", "mnist", "paper"])
def test_declaration_gives_the_section_rule_every_table_and_figure(scale):
    """Hoffer has no analysis job: its section rule reads the runs and writes the declared items."""
    import yaml

    with open(Path(__file__).parents[1] / "config.yaml") as f:
        config = yaml.safe_load(f)
    plan_ = build_plan({**config, "scale": scale, "papers": ["hoffer"]})
    assert plan_.jobs["hoffer"] == []
    section = plan_.sections["hoffer"]
    assert set(section.input) == {"metrics", "histories"}
    assert len(section.input["metrics"]) == len(set(r["run"] for r in plan_.tables["hoffer"]))
    out = section.output
    assert out["table1"] == "results/hoffer/tables/table1.csv" and out["arms"] == "results/hoffer/tables/arms.csv"
    assert out["arm_accuracy"] == "results/hoffer/figures/arm_accuracy.png"
    assert {o.name: o.label for o in PAPER.outputs if o.label} == {"arm_accuracy": "table arms",
                                                                  "distance": "weight distance (Fig. 2)"}
    fields = {o.name: o.fields for o in PAPER.outputs}
    assert fields["distance_fits"] == fields["distance"] == ["fit_min_step"]
    assert fields["arm_accuracy"] == ["published"] and fields["table1"] == []
