"""One logger factory for every module: `init_logger(__name__)`."""

from __future__ import annotations

import logging
import sys

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def init_logger(name: str) -> logging.Logger:
    return logging.getLogger(name)


def configure_role_logging(level: int = logging.INFO) -> None:
    """Roles log to stderr, which their supervisor sends to the role's log file."""
    logging.basicConfig(level=level, format=_FORMAT, stream=sys.stderr, force=True)
