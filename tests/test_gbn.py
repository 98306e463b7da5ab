import pytest
import torch
from torch import nn

from largebatch.gbn import GhostBatchNorm


@pytest.mark.parametrize("shape", [(32, 5), (32, 5, 7), (32, 5, 4, 3)])
def test_training_normalises_each_ghost_batch_on_its_own(shape):
    torch.manual_seed(0)
    x = torch.randn(*shape) * 3 + 1
    gbn = GhostBatchNorm(5, ghost_batch_size=8)
    with torch.no_grad():
        gbn.weight.uniform_(0.5, 2)
        gbn.bias.uniform_(-1, 1)
    ref = nn.BatchNorm1d(5) if len(shape) < 4 else nn.BatchNorm2d(5)
    ref.load_state_dict(gbn.state_dict())
    y = gbn(x)
    expected = torch.cat([ref(chunk) for chunk in x.split(8)])  # one BN pass per ghost batch, in order
    torch.testing.assert_close(y, expected)
    # running statistics equal those after the sequential per-chunk updates
    torch.testing.assert_close(gbn.running_mean, ref.running_mean)
    torch.testing.assert_close(gbn.running_var, ref.running_var)
    assert int(gbn.num_batches_tracked) == 4 == int(ref.num_batches_tracked)
    # each ghost batch is zero-mean per channel (affine off) -> differs from whole-batch BN
    plain = GhostBatchNorm(5, 8, affine=False)
    z = plain(x).reshape(4, 8, 5, -1)
    assert z.mean(dim=(1, 3)).abs().max() < 1e-5


def test_eval_uses_running_statistics():
    gbn = GhostBatchNorm(3, 4)
    gbn.running_mean.fill_(2.0)
    gbn.running_var.fill_(4.0)
    gbn.eval()
    x = torch.full((6, 3), 4.0)
    torch.testing.assert_close(gbn(x), torch.full((6, 3), 1.0), atol=1e-4, rtol=0)


def test_ghost_size_equal_to_batch_is_batchnorm():
    torch.manual_seed(1)
    x = torch.randn(16, 4, 5)
    gbn, bn = GhostBatchNorm(4, 16), nn.BatchNorm1d(4)
    torch.testing.assert_close(gbn(x), bn(x))
    torch.testing.assert_close(gbn.running_var, bn.running_var)


def test_uneven_batch_uses_a_smaller_last_ghost_batch():
    torch.manual_seed(2)
    x = torch.randn(20, 3)
    gbn, ref = GhostBatchNorm(3, 8, affine=False), nn.BatchNorm1d(3, affine=False)
    expected = torch.cat([ref(c) for c in (x[:8], x[8:16], x[16:])])
    torch.testing.assert_close(gbn(x), expected)


def test_is_a_batchnorm_for_swa_utils():
    assert isinstance(GhostBatchNorm(2, 2), nn.modules.batchnorm._BatchNorm)
