"""Replay recorded audio through a stepper in simulated real time.

The audio arrives in chunks on a virtual clock. Computation-unaware, the clock
is the audio time of the latest chunk: compute is free, and a word's lag is
pure policy. Computation-aware, the clock also advances by the measured compute
time of each step (as whisper_streaming's simulation does): audio that arrived
meanwhile is fed at once, and words are stamped when the step that committed
them finishes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from juno.transcriber.streaming import StreamingTranscriber
from juno.transcriber.vad import SAMPLE_RATE_HZ
from juno.transcriber.words import Word


@dataclass(frozen=True)
class Emission:
    """A committed word and the virtual time it came out."""

    word: Word
    # Seconds since the stream started, on the replay's clock.
    emitted_s: float


@dataclass
class ReplayStats:
    """What the replay measured besides the words."""

    # Wall seconds spent inside the stepper (insert_audio, process and finish).
    compute_s: float = 0.0
    # Seconds of audio replayed.
    audio_s: float = 0.0


def replay(
    stepper: StreamingTranscriber,
    audio: np.ndarray,
    chunk_s: float = 0.1,
    compute_aware: bool = False,
    stats: ReplayStats | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> Iterator[Emission]:
    """Yield each committed word as the replay commits it (see the module docstring)."""
    stats = stats if stats is not None else ReplayStats()
    chunk = max(1, round(chunk_s * SAMPLE_RATE_HZ))
    total = len(audio)
    stats.audio_s = total / SAMPLE_RATE_HZ
    fed = 0
    now = 0.0
    while fed < total:
        # Wait (virtually) for the next chunk, then take everything arrived by now.
        now = max(now, min(fed + chunk, total) / SAMPLE_RATE_HZ)
        arrived = min(total, max(fed + chunk, int(now * SAMPLE_RATE_HZ) // chunk * chunk))
        piece = audio[fed:arrived]
        fed = arrived

        def step(piece=piece, at=now):
            # Inserting runs the voice activity detector: its compute counts too.
            stepper.insert_audio(piece, at)
            return stepper.process(at)

        words, now = _timed(step, now, compute_aware, stats, clock)
        for word in words:
            yield Emission(word, now)
    words, now = _timed(stepper.finish, now, compute_aware, stats, clock)
    for word in words:
        yield Emission(word, now)


def _timed(call, now, compute_aware, stats, clock):
    """Run a step; count its compute, and on the aware clock let time pass by it."""
    start = clock()
    words = call()
    spent = clock() - start
    stats.compute_s += spent
    return words, now + spent if compute_aware else now


def format_emission(e: Emission) -> str:
    """One machine-readable line: emission, start and end seconds, then the word."""
    return f"{e.emitted_s:.3f} {e.word.start_s:.3f} {e.word.end_s:.3f} {e.word.text}"
