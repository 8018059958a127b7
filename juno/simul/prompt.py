"""The token pieces of the two streams, cut from the tokenizer's chat template.

Rendering a conversation with a placeholder user message, with and without the
generation prompt, and splitting around the placeholder gives the pieces for
any template (ChatML, Llama 3, ...) without hard-coding one:

- source stream: ``prefix`` (system prompt and user header), the words, ``footer``
  (end of the user turn);
- target stream: ``header`` (the assistant header), then the generated tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from juno.errors import JunoError

# Stands for the user's text while the template is rendered.
_PLACEHOLDER = "JUNOSOURCEPLACEHOLDER"


def chat_messages(
    system: str, text: str, examples: Sequence[tuple[str, str]] = ()
) -> list[dict[str, str]]:
    """The conversation that asks for ``text``: system, example turns, then the text.

    The streaming prompt and the offline translation both use it, so the two
    are measured with the same prompt.
    """
    messages = [{"role": "system", "content": system}]
    for source, target in examples:
        messages += [
            {"role": "user", "content": source},
            {"role": "assistant", "content": target},
        ]
    messages.append({"role": "user", "content": text})
    return messages


@dataclass(frozen=True)
class StreamPrompt:
    prefix: tuple[int, ...]  # system prompt + user-turn header
    footer: tuple[int, ...]  # end-of-user-turn marker
    header: tuple[int, ...]  # assistant-turn header

    @classmethod
    def from_template(
        cls, tokenizer: Any, system: str, examples: Sequence[tuple[str, str]] = ()
    ) -> StreamPrompt:
        """Cut the pieces from ``tokenizer``'s chat template (an mlx-lm tokenizer).

        ``examples`` (source, translation) turns go into the prefix, before the
        streamed sentence.
        """
        messages = chat_messages(system, _PLACEHOLDER, examples)
        try:
            # enable_thinking=False: Qwen3's template then closes the thinking block.
            full = tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True, enable_thinking=False
            )
            turn = tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=False, enable_thinking=False
            )
        except Exception as e:  # templates raise arbitrary errors (jinja, missing template)
            raise JunoError(f"cannot render the model's chat template: {e}") from None
        if turn.count(_PLACEHOLDER) != 1 or not full.startswith(turn):
            raise JunoError("the model's chat template cannot be split into streams")
        prefix_text, footer_text = turn.split(_PLACEHOLDER)
        header_text = full[len(turn) :]

        def encode(text: str) -> tuple[int, ...]:
            return tuple(tokenizer.encode(text, add_special_tokens=False))

        return cls(encode(prefix_text), encode(footer_text), encode(header_text))


def encode_word(tokenizer: Any, word: str, first: bool) -> list[int]:
    """Tokens of one source word as it continues the user message."""
    return list(tokenizer.encode(word if first else " " + word, add_special_tokens=False))
