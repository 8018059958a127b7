"""Juno: on-device live conversation translation on MLX."""

from juno import backend as _backend

# Must happen before anything imports mlx (see juno/backend.py).
_backend.preload_blas()

__version__ = "0.1.0"
