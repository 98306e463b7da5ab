import gzip
import pickle
import struct

import numpy as np
import pytest
import torch

from largebatch.data import DataIntegrityError, load_dataset, prepare_dataset, verify


def test_mnist1d_is_generated_locally_with_checksum(tiny_data_path, tiny_data):
    verify(tiny_data_path)
    assert tiny_data.x_train.shape == (480, 1, 40) and tiny_data.x_test.shape == (120, 1, 40)
    assert tiny_data.num_classes == 10
    assert abs(tiny_data.x_train.mean().item()) < 1e-4  # normalised with train statistics


def test_corrupted_file_is_caught_with_the_fix(tiny_data_path, tmp_path):
    bad = tmp_path / "mnist1d.pt"
    raw = bytearray(tiny_data_path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    bad.write_bytes(bytes(raw))
    (tmp_path / "mnist1d.pt.sha256").write_text(open(str(tiny_data_path) + ".sha256").read())
    with pytest.raises(DataIntegrityError, match=r"mnist1d.pt: checksum mismatch.*rm .*snakemake"):
        load_dataset(bad)
    (tmp_path / "mnist1d.pt.sha256").unlink()
    with pytest.raises(DataIntegrityError, match="checksum file"):
        load_dataset(bad)


def _idx(path, arr):
    arr = np.asarray(arr, dtype=np.uint8)
    header = struct.pack(">HBB", 0, 0x08, arr.ndim) + b"".join(struct.pack(">I", d) for d in arr.shape)
    path.write_bytes(header + arr.tobytes())


def test_mnist_from_torchvision_on_disk_layout(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    _idx(raw / "train-images-idx3-ubyte", rng.integers(0, 256, (50, 28, 28)))
    _idx(raw / "train-labels-idx1-ubyte", np.arange(50) % 10)
    _idx(raw / "t10k-images-idx3-ubyte", rng.integers(0, 256, (20, 28, 28)))
    _idx(raw / "t10k-labels-idx1-ubyte", np.arange(20) % 10)
    out = tmp_path / "mnist.pt"
    prepare_dataset("mnist", {"kind": "mnist"}, out, root=str(tmp_path))
    d = load_dataset(out)
    assert d.x_train.shape == (50, 1, 28, 28) and d.x_test.shape == (20, 1, 28, 28)
    assert d.y_train.tolist() == [i % 10 for i in range(50)]
    assert d.x_train.dtype == torch.float32 and abs(d.x_train.mean().item()) < 1e-4


def test_cifar10_from_torchvision_on_disk_layout(tmp_path, monkeypatch):
    import torchvision

    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name, n in [*[(f"data_batch_{i}", 4) for i in range(1, 6)], ("test_batch", 6)]:
        batch = {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), "labels": list(range(n))}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"c{i}" for i in range(10)]}, f)
    # the fixture files are not the real ones, so torchvision's md5 check would reject them
    monkeypatch.setattr(torchvision.datasets.CIFAR10, "_check_integrity", lambda self: True)
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda path, md5=None: True)
    out = tmp_path / "cifar10.pt"
    prepare_dataset("cifar10", {"kind": "cifar10"}, out, root=str(tmp_path))
    d = load_dataset(out)
    assert d.x_train.shape == (20, 3, 32, 32) and d.x_test.shape == (6, 3, 32, 32) and d.num_classes == 10


def test_missing_torchvision_copy_says_where_to_put_it(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"data_root.*download: true"):
        prepare_dataset("cifar100", {"kind": "cifar100"}, tmp_path / "c.pt", root=str(tmp_path))


def test_train_samples_caps_mnist1d_and_sizes_agree(tmp_path):
    from largebatch.experiments import dataset_sizes

    cfg = {"kind": "mnist1d", "num_samples": 333, "train_samples": 100}
    prepare_dataset("m", cfg, tmp_path / "m.pt")
    d = load_dataset(tmp_path / "m.pt")
    assert d.n_train == 100 == dataset_sizes({"datasets": {"m": cfg}})["m"]
    cfg2 = {"kind": "mnist1d", "num_samples": 333}
    prepare_dataset("m2", cfg2, tmp_path / "m2.pt")
    assert load_dataset(tmp_path / "m2.pt").n_train == dataset_sizes({"datasets": {"m2": cfg2}})["m2"] == 264
