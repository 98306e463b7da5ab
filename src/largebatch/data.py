"""Datasets, prepared once into one tensor file with a recorded checksum.

``prepare_dataset`` writes ``<name>.pt`` (a dict of tensors) and ``<name>.pt.sha256``;
``load_dataset`` verifies the checksum before it trusts the file, and puts the whole
dataset on the training device as tensors (no DataLoader in the hot path).

Kinds:
* ``mnist1d`` -- generated locally with the ``mnist1d`` package (never downloaded).
* ``mnist``, ``fashion_mnist``, ``cifar10``, ``cifar100`` -- read through torchvision
  from ``root`` (the torchvision on-disk layout), downloaded there only when
  ``download`` is true.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

KINDS = ("mnist1d", "mnist", "fashion_mnist", "cifar10", "cifar100")


class DataIntegrityError(RuntimeError):
    """A prepared dataset file is missing, corrupted or not what its checksum says."""


@dataclass
class Dataset:
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    name: str = ""
    checksum: str = ""  # sha256 of the prepared file; part of a checkpoint's identity

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def n_train(self) -> int:
        return self.x_train.shape[0]


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def _atomic_save(obj, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _mnist1d(cfg: dict) -> dict:
    from mnist1d.data import get_dataset_args, make_dataset  # imports matplotlib; keep it local

    args = get_dataset_args()
    for key, value in cfg.items():
        if key in ("kind", "train_samples"):  # ours, not mnist1d's (train_samples: prepare_dataset)
            continue
        if not hasattr(args, key):
            raise ValueError(f"mnist1d option {key!r} is unknown; known options: {sorted(vars(args))}")
        setattr(args, key, value)
    d = make_dataset(args)  # generated locally from the package's templates; no download
    to_x = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32).unsqueeze(1)  # (N, 1, L)
    to_y = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.long)
    x_train, x_test = to_x(d["x"]), to_x(d["x_test"])
    mean, std = x_train.mean().item(), x_train.std().item()
    return {
        "x_train": x_train, "y_train": to_y(d["y"]), "x_test": x_test, "y_test": to_y(d["y_test"]),
        "num_classes": 10, "mean": [mean], "std": [std],
    }


def _torchvision(kind: str, root: str, download: bool) -> dict:
    import torchvision.datasets as tvd

    cls = {"mnist": tvd.MNIST, "fashion_mnist": tvd.FashionMNIST, "cifar10": tvd.CIFAR10, "cifar100": tvd.CIFAR100}[kind]
    try:
        train = cls(root, train=True, download=download)
        test = cls(root, train=False, download=download)
    except RuntimeError as err:
        raise FileNotFoundError(
            f"{kind}: no usable copy under data root {root!r} ({err}). Put the torchvision on-disk files "
            f"there (e.g. {root}/{cls.__name__}/raw or {root}/cifar-10-batches-py), set `data_root` in "
            f"config.yaml to where they are, or set `download: true` on a machine with internet."
        ) from err

    def arrays(ds):
        x = ds.data
        x = torch.as_tensor(np.asarray(x))
        if x.dim() == 3:  # MNIST-like (N, H, W) -> (N, 1, H, W)
            x = x.unsqueeze(1)
        else:  # CIFAR (N, H, W, C) -> (N, C, H, W)
            x = x.permute(0, 3, 1, 2).contiguous()
        y = torch.as_tensor(np.asarray(ds.targets), dtype=torch.long)
        return x.to(torch.uint8), y

    x_train, y_train = arrays(train)
    x_test, y_test = arrays(test)
    xf = x_train.float() / 255.0
    mean = xf.mean(dim=(0, 2, 3)).tolist()
    std = xf.std(dim=(0, 2, 3)).tolist()
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test,
            "num_classes": len(train.classes), "mean": mean, "std": std, "scale": 255.0}


def prepare_dataset(name: str, cfg: dict, out_path: str | os.PathLike, root: str = "data",
                    download: bool = False) -> str:
    """Build dataset `name` from its config and write it with a checksum; returns the sha256."""
    kind = cfg.get("kind", name)
    if kind not in KINDS:
        raise ValueError(f"dataset {name!r}: kind {kind!r} is unknown; choose one of {list(KINDS)}")
    payload = _mnist1d(cfg) if kind == "mnist1d" else _torchvision(kind, root, download)
    limit = cfg.get("train_samples")
    if limit:
        payload["x_train"], payload["y_train"] = payload["x_train"][:limit], payload["y_train"][:limit]
    payload["name"] = name
    payload["kind"] = kind
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_save(payload, out_path)
    digest = sha256_file(out_path)
    Path(str(out_path) + ".sha256").write_text(digest + "\n")
    return digest


def verify(path: str | os.PathLike) -> None:
    """Raise DataIntegrityError naming the file and the fix if it does not match its checksum."""
    path = Path(path)
    fix = f"delete it and let Snakemake rebuild it: `rm {path} {path}.sha256 && snakemake --cores all`"
    side = Path(str(path) + ".sha256")
    if not path.exists():
        raise DataIntegrityError(f"{path}: prepared dataset is missing; rerun snakemake to prepare it")
    if not side.exists():
        raise DataIntegrityError(f"{path}: its checksum file {side} is missing; {fix}")
    expected = side.read_text().strip()
    actual = sha256_file(path)
    if actual != expected:
        raise DataIntegrityError(
            f"{path}: checksum mismatch (recorded {expected[:12]}..., file has {actual[:12]}...): the file is "
            f"corrupted or was changed after preparation; {fix}"
        )


def load_dataset(path: str | os.PathLike, device: str | torch.device = "cpu", verify_checksum: bool = True) -> Dataset:
    """Load a prepared dataset onto `device` as float tensors, normalised per channel."""
    if verify_checksum:
        verify(path)
    try:
        d = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # unreadable despite a matching checksum: still name the file
        raise DataIntegrityError(f"{path}: cannot be read ({err}); delete it and rerun snakemake") from err
    mean = torch.tensor(d["mean"]).view(1, -1, *([1] * (d["x_train"].dim() - 2)))
    std = torch.tensor(d["std"]).view_as(mean)
    scale = d.get("scale", 1.0)

    def norm(x):
        return ((x.to(device=device, dtype=torch.float32) / scale) - mean.to(device)) / std.to(device)

    side = Path(str(path) + ".sha256")
    checksum = side.read_text().strip() if side.exists() else ""
    return Dataset(norm(d["x_train"]), d["y_train"].to(device), norm(d["x_test"]), d["y_test"].to(device),
                   int(d["num_classes"]), d.get("name", ""), checksum)
