"""Tests for largebatch.ba (gradient variance under Batch Augmentation).

Reference problem with a closed form: the "model" multiplies its input by a parameter
vector w and the loss is the batch mean of sum(out), so the gradient of one sample is
the sample itself, g(x) = x.  With additive Gaussian augmentation x' = x + sigma*eps the
per-sample gradient is x + sigma*eps: the between-sample variance a is the population
variance of the data (trace) and the augmentation variance b = d*sigma^2.  Then, exactly
(sampling without replacement from N),

    V_ba(M)       = a (N-B)/(N-1) / B        + b / (M B)
    V_distinct(M) = a (N-MB)/(N-1) / (M B)   + b / (M B).
"""

import pytest
import torch
from torch import nn

from largebatch.ba import (
    fit_variance_model,
    gradient_variance,
    gradient_variance_table,
    initial_model,
    predicted_variance,
)
from largebatch.train import train_run

torch.set_num_threads(1)


class Scale(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.w = nn.Parameter(torch.ones(d))

    def forward(self, x):
        return x * self.w


def sum_loss(out, y):
    return out.sum(1).mean()


def noise(sigma):
    def aug(x, g):
        return x + sigma * torch.randn(x.shape, generator=g)

    return aug


def data(n=500, d=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g) * torch.linspace(0.5, 2.0, d)
    return x, torch.zeros(n, dtype=torch.long)


def test_matches_closed_form_for_both_schemes():
    n, d, b, sigma = 500, 20, 8, 1.5
    x, y = data(n, d)
    a_true = float(((x - x.mean(0)) ** 2).sum(1).mean())
    b_true = d * sigma**2
    model = Scale(d)
    for scheme in ("ba", "distinct"):
        for m in (1, 4, 16):
            r = gradient_variance(model, x, y, b, m, noise(sigma), scheme=scheme, draws=600, seed=1,
                                  loss_fn=sum_loss)
            exact = predicted_variance(a_true, b_true, b, m, n, scheme)
            assert r["trace_cov"] == pytest.approx(exact, rel=0.12), (scheme, m)
            assert r["examples"] == b * m and r["distinct"] == (b * m if scheme == "distinct" else b)


def test_ba_variance_lies_between_distinct_and_single():
    x, y = data()
    model = Scale(20)
    rows = gradient_variance_table(model, x, y, 8, [1, 8], noise(1.5), draws=300, seed=2, loss_fn=sum_loss)
    v = {(r["scheme"], r["multiplicity"]): r["trace_cov"] for r in rows}
    assert v[("ba", 1)] == v[("distinct", 1)]  # same scheme and seed at M = 1
    assert v[("distinct", 8)] < 0.5 * v[("ba", 8)]
    assert v[("ba", 8)] < 0.8 * v[("ba", 1)]


def test_fit_recovers_between_and_augmentation_variance():
    n, d, sigma = 500, 20, 1.5
    x, y = data(n, d)
    a_true = float(((x - x.mean(0)) ** 2).sum(1).mean())
    rows = gradient_variance_table(Scale(d), x, y, 8, [1, 2, 4, 8, 16], noise(sigma), draws=400, seed=3,
                                   loss_fn=sum_loss)
    fit = fit_variance_model(rows, n)
    assert fit["a"] == pytest.approx(a_true, rel=0.15)
    assert fit["b"] == pytest.approx(d * sigma**2, rel=0.15)
    assert fit["aug_share"] == pytest.approx(d * sigma**2 / (a_true + d * sigma**2), abs=0.05)
    assert fit["max_rel_residual"] < 0.2
    # noiseless synthetic input is fitted exactly
    synth = [{"scheme": s, "batch_size": 8, "multiplicity": m,
              "trace_cov": predicted_variance(3.0, 7.0, 8, m, n, s)} for s in ("ba", "distinct") for m in (1, 4, 16)]
    exact = fit_variance_model(synth, n)
    assert exact["a"] == pytest.approx(3.0) and exact["b"] == pytest.approx(7.0)
    assert exact["max_rel_residual"] < 1e-9


def test_identical_copies_do_not_reduce_variance_even_with_batchnorm():
    # without augmentation the M copies are identical: the BA gradient equals the gradient of
    # the B samples (batch-norm statistics of repeated rows are unchanged), for every draw
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3))
    g = torch.Generator().manual_seed(5)
    x, y = torch.randn(200, 10, generator=g), torch.randint(0, 3, (200,), generator=g)
    one = gradient_variance(model, x, y, 16, 1, "none", draws=20, seed=7)
    four = gradient_variance(model, x, y, 16, 4, "none", draws=20, seed=7)
    assert four["trace_cov"] == pytest.approx(one["trace_cov"], rel=1e-4)
    assert one["trace_cov"] > 0


def test_model_state_is_left_untouched():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(10, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3)).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = torch.randn(100, 10), torch.randint(0, 3, (100,))
    gradient_variance(model, x, y, 10, 2, noise(0.1), draws=4)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not model.training and all(p.grad is None for p in model.parameters())


def test_rejects_impossible_requests():
    x, y = data(50, 4)
    with pytest.raises(ValueError, match="distinct samples"):
        gradient_variance(Scale(4), x, y, 10, 8, None, scheme="distinct", loss_fn=sum_loss)
    with pytest.raises(ValueError, match="draws"):
        gradient_variance(Scale(4), x, y, 10, 2, None, draws=1, loss_fn=sum_loss)
    with pytest.raises(ValueError, match="scheme"):
        gradient_variance(Scale(4), x, y, 10, 2, None, scheme="other", loss_fn=sum_loss)


def test_initial_model_is_the_engines_initialisation(tiny_data, tmp_path):
    spec = {"dataset": "mnist1d", "model": "mlp", "width": 16, "depth": 2, "optimizer": "sgd", "lr": 0.05,
            "batch_size": 32, "steps": 1, "seed": 4, "augment": "mnist1d", "multiplicity": 2}
    metrics = train_run(spec, tiny_data, tmp_path, log=lambda *a: None, checkpoint_every_s=None)
    init = initial_model(spec, tiny_data.input_shape, tiny_data.num_classes)
    final = torch.load(tmp_path / "model.pt", weights_only=True)
    params = dict(init.named_parameters())
    dist = sum(((final[k] - p.detach()) ** 2).sum() for k, p in params.items()) ** 0.5
    # the engine's w_dist after one step is the distance from its own initial weights
    assert float(dist) == pytest.approx(metrics["w_dist"], rel=1e-5)
    assert metrics["w_dist"] > 0
