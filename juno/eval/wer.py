"""Word error rate over normalized text (jiwer), as every transcriber figure is scored."""

from __future__ import annotations

import re
import unicodedata


def normalize_text(text: str) -> str:
    """Lowercase, punctuation (but apostrophes) to spaces, single spaces."""
    text = unicodedata.normalize("NFKC", text).casefold().replace("’", "'")
    text = "".join(" " if unicodedata.category(c)[0] in "PS" and c != "'" else c for c in text)
    return re.sub(r"\s+", " ", text).strip()


def wer(refs: list[str], hyps: list[str]) -> float:
    """Corpus WER in percent over normalized texts."""
    import jiwer

    pairs = [(normalize_text(r), normalize_text(h)) for r, h in zip(refs, hyps, strict=True)]
    pairs = [(r, h) for r, h in pairs if r]
    return 100 * jiwer.wer([r for r, _ in pairs], [h for _, h in pairs])
