"""Load resolved models in the dtype this machine computes fastest in."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from juno import backend
from juno.config import Config
from juno.errors import JunoError
from juno.models.resolve import resolve

log = logging.getLogger(__name__)

# mlx-lm's adapter folder: this config beside ``adapters.safetensors``.
ADAPTER_CONFIG = "adapter_config.json"


def _mx_dtype(name: str | None) -> Any:
    import mlx.core as mx

    return getattr(mx, name) if name else None


def whisper_dtype() -> Any:
    """float32 on the Linux CPU, float16 on a GPU (a Mac's, or NVIDIA's through CUDA)."""
    import mlx.core as mx

    return _mx_dtype(backend.compute_dtype_name()) or mx.float16


def _check_adapter(folder: Path, model: Path) -> None:
    """A clear error for a folder that is not an adapter; a warning for another model's."""
    try:
        config = json.loads((folder / ADAPTER_CONFIG).read_text())
    except OSError:
        raise JunoError(f"adapter {folder}: no {ADAPTER_CONFIG} there (see juno tune)") from None
    except ValueError as e:
        raise JunoError(f"adapter {folder}: {ADAPTER_CONFIG} is not JSON ({e})") from None
    trained_on = config.get("juno", {}).get("base_model_folder")
    if trained_on and trained_on != model.name:
        log.warning("adapter %s was trained on %s, not on %s", folder, trained_on, model.name)


def _fuse_lora(model: Any) -> None:
    """Fold each LoRA layer into its base weight (W + scale·BᵀAᵀ), as ``mlx_lm fuse`` does:
    one matmul per projection again, so the adapter costs nothing per token."""
    from mlx.utils import tree_unflatten

    fused = [(name, m.fuse()) for name, m in model.named_modules() if hasattr(m, "fuse")]
    if fused:
        model.update_modules(tree_unflatten(fused))


def load_llm(spec: str, cfg: Config, adapter: str = "") -> tuple[Any, Any, Path]:
    """Resolve and load an LLM with mlx-lm: (model, tokenizer, folder).

    ``adapter``: a LoRA adapter folder in mlx-lm's format (``juno tune`` writes one).
    """
    import mlx.core as mx
    from mlx_lm import load
    from mlx_lm.utils import dequantize_model

    backend.select_device()
    path = resolve(spec, "llm", cfg.models)
    if adapter:
        _check_adapter(Path(adapter), path)
    start = time.perf_counter()
    model, tokenizer, model_config = load(
        str(path), adapter_path=adapter or None, return_config=True
    )
    dtype = _mx_dtype(backend.compute_dtype_name())
    if dtype is not None:
        if model_config.get("quantization"):
            # MLX's quantized kernels are slow on the CPU; float32 runs on OpenBLAS.
            model = dequantize_model(model)
        model.set_dtype(dtype)
    if adapter and not (model_config.get("quantization") and dtype is None):
        _fuse_lora(model)  # (a quantized model on a Mac keeps its LoRA layers apart)
    mx.eval(model.parameters())
    backend.log_backend()
    log.info(
        "loaded LLM %s%s in %.1f s",
        path.name,
        f" with adapter {adapter}" if adapter else "",
        time.perf_counter() - start,
    )
    return model, tokenizer, path


def load_whisper(spec: str, cfg: Config) -> tuple[Any, Path]:
    """Resolve and load a Whisper model with mlx-whisper: (model, folder)."""
    from mlx_whisper.load_models import load_model

    backend.select_device()
    path = resolve(spec, "whisper", cfg.models)
    start = time.perf_counter()
    model = load_model(str(path), dtype=whisper_dtype())
    backend.log_backend()
    log.info("loaded Whisper %s in %.1f s", path.name, time.perf_counter() - start)
    return model, path
