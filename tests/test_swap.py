"""Tests for largebatch.swap: SWAP phase 3 (weight averaging + BN recomputation), its evaluation
on real worker checkpoints, the k-worker averages and the loss-plane geometry."""

import copy

import pytest
import torch
from torch import nn

from largebatch.models import build_model
from largebatch.spec import normalize
from largebatch.swap import (
    average_curve,
    average_models,
    average_state_dicts,
    bn_modules,
    loss_plane,
    plane_basis,
    recompute_bn,
    swap_average,
)
from largebatch.train import evaluate

torch.set_num_threads(1)


def mlp(seed: int, d_in: int = 6, hidden: int = 5, d_out: int = 3) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(d_in, hidden),
        nn.BatchNorm1d(hidden),
        nn.ReLU(),
        nn.Linear(hidden, d_out),
    )


def data(n: int = 64, d_in: int = 6, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d_in, generator=g) * 2.0 + 0.5


def perturbed_workers(w: int = 3) -> list[nn.Module]:
    """W workers with distinct parameters and distinct BN statistics."""
    models = []
    for i in range(w):
        m = mlp(100 + i)
        m.train()
        with torch.no_grad():
            m(data(32, seed=i) * (i + 1))  # give each worker its own running stats
        models.append(m)
    return models


# ---------------------------------------------------------------------------
# averaging
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("w", [1, 2, 5])
def test_average_identical_models_is_identity(w):
    base = mlp(0)
    models = [copy.deepcopy(base) for _ in range(w)]
    avg = average_models(models)
    assert avg is not base and all(avg is not m for m in models)
    sd_avg, sd_base = avg.state_dict(), base.state_dict()
    assert sd_avg.keys() == sd_base.keys()
    for k in sd_base:
        assert torch.equal(sd_avg[k], sd_base[k]), k
    x = data()
    base.eval(), avg.eval()
    assert torch.equal(avg(x), base(x))


def test_average_known_weights_gives_mean():
    a, b = mlp(0), mlp(1)
    with torch.no_grad():
        for p in a.parameters():
            p.fill_(1.0)
        for p in b.parameters():
            p.fill_(3.0)
    avg = average_models([a, b])
    for p in avg.parameters():
        assert torch.equal(p, torch.full_like(p, 2.0))
    # inputs untouched
    assert all(torch.equal(p, torch.ones_like(p)) for p in a.parameters())
    assert all(torch.equal(p, torch.full_like(p, 3.0)) for p in b.parameters())


def test_average_random_workers_matches_arithmetic_mean():
    models = perturbed_workers(4)
    avg = average_models(models)
    for name, p in avg.named_parameters():
        expected = torch.stack([dict(m.named_parameters())[name] for m in models]).mean(
            0
        )
        torch.testing.assert_close(p, expected, rtol=1e-6, atol=1e-7)
        assert p.requires_grad


def test_average_buffers_are_not_averaged_but_copied_from_last_worker():
    # documented AveragedModel(use_buffers=False) behaviour
    models = perturbed_workers(3)
    avg = average_models(models)
    for name, buf in avg.named_buffers():
        assert torch.equal(buf, dict(models[-1].named_buffers())[name]), name


def test_average_rejects_mismatched_or_empty():
    with pytest.raises(ValueError):
        average_models([])
    with pytest.raises(ValueError):
        average_models([mlp(0), mlp(1, hidden=7)])
    with pytest.raises(TypeError):
        average_models([mlp(0), {"not": "a module"}])


def test_average_state_dicts_equals_average_models():
    models = perturbed_workers(3)
    states = [copy.deepcopy(m.state_dict()) for m in models]
    a = average_models(models)
    b = average_state_dicts(states, lambda: mlp(999))
    sa, sb = a.state_dict(), b.state_dict()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
    # the states are not modified
    for s, m in zip(states, models):
        for k, v in m.state_dict().items():
            assert torch.equal(s[k], v)


