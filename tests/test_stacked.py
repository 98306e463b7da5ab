"""The direct batched MLP forward and the grouped conv-net forward equal vmap(functional_call) on
the same stacked state (losses, gradients, BatchNorm running statistics and their counters)."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call, stack_module_state, vmap

from largebatch.models import build_model
from largebatch.spec import normalize
from largebatch.stacked import grouped_losses, stacked_losses


def _stack(spec_keys, K=3, shape=(1, 40)):
    models = []
    for k in range(K):
        torch.manual_seed(k)
        models.append(build_model(normalize({"model": "mlp", "batch_size": 8, "epochs": 1, **spec_keys}), shape, 10))
    params, buffers = stack_module_state(models)
    return models, params, buffers


@pytest.mark.parametrize("norm", ["batch", "none"])
def test_losses_grads_and_running_stats_match_vmap(norm):
    models, params, buffers = _stack({"width": 16, "depth": 2, "norm": norm})
    x, y = torch.randn(3, 8, 1, 40), torch.randint(0, 10, (3, 8))
    _check_against_vmap(models, params, buffers, stacked_losses(models[0]), x, y, float32=True)


def test_other_networks_keep_the_generic_path():
    conv = build_model(normalize({"model": "shallow_conv", "width": 4, "batch_size": 8, "epochs": 1}), (1, 40), 10)
    drop = build_model(normalize({"model": "mlp", "width": 8, "dropout": 0.5, "batch_size": 8, "epochs": 1}), (1, 40), 10)
    assert stacked_losses(conv) is None and stacked_losses(drop) is None


def _check_against_vmap(models, params, buffers, ours_fn, x, y, float32=False):
    """Losses, gradients and BatchNorm buffers of ``ours_fn`` against vmap(functional_call) on the
    same stacked state: to float32 rounding, or (float64 inputs) to 1e-9."""
    tol = {"losses": (1e-5, 1e-6), "grads": (1e-4, 1e-6), "buffers": (1e-5, 1e-6)} if float32 else \
        {"losses": (1e-9, 1e-12), "grads": (1e-7, 1e-9), "buffers": (1e-9, 1e-12)}
    base = copy.deepcopy(models[0]).to("meta").train()
    ref_fn = vmap(lambda p, b, xx, yy: F.cross_entropy(functional_call(base, (p, b), (xx,)), yy))
    p1 = {n: t.detach().clone().requires_grad_() for n, t in params.items()}
    p2 = {n: t.detach().clone().requires_grad_() for n, t in params.items()}
    b1 = {n: t.clone() for n, t in buffers.items()}
    b2 = {n: t.clone() for n, t in buffers.items()}
    ref = ref_fn(p1, b1, x, y)
    ours = ours_fn(p2, b2, x, y)
    torch.testing.assert_close(ours, ref, rtol=tol["losses"][0], atol=tol["losses"][1])
    ref.sum().backward()
    ours.sum().backward()
    for n in p1:
        torch.testing.assert_close(p2[n].grad, p1[n].grad, rtol=tol["grads"][0], atol=tol["grads"][1])
    assert set(b2) == set(b1)
    for n in b1:
        torch.testing.assert_close(b2[n], b1[n], rtol=tol["buffers"][0], atol=tol["buffers"][1])
    return b2


@pytest.mark.parametrize("model,extra", [("shallow_conv", {"width": 4}), ("resnet", {"width": 4, "depth": 8}),
                                         ("vgg", {"width": 8})])
@pytest.mark.parametrize("norm", ["batch", "none"])
@pytest.mark.parametrize("shape", [(1, 40), (3, 8, 8)])
def test_grouped_conv_stack_matches_vmap(model, extra, norm, shape):
    # in float64: in float32 the two paths round differently, and BatchNorm over 5 samples at VGG's
    # 1 x 1 positions amplifies that to visible gradient differences (in float64 they agree to 1e-15)
    K, B = 4, 5
    models, params, buffers = _stack({"model": model, "norm": norm, **extra}, K=K, shape=shape)
    params = {n: t.double() for n, t in params.items()}
    buffers = {n: t.double() if t.is_floating_point() else t for n, t in buffers.items()}
    models = [m.double() for m in models]
    x, y = torch.randn(K, B, *shape, dtype=torch.float64), torch.randint(0, 10, (K, B))
    fn = grouped_losses(models[0], K)
    assert fn is not None
    after = _check_against_vmap(models, params, buffers, fn, x, y)
    if norm == "batch":  # every run's statistics moved from its own batch, and its counter by one
        counters = [n for n in after if n.endswith("num_batches_tracked")]
        assert counters and all(after[n].tolist() == [1] * K for n in counters)
        means = [n for n in after if n.endswith("running_mean")]
        assert all(not torch.allclose(after[n][0], after[n][1]) for n in means)


def test_grouped_path_refuses_what_it_cannot_stack():
    def net(**keys):
        return build_model(normalize({"model": "shallow_conv", "width": 4, "batch_size": 8, "epochs": 1, **keys}),
                           (1, 40), 10)

    assert grouped_losses(net(dropout=0.5), 3) is None  # per-run dropout masks
    assert grouped_losses(net(norm="ghost", ghost_batch_size=4), 3) is None  # ghost BN: vmap path
    assert grouped_losses(net(), 3) is not None  # dropout 0 is an identity
    mlp = build_model(normalize({"model": "mlp", "width": 8, "batch_size": 8, "epochs": 1}), (1, 40), 10)
    assert grouped_losses(mlp, 3) is None  # MLPs have their own batched path
