"""Tests for largebatch.augment (batch-wise augmentation and Batch Augmentation)."""

import pytest
import torch

from largebatch.augment import (
    AUGMENTERS,
    augment_1d,
    augment_image,
    batch_augment,
    crop_flip,
    crop_flip_cutout,
    get_augmenter,
    no_augment,
)

torch.set_num_threads(1)


def gen(seed: int = 0, device: str = "cpu") -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(seed)
    return g


def signals(n: int = 16, length: int = 40, seed: int = 123) -> torch.Tensor:
    # distinct, well-separated smooth-ish signals
    t = torch.Generator().manual_seed(seed)
    return torch.randn(n, length, generator=t).cumsum(-1)


def images(
    n: int = 8, c: int = 3, h: int = 12, w: int = 10, seed: int = 7
) -> torch.Tensor:
    t = torch.Generator().manual_seed(seed)
    return (
        torch.rand(n, c, h, w, generator=t) + 0.5
    )  # strictly positive: zeros mark padding/holes


# ---------------------------------------------------------------------------
# augment_1d
# ---------------------------------------------------------------------------
def test_augment_1d_shift_only_is_edge_padded_shift():
    x = signals()
    out = augment_1d(x, gen(1), max_shift=3, scale_range=(1.0, 1.0), noise_std=0.0)
    n, length = x.shape
    pos = torch.arange(length)
    found = []
    for i in range(n):
        matches = [
            s
            for s in range(-3, 4)
            if torch.equal(out[i], x[i][(pos - s).clamp(0, length - 1)])
        ]
        assert (
            len(matches) == 1
        ), f"sample {i} is not an edge-padded shift of its source"
        found.append(matches[0])
    # per-sample independent shifts: not all the same
    assert len(set(found)) > 1


def test_augment_1d_shape_and_channel_dim():
    x = signals(10, 30)
    out2 = augment_1d(x, gen(3))
    out3 = augment_1d(x.unsqueeze(1), gen(3))
    assert out2.shape == x.shape and out3.shape == (10, 1, 30)
    # same draws for (N, L) and (N, 1, L)
    torch.testing.assert_close(out3.squeeze(1), out2)


def test_augment_1d_multichannel_shares_shift():
    x = torch.randn(6, 2, 25, generator=torch.Generator().manual_seed(0)).cumsum(-1)
    out = augment_1d(x, gen(5), max_shift=4, scale_range=(1.0, 1.0), noise_std=0.0)
    pos = torch.arange(25)
    for i in range(6):
        ok = [
            s
            for s in range(-4, 5)
            if torch.equal(out[i], x[i][:, (pos - s).clamp(0, 24)])
        ]
        assert ok


def test_augment_1d_scale_and_noise_statistics():
    x = torch.ones(4000, 8)
    scaled = augment_1d(x, gen(0), max_shift=0, scale_range=(0.5, 1.5), noise_std=0.0)
    # one scale per sample, within range, roughly uniform
    assert torch.all(scaled.std(dim=1) == 0)
    s = scaled[:, 0]
    assert s.min() >= 0.5 and s.max() <= 1.5
    assert abs(s.mean().item() - 1.0) < 0.03
    noisy = augment_1d(x, gen(0), max_shift=0, scale_range=(1.0, 1.0), noise_std=0.2)
    resid = noisy - x
    assert abs(resid.std().item() - 0.2) < 0.01
    assert abs(resid.mean().item()) < 0.01


def test_augment_1d_reproducible_and_dtype():
    x = signals().to(torch.float64)
    a = augment_1d(x, gen(42))
    b = augment_1d(x, gen(42))
    c = augment_1d(x, gen(43))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert a.dtype == torch.float64 and a.device == x.device
    # input untouched
    assert torch.equal(x, signals().to(torch.float64))


def test_augment_1d_rejects_bad_input():
    with pytest.raises(ValueError):
        augment_1d(torch.zeros(2, 3, 4, 5), gen())
    with pytest.raises(TypeError):
        augment_1d(torch.zeros(2, 5, dtype=torch.long), gen())
    with pytest.raises(TypeError):
        augment_1d(torch.zeros(2, 5), 0)


# ---------------------------------------------------------------------------
# augment_image
# ---------------------------------------------------------------------------
def _find_crop(src: torch.Tensor, out: torch.Tensor, p: int):
    """Return all (dy, dx, flipped) such that out == window of zero-padded src."""
    c, h, w = src.shape
    padded = torch.nn.functional.pad(src, (p, p, p, p))
    hits = []
    for dy in range(2 * p + 1):
        for dx in range(2 * p + 1):
            win = padded[:, dy : dy + h, dx : dx + w]
            if torch.equal(out, win):
                hits.append((dy, dx, False))
            if torch.equal(out, win.flip(-1)):
                hits.append((dy, dx, True))
    return hits


def test_crop_only_windows():
    x = images(n=12)
    out = augment_image(x, gen(0), crop_padding=3, flip=False, cutout=0)
    assert out.shape == x.shape
    offsets = set()
    for i in range(len(x)):
        hits = [h for h in _find_crop(x[i], out[i], 3) if not h[2]]
        assert len(hits) == 1
        offsets.add(hits[0][:2])
    assert len(offsets) > 1  # per-sample offsets