# ---------------------------------------------------------------------------
# BN recomputation
# ---------------------------------------------------------------------------
def pre_bn(model: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model[0](x)


def test_recompute_bn_single_batch_matches_data_statistics():
    avg = average_models(perturbed_workers(3))
    avg.eval()
    bn = avg[1]
    momentum_before = bn.momentum
    x = data(200)
    out = recompute_bn(avg, x, batch_size=None)
    assert out is avg
    act = pre_bn(avg, x)  # activations feeding BN under the averaged weights
    torch.testing.assert_close(bn.running_mean, act.mean(0), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(
        bn.running_var, act.var(0, unbiased=True), rtol=1e-5, atol=1e-6
    )
    assert int(bn.num_batches_tracked) == 1
    # mode and momentum restored
    assert not avg.training and not bn.training
    assert bn.momentum == momentum_before


def test_recompute_bn_with_batch_equal_to_data_size():
    avg = average_models(perturbed_workers(2))
    x = data(128)
    recompute_bn(avg, x, batch_size=128)
    act = pre_bn(avg, x)
    torch.testing.assert_close(avg[1].running_mean, act.mean(0), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(avg[1].running_var, act.var(0), rtol=1e-5, atol=1e-6)
    assert int(avg[1].num_batches_tracked) == 1
    assert avg.training  # was in train mode, stays in train mode


def test_recompute_bn_replaces_stale_statistics():
    models = perturbed_workers(3)
    avg = average_models(models)
    stale_mean = avg[1].running_mean.clone()
    x = data(100, seed=5)
    recompute_bn(avg, x, batch_size=None)
    assert not torch.allclose(avg[1].running_mean, stale_mean)
    # differs from every worker's own statistics too
    for m in models:
        assert not torch.allclose(avg[1].running_mean, m[1].running_mean)


def test_recompute_bn_multiple_batches_averages_per_batch_stats():
    avg = average_models(perturbed_workers(2))
    x = data(100)
    recompute_bn(avg, x, batch_size=30)  # batches 30, 30, 30, 10 (equal weight each)
    act = pre_bn(avg, x)
    chunks = act.split(30)
    mean = torch.stack([c.mean(0) for c in chunks]).mean(0)
    var = torch.stack([c.var(0) for c in chunks]).mean(0)
    torch.testing.assert_close(avg[1].running_mean, mean, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(avg[1].running_var, var, rtol=1e-5, atol=1e-6)
    assert int(avg[1].num_batches_tracked) == 4


def test_recompute_bn_merges_single_row_remainder():
    avg = average_models(perturbed_workers(2))
    x = data(31)
    recompute_bn(avg, x, batch_size=10)  # 10, 10, 11 instead of 10, 10, 10, 1
    assert int(avg[1].num_batches_tracked) == 3
    act = pre_bn(avg, x)
    chunks = [act[:10], act[10:20], act[20:]]
    torch.testing.assert_close(
        avg[1].running_mean,
        torch.stack([c.mean(0) for c in chunks]).mean(0),
        rtol=1e-5,
        atol=1e-6,
    )


def test_recompute_bn_accepts_iterable_of_tuples():
    a = average_models(perturbed_workers(2))
    b = copy.deepcopy(a)
    x = data(90)
    y = torch.zeros(90, dtype=torch.long)
    recompute_bn(a, x, batch_size=30)
    recompute_bn(b, list(zip(x.split(30), y.split(30))))
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k]), k


def test_recompute_bn_without_bn_is_noop():
    model = nn.Sequential(nn.Linear(6, 3))
    before = copy.deepcopy(model.state_dict())
    recompute_bn(model, data(10), batch_size=4)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])
    assert bn_modules(model) == []


class GhostBN1d(nn.BatchNorm1d):
    """Minimal ghost batch norm: normalises fixed-size chunks of the batch separately."""

    def __init__(self, num_features: int, ghost_size: int = 16, **kw):
        super().__init__(num_features, **kw)
        self.ghost_size = ghost_size

    def forward(self, x):
        if not self.training:
            return super().forward(x)
        return torch.cat(
            [super(GhostBN1d, self).forward(c) for c in x.split(self.ghost_size)]
        )


def test_recompute_bn_custom_batchnorm_subclass():
    def factory(seed):
        torch.manual_seed(seed)
        return nn.Sequential(
            nn.Linear(6, 5), GhostBN1d(5, ghost_size=16), nn.ReLU(), nn.Linear(5, 2)
        )

    avg = average_models([factory(s) for s in range(3)])
    ghost = avg[1]
    assert bn_modules(avg) == [ghost]
    ghost.running_mean.fill_(7.0)  # stale garbage
    x = data(64)
    recompute_bn(avg, x, batch_size=None)
    act = pre_bn(avg, x)
    ghosts = act.split(16)
    assert int(ghost.num_batches_tracked) == 4  # one update per ghost batch
    # equal-size ghost batches: the mean of ghost means is the data mean
    torch.testing.assert_close(ghost.running_mean, act.mean(0), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(
        ghost.running_var,
        torch.stack([c.var(0) for c in ghosts]).mean(0),
        rtol=1e-5,
        atol=1e-6,
    )


def test_recompute_bn_batchnorm2d_and_dropout_mode_restored():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.Dropout(0.5)
    )
    model.eval()
    x = torch.randn(20, 3, 6, 6)
    recompute_bn(model, x, batch_size=None)
    with torch.no_grad():
        act = model[0](x)
    torch.testing.assert_close(
        model[1].running_mean, act.mean((0, 2, 3)), rtol=1e-5, atol=1e-6
    )
    torch.testing.assert_close(
        model[1].running_var,
        act.transpose(0, 1).flatten(1).var(1),
        rtol=1e-4,
        atol=1e-6,
    )
    assert not any(m.training for m in model.modules())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_recompute_bn_cpu_inputs_cuda_model():
    avg = average_models([m.cuda() for m in perturbed_workers(2)])
    x = data(64)
    recompute_bn(avg, x, batch_size=None)  # inputs moved to the model's device
    act = pre_bn(avg, x.cuda())
    torch.testing.assert_close(avg[1].running_mean, act.mean(0), rtol=1e-4, atol=1e-5)
    assert avg[1].running_mean.is_cuda


