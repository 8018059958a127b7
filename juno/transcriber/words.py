"""The unit the transcriber emits: one committed word with its stream times."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

# Marks that end a sentence when a word ends with them (after closing quotes).
SENTENCE_END_MARKS = ".?!。？！"
_CLOSERS = "\"'”’)]}»"


@dataclass(frozen=True)
class Word:
    """A word of the transcript; times are seconds since the start of the stream."""

    # The word as Whisper wrote it, punctuation attached, no surrounding spaces.
    text: str
    # Audio time the word starts.
    start_s: float
    # Audio time the word ends.
    end_s: float
    # Mean token probability Whisper gave the word.
    probability: float = 1.0
    # The word ends a sentence (final punctuation, or a long pause follows it).
    sentence_end: bool = False
    # Whisper's text tokens for the word, where the policy forces them back in (AlignAtt).
    tokens: tuple[int, ...] = ()


def normalize(text: str) -> str:
    """The comparable core of a word: case-folded letters and digits only.

    Punctuation, apostrophes and hyphens are dropped so "Ask," == "ask" and
    "1,000" == "1000"; Unicode is NFKC-folded so full-width forms compare equal.
    """
    folded = unicodedata.normalize("NFKC", text).casefold()
    return "".join(c for c in folded if c.isalnum())


def ends_sentence(text: str) -> bool:
    """True when the text ends with sentence-final punctuation (quotes ignored).

    An ellipsis is Whisper's mark for a thought trailing off mid-sentence, not an end.
    """
    core = text.rstrip().rstrip(_CLOSERS)
    if core.endswith(("..", "…")):
        return False
    return core.endswith(tuple(SENTENCE_END_MARKS))


def join_words(words: list[Word]) -> str:
    """The words as running text."""
    return " ".join(w.text for w in words)
