"""Batch-wise, device-agnostic data augmentation and Batch Augmentation (BA).

Every augmenter here has the signature ``augment(x, g) -> x_aug``:

* ``x`` is a whole batch (first dimension = samples) on any device;
* ``g`` is a :class:`torch.Generator` and is the *only* source of randomness,
  so a run is reproducible from the generator's seed.  The generator may live
  on a different device than the data: random numbers are drawn on the
  generator's device and then moved to the data's device (a no-op when the two
  devices already match).  Note that CPU and CUDA generators produce different
  streams for the same seed.

There are no per-sample Python loops: per-sample shifts/crops are done by a
single ``gather`` / advanced-indexing operation on the whole batch, and
per-sample flips/cutouts by ``torch.where`` with a per-sample mask.

Batch Augmentation (Hoffer et al., 2019, "Augment your batch") is provided by
:func:`batch_augment`: a batch of ``B`` distinct samples becomes ``M*B``
samples, ``M`` independently augmented copies of each.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence

import torch

__all__ = [
    "AUGMENTERS",
    "Augmenter",
    "augment_1d",
    "augment_image",
    "batch_augment",
    "crop_flip",
    "crop_flip_cutout",
    "get_augmenter",
    "no_augment",
]

Augmenter = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


# ---------------------------------------------------------------------------
# random-number helpers (all draws go through the passed generator)
# ---------------------------------------------------------------------------
def _randint(
    g: torch.Generator, low: int, high: int, n: int, device: torch.device
) -> torch.Tensor:
    """``n`` integers uniform in ``[low, high)`` (int64), drawn on ``g.device``, moved to ``device``."""
    return torch.randint(low, high, (n,), generator=g, device=g.device).to(device)


def _rand(g: torch.Generator, n: int, device: torch.device) -> torch.Tensor:
    """``n`` float32 numbers uniform in ``[0, 1)``, drawn on ``g.device``, moved to ``device``."""
    return torch.rand((n,), generator=g, device=g.device).to(device)


def _randn(
    g: torch.Generator, shape: Sequence[int], device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    """Standard normal numbers drawn on ``g.device`` (float32), moved to ``device``/``dtype``."""
    return torch.randn(tuple(shape), generator=g, device=g.device).to(
        device=device, dtype=dtype
    )


def _check_generator(g: object) -> None:
    if not isinstance(g, torch.Generator):
        raise TypeError(f"g must be a torch.Generator, got {type(g).__name__}")


# ---------------------------------------------------------------------------
# augmenters
# ---------------------------------------------------------------------------
def no_augment(x: torch.Tensor, g: torch.Generator | None = None) -> torch.Tensor:
    """Identity augmenter (returns ``x`` itself; consumes no random numbers)."""
    return x


def augment_1d(
    x: torch.Tensor,
    g: torch.Generator,
    max_shift: int = 3,
    scale_range: tuple[float, float] = (0.9, 1.1),
    noise_std: float = 0.05,
) -> torch.Tensor:
    """Augment a batch of 1-D signals (e.g. MNIST-1D), each sample independently.

    ``x`` has shape ``(N, L)`` or ``(N, C, L)`` (typically ``C = 1``) and a floating
    dtype.  Per sample, in this order:

    1. a random integer shift ``s`` uniform in ``[-max_shift, max_shift]`` with
       *edge padding*: ``out[..., t] = x[..., clamp(t - s, 0, L - 1)]`` (content moves
       right for ``s > 0``; the vacated positions repeat the edge value instead of
       wrapping around).  All channels of a sample share the shift.
    2. multiplication by an amplitude factor uniform in ``scale_range``;
    3. additive i.i.d. Gaussian noise with standard deviation ``noise_std``.

    Random numbers are drawn from ``g`` in the order shift, scale, noise; a
    component that is disabled (``max_shift == 0``, ``scale_range == (1, 1)``,
    ``noise_std == 0``) draws nothing.  Returns a new tensor of the same shape,
    dtype and device as ``x``.
    """
    _check_generator(g)
    if x.dim() not in (2, 3):
        raise ValueError(
            f"augment_1d expects x of shape (N, L) or (N, C, L), got {tuple(x.shape)}"
        )
    if not x.is_floating_point():
        raise TypeError(f"augment_1d expects a floating-point tensor, got {x.dtype}")
    max_shift = int(max_shift)
    if max_shift < 0:
        raise ValueError(f"max_shift must be >= 0, got {max_shift}")
    lo, hi = (float(v) for v in scale_range)
    if hi < lo:
        raise ValueError(f"scale_range must satisfy low <= high, got {scale_range}")
    if noise_std < 0:
        raise ValueError(f"noise_std must be >= 0, got {noise_std}")

    n, length = x.shape[0], x.shape[-1]
    out = x
    if max_shift > 0 and n > 0:
        shift = _randint(g, -max_shift, max_shift + 1, n, x.device)  # (N,)
        pos = torch.arange(length, device=x.device)
        idx = (pos.unsqueeze(0) - shift.unsqueeze(1)).clamp_(0, length - 1)  # (N, L)
        if x.dim() == 3:
            idx = idx.unsqueeze(1).expand(n, x.shape[1], length)
        out = torch.gather(out, -1, idx)
    if (lo, hi) != (1.0, 1.0) and n > 0:
        scale = lo + (hi - lo) * _rand(g, n, x.device)
        scale = scale.to(x.dtype).view((n,) + (1,) * (x.dim() - 1))
        out = out * scale
    if noise_std > 0 and n > 0:
        out = out + noise_std * _randn(g, x.shape, x.device, x.dtype)
    if out is x:  # nothing applied: still return a fresh tensor, like the other paths
        out = x.clone()
    return out


def augment_image(
    x: torch.Tensor,
    g: torch.Generator,
    crop_padding: int = 4,
    flip: bool = True,
    cutout: int = 0,
) -> torch.Tensor:
    """Augment a batch of images ``(N, C, H, W)``, each sample independently.

    In this order (and this order of random draws from ``g``):

    1. random crop: as if the batch were zero-padded by ``crop_padding`` pixels on
       every side and an ``H x W`` window taken at a per-sample offset ``(dy, dx)``,
       each uniform in ``[0, 2 * crop_padding]``: ``out[n, :, i, j] =
       padded[n, :, dy[n] + i, dx[n] + j]``.  Skipped when ``crop_padding == 0``.
    2. horizontal flip of the cropped sample with probability 0.5 per sample.
       Skipped when ``flip`` is false.
    3. cutout (DeVries & Taylor, 2017): one square hole of side ``cutout``, centre
       ``(cy, cx)`` uniform over the image pixels, rows ``[cy - cutout // 2,
       cy - cutout // 2 + cutout)`` and likewise for columns, clipped at the
       border, is set to zero in every channel.  Skipped when ``cutout == 0``.

    Crop and flip are computed together as one ``gather`` from the unpadded batch.
    Works for any dtype (zeros are the fill value) and keeps shape, dtype and device.
    """
    _check_generator(g)
    if x.dim() != 4:
        raise ValueError(
            f"augment_image expects x of shape (N, C, H, W), got {tuple(x.shape)}"
        )
    crop_padding = int(crop_padding)
    cutout = int(cutout)
    if crop_padding < 0:
        raise ValueError(f"crop_padding must be >= 0, got {crop_padding}")
    if cutout < 0:
        raise ValueError(f"cutout must be >= 0, got {cutout}")

    n, c, h, w = x.shape
    dev = x.device
    out = x
    if n == 0:
        return x.clone()

    # crop and flip are one gather: output pixel (i, j) of sample n reads row
    # dy[n] + i - p and column dx[n] + j - p of the original (j mirrored to w - 1 - j
    # first when the sample is flipped); reads outside the image give the padding's zero.
    # Same values as padding + cropping + flipping, without materialising any of them.
    p = crop_padding
    rows = torch.arange(h, device=dev).expand(n, h)
    cols = torch.arange(w, device=dev).expand(n, w)
    if p > 0:
        dy = _randint(g, 0, 2 * p + 1, n, dev)
        dx = _randint(g, 0, 2 * p + 1, n, dev)
    if flip:
        do_flip = _rand(g, n, dev) < 0.5
        cols = torch.where(do_flip.unsqueeze(1), w - 1 - cols, cols)
    if p > 0:
        rows = rows + (dy - p).unsqueeze(1)  # (N, H)
        cols = cols + (dx - p).unsqueeze(1)  # (N, W)
    if p > 0 or flip:
        idx = rows.clamp(0, h - 1).unsqueeze(2) * w + cols.clamp(0, w - 1).unsqueeze(1)
        idx = idx.view(n, 1, h * w).expand(n, c, h * w)
        out = x.reshape(n, c, h * w).gather(2, idx).view(n, c, h, w)
        if p > 0:
            inside = ((rows >= 0) & (rows < h)).unsqueeze(2) & ((cols >= 0) & (cols < w)).unsqueeze(1)
            out.masked_fill_(~inside.unsqueeze(1), 0)

    if cutout > 0:
        cy = _randint(g, 0, h, n, dev)
        cx = _randint(g, 0, w, n, dev)
        y0 = (cy - cutout // 2).unsqueeze(1)
        x0 = (cx - cutout // 2).unsqueeze(1)
        r = torch.arange(h, device=dev).unsqueeze(0)  # (1, H)
        q = torch.arange(w, device=dev).unsqueeze(0)  # (1, W)
        in_rows = (r >= y0) & (r < y0 + cutout)  # (N, H); clipping is implicit
        in_cols = (q >= x0) & (q < x0 + cutout)  # (N, W)
        hole = (in_rows.unsqueeze(2) & in_cols.unsqueeze(1)).unsqueeze(
            1
        )  # (N, 1, H, W)
        out = torch.where(hole, torch.zeros((), dtype=out.dtype, device=dev), out)

    if out is x:
        out = x.clone()
    return out


def crop_flip(
    x: torch.Tensor, g: torch.Generator, crop_padding: int = 4, flip: bool = True
) -> torch.Tensor:
    """Standard CIFAR augmentation: pad-4 random crop + horizontal flip."""
    return augment_image(x, g, crop_padding=crop_padding, flip=flip, cutout=0)


def crop_flip_cutout(
    x: torch.Tensor,
    g: torch.Generator,
    crop_padding: int = 4,
    flip: bool = True,
    cutout: int = 16,
) -> torch.Tensor:
    """Crop + flip + one 16x16 cutout hole (the CIFAR-10 setting of DeVries & Taylor and of BA's README)."""
    return augment_image(x, g, crop_padding=crop_padding, flip=flip, cutout=cutout)


AUGMENTERS: dict[str, Callable[..., torch.Tensor]] = {
    "none": no_augment,
    "mnist1d": augment_1d,
    "crop_flip": crop_flip,
    "crop_flip_cutout": crop_flip_cutout,
}


def get_augmenter(name: str | None, **kwargs) -> Augmenter:
    """Return the augmenter ``name`` (a key of :data:`AUGMENTERS`) with ``kwargs`` bound.

    ``None`` is treated as ``"none"``.  Raises :class:`ValueError` for an unknown
    name (the message lists the allowed names) and :class:`TypeError` for keyword
    arguments the augmenter does not accept.
    """
    key = "none" if name is None else name
    if key not in AUGMENTERS:
        allowed = ", ".join(repr(k) for k in AUGMENTERS)
        raise ValueError(f"unknown augmenter {name!r}; allowed names: {allowed}")
    fn = AUGMENTERS[key]
    if not kwargs:
        return fn
    try:
        inspect.signature(fn).bind(None, None, **kwargs)
    except TypeError as exc:
        raise TypeError(f"invalid arguments for augmenter {key!r}: {exc}") from None
    return functools.partial(fn, **kwargs)


# ---------------------------------------------------------------------------
# Batch Augmentation
# ---------------------------------------------------------------------------
def batch_augment(
    x: torch.Tensor,
    y: torch.Tensor | None,
    multiplicity: int,
    augment: Augmenter | str | None,
    g: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Batch Augmentation (Hoffer et al., 2019): ``B`` samples -> ``M * B`` samples.

    Returns ``(x_aug, y_aug)`` where rows ``i*M .. i*M + M - 1`` are ``M`` copies of
    sample ``i`` (``x.repeat_interleave(M, 0)``), and ``augment`` is applied *once*
    to the whole enlarged batch so that every copy gets its own independent draw.
    ``y`` is repeated the same way (``None`` stays ``None``).

    ``augment`` may be a callable ``(x, g) -> x``, a name from :data:`AUGMENTERS`,
    or ``None``/``"none"`` (the copies are then identical).  With ``M == 1`` the
    result equals ``augment(x, g)`` exactly, consuming the generator identically.
    """
    m = int(multiplicity)
    if m != multiplicity or m < 1:
        raise ValueError(
            f"multiplicity must be a positive integer, got {multiplicity!r}"
        )
    if y is not None and y.shape[0] != x.shape[0]:
        raise ValueError(
            f"x and y disagree on the batch size: {x.shape[0]} vs {y.shape[0]}"
        )
    if isinstance(augment, str) or augment is None:
        augment = get_augmenter(augment)
    # repeat_interleave always copies (also for M == 1), so the result never aliases x / y.
    x_rep = x.repeat_interleave(m, dim=0)
    y_rep = None if y is None else y.repeat_interleave(m, dim=0)
    return augment(x_rep, g), y_rep
