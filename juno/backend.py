"""The compute backend: the device models run on, its BLAS and its dtype.

- **macOS**: MLX's default device (the Apple GPU through Metal), in the weights' own
  dtype; nothing here applies.
- **Linux with an NVIDIA GPU** and MLX's CUDA build installed (``pip install -e ".[cuda]"``,
  which brings ``mlx-cuda-13``): the GPU, in the weights' own dtype (bf16 stays bf16,
  quantized weights stay quantized), without OpenBLAS.
- **Linux otherwise** (``mlx[cpu]``): the CPU. That wheel links a slow reference BLAS;
  loading the system's OpenBLAS into the process *before* MLX makes float32 matmuls ~30x
  faster. Half precision and MLX's quantized kernels do not benefit, so models run in
  float32 and quantized ones are dequantized.

``JUNO_DEVICE=cpu`` keeps the CPU on a GPU machine; ``JUNO_DEVICE=gpu`` insists on the GPU.

``juno/__init__.py`` calls :func:`preload_blas` so that importing anything from ``juno``
first is enough. The choice is made before MLX is imported (OpenBLAS must come first), from
the installed MLX library and the machine's NVIDIA devices; :func:`select_device` checks it
against MLX once MLX is loaded.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import platform
import sys
from pathlib import Path

from juno.errors import JunoError

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
# MLX's CUDA backend: use cuDNN for attention (1) or MLX's own kernels (0).
CUDNN_SDPA_ENV = "MLX_CUDA_USE_CUDNN_SDPA"
# "cpu" or "gpu": the device, whatever the machine looks like.
DEVICE_ENV = "JUNO_DEVICE"
# MLX's CUDA builds; each ships mlx/lib/libmlx.so, as mlx-cpu does.
_CUDA_DISTRIBUTIONS = ("mlx-cuda-13", "mlx-cuda-12")
# Where the NVIDIA driver shows its GPUs.
_NVIDIA_GPUS = Path("/proc/driver/nvidia/gpus")
_NVIDIA_DEVICE = Path("/dev/nvidia0")

_blas_path: str | None = None
_blas_late = False


def is_linux() -> bool:
    return sys.platform.startswith("linux")


def cuda_build() -> str | None:
    """The MLX CUDA distribution whose library is the one installed, or None.

    mlx-cpu and mlx-cuda-* install the same file, ``mlx/lib/libmlx.so``, and the last one
    installed wins: the file in place is the CUDA build when its size is the one that
    distribution recorded.
    """
    from importlib import metadata

    for name in _CUDA_DISTRIBUTIONS:
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        for f in dist.files or ():
            if f.name == "libmlx.so" and f.size:
                path = Path(str(dist.locate_file(f)))
                if path.is_file() and path.stat().st_size == f.size:
                    return name
    return None


def nvidia_gpu_present() -> bool:
    """The NVIDIA driver shows a GPU here."""
    try:
        if _NVIDIA_GPUS.is_dir() and any(_NVIDIA_GPUS.iterdir()):
            return True
    except OSError:
        pass
    return _NVIDIA_DEVICE.exists()


def _device_env() -> str | None:
    """JUNO_DEVICE as given (lower case), None when unset."""
    return os.environ.get(DEVICE_ENV, "").strip().lower() or None


def uses_gpu() -> bool:
    """Models run on a GPU: always on macOS (Metal); on Linux, an NVIDIA GPU with MLX's
    CUDA build, unless JUNO_DEVICE=cpu (JUNO_DEVICE=gpu: the CUDA build is enough)."""
    if not is_linux():
        return True
    wanted = _device_env()
    if wanted not in (None, "gpu") or cuda_build() is None:
        return False  # (a bad JUNO_DEVICE is reported by select_device)
    return wanted == "gpu" or nvidia_gpu_present()


def select_device() -> None:
    """Once MLX is loaded: make the chosen device MLX's default, or say why it can't be.

    Raises JunoError when the GPU was chosen (JUNO_DEVICE=gpu, or an NVIDIA GPU and the
    CUDA build) but MLX cannot use it.
    """
    if not is_linux():
        return
    import mlx.core as mx

    wanted = _device_env()
    if wanted not in (None, "cpu", "gpu"):
        raise JunoError(f"{DEVICE_ENV}={wanted}: expected cpu or gpu")
    if uses_gpu():
        if not mx.cuda.is_available():
            raise JunoError(
                "MLX's CUDA build is installed but sees no usable NVIDIA GPU "
                f"(driver or CUDA libraries missing?); {DEVICE_ENV}=cpu runs on the CPU"
            )
        mx.set_default_device(mx.gpu)
    elif wanted == "gpu":
        raise JunoError(
            f"{DEVICE_ENV}=gpu, but MLX's CUDA build is not installed: pip install -e '.[cuda]'"
        )
    else:
        mx.set_default_device(mx.cpu)


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
    if uses_gpu():
        # cuDNN's attention plans anew for every (query length, keys length) pair that comes
        # with a mask: a write stalls 60-120 ms whenever a new one appears, and the first
        # ones a second. MLX's own attention kernels need no plan (and decode faster here).
        os.environ.setdefault(CUDNN_SDPA_ENV, "0")
        return None  # the GPU does the matmuls
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


def set_blas_threads(n: int) -> bool:
    """Run this process's OpenBLAS matmuls on ``n`` threads; False where Juno loaded no
    OpenBLAS (a GPU, macOS, ``JUNO_BLAS=0``), and nothing changes."""
    if _blas_path is None:
        return False
    ctypes.CDLL(_blas_path).openblas_set_num_threads(max(1, int(n)))
    return True


def blas_threads() -> int | None:
    """The threads this process's OpenBLAS runs on; None without OpenBLAS."""
    if _blas_path is None:
        return None
    return int(ctypes.CDLL(_blas_path).openblas_get_num_threads())


