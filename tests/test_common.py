"""The one atomic writer (largebatch.common): a failed write leaves the old file and no temp file."""

import os

import pytest
import torch

from largebatch.common import atomic_torch_save, atomic_write, atomic_write_text


def test_atomic_write_replaces_the_file_on_success(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("old\n")
    with atomic_write(path, newline="") as f:
        f.write("new\n")
        assert path.read_text() == "old\n"  # not visible until the block ends
    assert path.read_text() == "new\n"
    assert os.listdir(tmp_path) == ["a.csv"]


def test_a_failure_inside_the_block_leaves_the_old_file_and_no_temp_file(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text('{"old": 1}')
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_write(path) as f:
            f.write('{"new": ')
            raise RuntimeError("boom")
    assert path.read_text() == '{"old": 1}'
    assert os.listdir(tmp_path) == ["metrics.json"]


def test_a_failure_before_the_first_write_creates_nothing(tmp_path):
    path = tmp_path / "model.pt"
    with pytest.raises(KeyboardInterrupt):
        with atomic_write(path, "wb"):
            raise KeyboardInterrupt
    assert os.listdir(tmp_path) == []


def test_a_failing_torch_save_keeps_the_old_checkpoint(tmp_path):
    path = tmp_path / "checkpoint.pt"
    atomic_torch_save({"w": torch.arange(3)}, path)

    class Unpicklable:
        def __reduce__(self):
            raise TypeError("cannot pickle this")

    with pytest.raises(TypeError, match="cannot pickle"):
        atomic_torch_save({"w": torch.arange(5), "bad": Unpicklable()}, path)
    assert torch.equal(torch.load(path, weights_only=True)["w"], torch.arange(3))
    assert os.listdir(tmp_path) == ["checkpoint.pt"]


def test_text_and_binary_round_trip(tmp_path):
    atomic_write_text(tmp_path / "spec.json", "{}\n")
    assert (tmp_path / "spec.json").read_text() == "{}\n"
    with atomic_write(tmp_path / "b.bin", "wb") as f:
        f.write(b"\x00\x01")
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"


def test_append_mode_is_refused(tmp_path):
    with pytest.raises(ValueError, match="mode"):
        with atomic_write(tmp_path / "x", "a"):
            pass
