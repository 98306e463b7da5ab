"""Tests for largebatch.scaling (Golmant et al. 2018 / McCandlish et al. 2018 analysis)."""

import math

import numpy as np
import pandas as pd
import pytest

from largebatch.scaling import (
    critical_batch_size,
    fit_steps_model,
    scale_lr,
    speedup_table,
    steps_to_threshold,
)

# ---------------------------------------------------------------- steps_to_threshold


@pytest.fixture
def history():
    return pd.DataFrame(
        {
            "step": [0, 100, 200, 300, 400, 500],
            "loss": [2.0, 1.0, 0.5, 0.3, 0.35, 0.2],
            "acc": [0.1, 0.5, 0.7, 0.85, 0.8, 0.9],
        }
    )


def test_steps_to_threshold_min_mode(history):
    assert steps_to_threshold(history, "loss", 0.5) == 200.0  # equality counts
    assert steps_to_threshold(history, "loss", 0.49) == 300.0
    assert steps_to_threshold(history, "loss", 0.32) == 300.0  # first hit, not the last
    assert steps_to_threshold(history, "loss", 5.0) == 0.0
    assert steps_to_threshold(history, "loss", 0.25) == 500.0
    assert isinstance(steps_to_threshold(history, "loss", 0.5), float)


def test_steps_to_threshold_never_reached_is_nan(history):
    assert math.isnan(steps_to_threshold(history, "loss", 0.1))
    assert math.isnan(steps_to_threshold(history, "acc", 0.95, mode="max"))
    assert math.isnan(steps_to_threshold(history.iloc[:0], "loss", 0.1))


def test_steps_to_threshold_max_mode(history):
    assert steps_to_threshold(history, "acc", 0.8, mode="max") == 300.0
    assert steps_to_threshold(history, "acc", 0.86, mode="max") == 500.0
    # in min mode the same column would be "reached" immediately
    assert steps_to_threshold(history, "acc", 0.8, mode="min") == 0.0


def test_steps_to_threshold_custom_step_col_unsorted_and_nan():
    h = pd.DataFrame({"it": [30, 10, 20, 40], "val_loss": [0.4, np.nan, 0.6, 0.1]})
    # rows are ordered by step; NaN never counts as reaching the threshold
    assert steps_to_threshold(h, "val_loss", 0.5, step_col="it") == 30.0
    assert steps_to_threshold(h, "val_loss", 0.7, step_col="it") == 20.0


def test_steps_to_threshold_bad_args(history):
    with pytest.raises(ValueError, match="mode"):
        steps_to_threshold(history, "loss", 0.5, mode="median")
    with pytest.raises(KeyError):
        steps_to_threshold(history, "nope", 0.5)


# --------------------------------------------------------------------- speedup_table


def test_speedup_table_values():
    df = pd.DataFrame({"batch_size": [256, 64, 128, 512], "steps": [250.0, 1000.0, 500.0, 400.0]})
    out = speedup_table(df)
    assert list(out["batch_size"]) == [64, 128, 256, 512]
    np.testing.assert_allclose(out["speedup"], [1, 2, 4, 2.5])
    np.testing.assert_allclose(out["perfect"], [1, 2, 4, 8])
    np.testing.assert_allclose(out["efficiency"], [1, 1, 1, 2.5 / 8])
    np.testing.assert_allclose(out["examples"], [64000, 64000, 64000, 204800])
    # the input is not modified
    assert "speedup" not in df.columns


def test_speedup_table_reference_is_smallest_finite_batch():
    df = pd.DataFrame(
        {"bs": [32, 64, 128, 256], "T": [np.nan, 1000.0, 600.0, np.inf]}
    )
    out = speedup_table(df, batch_col="bs", steps_col="T")
    assert math.isnan(out["speedup"].iloc[0])  # missing stays missing
    np.testing.assert_allclose(out["speedup"].iloc[1:3], [1.0, 1000 / 600])
    np.testing.assert_allclose(out["perfect"].iloc[1:], [1, 2, 4])
    assert out["speedup"].iloc[3] == 0.0  # never reached
    assert out["efficiency"].iloc[3] == 0.0
    assert out["examples"].iloc[3] == np.inf