def test_flip_only_is_exact_mirror():
    x = images(n=40)
    out = augment_image(x, gen(0), crop_padding=0, flip=True, cutout=0)
    flipped = torch.tensor([torch.equal(out[i], x[i].flip(-1)) for i in range(len(x))])
    kept = torch.tensor([torch.equal(out[i], x[i]) for i in range(len(x))])
    assert torch.all(flipped ^ kept)  # each sample is exactly one of the two
    assert 5 < int(flipped.sum()) < 35  # p = 0.5


def test_crop_and_flip_combined():
    x = images(n=10)
    out = crop_flip(x, gen(9), crop_padding=2)
    for i in range(len(x)):
        assert _find_crop(x[i], out[i], 2)


def test_cutout_zeroes_exactly_a_clipped_square():
    n, h, w, size = 200, 12, 10, 5
    x = images(n=n, h=h, w=w)
    out = augment_image(x, gen(4), crop_padding=0, flip=False, cutout=size)
    zero = out == 0  # x is strictly positive
    # same hole in every channel
    assert torch.all(zero == zero[:, :1])
    clipped = 0
    for i in range(n):
        z = zero[i, 0]
        rows = z.any(1).nonzero().flatten()
        cols = z.any(0).nonzero().flatten()
        assert len(rows) > 0 and len(cols) > 0
        r0, r1, c0, c1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
        # the zero set is exactly a rectangle ...
        box = torch.zeros_like(z)
        box[r0:r1, c0:c1] = True
        assert torch.equal(z, box)
        # ... of side `size`, unless clipped by the border
        hh, ww = int(r1 - r0), int(c1 - c0)
        assert hh <= size and ww <= size
        assert hh == size or r0 == 0 or r1 == h
        assert ww == size or c0 == 0 or c1 == w
        clipped += (hh < size) or (ww < size)
        # outside the hole the image is untouched
        assert torch.equal(out[i][:, ~z], x[i][:, ~z])
    assert 0 < clipped < n  # both clipped and full holes occur


def test_crop_flip_cutout_defaults_and_shape_dtype():
    x = (images(n=4, h=32, w=32) * 100).to(torch.uint8)
    out = crop_flip_cutout(x, gen(0))
    assert out.shape == x.shape and out.dtype == torch.uint8
    # a 16x16 hole (possibly clipped) plus padding zeros: some zeros must exist
    assert (out == 0).any()


def test_image_reproducible_and_seed_dependent():
    x = images()
    a = augment_image(x, gen(1), cutout=4)
    b = augment_image(x, gen(1), cutout=4)
    c = augment_image(x, gen(2), cutout=4)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_image_rejects_bad_shape():
    with pytest.raises(ValueError):
        augment_image(torch.zeros(3, 8, 8), gen())


# ---------------------------------------------------------------------------
# registry
# ---------------------------------------------------------------------------
def test_registry_and_get_augmenter():
    assert set(AUGMENTERS) == {"none", "mnist1d", "crop_flip", "crop_flip_cutout"}
    assert get_augmenter("mnist1d") is augment_1d
    assert get_augmenter(None) is no_augment
    x = images()
    assert torch.equal(get_augmenter("none")(x, gen()), x)
    f = get_augmenter("crop_flip_cutout", cutout=3, crop_padding=1)
    torch.testing.assert_close(
        f(x, gen(5)), augment_image(x, gen(5), crop_padding=1, cutout=3)
    )
    with pytest.raises(ValueError, match=r"bogus.*crop_flip"):
        get_augmenter("bogus")
    with pytest.raises(TypeError):
        get_augmenter("mnist1d", cutout=3)


def test_generator_consumption_is_shared_state():
    # two calls with one generator differ; replaying the seed reproduces both
    x = signals()
    g = gen(11)
    a1, a2 = augment_1d(x, g), augment_1d(x, g)
    g = gen(11)
    assert torch.equal(augment_1d(x, g), a1) and torch.equal(augment_1d(x, g), a2)
    assert not torch.equal(a1, a2)


# ---------------------------------------------------------------------------
# Batch Augmentation
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("m", [2, 4])
def test_batch_augment_1d_copies_labels_and_closeness(m):
    x = signals(n=12, length=40)
    y = torch.arange(12) % 5
    xa, ya = batch_augment(x, y, m, augment_1d, gen(0))
    assert xa.shape == (12 * m, 40) and ya.shape == (12 * m,)
    assert xa.dtype == x.dtype and xa.device == x.device and ya.dtype == y.dtype
    assert torch.equal(ya, y.repeat_interleave(m))
    src = torch.arange(12).repeat_interleave(m)
    # each augmented row is closest to its own source sample, once the (unknown)
    # shift is undone: distance = min over the 7 possible edge-padded shifts
    pos = torch.arange(40)
    shifted = torch.stack(
        [x[:, (pos - s).clamp(0, 39)] for s in range(-3, 4)]
    )  # (7, 12, 40)
    d = torch.cdist(xa.unsqueeze(0).expand(7, -1, -1), shifted).amin(0)  # (12*m, 12)
    assert torch.equal(d.argmin(1), src)
    own = d[torch.arange(12 * m), src]
    others = d.masked_fill(
        torch.nn.functional.one_hot(src, 12).bool(), float("inf")
    ).amin(1)
    assert torch.all(own < 0.5 * others)
    # copies of the same sample are all different from each other
    for i in range(12):
        block = xa[i * m : (i + 1) * m]
        for a in range(m):
            for b in range(a + 1, m):
                assert not torch.equal(block[a], block[b])


