"""A two-way conversation: each speaker's words translated into the other's language.

One :class:`~juno.simul.engine.StreamingTranslator` per direction (en→fr and
fr→en), each with its own system prompt encoded once and kept in its own cache:
switching direction at a sentence boundary re-encodes nothing. Each source word
goes to the direction of the language it was spoken in; a word in the other
language than the sentence in progress first ends that sentence (a change of
speaker is a sentence boundary). When both directions have work (one still
writing the last sentence while the other reads the next), their model calls go
through the model as one batch, as :class:`~juno.simul.batch.BatchTranslator`
runs several target languages.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

from juno.errors import JunoError
from juno.simul.batch import BatchTranslator
from juno.simul.engine import StreamingTranslator
from juno.simul.options import TranslateOptions


class Conversation(BatchTranslator):
    """Rows: one translator per direction; :meth:`feed` takes the words' language."""

    @classmethod
    def create(  # type: ignore[override]
        cls, model: Any, tokenizer: Any, options: TranslateOptions, pair: Sequence[str]
    ) -> Conversation:
        """Both directions between the two languages of ``pair``, with ``options``."""
        if len(pair) != 2 or pair[0] == pair[1]:
            raise JunoError(f"a conversation needs two different languages, got {list(pair)}")
        if options.draft != "off":
            raise JunoError("speculative writing (translate.draft) is for one direction")
        a, b = pair
        return cls(
            [
                StreamingTranslator(
                    model,
                    tokenizer,
                    replace(options, source_language=source, target_language=target),
                    pipelined=False,
                )
                for source, target in ((a, b), (b, a))
            ]
        )

    def __init__(self, rows: Sequence[StreamingTranslator]) -> None:
        super().__init__(rows)
        self.sources = [row.options.source_language for row in self.rows]
        if len(set(self.sources)) != len(self.sources):
            raise ValueError("each direction of a conversation needs its own source language")
        self.current = 0  # the row of the sentence being spoken

    def row_of(self, language: str) -> int:
        """The direction whose source is ``language`` (an unknown one: the current)."""
        return self.sources.index(language) if language in self.sources else self.current

    def feed(self, words: str | Iterable[Any], language: str = "") -> None:  # type: ignore[override]
        """Queue source words spoken in ``language`` (default: the current speaker's)."""
        row = self.row_of(language)
        if row != self.current:
            self.rows[self.current].end_sentence()  # the other speaker took over
            self.current = row
        self.rows[row].feed(words)

    def end_sentence(self) -> None:
        self.rows[self.current].end_sentence()

    @property
    def pending_words(self) -> int:
        """Source words not yet translated, in both directions."""
        return sum(row.pending_words for row in self.rows)
