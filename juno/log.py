"""One logging setup per process, with the process name on every line."""

from __future__ import annotations

import logging
import os
import sys


def setup(process: str, level: str | int | None = None) -> None:
    """Configure root logging to stderr as ``time process level: message``."""
    level = level or os.environ.get("JUNO_LOG", "INFO")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter(f"%(asctime)s {process} %(levelname)s: %(message)s", "%H:%M:%S")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level if isinstance(level, int) else level.upper())
