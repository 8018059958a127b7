"""Which mlx-lm models the dual-stream cache handles, and a clear refusal otherwise."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from mlx_lm.models.cache import KVCache

from juno.errors import JunoError

# Standard full-attention RoPE models whose attention reads cache.offset,
# cache.update_and_fetch and the first cache's make_mask (checked in tests).
SUPPORTED_MODEL_TYPES = frozenset({"qwen2", "qwen3", "llama"})


def model_type(model: Any) -> str:
    args = getattr(model, "args", None)
    return str(getattr(model, "model_type", None) or getattr(args, "model_type", "unknown"))


def check_supported(model: Any) -> int:
    """Raise a one-line JunoError unless the model can stream; return its layer count."""
    kind = model_type(model)
    if kind not in SUPPORTED_MODEL_TYPES:
        known = ", ".join(sorted(SUPPORTED_MODEL_TYPES))
        raise JunoError(
            f"streaming translation does not support model type '{kind}' (supported: {known})"
        )
    if hasattr(model, "make_cache"):
        # A model asks for other caches when it has sliding-window or recurrent layers.
        odd = sorted({type(c).__name__ for c in model.make_cache() if type(c) is not KVCache})
        if odd:
            raise JunoError(
                f"streaming translation does not support this '{kind}' model: "
                f"it needs {', '.join(odd)} layers (sliding window or recurrent)"
            )
    return len(model.layers)


def check_token_ids(model: Any, ids: Iterable[int], name: str = "the model") -> None:
    """Raise a one-line JunoError unless the model has an embedding for each of ``ids`` (the
    prompt's): MLX does not check indices, so the ids of a tokenizer that is not the model's
    would read past its table (garbage, or a crash) instead of failing."""
    vocab = getattr(getattr(model, "args", None), "vocab_size", None)
    top = max(ids, default=-1)
    if vocab is not None and top >= vocab:
        raise JunoError(
            f"{name} has {vocab} token embeddings but the prompt has token id {top}: "
            "the tokenizer is not this model's"
        )
