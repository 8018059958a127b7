"""Random-weight models of real LLM shapes: speed where the weights can't be had.

A machine lent for measurements (a GPU without network) has no real weights, but
speed depends only on the shape: layers, widths, heads and vocabulary, the real
tokenizer's. The numbers here are Qwen2.5's (0.5B to 7B), from their config.json.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from juno.errors import JunoError

QWEN25_VOCAB = 151936
SHAPES: dict[str, dict[str, Any]] = {
    "0.5b": {"hidden_size": 896, "num_hidden_layers": 24, "intermediate_size": 4864,
             "num_attention_heads": 14, "num_key_value_heads": 2, "tie_word_embeddings": True},
    "1.5b": {"hidden_size": 1536, "num_hidden_layers": 28, "intermediate_size": 8960,
             "num_attention_heads": 12, "num_key_value_heads": 2, "tie_word_embeddings": True},
    "3b": {"hidden_size": 2048, "num_hidden_layers": 36, "intermediate_size": 11008,
           "num_attention_heads": 16, "num_key_value_heads": 2, "tie_word_embeddings": True},
    "7b": {"hidden_size": 3584, "num_hidden_layers": 28, "intermediate_size": 18944,
           "num_attention_heads": 28, "num_key_value_heads": 4, "tie_word_embeddings": False},
}  # fmt: skip


def parse_shapes(text: str) -> list[str]:
    shapes = [s.strip().lower() for s in text.split(",") if s.strip()]
    unknown = [s for s in shapes if s not in SHAPES]
    if unknown or not shapes:
        raise JunoError(
            f"--shapes: unknown {', '.join(unknown) or '(none given)'} "
            f"(choose from {', '.join(SHAPES)})"
        )
    return shapes


def random_model(shape: str, dtype: Any, vocab_size: int = QWEN25_VOCAB) -> Any:
    """A qwen2 model of ``shape`` with mlx's random initial weights, in ``dtype``."""
    import mlx.core as mx
    from mlx_lm.models import qwen2

    config = {
        "model_type": "qwen2",
        "rms_norm_eps": 1e-6,
        "rope_theta": 1000000.0,
        "max_position_embeddings": 32768,
        "vocab_size": vocab_size,
        **SHAPES[shape],
    }
    mx.random.seed(0)
    model = qwen2.Model(qwen2.ModelArgs.from_dict(config))
    model.set_dtype(dtype)
    mx.eval(model.parameters())
    return model


def load_tokenizer(folder: Path) -> Any:
    """The tokenizer of a model folder (no weights needed), as mlx-lm wraps it."""
    from mlx_lm.utils import load_tokenizer as mlx_lm_tokenizer

    if not (folder / "tokenizer.json").is_file() and not (folder / "tokenizer.model").is_file():
        raise JunoError(f"--tokenizer {folder}: no tokenizer.json there")
    return mlx_lm_tokenizer(folder)
