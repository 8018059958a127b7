"""The cascade on a simulated clock: committed source words into the translator.

Each source word reaches the translator at its commit time (the transcriber
replay's clock). The translator is its own process in the pipeline, so it keeps
its own clock: it takes every word that has arrived, writes what the policy
allows, and waits for the next word when starved. Between two tokens it takes
the words that arrived meanwhile, as the translate process does.

Computation-unaware, compute is free: a target word is written at the time the
word that allowed it arrived. Computation-aware, the translator's clock also
advances by the measured compute of each token, so it falls behind when it is
slower than the speaker.
"""

from __future__ import annotations

import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from juno.eval.score import whole_words


class Translator(Protocol):
    """What the timeline needs of juno.simul.engine.StreamingTranslator (or of a
    juno.simul.batch.BatchTranslator, whose events are (row, event) pairs)."""

    def feed(self, words: str) -> None: ...
    def end_sentence(self) -> None: ...
    def events(self) -> Iterator[Any]: ...


@dataclass(frozen=True)
class Arrival:
    """A committed source word and the simulated time it reached the translator."""

    time_s: float
    text: str
    # The word ends a sentence: the translator finishes it.
    sentence_end: bool = False


@dataclass(frozen=True)
class Written:
    """A target word and the simulated time it was written."""

    text: str
    time_s: float
    # Source words of its sentence read when it was written (the text delay).
    source_words: int


@dataclass
class TimelineStats:
    """Wall seconds spent inside the translator."""

    compute_s: float = 0.0


def translate_timeline(
    translator: Translator,
    arrivals: Iterable[Arrival],
    end_s: float,
    compute_aware: bool = False,
    stats: TimelineStats | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> list[Written]:
    """Run the translator over the arrivals; the stream ends (last sentence closed) at end_s."""
    return translate_timeline_rows(translator, arrivals, end_s, compute_aware, stats, clock)[0]


def translate_timeline_rows(
    translator: Translator,
    arrivals: Iterable[Arrival],
    end_s: float,
    compute_aware: bool = False,
    stats: TimelineStats | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[int, list[Written]]:
    """:func:`translate_timeline` for a translator of several rows (target languages):
    each row's words; a single translator's are row 0."""
    stats = stats if stats is not None else TimelineStats()
    pending = deque(sorted(arrivals, key=lambda a: a.time_s))
    # The translator's words per row, a word written in parts apart.
    parts: dict[int, list[Written]] = defaultdict(list)
    attached: dict[int, list[bool]] = defaultdict(list)
    now = 0.0
    ended = False

    def take(now: float) -> None:
        nonlocal ended
        while pending and pending[0].time_s <= now:
            word = pending.popleft()
            translator.feed(word.text)
            if word.sentence_end:
                translator.end_sentence()
        if not pending and not ended and end_s <= now:
            translator.end_sentence()
            ended = True

    while True:
        take(now)
        events = translator.events()
        while True:
            start = clock()
            event = next(events, None)
            spent = clock() - start
            stats.compute_s += spent
            if compute_aware:
                now += spent
            if event is None:
                break
            row, event = event if isinstance(event, tuple) else (0, event)
            if event.word is not None:
                parts[row].append(Written(event.word.text, now, event.word.delay))
                attached[row].append(event.word.attached)
            take(now)
        if ended:
            # Everything was fed and the last sentence closed: it is translated to the end.
            # A word written in parts ("9:" then "30") is one word, complete at its last.
            rows = getattr(translator, "rows", [translator])
            return {
                row: [
                    Written("".join(p.text for p in g), g[-1].time_s, g[-1].source_words)
                    for g in whole_words(parts[row], attached[row])
                ]
                for row in range(len(rows))
            }
        now = max(now, pending[0].time_s if pending else end_s)
