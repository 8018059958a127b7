"""GGUF metadata -> the HF ``config.json`` that mlx-lm's ModelArgs read."""

from __future__ import annotations

from typing import Any

import numpy as np

from juno.errors import JunoError
from juno.models.gguf.header import Meta

SUPPORTED_ARCHITECTURES = ("qwen2", "qwen3", "llama")

_HF_ARCHITECTURES = {
    "qwen2": "Qwen2ForCausalLM",
    "qwen3": "Qwen3ForCausalLM",
    "llama": "LlamaForCausalLM",
}


def _llama3_rope_factors(
    theta: float, head_dim: int, factor: float, low: float, high: float, original: int
) -> np.ndarray:
    """The per-frequency divisors convert_hf_to_gguf.py stores as rope_freqs for Llama 3."""
    wavelen = 2 * np.pi * theta ** (np.arange(0, head_dim, 2) / head_dim)
    smooth = (original / wavelen - low) / (high - low)
    medium = 1 / ((1 - smooth) / factor + smooth)
    return np.where(
        wavelen < original / high, 1.0, np.where(wavelen > original / low, factor, medium)
    )


def _rope_scaling(
    meta: Meta, arch: str, rope_freqs: np.ndarray | None, theta: float, head_dim: int
) -> dict[str, Any] | None:
    """HF rope_scaling from GGUF keys, or from the rope_freqs tensor of Llama 3.x."""
    if rope_freqs is not None:
        factors = rope_freqs.astype(np.float64).ravel()
        if np.allclose(factors, 1.0):
            return None
        # GGUF keeps only the resulting divisors; Llama 3.1/3.2 all use these settings.
        scaling = {
            "rope_type": "llama3",
            "factor": float(factors.max()),
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192,
        }
        params = list(scaling.values())[1:]
        expected = _llama3_rope_factors(theta, head_dim, *params)
        if expected.shape != factors.shape or not np.allclose(expected, factors, rtol=1e-3):
            raise JunoError(f"{meta.name}: rope_freqs do not match Llama 3 RoPE scaling")
        return scaling
    kind = meta.get(f"{arch}.rope.scaling.type", "none")
    if kind == "none":
        return None
    factor = float(meta.require(f"{arch}.rope.scaling.factor"))
    if kind == "linear":
        return {"rope_type": "linear", "factor": factor}
    if kind == "yarn":
        original = meta.require(f"{arch}.rope.scaling.original_context_length")
        return {"rope_type": "yarn", "factor": factor, "original_max_position_embeddings": original}
    raise JunoError(f"{meta.name}: RoPE scaling '{kind}' is not supported (linear, yarn)")


def model_config(
    meta: Meta, arch: str, vocab_rows: int, tied: bool, rope_freqs: np.ndarray | None
) -> dict[str, Any]:
    """The HF config.json that mlx-lm's ModelArgs for ``arch`` reads."""
    hidden = int(meta.require(f"{arch}.embedding_length"))
    heads = int(meta.require(f"{arch}.attention.head_count"))
    head_dim = int(meta.get(f"{arch}.attention.key_length", hidden // heads))
    rotary_dims = int(meta.get(f"{arch}.rope.dimension_count", head_dim))
    if rotary_dims != head_dim:
        raise JunoError(f"{meta.name}: partial rotary embeddings are not supported")
    if arch == "qwen2" and head_dim * heads != hidden:
        raise JunoError(f"{meta.name}: qwen2 with head size {head_dim} is not supported")
    # llama.cpp's defaults for keys a converter may leave out.
    theta = float(meta.get(f"{arch}.rope.freq_base", 10000.0))
    context = int(meta.get(f"{arch}.context_length", 4096))
    config: dict[str, Any] = {
        "architectures": [_HF_ARCHITECTURES[arch]],
        "model_type": arch,
        "hidden_size": hidden,
        "num_hidden_layers": int(meta.require(f"{arch}.block_count")),
        "intermediate_size": int(meta.require(f"{arch}.feed_forward_length")),
        "num_attention_heads": heads,
        "num_key_value_heads": int(meta.get(f"{arch}.attention.head_count_kv", heads)),
        "head_dim": head_dim,
        "rms_norm_eps": float(meta.require(f"{arch}.attention.layer_norm_rms_epsilon")),
        "rope_theta": theta,
        "vocab_size": vocab_rows,
        "max_position_embeddings": context,
        "tie_word_embeddings": tied,
        "hidden_act": "silu",
    }
    scaling = _rope_scaling(meta, arch, rope_freqs, theta, head_dim)
    if scaling is not None:
        config["rope_scaling"] = scaling
    return config