def cores() -> int:
    """The CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def share_cores(threads: int = 0) -> int | None:
    """For a model stage of the pipeline (the transcriber, the translator): its BLAS
    threads, ``threads``, or with 0 half the cores, so that each of the two has its own
    instead of both spinning on all of them. None without OpenBLAS (nothing to share)."""
    n = threads or max(1, cores() // 2)
    if not set_blas_threads(n):
        return None
    log.info("OpenBLAS on %d thread%s (%d cores)", n, "s" * (n != 1), cores())
    return n


def blas_path() -> str | None:
    """The OpenBLAS library loaded into this process, if any."""
    return _blas_path


def compute_dtype_name() -> str | None:
    """The dtype models should run in here, or None to keep the weights' own.

    float32 on the Linux CPU (the only dtype the CPU BLAS accelerates); the model's own
    dtype on a GPU (macOS, or Linux with CUDA).
    """
    return None if uses_gpu() else "float32"


def describe() -> str:
    """One line about the backend, for logs and benchmark headers."""
    if not is_linux():
        return f"{platform.system()} {platform.machine()}: MLX default device, model dtype"
    if uses_gpu():
        gpu = f"NVIDIA GPU ({_gpu_name()}) through MLX's CUDA build ({cuda_build()})"
        return f"Linux {platform.machine()} {gpu}, model dtype, no OpenBLAS"
    if _blas_path:
        blas = f"OpenBLAS ({_blas_path})"
    elif os.environ.get(BLAS_ENV) == "0":
        blas = f"bundled reference BLAS ({BLAS_ENV}=0)"
    elif _blas_late:
        blas = "bundled reference BLAS (mlx was imported before juno: OpenBLAS not loaded)"
    else:
        blas = "bundled reference BLAS (OpenBLAS not found: apt-get install libopenblas0-pthread)"
    return f"Linux {platform.machine()} CPU, {blas}, float32"


def _gpu_name() -> str:
    try:
        import mlx.core as mx

        return str(mx.device_info().get("device_name", "unknown"))
    except Exception:  # noqa: BLE001 - a name for a log line only
        return "unknown"


def log_backend() -> None:
    """Say once, in the log, how models will run."""
    log.info("backend: %s", describe())
