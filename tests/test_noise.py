"""Tests for largebatch.noise (McCandlish et al. 2018 gradient noise scale).

Reference problem: linear least squares, model f(x) = x.w (nn.Linear without
bias), loss 0.5*(x.w - y)^2 averaged over the batch.  The per-example
gradients g_n = (x_n.w - y_n) x_n are known in closed form, hence so are
G = mean_n g_n and tr(Sigma_pop) = mean_n |g_n - G|^2.

Indices are sampled without replacement from the N examples, for which

    E[trace_sigma] = tr(Sigma_pop) * N/(N-1)
    E[g2]          = |G|^2 - tr(Sigma_pop)/(N-1)

(see the module docstring of largebatch.noise); the tests compare with these
exact expectations.  All tests use fixed seeds, so they are deterministic.
"""

import math

import pytest
import torch
from torch import nn

from largebatch.noise import (
    critical_batch_from_noise,
    gradient_noise_scale,
    gradient_noise_stats,
)

torch.set_num_threads(1)


def half_mse(out, y):
    return 0.5 * ((out.squeeze(-1) - y) ** 2).mean()


def linear_problem(n, d, offset, seed=0):
    """Return (model, X, y, |G|^2, tr(Sigma_pop), per-example gradients)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    w_true = torch.randn(d, generator=g, dtype=torch.float64)
    y = x @ w_true + 0.5 * torch.randn(n, generator=g, dtype=torch.float64)
    w = w_true + offset * torch.randn(d, generator=g, dtype=torch.float64)
    model = nn.Linear(d, 1, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(w[None, :])
    per_example = (x @ w - y)[:, None] * x
    big_g = per_example.mean(0)
    trace_pop = float(((per_example - big_g) ** 2).sum(1).mean())
    return model, x, y, float(big_g @ big_g), trace_pop, per_example


def expected_moments(n, g2, trace_pop):
    """Exact expectations of the two estimates under sampling without replacement."""
    return g2 - trace_pop / (n - 1), trace_pop * n / (n - 1)


def test_matches_exact_linear_regression():
    n, b_small, b_big = 1000, 4, 64
    model, x, y, g2, trace_pop, _ = linear_problem(n, 4, offset=0.5)
    e_g2, e_trace = expected_moments(n, g2, trace_pop)

    stats = gradient_noise_stats(model, half_mse, x, y, b_small, b_big, n_estimates=4000, seed=0)

    assert stats["n_estimates"] == 4000
    assert stats["g2"] == pytest.approx(e_g2, rel=0.05)
    assert stats["trace_sigma"] == pytest.approx(e_trace, rel=0.10)
    assert stats["b_simple"] == pytest.approx(e_trace / e_g2, rel=0.12)
    # With N = 1000 the finite-population correction is < 1 %, so the estimate
    # also matches the textbook B_simple = tr(Sigma)/|G|^2.
    assert stats["b_simple"] == pytest.approx(trace_pop / g2, rel=0.12)
    # ratio of the averages, by construction
    assert stats["b_simple"] == pytest.approx(stats["trace_sigma"] / stats["g2"], rel=1e-12)
    # the standard errors are consistent with the observed deviations
    assert abs(stats["trace_sigma"] - e_trace) < 4 * stats["trace_sigma_se"]
    assert abs(stats["g2"] - e_g2) < 4 * stats["g2_se"]

    # the scalar wrapper returns the same number
    b = gradient_noise_scale(model, half_mse, x, y, b_small, b_big, n_estimates=4000, seed=0)
    assert b == stats["b_simple"]
    assert critical_batch_from_noise(b) == pytest.approx(b)
    assert isinstance(critical_batch_from_noise(b), float)


def test_finite_population_correction_is_the_exact_expectation():
    # Small N and b_big close to N: the naive |G|^2 is 50 % above E[g2].
    n, b_small, b_big = 64, 8, 56
    model, x, y, g2, trace_pop, _ = linear_problem(n, 3, offset=0.15)
    e_g2, e_trace = expected_moments(n, g2, trace_pop)
    assert e_g2 < 0.75 * g2  # the correction is large in this setting

    stats = gradient_noise_stats(model, half_mse, x, y, b_small, b_big, n_estimates=4000, seed=0)
    assert stats["g2"] == pytest.approx(e_g2, rel=0.06)
    assert abs(stats["g2"] / g2 - 1) > 0.2  # clearly not the uncorrected |G|^2
    assert stats["trace_sigma"] == pytest.approx(e_trace, rel=0.12)
    assert stats["b_simple"] == pytest.approx(e_trace / e_g2, rel=0.15)


def test_exact_single_draws_follow_documented_sampling_scheme():
    """Replicate the documented scheme by hand: a seeded permutation consumed
    in consecutive chunks of b_big (reshuffled when exhausted), G_small = first
    b_small of each chunk, estimates averaged separately then divided."""
    n, b_small, b_big, n_est, seed = 10, 2, 4, 3, 7
    model, x, y, _, _, per_example = linear_problem(n, 3, offset=1.0, seed=3)

    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(n, generator=gen)
    pos = 0
    g2_list, tr_list = [], []
    for _ in range(n_est):
        if pos + b_big > n:
            perm = torch.randperm(n, generator=gen)
            pos = 0
        idx = perm[pos : pos + b_big]
        pos += b_big
        gb = per_example[idx].mean(0)
        gs = per_example[idx[:b_small]].mean(0)
        nb, ns = float(gb @ gb), float(gs @ gs)
        g2_list.append((b_big * nb - b_small * ns) / (b_big - b_small))
        tr_list.append((ns - nb) / (1 / b_small - 1 / b_big))
    g2_avg = sum(g2_list) / n_est
    tr_avg = sum(tr_list) / n_est

    stats = gradient_noise_stats(model, half_mse, x, y, b_small, b_big, n_estimates=n_est, seed=seed)
    assert stats["g2"] == pytest.approx(g2_avg, rel=1e-9)
    assert stats["trace_sigma"] == pytest.approx(tr_avg, rel=1e-9)
    assert stats["b_simple"] == pytest.approx(tr_avg / g2_avg, rel=1e-9)
    # ... and not the (biased) average of per-draw ratios
    mean_of_ratios = sum(t / g for t, g in zip(tr_list, g2_list)) / n_est
    assert not math.isclose(stats["b_simple"], mean_of_ratios, rel_tol=1e-3)
    # a different seed gives different draws
    other = gradient_noise_stats(model, half_mse, x, y, b_small, b_big, n_estimates=n_est, seed=seed + 1)
    assert other["g2"] != stats["g2"]


def test_no_gradient_noise_gives_zero_trace():
    # All examples identical => all per-example gradients equal G, Sigma = 0.
    n, d = 50, 3
    x = torch.ones(n, d, dtype=torch.float64) * torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    y = torch.full((n,), 3.0, dtype=torch.float64)
    model = nn.Linear(d, 1, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[0.3, 0.1, -0.2]], dtype=torch.float64))
    w = model.weight.detach()[0]
    g = (x[0] @ w - y[0]) * x[0]
    stats = gradient_noise_stats(model, half_mse, x, y, 3, 20, n_estimates=5)
    assert stats["g2"] == pytest.approx(float(g @ g), rel=1e-9)
    assert abs(stats["trace_sigma"]) < 1e-9 * float(g @ g)
    assert abs(stats["b_simple"]) < 1e-9


class SmallNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(5, 8)
        self.bn = nn.BatchNorm1d(8)
        self.drop = nn.Dropout(0.2)
        self.fc2 = nn.Linear(8, 3)

    def forward(self, x):
        return self.fc2(self.drop(torch.relu(self.bn(self.fc1(x)))))


@pytest.mark.parametrize("train_mode", [True, False])
def test_model_state_params_buffers_and_grads_unchanged(train_mode):
    torch.manual_seed(0)
    model = SmallNet()
    model.train(train_mode)
    x = torch.randn(80, 5)
    y = torch.randint(0, 3, (80,))
    # give the model a non-trivial state: some grads set, others None,
    # running stats away from their initial values
    with torch.no_grad():
        model.bn.running_mean.uniform_(-1, 1)
        model.bn.running_var.uniform_(0.5, 2)
        model.bn.num_batches_tracked.fill_(17)
    model.fc1.weight.grad = torch.full_like(model.fc1.weight, 0.25)
    model.fc2.bias.grad = torch.arange(3, dtype=torch.float32)

    params_before = {k: v.detach().clone() for k, v in model.named_parameters()}
    buffers_before = {k: v.detach().clone() for k, v in model.named_buffers()}
    grads_before = {
        k: (None if v.grad is None else v.grad.clone()) for k, v in model.named_parameters()
    }

    b = gradient_noise_scale(model, nn.CrossEntropyLoss(), x, y, 8, 32, n_estimates=4, seed=1)
    assert isinstance(b, float)

    assert model.training is train_mode
    for k, v in model.named_parameters():
        assert torch.equal(v.detach(), params_before[k]), k
        if grads_before[k] is None:
            assert v.grad is None, k
        else:
            assert torch.equal(v.grad, grads_before[k]), k
    for k, v in model.named_buffers():
        assert torch.equal(v, buffers_before[k]), k


@pytest.mark.parametrize(
    "b_small, b_big, match",
    [
        (32, 32, "b_small"),
        (64, 32, "b_small"),
        (8, 101, "b_big"),
        (0, 16, "b_small"),
    ],
)
def test_invalid_batch_sizes_raise(b_small, b_big, match):
    model, x, y, *_ = linear_problem(100, 3, offset=0.5)
    with pytest.raises(ValueError, match=match):
        gradient_noise_scale(model, half_mse, x, y, b_small, b_big)
    with pytest.raises(ValueError, match=match):
        gradient_noise_stats(model, half_mse, x, y, b_small, b_big)


def test_b_big_equal_to_dataset_size_is_allowed():
    model, x, y, *_ = linear_problem(40, 3, offset=0.5)
    stats = gradient_noise_stats(model, half_mse, x, y, 4, 40, n_estimates=3)
    assert math.isfinite(stats["g2"]) and math.isfinite(stats["trace_sigma"])
