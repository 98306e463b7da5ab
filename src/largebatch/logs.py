"""Logging for Snakemake jobs: messages go to the rule's log file and to stderr."""

from __future__ import annotations

import logging
import sys


def job_logger(path: str | None, name: str = "largebatch") -> logging.Logger:
    logger = logging.getLogger(name)
    logger.handlers.clear()
    logger.setLevel(logging.INFO)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s")
    handlers = [logging.StreamHandler(sys.stderr)]
    if path:
        handlers.append(logging.FileHandler(path, mode="w"))
    for h in handlers:
        h.setFormatter(fmt)
        logger.addHandler(h)
    previous = sys.excepthook

    def excepthook(kind, value, tb):  # a failing job leaves its traceback in its log file
        logger.error("job failed", exc_info=(kind, value, tb))
        previous(kind, value, tb)

    sys.excepthook = excepthook
    return logger
