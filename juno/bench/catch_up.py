"""``juno bench translate --parts catch-up``: a writer behind the speaker, reading
lazily (one source word per target word) against catching up (every word that has
arrived, at the next word boundary; ``translate.catch_up``).

Each FLORES dev sentence is spoken at ``rate`` words per second and reaches the
translator on the simulated clock of :mod:`juno.eval.timeline`, with the translator's
compute counted: it falls behind when it writes slower than the speaker. Each sentence
starts on its own clock with the translator idle. Lag: from a source word's arrival to
the first target word written after reading it (the session report's translation lag,
without the transcriber). Both settings run on the same model, one after the other for
each pair.
"""

from __future__ import annotations

import dataclasses
import statistics
from typing import Any

from juno.config import Config
from juno.paths import flores_dev


def sentence_lags(arrivals: list[Any], written: list[Any]) -> list[float]:
    """Per source word (in order), seconds from its arrival to the first target word
    written after reading it; a word no target word was written after has none."""
    lags = []
    for i, arrival in enumerate(arrivals, start=1):
        after = [w.time_s for w in written if w.source_words >= i]
        if after:
            lags.append(min(after) - arrival.time_s)
    return lags


def part_catch_up(
    model: Any,
    tokenizer: Any,
    cfg: Config,
    pairs: list[tuple[str, str]],
    start: int,
    n: int,
    rate: float,
    console: Any,
) -> None:
    from juno.bench.translate import _score, _table
    from juno.eval.timeline import Arrival, TimelineStats, translate_timeline
    from juno.simul.engine import StreamingTranslator
    from juno.simul.options import TranslateOptions

    table = _table(
        f"catch-up: FLORES dev lines {start + 1}-{start + n} spoken at {rate:g} words/s, "
        f"wait-{cfg.translate.wait_k}, the translator's compute counted; lag from a word's "
        "arrival to the first target word written after reading it",
        [
            "pair",
            "reading",
            "BLEU",
            "chrF",
            "AL",
            "LAAL",
            "words",
            "lag median s",
            "lag p90 s",
            "reads",
            "compute s",
        ],
    )
    for source_lang, target in pairs:
        sources = flores_dev(source_lang)[start : start + n]
        refs = flores_dev(target)[start : start + n]
        for catch_up in (False, True):
            options = dataclasses.replace(
                TranslateOptions.from_config(cfg, target),
                source_language=source_lang,
                draft="off",
                catch_up=catch_up,
            )
            translator = StreamingTranslator(model, tokenizer, options)
            stats = TimelineStats()
            hyps, delays, lags = [], [], []
            for source in sources:
                words = source.split()
                arrivals = [
                    Arrival((i + 1) / rate, word, i == len(words) - 1)
                    for i, word in enumerate(words)
                ]
                written = translate_timeline(translator, arrivals, arrivals[-1].time_s, True, stats)
                hyps.append(" ".join(w.text for w in written))
                delays.append([w.source_words for w in written])
                lags += sentence_lags(arrivals, written)
            cells, _ = _score(hyps, delays, sources, refs, target)
            lags.sort()
            p90 = lags[min(len(lags) - 1, int(0.9 * len(lags)))] if lags else float("nan")
            table.add_row(
                f"{source_lang}→{target}",
                "catch up" if catch_up else "lazy",
                *cells,
                f"{statistics.median(lags):.2f}" if lags else "-",
                f"{p90:.2f}",
                str(translator.stats.source_reads),
                f"{stats.compute_s:.0f}",
            )
    console.print(table)