def test_speedup_table_groups():
    df = pd.DataFrame(
        {
            "threshold": [0.5, 0.5, 0.1, 0.1],
            "batch_size": [64, 128, 64, 128],
            "steps": [100.0, 50.0, 400.0, 300.0],
        }
    )
    with pytest.raises(ValueError, match="by="):
        speedup_table(df)
    out = speedup_table(df, by="threshold").set_index(["threshold", "batch_size"])
    assert out.loc[(0.5, 128), "speedup"] == pytest.approx(2.0)
    assert out.loc[(0.1, 128), "speedup"] == pytest.approx(4 / 3)
    assert out.loc[(0.1, 64), "speedup"] == pytest.approx(1.0)


# --------------------------------------------------------------- critical_batch_size


def kink_curve(kink=256):
    b = np.array([16, 32, 64, 128, 256, 512, 1024, 2048], dtype=float)
    t = np.where(b <= kink, 16 * 10000 / b, 16 * 10000 / kink)  # perfect, then flat
    return b, t


def test_critical_batch_kink_curve():
    b, t = kink_curve(256)
    eff = speedup_table(pd.DataFrame({"batch_size": b, "steps": t}))["efficiency"].to_numpy()
    np.testing.assert_allclose(eff, [1, 1, 1, 1, 1, 0.5, 0.25, 0.125])
    crit = critical_batch_size(b, t)
    # Perfect scaling up to the kink, no gain beyond it: eff(B) = 256/B for
    # B >= 256, so eff = 0.5 exactly at B = 2*256 -- the documented definition
    # gives B_kink/efficiency, the next grid point after the kink.
    assert 256 <= crit <= 512
    assert crit == pytest.approx(512.0)
    # a stricter threshold moves the estimate towards the kink, within the
    # log-linear interpolation between 256 (eff 1) and 512 (eff 0.5)
    crit_08 = critical_batch_size(b, t, efficiency=0.8)
    assert crit_08 == pytest.approx(2 ** (8 + 0.2 / 0.5))
    assert 256 < crit_08 < 512
    assert critical_batch_size(b, t, efficiency=1.0) == pytest.approx(256.0)
    # the kink location scales the answer
    assert critical_batch_size(*kink_curve(64)) == pytest.approx(128.0)


def test_critical_batch_log_linear_interpolation():
    # eff: 1 at 128, 0.25 at 256 -> crosses 0.5 at 2/3 of the way in log2(B)
    b = [64, 128, 256]
    t = [1000.0, 500.0, 1000.0]
    assert critical_batch_size(b, t) == pytest.approx(2 ** (7 + 2 / 3))
    # order of the input does not matter
    assert critical_batch_size(b[::-1], t[::-1]) == pytest.approx(2 ** (7 + 2 / 3))


def test_critical_batch_first_crossing_ignores_later_recovery():
    b = [64, 128, 256, 512]
    t = [1000.0, 500.0, 1000.0, 100.0]  # eff at 512 is 1.25 (noise), ignored
    assert critical_batch_size(b, t) == pytest.approx(2 ** (7 + 2 / 3))


def test_critical_batch_mccandlish_model():
    # S(B) = S_min (1 + B_noise/B): efficiency 0.5 is reached exactly at
    # B_noise + 2*B0, i.e. at B_noise when B0 << B_noise.
    s_min, b_noise = 5000.0, 1000.0
    b = 2.0 ** np.arange(0, 17)
    t = s_min * (1 + b_noise / b)
    assert critical_batch_size(b, t) == pytest.approx(b_noise + 2 * b[0], rel=0.01)
    b2, t2 = b[4:], t[4:]  # B0 = 16
    assert critical_batch_size(b2, t2) == pytest.approx(b_noise + 2 * 16, rel=0.01)


