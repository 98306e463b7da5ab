"""The direct batched MLP forward equals vmap(functional_call) on the same stacked state."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call, stack_module_state, vmap

from largebatch.models import build_model
from largebatch.spec import normalize
from largebatch.stacked import stacked_losses


def _stack(spec_keys, K=3):
    models = []
    for k in range(K):
        torch.manual_seed(k)
        models.append(build_model(normalize({"model": "mlp", "batch_size": 8, "epochs": 1, **spec_keys}), (1, 40), 10))
    params, buffers = stack_module_state(models)
    return models, params, buffers


@pytest.mark.parametrize("norm", ["batch", "none"])
def test_losses_grads_and_running_stats_match_vmap(norm):
    models, params, buffers = _stack({"width": 16, "depth": 2, "norm": norm})
    x, y = torch.randn(3, 8, 1, 40), torch.randint(0, 10, (3, 8))
    base = copy.deepcopy(models[0]).to("meta").train()
    ref_fn = vmap(lambda p, b, xx, yy: F.cross_entropy(functional_call(base, (p, b), (xx,)), yy))
    p1 = {n: t.detach().clone().requires_grad_() for n, t in params.items()}
    p2 = {n: t.detach().clone().requires_grad_() for n, t in params.items()}
    b1 = {n: t.clone() for n, t in buffers.items()}
    b2 = {n: t.clone() for n, t in buffers.items()}
    ref = ref_fn(p1, b1, x, y)
    ours = stacked_losses(models[0])(p2, b2, x, y)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-6)
    ref.sum().backward()
    ours.sum().backward()
    for n in p1:
        torch.testing.assert_close(p2[n].grad, p1[n].grad, rtol=1e-4, atol=1e-6)
    for n in b1:
        torch.testing.assert_close(b2[n], b1[n], rtol=1e-5, atol=1e-6)


def test_other_networks_keep_the_generic_path():
    conv = build_model(normalize({"model": "shallow_conv", "width": 4, "batch_size": 8, "epochs": 1}), (1, 40), 10)
    drop = build_model(normalize({"model": "mlp", "width": 8, "dropout": 0.5, "batch_size": 8, "epochs": 1}), (1, 40), 10)
    assert stacked_losses(conv) is None and stacked_losses(drop) is None
