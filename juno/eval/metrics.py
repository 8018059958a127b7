"""Latency metrics of simultaneous translation, with SimulEval's definitions.

``delays[i]`` is how much source had been read when target word i was
written (source words for text, milliseconds of audio for speech).

AL  = 1/tau * sum_{i=1..tau} (d_i - (i - 1) * |X| / |Y|)
tau = the first i with d_i >= |X| (all words up to the one written after the
      whole source was read)

AL uses |Y| = the reference length when a reference is given, else the
hypothesis length; LAAL uses max(|hypothesis|, |reference|), so an
over-long hypothesis cannot lower its latency by padding.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def _lagging(delays: Sequence[float], source_length: float, target_length: float) -> float:
    if not delays:
        return math.nan
    if source_length <= 0:
        raise ValueError("source_length must be positive")
    if delays[0] > source_length:
        return float(delays[0])
    rate = target_length / source_length  # target words per source word
    total, tau = 0.0, 0
    for i_minus_1, d in enumerate(delays):
        total += d - i_minus_1 / rate
        tau = i_minus_1 + 1
        if d >= source_length:
            break
    return total / tau


def average_lagging(
    delays: Sequence[float], source_length: float, reference_length: int | None = None
) -> float:
    """AL of one sentence (NaN for an empty hypothesis)."""
    target_length = reference_length if reference_length else len(delays)
    return _lagging(delays, source_length, target_length)


def length_adaptive_average_lagging(
    delays: Sequence[float], source_length: float, reference_length: int
) -> float:
    """LAAL of one sentence (NaN for an empty hypothesis)."""
    return _lagging(delays, source_length, max(len(delays), reference_length))


def corpus_mean(values: Sequence[float]) -> float:
    """Mean over sentences, skipping NaN (empty hypotheses)."""
    kept = [v for v in values if not math.isnan(v)]
    return sum(kept) / len(kept) if kept else math.nan