def test_critical_batch_edge_cases():
    # fewer than 2 finite points
    assert math.isnan(critical_batch_size([64], [100.0]))
    assert math.isnan(critical_batch_size([64, 128], [100.0, np.nan]))
    assert math.isnan(critical_batch_size([], []))
    # never drops below the threshold -> largest batch (a lower bound)
    assert critical_batch_size([64, 128, 256], [400.0, 200.0, 100.0]) == 256.0
    # NaN = missing point (ignored); inf = never reached (efficiency 0)
    assert critical_batch_size([64, 128, 256, 512], [100.0, 50.0, np.nan, 20.0]) == 512.0
    assert critical_batch_size([64, 128, 256], [100.0, 50.0, np.inf]) == pytest.approx(2**7.5)
    # smaller batches without a finite T are not the reference
    assert critical_batch_size([32, 64, 128], [np.nan, 100.0, 50.0]) == 128.0
    with pytest.raises(ValueError):
        critical_batch_size([64, 128], [1.0, 2.0], efficiency=0.0)
    with pytest.raises(ValueError):
        critical_batch_size([64, 128], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="unique"):
        critical_batch_size([64, 64, 128], [1.0, 2.0, 3.0])


# ------------------------------------------------------------------- fit_steps_model


@pytest.mark.parametrize("relative", [True, False])
def test_fit_steps_model_recovers_exact_parameters(relative):
    s_min, b_noise = 1234.0, 300.0
    b = np.array([8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096], dtype=float)
    t = s_min * (1 + b_noise / b)
    fit = fit_steps_model(b, t, relative=relative)
    assert fit["s_min"] == pytest.approx(s_min, rel=1e-8)
    assert fit["b_noise"] == pytest.approx(b_noise, rel=1e-8)
    assert fit["b_crit"] == pytest.approx(b_noise, rel=1e-8)
    assert fit["e_min"] == pytest.approx(s_min * b_noise, rel=1e-8)
    assert fit["n_points"] == len(b)
    assert fit["rms_rel_residual"] < 1e-10


def test_fit_steps_model_ignores_nonfinite_and_tolerates_noise():
    s_min, b_noise = 2000.0, 500.0
    b = 2.0 ** np.arange(3, 14)
    t = s_min * (1 + b_noise / b)
    rng = np.random.default_rng(0)
    noisy = t * np.exp(rng.normal(0, 0.03, size=t.size))
    b_all = np.append(b, [16384.0, 32768.0])
    t_all = np.append(noisy, [np.nan, np.inf])
    fit = fit_steps_model(b_all, t_all)
    assert fit["n_points"] == len(b)
    assert fit["s_min"] == pytest.approx(s_min, rel=0.1)
    assert fit["b_noise"] == pytest.approx(b_noise, rel=0.15)
    assert 0.005 < fit["rms_rel_residual"] < 0.1


def test_fit_steps_model_too_few_points():
    fit = fit_steps_model([64, 128], [100.0, np.nan])
    assert fit["n_points"] == 1
    assert all(math.isnan(fit[k]) for k in ("s_min", "e_min", "b_noise", "b_crit"))


def test_fit_and_critical_batch_agree_on_model_data():
    s_min, b_noise = 800.0, 2000.0
    b = 2.0 ** np.arange(2, 18)
    t = s_min * (1 + b_noise / b)
    fit = fit_steps_model(b, t)
    assert critical_batch_size(b, t) == pytest.approx(fit["b_noise"] + 2 * b[0], rel=0.01)


# ------------------------------------------------------------------------- scale_lr


def test_scale_lr_rules():
    assert scale_lr(0.1, 1024, 128, "none") == pytest.approx(0.1)
    assert scale_lr(0.1, 1024, 128, "linear") == pytest.approx(0.8)
    assert scale_lr(0.1, 1024, 128, "sqrt") == pytest.approx(0.1 * math.sqrt(8))
    assert scale_lr(0.1, 32, 128, "linear") == pytest.approx(0.025)
    assert scale_lr(0.1, 128, 128, "sqrt") == pytest.approx(0.1)
    with pytest.raises(ValueError, match="rule"):
        scale_lr(0.1, 256, 128, "cubic")
    with pytest.raises(ValueError):
        scale_lr(0.1, 0, 128, "linear")
