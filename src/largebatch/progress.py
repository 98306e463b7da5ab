"""Progress lines for long computations: elapsed time, ETA and an optional label.

Training logs one line per evaluation (``runsetup.RunSetup.progress_line``); the long
analyses (sharpness, Hessian, gradient noise) log ``progress_eta`` after each unit of work,
prefixed by the ``progress_label`` of the run they measure.
"""

from __future__ import annotations

import contextlib
import contextvars


def hms(seconds: float) -> str:
    """``h:mm:ss`` of a number of seconds (rounded)."""
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


_PROGRESS_LABEL: contextvars.ContextVar[str] = contextvars.ContextVar("largebatch_progress_label", default="")


@contextlib.contextmanager
def progress_label(label: str):
    """Within this block the long analyses' progress lines start with ``label: `` (e.g. the
    run id a sharpness job is measuring)."""
    token = _PROGRESS_LABEL.set(f"{label}: ")
    try:
        yield
    finally:
        _PROGRESS_LABEL.reset(token)


def progress_prefix() -> str:
    """The current ``progress_label`` followed by ": " ("" outside one)."""
    return _PROGRESS_LABEL.get()


def progress_eta(done: int, total: int, seconds: float) -> str:
    """``elapsed h:mm:ss, ETA h:mm:ss`` after ``done`` of ``total`` units took ``seconds``
    (ETA at the mean rate so far; ``?`` before the first unit); long analyses log it."""
    eta = hms(seconds / done * (total - done)) if done > 0 else "?"
    return f"elapsed {hms(seconds)}, ETA {eta}"
