"""Tests for largebatch.sharpness (Keskar et al. 2017 Metric 2.1 and friends)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from largebatch import sharpness
from largebatch.sharpness import (
    epsilon_sharpness,
    hessian_max_eigenvalue,
    interpolate_state,
    parametric_curve,
    random_subspace_matrix,
)

torch.set_num_threads(1)


# --------------------------------------------------------------------------- #
# Fixtures / helpers
# --------------------------------------------------------------------------- #
class VecModel(nn.Module):
    """A 'model' whose output is its own parameter vector (ignores inputs)."""

    def __init__(self, x: torch.Tensor):
        super().__init__()
        self.w = nn.Parameter(x.clone())

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.w


def quadratic_loss(h: torch.Tensor, m: torch.Tensor, c: float):
    """f(w) = 0.5 * sum_i h_i (w_i - m_i)^2 + c (ignores targets)."""

    def loss_fn(out, targets):
        return 0.5 * (h * (out - m) ** 2).sum() + c

    return loss_fn


def linear_loss(g: torch.Tensor, c: float):
    def loss_fn(out, targets):
        return (g * out).sum() + c

    return loss_fn


def dummy_data(n: int = 6):
    return torch.zeros(n, 1), torch.zeros(n)


def make_mlp(seed: int = 0, bn: bool = True, dtype=torch.float32) -> nn.Module:
    torch.manual_seed(seed)
    layers: list[nn.Module] = [nn.Linear(5, 8)]
    if bn:
        layers.append(nn.BatchNorm1d(8))
    layers += [nn.Tanh(), nn.Linear(8, 3)]
    return nn.Sequential(*layers).to(dtype)


def classification_data(n: int = 40, seed: int = 1, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 5, generator=g, dtype=dtype)
    y = torch.randint(0, 3, (n,), generator=g)
    return x, y


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_state_equal(model: nn.Module, snap: dict[str, torch.Tensor]):
    state = model.state_dict()
    assert set(state) == set(snap)
    for k, v in state.items():
        assert torch.equal(v, snap[k]), k


# --------------------------------------------------------------------------- #
# epsilon_sharpness: known answers
# --------------------------------------------------------------------------- #
def _quadratic_case(dtype, eps, delta_scale):
    x = torch.tensor([0.0, 1.5, -2.0, 0.3, -0.7], dtype=dtype)
    # x - m: offset from the minimiser m (L-BFGS-B needs a nonzero gradient at
    # y = 0 to move; see test_zero_gradient_start_gives_zero).
    delta = eps * delta_scale * torch.tensor([1.0, -2.0, 1.0, -1.0, 3.0], dtype=dtype)
    h = torch.tensor([1.0, 2.0, 3.0, 10.0, 0.5], dtype=dtype)
    c = 0.25
    r = eps * (x.abs() + 1)
    got = epsilon_sharpness(VecModel(x), quadratic_loss(h, x - delta, c), *dummy_data(),
                            epsilon=eps)
    return got, x, delta, h, c, r


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("eps", [1e-3, 5e-2])
def test_full_space_quadratic_matches_corner_value(dtype, eps):
    # Convex separable quadratic: the max over the box is at the corner pointing
    # away from the minimiser m in every coordinate.
    got, x, delta, h, c, r = _quadratic_case(dtype, eps, delta_scale=0.1)
    f0 = 0.5 * float((h * delta**2).sum()) + c
    fmax = 0.5 * float((h * (delta.abs() + r) ** 2).sum()) + c
    expected = (fmax - f0) / (1 + f0) * 100
    # The model evaluates f in its own dtype: allow a few ulps of f (scaled like phi).
    ulp = torch.finfo(dtype).eps * fmax / (1 + f0) * 100
    assert got == pytest.approx(expected, rel=1e-8, abs=4 * ulp)
    assert abs(got - expected) < 2e-3 * expected


@pytest.mark.parametrize("eps", [1e-3, 5e-2])
def test_full_space_quadratic_near_minimiser_closed_form(eps):
    # With |x - m| << eps the value is the closed form at the minimiser itself:
    # 0.5 * sum_i h_i eps^2 (|x_i| + 1)^2 / (1 + c) * 100.
    got, x, delta, h, c, r = _quadratic_case(torch.float64, eps, delta_scale=1e-3)
    closed_form = 0.5 * float((h * r**2).sum()) / (1 + c) * 100
    assert got == pytest.approx(closed_form, rel=1e-2)


def test_full_space_linear_matches_corner_value():
    x = torch.tensor([0.5, -1.0, 2.0, 0.0], dtype=torch.float64)
    g = torch.tensor([0.3, -2.0, 1.0, -0.1], dtype=torch.float64)
    c, eps = 1.0, 1e-2
    model = VecModel(x)
    f0 = float(g @ x) + c
    expected = eps * float((g.abs() * (x.abs() + 1)).sum()) / (1 + f0) * 100
    got = epsilon_sharpness(model, linear_loss(g, c), *dummy_data(), epsilon=eps)
    assert got == pytest.approx(expected, rel=1e-8)


def test_subspace_linear_matches_corner_value():
    # f = g^T (x + A y): max over the box is sum_j |(A^T g)_j| * eps(|(A^+ x)_j| + 1).
    n, p, eps, c = 30, 4, 1e-2, 0.5
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(n, generator=gen, dtype=torch.float64)
    g = torch.randn(n, generator=gen, dtype=torch.float64)
    model = VecModel(x)
    a = random_subspace_matrix(n, p, seed=7, dtype=torch.float64)
    r = eps * ((torch.linalg.pinv(a) @ x).abs() + 1)
    f0 = float(g @ x) + c
    expected = float(((a.T @ g).abs() * r).sum()) / (1 + f0) * 100
    got = epsilon_sharpness(
        model, linear_loss(g, c), *dummy_data(), epsilon=eps, subspace_dim=p, seed=7
    )
    assert got == pytest.approx(expected, rel=1e-8)


def test_zero_gradient_start_gives_zero():
    # Documented limitation: at an exact stationary point L-BFGS-B cannot leave y = 0.
    x = torch.zeros(3)
    model = VecModel(x)
    got = epsilon_sharpness(
        model, quadratic_loss(torch.ones(3), x, 0.0), *dummy_data(), epsilon=1e-2
    )
    assert got == 0.0


def test_chunking_does_not_change_result():
    x = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    loss_fn = quadratic_loss(torch.tensor([1.0, 4.0, 2.0], dtype=torch.float64), x - 0.01, 0.1)
    a = epsilon_sharpness(VecModel(x), loss_fn, *dummy_data(7), epsilon=1e-2)
    b = epsilon_sharpness(VecModel(x), loss_fn, *dummy_data(7), epsilon=1e-2, batch_size=3)
    assert a == pytest.approx(b, rel=1e-10)

    model = make_mlp(bn=True, dtype=torch.float64).eval()
    xs, ys = classification_data(dtype=torch.float64)
    ce = nn.functional.cross_entropy
    full = epsilon_sharpness(model, ce, xs, ys, epsilon=1e-3, subspace_dim=5)
    chunked = epsilon_sharpness(model, ce, xs, ys, epsilon=1e-3, subspace_dim=5, batch_size=11)
    assert full > 0
    assert chunked == pytest.approx(full, rel=1e-6)


# --------------------------------------------------------------------------- #
# epsilon_sharpness: subspace box, seeds
# --------------------------------------------------------------------------- #
def test_subspace_points_respect_box_and_seed():
    n, p, eps = 20, 5, 1e-2
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, generator=gen, dtype=torch.float64)
    h = torch.rand(n, generator=gen, dtype=torch.float64) * 5 + 0.1
    m = x + 0.05 * torch.randn(n, generator=gen, dtype=torch.float64)
    base_loss = quadratic_loss(h, m, 0.2)
    seen: list[torch.Tensor] = []

    def recording_loss(out, targets):
        seen.append(out.detach().clone())
        return base_loss(out, targets)

    model = VecModel(x)
    val = epsilon_sharpness(model, recording_loss, *dummy_data(), epsilon=eps,
                            subspace_dim=p, seed=11)
    assert val > 0
    assert len(seen) >= 2

    a = random_subspace_matrix(n, p, seed=11, dtype=torch.float64)
    assert torch.allclose(a.norm(dim=0), torch.ones(p, dtype=torch.float64))
    assert (a >= 0).all() and (a < 1).all()
    bound = eps * ((torch.linalg.pinv(a) @ x).abs() + 1) + 1e-9
    for w in seen:
        d = w - x
        y = torch.linalg.lstsq(a, d.unsqueeze(1)).solution.squeeze(1)
        assert torch.allclose(a @ y, d, atol=1e-12)  # displacement lies in range(A)
        assert (y.abs() <= bound).all()
    # The maximiser reached the boundary of the box somewhere.
    assert any(
        (torch.linalg.lstsq(a, (w - x).unsqueeze(1)).solution.squeeze(1).abs() >= bound - 2e-9).any()
        for w in seen
    )

    again = epsilon_sharpness(VecModel(x), base_loss, *dummy_data(), epsilon=eps,
                              subspace_dim=p, seed=11)
    other = epsilon_sharpness(VecModel(x), base_loss, *dummy_data(), epsilon=eps,
                              subspace_dim=p, seed=12)
    assert again == val
    assert other != val
    assert not torch.equal(random_subspace_matrix(n, p, seed=11),
                           random_subspace_matrix(n, p, seed=12))
    assert torch.equal(random_subspace_matrix(n, p, seed=11),
                       random_subspace_matrix(n, p, seed=11))


def test_pinv_normal_equations_path_matches_direct(monkeypatch):
    a = random_subspace_matrix(300, 7, seed=2, dtype=torch.float64)
    x = torch.randn(300, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    direct = sharpness._pinv_apply(a, x)
    monkeypatch.setattr(sharpness, "_PINV_DIRECT_MAX_N", 0)
    monkeypatch.setattr(sharpness, "_ROW_BLOCK", 64)
    normal = sharpness._pinv_apply(a, x)
    assert torch.allclose(direct, normal, rtol=1e-8, atol=1e-10)


# --------------------------------------------------------------------------- #
# Model state is left untouched
# --------------------------------------------------------------------------- #
def test_model_params_and_bn_buffers_unchanged_train_mode():
    model = make_mlp(bn=True).train()
    xs, ys = classification_data()
    before = snapshot(model)
    ce = nn.functional.cross_entropy
    v_full = epsilon_sharpness(model, ce, xs, ys, epsilon=1e-3, batch_size=16)
    v_sub = epsilon_sharpness(model, ce, xs, ys, epsilon=1e-3, subspace_dim=4)
    lam = hessian_max_eigenvalue(model, ce, xs, ys, iters=5, batch_size=16)
    assert v_full >= 0 and v_sub >= 0 and np.isfinite(lam)
    assert model.training and all(m.training for m in model.modules())
    assert_state_equal(model, before)
    assert all(p.grad is None for p in model.parameters())


def test_model_restored_on_exception():
    model = make_mlp(bn=True).train()
    xs, ys = classification_data()
    before = snapshot(model)
    calls = {"n": 0}

    def flaky_loss(out, targets):
        calls["n"] += 1
        if calls["n"] > 3:
            raise RuntimeError("boom")
        return nn.functional.cross_entropy(out, targets)

    with pytest.raises(RuntimeError, match="boom"):
        epsilon_sharpness(model, flaky_loss, xs, ys, epsilon=1e-2)
    assert_state_equal(model, before)
    calls["n"] = 0
    with pytest.raises(RuntimeError, match="boom"):
        hessian_max_eigenvalue(model, flaky_loss, xs, ys, batch_size=10)
    assert_state_equal(model, before)


def test_eval_mode_uses_running_stats():
    # In eval mode BN uses running stats, so the loss is independent of chunking;
    # the sharpness must be positive for a generic point.
    model = make_mlp(bn=True)
    xs, ys = classification_data()
    with torch.no_grad():
        model(xs)  # populate running stats
    model.eval()
    before = snapshot(model)
    v = epsilon_sharpness(model, nn.functional.cross_entropy, xs, ys, epsilon=1e-3)
    assert v > 0
    assert not model.training
    assert_state_equal(model, before)


# --------------------------------------------------------------------------- #
# hessian_max_eigenvalue
# --------------------------------------------------------------------------- #
def test_hessian_quadratic_equals_max_diag():
    h = torch.tensor([1.0, 2.0, 3.0, 10.0, 0.5])
    x = torch.tensor([0.1, -0.2, 0.3, 0.4, 0.0])
    model = VecModel(x)
    lam = hessian_max_eigenvalue(model, quadratic_loss(h, torch.zeros(5), 1.0),
                                 *dummy_data(), iters=50, tol=1e-8)
    assert lam == pytest.approx(10.0, rel=1e-5)
    # Largest magnitude, signed.
    lam_neg = hessian_max_eigenvalue(model, quadratic_loss(-h, torch.zeros(5), 1.0),
                                     *dummy_data(), iters=50, tol=1e-8)
    assert lam_neg == pytest.approx(-10.0, rel=1e-5)
    # Linear loss has zero curvature.
    assert hessian_max_eigenvalue(model, linear_loss(h, 0.0), *dummy_data()) == 0.0


def test_hessian_mlp_matches_full_hessian():
    model = make_mlp(seed=0, bn=False, dtype=torch.float64)
    xs, ys = classification_data(dtype=torch.float64)
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    numels = [p.numel() for p in model.parameters()]
    x0 = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def f(w):
        params = {n: c.view(s) for n, c, s in zip(names, torch.split(w, numels), shapes)}
        out = torch.func.functional_call(model, params, (xs,))
        return nn.functional.cross_entropy(out, ys)

    hess = torch.autograd.functional.hessian(f, x0)
    eig = torch.linalg.eigvalsh(hess)
    expected = float(eig[eig.abs().argmax()])
    lam = hessian_max_eigenvalue(model, nn.functional.cross_entropy, xs, ys,
                                 iters=2000, tol=1e-12)
    assert lam == pytest.approx(expected, rel=1e-3)
    lam_chunked = hessian_max_eigenvalue(model, nn.functional.cross_entropy, xs, ys,
                                         iters=2000, tol=1e-12, batch_size=13)
    assert lam_chunked == pytest.approx(expected, rel=1e-3)


# --------------------------------------------------------------------------- #
# interpolate_state / parametric_curve
# --------------------------------------------------------------------------- #
def _two_bn_states():
    a = make_mlp(seed=0, bn=True)
    b = make_mlp(seed=1, bn=True)
    xs, _ = classification_data()
    with torch.no_grad():
        a.train()(xs)
        b.train()(xs)
        b.train()(xs)
    return a, snapshot(a), snapshot(b)


def test_interpolate_state_endpoints_and_midpoint():
    _, sa, sb = _two_bn_states()
    s0 = interpolate_state(sa, sb, 0.0)
    s1 = interpolate_state(sa, sb, 1.0)
    sm = interpolate_state(sa, sb, 0.5)
    s2 = interpolate_state(sa, sb, 2.0)
    for k in sa:
        if sa[k].is_floating_point():
            assert torch.equal(s0[k], sa[k]), k
            assert torch.equal(s1[k], sb[k]), k
            assert torch.allclose(sm[k], (sa[k] + sb[k]) / 2, atol=1e-7), k
            assert torch.allclose(s2[k], 2 * sb[k] - sa[k], atol=1e-6), k
        else:
            assert sa[k] != sb[k]  # num_batches_tracked: 1 vs 2
            for s in (s0, s1, sm, s2):
                assert torch.equal(s[k], sa[k]) and s[k].dtype == sa[k].dtype, k
    # Inputs not modified.
    _, sa2, sb2 = _two_bn_states()
    for k in sa:
        assert torch.equal(sa[k], sa2[k]) and torch.equal(sb[k], sb2[k])


def test_parametric_curve_rows_and_restores_model():
    model, sa, sb = _two_bn_states()
    model = make_mlp(seed=5, bn=True).eval()
    before = snapshot(model)
    xs, ys = classification_data()
    key = "0.weight"

    def evaluate(m):
        m.train()  # evaluate may change the mode and BN stats; must be undone
        with torch.no_grad():
            out = m(xs)
        return {"loss": float(nn.functional.cross_entropy(out, ys)),
                "w00": float(m.state_dict()[key][0, 0])}

    alphas = np.linspace(-1, 2, 7)
    rows = parametric_curve(model, sa, sb, alphas, evaluate)
    assert [r["alpha"] for r in rows] == pytest.approx(list(alphas))
    for r in rows:
        a = r["alpha"]
        assert set(r) == {"alpha", "loss", "w00"}
        expected = (1 - a) * float(sa[key][0, 0]) + a * float(sb[key][0, 0])
        assert r["w00"] == pytest.approx(expected, abs=1e-6)
    assert_state_equal(model, before)
    assert not model.training


# --------------------------------------------------------------------------- #
# return_point and the maximiser probe (analysis.sharpness_probe)
# --------------------------------------------------------------------------- #
def test_return_point_gives_the_maximiser_inside_the_box():
    model = make_mlp(bn=False, dtype=torch.float64)
    xs, ys = classification_data(dtype=torch.float64)
    ce = nn.functional.cross_entropy
    x = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    value, d = epsilon_sharpness(model, ce, xs, ys, epsilon=1e-2, return_point=True)
    assert value == epsilon_sharpness(model, ce, xs, ys, epsilon=1e-2) and value > 0
    assert d.shape == x.shape and bool((d.abs() <= 1e-2 * (x.abs() + 1) + 1e-12).all())
    with torch.no_grad():  # the loss at x + d is the one the value was computed from
        f0 = float(ce(model(xs), ys))
        torch.nn.utils.vector_to_parameters(x + d, model.parameters())
        f_d = float(ce(model(xs), ys))
    assert (f_d - f0) / (1 + f0) * 100 == pytest.approx(value, rel=1e-9)


def test_probe_evaluates_each_subset_maximiser_on_the_whole_set():
    from largebatch.analysis.sharpness_probe import probe

    model = make_mlp(bn=True, dtype=torch.float64)
    xs, ys = classification_data(n=60, dtype=torch.float64)
    snap = snapshot(model)
    rows = probe(model, xs, ys, [20, 60], epsilon=1e-2, eval_bn="batch", batch=None)
    assert [r["samples"] for r in rows] == [20, 60]
    # on the whole set the transfer is the value itself; a subset's maximiser is a point of
    # the same box, so its rise on the whole set is a (finite) achieved value
    assert rows[1]["transfer"] == pytest.approx(rows[1]["value"], rel=1e-9)
    assert all(np.isfinite(r["transfer"]) for r in rows) and rows[0]["value"] > 0
    assert_state_equal(model, snap)