# ---------------------------------------------------------------------------
# the SWAP experiment on checkpoints: phase 3, k-worker averages, loss plane
# ---------------------------------------------------------------------------
SPEC = normalize({"dataset": "mnist1d", "model": "mlp", "width": 16, "depth": 2, "epochs": 1, "eval_batch": 512})


def models(data, n, seed=0):
    torch.manual_seed(seed)
    return [build_model(SPEC, data.input_shape, data.num_classes) for _ in range(n)]


def test_average_of_identical_workers_is_the_worker_with_data_bn_stats(tiny_data):
    (worker,) = models(tiny_data, 1)
    states = [copy.deepcopy(worker.state_dict()) for _ in range(4)]
    avg, metrics = swap_average(states, SPEC, tiny_data, bn_batch=None)
    for name, p in avg.named_parameters():
        assert torch.equal(p, dict(worker.named_parameters())[name]), name
    # BN statistics = the statistics of the training data under the averaged weights
    bn = avg.net[2]
    with torch.no_grad():
        act = avg.net[1](avg.net[0](tiny_data.x_train))
    torch.testing.assert_close(bn.running_mean, act.mean(0), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(bn.running_var, act.var(0), rtol=1e-4, atol=1e-5)
    loss, acc = evaluate(avg, tiny_data.x_test, tiny_data.y_test)
    assert metrics["test_acc"] == acc and metrics["test_loss"] == loss and metrics["workers"] == 4


def test_average_curve_ends_at_the_full_average(tiny_data):
    states = [m.state_dict() for m in models(tiny_data, 3)]
    curve = average_curve(states, SPEC, tiny_data, bn_batch=50)
    assert [r["k"] for r in curve] == [1, 2, 3]
    _, metrics = swap_average(states, SPEC, tiny_data, bn_batch=50)
    assert curve[-1]["test_acc"] == metrics["test_acc"]
    # k = 1 is worker 1 with its BN statistics recomputed
    one = copy.deepcopy(models(tiny_data, 1)[0])
    one.load_state_dict(states[0])
    recompute_bn(one, tiny_data.x_train, batch_size=50)
    assert curve[0]["test_acc"] == evaluate(one, tiny_data.x_test, tiny_data.y_test)[1]


def test_plane_basis_reproduces_the_three_points():
    g = torch.Generator().manual_seed(0)
    o, a, b = (torch.randn(50, generator=g, dtype=torch.float64) for _ in range(3))
    u, v, coords = plane_basis(o, a, b)
    assert abs(float(u @ u) - 1) < 1e-12 and abs(float(v @ v) - 1) < 1e-12 and abs(float(u @ v)) < 1e-12
    for point, (x, y) in zip((o, a, b), coords):
        torch.testing.assert_close(o + x * u + y * v, point)
    assert coords[0] == (0.0, 0.0) and coords[1][1] == 0.0 and coords[2][1] > 0
    with pytest.raises(ValueError, match="collinear"):
        plane_basis(o, a, o + 2 * (a - o))


def test_loss_plane_grid_hits_the_models(tiny_data):
    origin, d1, d2 = models(tiny_data, 3, seed=1)
    so = origin.state_dict()
    sa = {k: (v + 0.3 * d1.state_dict()[k] if v.is_floating_point() else v) for k, v in so.items()}
    sb = {k: (v + 0.1 * d1.state_dict()[k] + 0.3 * d2.state_dict()[k] if v.is_floating_point() else v)
          for k, v in so.items()}
    rows, points = loss_plane({"o": so, "a": sa, "b": sb}, SPEC, tiny_data, grid=3, margin=0.0, bn_batch=None)
    assert len(rows) == 9 and [p["label"] for p in points] == ["o", "a", "b"]
    # with no margin the grid's first corner is the origin model itself
    corner = min(rows, key=lambda r: (r["x"], r["y"]))
    assert corner["x"] == pytest.approx(0.0, abs=1e-9) and corner["y"] == pytest.approx(0.0, abs=1e-9)
    m = copy.deepcopy(origin)
    m.load_state_dict(so)
    recompute_bn(m, tiny_data.x_train, batch_size=None)
    loss, acc = evaluate(m, tiny_data.x_test, tiny_data.y_test)
    assert corner["test_loss"] == pytest.approx(loss, rel=1e-4) and corner["test_err"] == pytest.approx(1 - acc)
    assert len({round(r["train_loss"], 6) for r in rows}) > 1  # the loss varies over the plane
