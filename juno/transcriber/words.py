"""The unit the transcriber emits: one committed word with its stream times."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

# Marks that end a sentence when a word ends with them (after closing quotes).
SENTENCE_END_MARKS = ".?!。？！"
_CLOSERS = "\"'”’)]}»"
# Words whose period marks an abbreviation, not a sentence end (case-folded):
# titles before a name, and the usual short forms in the source languages.
ABBREVIATIONS = frozenset(
    """
    mr mrs ms dr prof st sr jr rev gen col capt lt sgt gov sen rep pres hon
    mt ft vs approx dept est fig inc corp ltd co jan feb mar apr jun jul aug sep
    sept oct nov dec mme mlle mm nr bzw vgl ca sra sres
    """.split()
)


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
    # The language it was transcribed in (ISO 639-1; set by the stepper).
    language: str = ""
    # It continues the word before it, without a space: Whisper went on with the word
    # committed before it ("cold", then "-hearted" at the next step).
    attached: bool = False


def normalize(text: str) -> str:
    """The comparable core of a word: case-folded letters and digits only.

    Punctuation, apostrophes and hyphens are dropped so "Ask," == "ask" and
    "1,000" == "1000"; Unicode is NFKC-folded so full-width forms compare equal.
    """
    folded = unicodedata.normalize("NFKC", text).casefold()
    return "".join(c for c in folded if c.isalnum())


def ends_sentence(text: str) -> bool:
    """True when the text ends with sentence-final punctuation (quotes ignored).

    An ellipsis is Whisper's mark for a thought trailing off mid-sentence, not an
    end; nor is the period of an abbreviation ("Dr.", "Mr."), an initial ("J."),
    or a dotted short form ("U.S.", "a.m.", "e.g."). A pause after such a word
    still ends the sentence (the policies test pauses apart).
    """
    core = text.rstrip().rstrip(_CLOSERS)
    if core.endswith(("..", "…")):
        return False
    if core.endswith(".") and is_abbreviation(core):
        return False
    return core.endswith(tuple(SENTENCE_END_MARKS))


def is_abbreviation(word: str) -> bool:
    """A word ending in a period that abbreviates: a title or short form, a
    single-letter initial, or letters each followed by a period."""
    core = word.strip().lstrip("\"'“‘([{¿¡").rstrip(_CLOSERS)
    if not core.endswith("."):
        return False
    stem = core[:-1]
    if stem.casefold() in ABBREVIATIONS:
        return True
    if len(stem) == 1 and stem.isalpha() and stem != "I":  # "I." is a word
        return True
    parts = core.split(".")[:-1]
    return len(parts) >= 2 and all(len(p) == 1 and p.isalpha() for p in parts)
