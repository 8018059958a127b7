"""``stream_generate``: translate one text with wait-k, token by token.

The counterpart of mlx-lm's ``stream_generate`` for simultaneous translation:
the whole source text is given, read word by word as the policy asks, and a
response is yielded for every target token.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import mlx.core as mx
from mlx_lm.sample_utils import make_logits_processors, make_sampler

from juno.simul.engine import Phi, StreamingTranslator


@dataclass(frozen=True)
class TranslationResponse:
    """One target token of :func:`stream_generate`."""

    text: str  # text this token adds to the translation ("" for EOS)
    token: int
    word_complete: bool  # this token finished a target word (``word`` holds it)
    word: str | None  # the finished target word
    source_words_read: int
    target_words_generated: int
    generation_tps: float  # sampled tokens per second of target-stream compute
    peak_memory: float  # GB
    finish_reason: str | None = None  # "stop" (EOS) or "length" on the last response


def stream_generate(
    model,
    tokenizer,
    source_text: str,
    *,
    source_language: str,
    target_language: str,
    wait_k: int = 3,
    max_new_words: int | None = None,
    max_tokens_per_word: int = 50,
    system_prompt: str | None = None,
    temp: float = 0.0,
    top_p: float = 1.0,
    repetition_penalty: float = 1.0,
    phi: Phi = "source",
) -> Iterator[TranslationResponse]:
    """Translate ``source_text`` (one sentence) with wait-k; yield each target token.

    ``source_language``/``target_language`` are the names the system prompt
    uses; ``phi`` is the target start position (an int, or ``"source"``).
    """
    translator = StreamingTranslator(
        model,
        tokenizer,
        source_language=source_language,
        target_language=target_language,
        wait_k=wait_k,
        phi=phi,
        max_tokens_per_word=max_tokens_per_word,
        max_words_per_sentence=max_new_words,
        system_prompt=system_prompt,
        sampler=make_sampler(temp=temp, top_p=top_p),
        logits_processors=make_logits_processors(
            repetition_penalty=repetition_penalty if repetition_penalty != 1.0 else None
        ),
    )
    translator.feed(source_text)
    translator.end_sentence()
    for event in translator.events():
        finish = None
        if event.sentence_done:
            finish = "stop" if event.eos else "length"
        yield TranslationResponse(
            text=event.piece,
            token=event.token,
            word_complete=event.word is not None,
            word=event.word.text if event.word else None,
            source_words_read=event.source_words_read,
            target_words_generated=event.target_words,
            generation_tps=translator.stats.generation_tps,
            peak_memory=mx.get_peak_memory() / 1e9,
            finish_reason=finish,
        )
        if event.sentence_done:
            return
