"""Text split into the sentences the translator takes one at a time."""

from __future__ import annotations

from collections.abc import Iterator

SENTENCE_END = (".", "!", "?", "…", '."', '!"', '?"', ".»", "!»", "?»")


def sentences(lines: Iterator[str]) -> Iterator[list[str]]:
    """Split text into sentences of words: at line ends and sentence punctuation."""
    for line in lines:
        words: list[str] = []
        for word in line.split():
            words.append(word)
            if word.endswith(SENTENCE_END):
                yield words
                words = []
        if words:
            yield words
