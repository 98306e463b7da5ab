"""Small helpers every part of largebatch shares; a leaf module (imports nothing of largebatch).

``atomic_write`` is the one way an output file is written: a job that is killed or fails
half-way through writing leaves either the old file or none, never a truncated one that a
later step (or a resumed run) would read as valid.  Snakemake removes a failed job's outputs,
but not files a job rewrites in place while it runs (history.csv, checkpoint.pt).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import IO, Any, Iterator


def _temp_path(path: Path) -> Path:
    # next to the target (os.replace is atomic only within one file system), and named per
    # process so that two jobs writing the same file never write into each other's temp file
    return path.with_name(f"{path.name}.{os.getpid()}.tmp")


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", **open_kwargs: Any) -> Iterator[IO]:
    """Write ``path`` all at once: yields a file object (``open(tmp, mode, **open_kwargs)``)
    on a temporary file in the same folder, which replaces ``path`` when the block ends
    without an exception; on an exception the temporary file is removed and ``path`` is left
    as it was.  ``mode`` is ``"w"`` (text; e.g. ``newline=""`` for csv) or ``"wb"``."""
    if not mode.startswith("w"):
        raise ValueError(f"atomic_write: mode = {mode!r}; use 'w' or 'wb' (the file is replaced, not appended to)")
    path = Path(path)
    tmp = _temp_path(path)
    try:
        with open(tmp, mode, **open_kwargs) as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """``Path(path).write_text(text)``, atomically (see ``atomic_write``)."""
    with atomic_write(path) as f:
        f.write(text)


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save(obj, path)``, atomically (see ``atomic_write``)."""
    import torch  # the report side of largebatch imports this module without needing torch

    with atomic_write(path, "wb") as f:
        torch.save(obj, f)
