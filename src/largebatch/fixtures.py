"""Fixture datasets in torchvision's on-disk layout, for the rehearsal of the paper scale.

``write_fixtures(root)`` writes random images with the real files' names, formats, shapes,
dtypes and label ranges, so that ``largebatch.data`` reads them through torchvision exactly as
it reads the real data (``data_root: root``; CIFAR's md5 check is off for them, dataset key
``verify_md5: false``, which the rehearsal sets):

* ``MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte``: IDX files (uint8 28x28 images,
  labels 0-9), uncompressed, as torchvision leaves them after a download;
* ``cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}``: pickles of uint8 rows of
  3x32x32 = 3072 values and labels 0-9 (the training set split over five batches);
* ``cifar-100-python/{train,test,meta}``: the same with ``fine_labels`` 0-99 (and
  ``coarse_labels`` 0-19).

Sizes: the real training and test sets divided by ``batch_divisor`` (``largebatch.rehearsal``):
937 / 39 MNIST images and 781 / 39 CIFAR images at the default 64 (the test sets are 4x smaller
still: every run evaluates on all of it).

    python -m largebatch.fixtures data/rehearsal [--batch-divisor 64] [--seed 0]
"""

from __future__ import annotations

import argparse
import pickle
import struct
from pathlib import Path

import numpy as np

from .rehearsal import DEFAULTS, fixture_sizes


def _idx(path: Path, array: np.ndarray) -> None:
    """An IDX file: magic (0, 0, dtype 0x08 = uint8, ndim), big-endian sizes, then the bytes."""
    with open(path, "wb") as f:
        f.write(struct.pack(">BBBB", 0, 0, 0x08, array.ndim))
        f.write(struct.pack(f">{array.ndim}I", *array.shape))
        f.write(np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def _pickle(path: Path, obj: dict) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def write_mnist(root: Path, n_train: int, n_test: int, rng: np.random.Generator) -> None:
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        _idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        _idx(raw / f"{prefix}-labels-idx1-ubyte", rng.integers(0, 10, n, dtype=np.uint8))


def _cifar_rows(n: int, rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, 256, (n, 3 * 32 * 32), dtype=np.uint8)  # row = R plane, G plane, B plane


def write_cifar10(root: Path, n_train: int, n_test: int, rng: np.random.Generator) -> None:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    for i, part in enumerate(np.array_split(np.arange(n_train), 5), start=1):
        _pickle(folder / f"data_batch_{i}", {"batch_label": f"training batch {i} of 5",
                                             "data": _cifar_rows(len(part), rng),
                                             "labels": rng.integers(0, 10, len(part)).tolist()})
    _pickle(folder / "test_batch", {"batch_label": "testing batch 1 of 1", "data": _cifar_rows(n_test, rng),
                                    "labels": rng.integers(0, 10, n_test).tolist()})
    _pickle(folder / "batches.meta", {"label_names": [f"class{i}" for i in range(10)],
                                      "num_cases_per_batch": n_train // 5, "num_vis": 3072})


def write_cifar100(root: Path, n_train: int, n_test: int, rng: np.random.Generator) -> None:
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    for name, n in (("train", n_train), ("test", n_test)):
        _pickle(folder / name, {"data": _cifar_rows(n, rng), "fine_labels": rng.integers(0, 100, n).tolist(),
                                "coarse_labels": rng.integers(0, 20, n).tolist()})
    _pickle(folder / "meta", {"fine_label_names": [f"class{i}" for i in range(100)],
                              "coarse_label_names": [f"superclass{i}" for i in range(20)]})


def write_fixtures(root: str | Path, batch_divisor: int = DEFAULTS["batch_divisor"], seed: int = 0) -> Path:
    """Write the MNIST, CIFAR-10 and CIFAR-100 fixtures under `root`; returns `root`."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    write_mnist(root, *fixture_sizes("mnist", batch_divisor), rng)
    write_cifar10(root, *fixture_sizes("cifar10", batch_divisor), rng)
    write_cifar100(root, *fixture_sizes("cifar100", batch_divisor), rng)
    return root


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", help="folder to write the torchvision layout into (the rehearsal's data_root)")
    parser.add_argument("--batch-divisor", type=int, default=DEFAULTS["batch_divisor"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(write_fixtures(args.root, args.batch_divisor, args.seed))


if __name__ == "__main__":
    main()
