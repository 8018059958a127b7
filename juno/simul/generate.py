"""The Python API: ``load`` and ``stream_generate``, as the streaming-LLM fork of mlx-lm has them.

A call written for the fork runs unchanged::

    from juno import load, stream_generate

    model, tokenizer = load("Qwen/Qwen2.5-0.5B-Instruct")
    for response in stream_generate(model, tokenizer, prompt="Hello, how are you?",
                                    wait_k=3, system_prompt="Translate to French"):
        if response.word_complete:
            print(response.text, end=" ", flush=True)

The source comes whole (``prompt``) or live, as text pieces put on a queue
(``source_queue``; ``None`` ends it). One response is yielded per target word,
with the fork's fields, and one with no word where a sentence ends after its last
word (on the end-of-turn token); the last response has a ``finish_reason``.
The writer is the product's (``juno translate`` and ``juno run`` write the same
words for the same sentence and options), not the paper's plain wait-k; pass
``options`` for another.
"""

from __future__ import annotations

import queue as queue_mod
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import mlx.core as mx

from juno.errors import JunoError
from juno.languages import NAMES
from juno.simul.engine import StreamingTranslator
from juno.simul.options import TranslateOptions
from juno.simul.sentences import SENTENCE_END


@dataclass(frozen=True)
class GenerationResponse:
    """One target word of :func:`stream_generate` (the fork's fields, and a few more)."""

    text: str  # the word ("" on a sentence's closing response)
    token: int  # its last token
    word_complete: bool  # a finished word (False only on a sentence's closing response)
    source_words_read: int  # source words read so far (all sentences)
    target_words_generated: int  # target words written so far (all sentences)
    generation_tps: float  # sampled tokens per second of target-stream compute
    peak_memory: float  # GB
    attached: bool = False  # it follows the previous word without a space ("9:" "30")
    sentence_end: bool = False  # the last word of a sentence's translation
    finish_reason: str | None = None  # "stop" or "length" on the last response


def load(path_or_hf_repo: str, adapter_path: str | None = None) -> tuple[Any, Any]:
    """(model, tokenizer) of an LLM: a Hub repo id, a local MLX folder, a GGUF file or a
    model imported with ``juno models``; loaded as Juno runs it (float32 on a CPU)."""
    from juno import config
    from juno.models.loading import load_llm

    model, tokenizer, _ = load_llm(path_or_hf_repo, config.load(), adapter_path or "")
    return model, tokenizer


def _languages_named(text: str) -> list[str]:
    """Codes of the languages a prompt names, in the order named ("to French" → fr)."""
    found = []
    for code, name in NAMES.items():
        match = re.search(rf"\b{re.escape(name)}\b", text, flags=re.IGNORECASE)
        if match:
            found.append((match.start(), code))
    return [code for _, code in sorted(found)]


def _options(
    options: TranslateOptions | None, system_prompt: str | None, **given
) -> TranslateOptions:
    changes = {key: value for key, value in given.items() if value is not None}
    if system_prompt is not None:
        changes["system_prompt"] = system_prompt
        named = _languages_named(system_prompt)
        # "Translate to German": the example turns must be German ones too.
        if named and "target_language" not in changes:
            changes["target_language"] = named[-1]
        if len(named) > 1 and "source_language" not in changes:
            changes["source_language"] = named[0]
    return replace(options or TranslateOptions(), **changes)


def _pieces(source_queue: queue_mod.Queue, block: bool) -> Iterator[str | None]:
    """Text pieces waiting on the queue (``None``: the source is over)."""
    while True:
        try:
            piece = source_queue.get(block=block)
        except queue_mod.Empty:
            return
        yield piece
        if piece is None:
            return
        block = False


class _Source:
    """Text pieces from a queue, cut into words and sentences as they complete."""

    def __init__(self, source_queue: queue_mod.Queue, translator: StreamingTranslator) -> None:
        self.queue, self.translator = source_queue, translator
        self.partial = ""  # the text after the last whitespace: a word still arriving
        self.ended = False

    def take(self, block: bool) -> None:
        for piece in _pieces(self.queue, block):
            if piece is None:
                self._feed(self.partial.split())
                self.partial, self.ended = "", True
                self.translator.end_sentence()
                return
            text = self.partial + str(piece)
            words = text.split()
            self.partial = words.pop() if words and not text[-1:].isspace() else ""
            self._feed(words)

    def _feed(self, words: list[str]) -> None:
        for word in words:
            self.translator.feed(word)
            if word.endswith(SENTENCE_END):
                self.translator.end_sentence()


def stream_generate(
    model: Any,
    tokenizer: Any,
    prompt: str | None = None,
    *,
    source_queue: queue_mod.Queue | None = None,
    wait_k: int | None = None,
    max_new_words: int | None = None,
    max_tokens_per_word: int | None = None,
    system_prompt: str | None = None,
    temp: float | None = None,
    top_p: float | None = None,
    repetition_penalty: float | None = None,
    source_language: str | None = None,
    target_language: str | None = None,
    options: TranslateOptions | None = None,
) -> Iterator[GenerationResponse]:
    """Translate ``prompt`` (the whole source) or the pieces of ``source_queue`` as they come.

    The keywords change ``options`` (default: the product's, :class:`TranslateOptions`);
    ``system_prompt`` is the fork's plain instruction ("Translate to French") or a
    template with ``{source}`` and ``{target}``; a language it names sets the target (and
    the source, when it names two). ``max_new_words`` caps the words of the whole call.
    """
    if (prompt is None) == (source_queue is None):
        raise JunoError("stream_generate needs a prompt or a source_queue (one of them)")
    if max_new_words is not None and max_new_words < 1:
        raise JunoError(f"max_new_words must be at least 1, got {max_new_words}")
    translator = StreamingTranslator(
        model,
        tokenizer,
        _options(
            options,
            system_prompt,
            wait_k=wait_k,
            max_tokens_per_word=max_tokens_per_word,
            temp=temp,
            top_p=top_p,
            repetition_penalty=repetition_penalty,
            source_language=source_language,
            target_language=target_language,
            # The whole text at once: read on the wait-k schedule, as a writer that keeps
            # up with a live speaker reads it, not all at once.
            catch_up=False if prompt is not None else None,
        ),
    )
    if source_queue is None:  # the whole text, cut into words and sentences as a queue's
        source_queue = queue_mod.Queue()
        source_queue.put(prompt)
        source_queue.put(None)
    source = _Source(source_queue, translator)
    read_before = written = 0  # over the sentences already translated
    while not source.ended:
        source.take(block=True)  # the translator is starved: wait for more source
        for event in translator.events():
            done = event.sentence_done
            if event.word is None and not done:
                continue
            written += event.word is not None
            over = max_new_words is not None and written >= max_new_words
            last = done and source.ended and translator.pending_words == 0
            yield GenerationResponse(
                # A sentence that ends on a token after its last word (EOS) gets a
                # response of its own, with no word.
                text=event.word.text if event.word else "",
                token=event.token,
                word_complete=event.word is not None,
                source_words_read=read_before + event.source_words_read,
                target_words_generated=written,
                generation_tps=translator.stats.generation_tps,
                peak_memory=mx.get_peak_memory() / 1e9,
                attached=bool(event.word and event.word.attached),
                sentence_end=done or over,
                finish_reason="length" if over else "stop" if last else None,
            )
            if over:
                return
            if done:
                read_before += event.source_words_read
            source.take(block=False)  # words that came while this token was decoded
