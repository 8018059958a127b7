"""The compute backend: fast BLAS and the right dtype on the Linux CPU.

The ``mlx[cpu]`` wheel for Linux links a slow reference BLAS. Loading the
system's OpenBLAS into the process *before* MLX makes float32 matmuls ~30x
faster; half precision and MLX's quantized kernels do not benefit, so on Linux
models run in float32. On macOS (Metal) nothing here applies.

``juno/__init__.py`` calls :func:`preload_blas` so that importing anything from
``juno`` first is enough.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import platform
import sys
from pathlib import Path

log = logging.getLogger(__name__)

# Debian/Ubuntu's OpenBLAS (package libopenblas0-pthread), then anything the
# dynamic loader can find.
_OPENBLAS_CANDIDATES = (
    "/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3",
    "/usr/lib/aarch64-linux-gnu/openblas-pthread/libblas.so.3",
    "/usr/lib64/libopenblas.so.0",
)

# Set JUNO_BLAS=0 to keep MLX's bundled BLAS (for the side-by-side benchmark).
BLAS_ENV = "JUNO_BLAS"

_blas_path: str | None = None
_blas_late = False


def is_linux() -> bool:
    return sys.platform.startswith("linux")


def _find_openblas() -> str | None:
    for candidate in _OPENBLAS_CANDIDATES:
        if Path(candidate).exists():
            return candidate
    return ctypes.util.find_library("openblas")


def preload_blas() -> str | None:
    """Load OpenBLAS globally before MLX on Linux; return its path or None."""
    global _blas_path, _blas_late
    if _blas_path is not None or not is_linux() or os.environ.get(BLAS_ENV) == "0":
        return _blas_path
    if "mlx.core" in sys.modules:
        # Too late: MLX already resolved its BLAS symbols.
        _blas_late = True
        return None
    path = _find_openblas()
    if path is None:
        return None
    ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
    _blas_path = path
    return path


def blas_path() -> str | None:
    """The OpenBLAS library loaded into this process, if any."""
    return _blas_path


def compute_dtype_name() -> str | None:
    """The dtype models should run in here, or None to keep the weights' own.

    float32 on Linux (the only dtype the CPU BLAS accelerates); the model's own
    dtype on macOS.
    """
    return "float32" if is_linux() else None


def describe() -> str:
    """One line about the backend, for logs and benchmark headers."""
    if not is_linux():
        return f"{platform.system()} {platform.machine()}: MLX default device, model dtype"
    if _blas_path:
        blas = f"OpenBLAS ({_blas_path})"
    elif os.environ.get(BLAS_ENV) == "0":
        blas = f"bundled reference BLAS ({BLAS_ENV}=0)"
    elif _blas_late:
        blas = "bundled reference BLAS (mlx was imported before juno: OpenBLAS not loaded)"
    else:
        blas = "bundled reference BLAS (OpenBLAS not found: apt-get install libopenblas0-pthread)"
    return f"Linux {platform.machine()} CPU, {blas}, float32"


def log_backend() -> None:
    """Say once, in the log, how models will run."""
    log.info("backend: %s", describe())