@pytest.mark.parametrize("m", [2, 4])
def test_batch_augment_1d_undo_shift(m):
    x = signals(n=6, length=30)
    y = torch.arange(6)
    xa, ya = batch_augment(
        x, y, m, lambda t, g: augment_1d(t, g, 3, (1.0, 1.0), 0.0), gen(3)
    )
    pos = torch.arange(30)
    for row in range(len(xa)):
        i = int(ya[row])
        assert i == row // m
        assert any(
            torch.equal(xa[row], x[i][(pos - s).clamp(0, 29)]) for s in range(-3, 4)
        )


@pytest.mark.parametrize("m", [2, 4])
def test_batch_augment_images_crop_windows(m):
    x = images(n=5)
    y = torch.tensor([3, 1, 4, 1, 5])
    xa, ya = batch_augment(x, y, m, "crop_flip", gen(8))
    assert xa.shape == (5 * m, 3, 12, 10)
    assert torch.equal(ya, y.repeat_interleave(m))
    for row in range(len(xa)):
        assert _find_crop(
            x[row // m], xa[row], 4
        ), f"row {row} is not a crop of sample {row // m}"
    # the M copies are not all identical
    blocks = xa.view(5, m, 3, 12, 10)
    assert any(not torch.equal(blocks[i, 0], blocks[i, 1]) for i in range(5))


@pytest.mark.parametrize(
    "aug, x",
    [
        (augment_1d, signals()),
        (crop_flip, images()),
        (get_augmenter("crop_flip_cutout", cutout=4), images()),
    ],
)
def test_batch_augment_m1_equals_plain_augment(aug, x):
    y = torch.arange(len(x))
    g1, g2 = gen(21), gen(21)
    xa, ya = batch_augment(x, y, 1, aug, g1)
    assert torch.equal(xa, aug(x, g2))
    assert torch.equal(ya, y)
    # identical generator consumption afterwards
    assert torch.equal(torch.rand(5, generator=g1), torch.rand(5, generator=g2))


def test_batch_augment_seeds():
    x, y = signals(), torch.arange(16)
    a, _ = batch_augment(x, y, 3, augment_1d, gen(5))
    b, _ = batch_augment(x, y, 3, augment_1d, gen(5))
    c, _ = batch_augment(x, y, 3, augment_1d, gen(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("aug", [None, "none", no_augment])
def test_batch_augment_no_augment_copies_identical(aug):
    x, y = images(n=4), torch.arange(4)
    g = gen(0)
    state = g.get_state()
    xa, ya = batch_augment(x, y, 3, aug, g)
    assert torch.equal(xa, x.repeat_interleave(3, 0))
    assert torch.equal(ya, y.repeat_interleave(3))
    assert torch.equal(g.get_state(), state)  # no randomness consumed
    xa[0] += 1  # output does not alias input
    assert not torch.equal(xa[0], x[0])


def test_batch_augment_none_labels_and_validation():
    x = signals(4)
    xa, ya = batch_augment(x, None, 2, augment_1d, gen())
    assert ya is None and xa.shape == (8, 40)
    with pytest.raises(ValueError):
        batch_augment(x, None, 0, augment_1d, gen())
    with pytest.raises(ValueError):
        batch_augment(x, torch.arange(3), 2, augment_1d, gen())
    with pytest.raises(ValueError, match="unknown"):
        batch_augment(x, None, 2, "nope", gen())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("gdev", ["cpu", "cuda"])
def test_cuda_data_with_cpu_or_cuda_generator(gdev):
    x = images().cuda()
    y = torch.arange(len(x), device="cuda")
    xa, ya = batch_augment(
        x, y, 2, get_augmenter("crop_flip_cutout", cutout=4), gen(0, gdev)
    )
    assert xa.is_cuda and ya.is_cuda and xa.shape == (16, 3, 12, 10)
    xb, _ = batch_augment(
        x, y, 2, get_augmenter("crop_flip_cutout", cutout=4), gen(0, gdev)
    )
    assert torch.equal(xa, xb)
    s = signals().cuda()
    assert augment_1d(s, gen(0, gdev)).is_cuda
    if gdev == "cpu":  # CPU generator: same result as on CPU data
        ref, _ = batch_augment(
            x.cpu(), y.cpu(), 2, get_augmenter("crop_flip_cutout", cutout=4), gen(0)
        )
        assert torch.equal(xa.cpu(), ref)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cpu_data_with_cuda_generator():
    x = signals()
    out = augment_1d(x, gen(0, "cuda"))
    assert out.device.type == "cpu" and out.shape == x.shape
