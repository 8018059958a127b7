"""Juno: on-device live conversation translation on MLX."""

from juno import backend as _backend

# Must happen before anything imports mlx (see juno/backend.py).
_backend.preload_blas()

__version__ = "0.1.0"

__all__ = ["GenerationResponse", "TranslateOptions", "load", "stream_generate"]


def __getattr__(name: str):
    # The Python API, imported on first use: `import juno` alone loads no MLX.
    if name in ("load", "stream_generate", "GenerationResponse"):
        from juno.simul import generate

        return getattr(generate, name)
    if name == "TranslateOptions":
        from juno.simul.options import TranslateOptions

        return TranslateOptions
    raise AttributeError(f"module 'juno' has no attribute {name!r}")
