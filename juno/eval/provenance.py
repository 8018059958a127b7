"""What a result depends on besides the data: package versions, machine, code version."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

PACKAGES = (
    "juno",
    "mlx",
    "mlx-lm",
    "mlx-whisper",
    "numpy",
    "sacrebleu",
    "jiwer",
    "silero-vad",
    "torch",
    "matplotlib",
)


def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages that shape the figures (None: not installed)."""
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def machine() -> dict:
    """The machine and backend the figures were measured on."""
    from juno import backend

    info = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "backend": backend.describe(),
    }
    if hasattr(os, "getloadavg"):
        info["load_average_at_start"] = round(os.getloadavg()[0], 2)
    try:
        import mlx.core as mx

        info["mlx_device"] = str(mx.default_device())
    except ImportError:
        pass
    return info


def git_commit() -> str | None:
    """The checkout's commit, with ``+dirty`` when it has local changes; None outside git."""
    root = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+dirty" if dirty else "")
