"""Data path: batch-wise augmentation of device-resident tensors against a torch DataLoader
with per-sample torchvision transforms, on CIFAR-shaped images (3 x 32 x 32, float32).

Ours (the engine's path): the whole set is a tensor on the device; each step gathers a
random mini-batch with one index and augments it with ``largebatch.augment.crop_flip``
(pad-4 random crop + horizontal flip, batch-wise, one generator).
Baseline (the usual CIFAR code): ``DataLoader(TensorDataset-like, shuffle=True,
num_workers=0)`` whose dataset applies ``RandomCrop(32, padding=4)`` and
``RandomHorizontalFlip()`` from ``torchvision.transforms`` to each sample tensor (no PIL),
collating batches on the CPU.  Both produce the same number of augmented samples.
A second baseline is the papers' own code path (the official CIFAR code of Hoffer et al.,
SWAP and batch augmentation): ``torchvision.datasets.CIFAR10`` keeps uint8 HWC arrays and
turns each sample into a PIL image, then ``RandomCrop(32, padding=4)``,
``RandomHorizontalFlip()`` and ``ToTensor()``.
"""

from __future__ import annotations

import torch
import torchvision.transforms as T
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from largebatch.augment import crop_flip

from .common import Result, Timer, interleaved_medians


class TransformedTensors(Dataset):
    def __init__(self, x: torch.Tensor, y: torch.Tensor, transform):
        self.x, self.y, self.transform = x, y, transform

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.transform(self.x[i]), self.y[i]


class PILImages(Dataset):
    """What torchvision.datasets.CIFAR10.__getitem__ does: uint8 HWC array -> PIL -> transform."""

    def __init__(self, x, y, transform):
        self.x, self.y, self.transform = x, y, transform

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.transform(Image.fromarray(self.x[i])), int(self.y[i])


def run(quick: bool = False, device: str = "cpu", repeats: int = 3, batch: int = 256) -> list[Result]:
    device = torch.device(device)
    n = 512 if quick else 8192
    gen = torch.Generator().manual_seed(0)
    x_cpu = torch.randn(n, 3, 32, 32, generator=gen)
    y_cpu = torch.randint(0, 10, (n,), generator=gen)
    x_dev, y_dev = x_cpu.to(device), y_cpu.to(device)
    loader = DataLoader(TransformedTensors(x_cpu, y_cpu, T.Compose([T.RandomCrop(32, padding=4),
                                                                      T.RandomHorizontalFlip()])),
                        batch_size=batch, shuffle=True, num_workers=0, drop_last=True)
    x_u8 = (x_cpu.clamp(-2, 2) * 63 + 128).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()
    pil_loader = DataLoader(PILImages(x_u8, y_cpu, T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(),
                                                             T.ToTensor()])),
                            batch_size=batch, shuffle=True, num_workers=0, drop_last=True)
    g = torch.Generator(device=device).manual_seed(0)
    epochs_ours = 1 if quick else 4

    def baseline():
        for xb, yb in loader:  # one epoch (batches then go to the device, a no-op on the CPU)
            xb, yb = xb.to(device), yb.to(device)
            xb.sum()

    def baseline_pil():
        for xb, yb in pil_loader:
            xb, yb = xb.to(device), yb.to(device)
            xb.sum()

    def ours():
        for _ in range(epochs_ours):
            perm = torch.randperm(n, generator=g, device=device)
            for i in range(0, n - batch + 1, batch):
                idx = perm[i: i + batch]
                xb, yb = crop_flip(x_dev[idx], g), y_dev[idx]
                xb.sum()

    t = interleaved_medians({"baseline": baseline, "pil": baseline_pil, "ours": ours}, Timer(device),
                            repeats=1 if quick else repeats, warmup=0 if quick else 1)
    per_epoch = (n // batch) * batch
    ours_sps = epochs_ours * per_epoch / t["ours"]
    base_sps = per_epoch / t["baseline"]
    pil_sps = per_epoch / t["pil"]
    return [Result(f"data path: crop+flip, batch {batch}, CIFAR-shaped, vs per-sample transforms on tensors",
                   ours_sps, base_sps, "samples/s", ours_sps / base_sps, 10.0,
                   note="device tensors + batch-wise augment vs DataLoader + per-sample torchvision transforms "
                        "on float tensors",
                   extra={"n": n, "t_s": t}),
            Result(f"data path: crop+flip, batch {batch}, CIFAR-shaped, vs the papers' PIL path",
                   ours_sps, pil_sps, "samples/s", ours_sps / pil_sps, 10.0,
                   note="device tensors + batch-wise augment vs DataLoader over uint8 images as "
                        "torchvision.datasets.CIFAR10 serves them (PIL) + RandomCrop/RandomHorizontalFlip/ToTensor",
                   extra={"n": n, "t_s": t})]
