"""Figures of one item and of a corpus, with SimulEval's and sacrebleu's definitions.

Latency (see juno.eval.metrics): a target word's delay is the source consumed when
it was written, in source words for text and in milliseconds of audio for
speech, where the source length is the clip's duration in milliseconds. An
empty hypothesis has no latency (NaN, left out of corpus means, and counted).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from juno.errors import JunoError
from juno.eval.metrics import average_lagging, length_adaptive_average_lagging
from juno.eval.wer import normalize_text, wer


@dataclass(frozen=True)
class Lagging:
    """AL and LAAL of one hypothesis (NaN when it is empty)."""

    al: float
    laal: float


def lagging(delays: Sequence[float], source_length: float, reference: str | None) -> Lagging:
    """AL with |Y| = the reference length and LAAL with the longer of the two.

    Without a reference both use the hypothesis length (SimulEval's choice then).
    """
    ref_len = len(reference.split()) if reference else len(delays)
    return Lagging(
        average_lagging(delays, source_length, ref_len),
        length_adaptive_average_lagging(delays, source_length, ref_len),
    )


def speech_delays_ms(times_s: Sequence[float]) -> list[float]:
    """Delays of target words written at these stream times: audio consumed, in ms."""
    return [1000.0 * t for t in times_s]


@dataclass(frozen=True)
class Quality:
    """Corpus BLEU and chrF with their sacrebleu signatures."""

    bleu: float
    chrf: float
    bleu_signature: str
    chrf_signature: str


def corpus_quality(hyps: Sequence[str], refs: Sequence[str], target: str) -> Quality:
    """sacrebleu's corpus BLEU (tokenizer chosen for the target language) and chrF."""
    from sacrebleu.metrics import BLEU, CHRF

    try:
        bleu = BLEU(trg_lang=target)
    except (ImportError, RuntimeError) as e:
        raise JunoError(f"BLEU for '{target}' needs an extra of sacrebleu: {e}") from None
    chrf = CHRF()
    b = bleu.corpus_score(list(hyps), [list(refs)]).score
    c = chrf.corpus_score(list(hyps), [list(refs)]).score
    return Quality(b, c, str(bleu.get_signature()), str(chrf.get_signature()))


def whole_words(parts: Sequence[Any], attached: Sequence[bool]) -> list[list[Any]]:
    """The translator's words grouped into whole words: a part that attaches to the one
    before it ("9:" then "30") joins its group. Scored text and delays come from the
    groups: the text joined without a space, the delay of the last part."""
    groups: list[list[Any]] = []
    for part, joins in zip(parts, attached, strict=True):
        if joins and groups:
            groups[-1].append(part)
        else:
            groups.append([part])
    return groups


def corpus_wer(refs: Sequence[str], hyps: Sequence[str]) -> float:
    """Corpus WER in percent after normalization (case, punctuation, spacing)."""
    if not any(normalize_text(r) for r in refs):
        return math.nan
    return wer(list(refs), list(hyps))
