"""Offline translation of a finished sentence: the reference the streaming one is held to.

Greedy, with the same conversation as the streaming prompt (system prompt and
example turns) so that the two differ only in when the source is seen.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from juno.config import Config
from juno.languages import language_name
from juno.simul.examples import examples_for
from juno.simul.prompt import chat_messages


@dataclass(frozen=True)
class OfflineTranslation:
    text: str  # the translation: the model's first line (comments may follow it)
    tokens: int  # prompt and generated tokens
    seconds: float


def offline_prompt(tokenizer: Any, cfg: Config, text: str, source: str, target: str) -> list[int]:
    """Token ids of the chat that asks for ``text`` (language codes)."""
    system = cfg.translate.system_prompt.format(
        source=language_name(source), target=language_name(target)
    )
    examples = examples_for(source, target, cfg.translate.examples)
    messages = chat_messages(system, text, examples)
    return list(tokenizer.apply_chat_template(messages, add_generation_prompt=True))


def _token_cap(tokenizer: Any, text: str) -> int:
    """Generated tokens allowed for translating ``text``."""
    return 4 * len(tokenizer.encode(text)) + 20


def _first_line(text: str) -> str:
    """The translation: the model's first line (comments may follow it)."""
    return text.strip().split("\n")[0].strip()


def translate_offline(
    model: Any,
    tokenizer: Any,
    cfg: Config,
    text: str,
    source: str,
    target: str,
    max_tokens: int | None = None,
) -> OfflineTranslation:
    """Translate one whole text greedily (mlx-lm's ``stream_generate``).

    Generation stops at the end of the first line, as the streaming writer's
    one-line rule does.
    """
    from mlx_lm import stream_generate

    prompt = offline_prompt(tokenizer, cfg, text, source, target)
    max_tokens = max_tokens or _token_cap(tokenizer, text)
    out, n, start = "", 0, time.perf_counter()
    for r in stream_generate(model, tokenizer, prompt, max_tokens=max_tokens):
        out += r.text
        n = r.generation_tokens + r.prompt_tokens
        if "\n" in out.strip():
            break
    return OfflineTranslation(_first_line(out), n, time.perf_counter() - start)


def translate_offline_batch(
    model: Any,
    tokenizer: Any,
    cfg: Config,
    texts: list[str],
    source: str,
    target: str,
    batch_size: int = 16,
    on_batch: Callable[[int], None] | None = None,
) -> list[str]:
    """Translate many texts greedily, ``batch_size`` at a time (mlx-lm's ``batch_generate``).

    The same prompt and first-line rule as :func:`translate_offline`. Decoding
    a small model is bound by reading its weights, so a batch costs little
    more than one text. ``on_batch(n)`` is called after each batch of ``n``.
    """
    from mlx_lm.generate import batch_generate

    out: list[str] = []
    for i in range(0, len(texts), batch_size):
        chunk = texts[i : i + batch_size]
        prompts = [offline_prompt(tokenizer, cfg, t, source, target) for t in chunk]
        caps = [_token_cap(tokenizer, t) for t in chunk]
        response = batch_generate(model, tokenizer, prompts, max_tokens=caps)
        out += [_first_line(text) for text in response.texts]
        if on_batch is not None:
            on_batch(len(chunk))
    return out
