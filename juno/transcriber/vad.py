"""Voice activity over the stream: which stretches of audio hold speech.

Whisper, given silence, noise or music, writes text anyway ("Thank you.",
loops), so the stepper only transcribes when there is speech and drops words
that lie outside it. A detector scores fixed frames of 16 kHz audio as it
arrives; :class:`SpeechTrack` keeps the per-frame decisions in stream time.

Detectors: Silero VAD (the ``silero-vad`` package ships its TorchScript model;
torch is already here through mlx-whisper), an adaptive energy gate (no model),
and ``off`` for measurements.
"""

from __future__ import annotations

from collections import deque
from typing import Protocol

import numpy as np

from juno.errors import JunoError

SAMPLE_RATE_HZ = 16000
# Silero's frame at 16 kHz; the other detectors use it too so tracks line up.
FRAME_SAMPLES = 512
FRAME_S = FRAME_SAMPLES / SAMPLE_RATE_HZ
# A frame scored below this is no speech by any threshold (Silero's state resets after a run).
QUIET_PROBABILITY = 0.2


class Detector(Protocol):
    """Scores one frame of FRAME_SAMPLES samples: probability it is speech."""

    def __call__(self, frame: np.ndarray) -> float: ...


class SileroDetector:
    """Silero VAD (TorchScript, one CPU thread), stateful across frames.

    Its state is reset after ``reset_after_s`` without speech: carried over from a loud
    speaker, it misses the first seconds of a quiet one (a FLEURS French clip 45 dB under
    JFK went unheard for 5 s after him, and from 2.5 s, as alone, after a reset).
    """

    def __init__(self, reset_after_s: float = 1.0) -> None:
        try:
            import torch
            from silero_vad import load_silero_vad
        except ImportError as e:
            raise JunoError(f"VAD 'silero' needs the silero-vad package ({e})") from None
        # One thread: the two cores belong to Whisper; a frame takes ~1 ms anyway.
        torch.set_num_threads(1)
        self._torch = torch
        self._model = load_silero_vad(onnx=False)
        self._reset_after = max(1, round(reset_after_s / FRAME_S))
        self._quiet = 0  # frames in a row without speech

    def __call__(self, frame: np.ndarray) -> float:
        with self._torch.inference_mode():
            p = float(self._model(self._torch.from_numpy(frame), SAMPLE_RATE_HZ))
        self._quiet = self._quiet + 1 if p < QUIET_PROBABILITY else 0
        if self._quiet == self._reset_after:
            self._model.reset_states()
        return p


class EnergyDetector:
    """Frame loudness against a slowly adapting noise floor (no model)."""

    def __init__(self, margin_db: float = 12.0, floor_dbfs: float = -55.0) -> None:
        self.margin_db = margin_db
        self.floor_dbfs = floor_dbfs
        self._noise_db: float | None = None

    def __call__(self, frame: np.ndarray) -> float:
        db = 10 * np.log10(float(np.mean(frame.astype(np.float64) ** 2)) + 1e-12)
        if self._noise_db is None:
            self._noise_db = db
        # Track the floor down quickly and up slowly, so speech does not raise it.
        rate = 0.3 if db < self._noise_db else 0.01
        self._noise_db += rate * (db - self._noise_db)
        above = db - max(self._noise_db + self.margin_db, self.floor_dbfs)
        return float(1 / (1 + np.exp(-above)))


class AlwaysSpeech:
    """No gate: every frame is speech (for measuring what the gate buys)."""

    def __call__(self, frame: np.ndarray) -> float:
        return 1.0


def make_detector(name: str) -> Detector:
    """The detector called ``name`` in the config: silero, energy or off."""
    if name == "silero":
        return SileroDetector()
    if name == "energy":
        return EnergyDetector()
    if name == "off":
        return AlwaysSpeech()
    raise JunoError(f"unknown VAD '{name}' (expected silero, energy or off)")


class SpeechTrack:
    """Speech / non-speech per frame, in stream time, fed as audio arrives."""

    def __init__(self, detector: Detector, threshold: float = 0.5) -> None:
        self.detector = detector
        self.threshold = threshold
        self._rest = np.zeros(0, np.float32)  # samples short of a whole frame
        self._first = 0  # stream index of the first frame kept
        self._flags: list[bool] = []
        self._speaking = False
        self._quiet: int | None = None  # frames since the last speech (None: none yet)
        # The latest silences between speech: (stream time speech resumed, seconds of silence).
        self._gaps: deque[tuple[float, float]] = deque(maxlen=64)

    @property
    def end_s(self) -> float:
        """Stream time up to which frames have been scored."""
        return (self._first + len(self._flags)) * FRAME_S

    def feed(self, audio: np.ndarray) -> None:
        """Score the new audio (any length; the remainder waits for more)."""
        self.feed_to_pause(audio, None)

    def feed_to_pause(self, audio: np.ndarray, pause_s: float | None) -> int:
        """Score the new audio up to the frame where the silence after speech reaches
        ``pause_s`` (None: all of it). Returns how many of its samples were taken; the
        rest is left to the caller."""
        rest = len(self._rest)
        audio = np.concatenate([self._rest, audio])
        n = len(audio) // FRAME_SAMPLES
        # (A frame past it: what the caller measures in seconds is then surely a pause.)
        pause = None if pause_s is None else int(pause_s / FRAME_S) + 1
        for i in range(n):
            p = self.detector(audio[i * FRAME_SAMPLES : (i + 1) * FRAME_SAMPLES])
            # Hysteresis as in Silero's own segmenter: leave speech a bit lower.
            limit = self.threshold - 0.15 if self._speaking else self.threshold
            self._speaking = p >= limit
            self._flags.append(self._speaking)
            if self._speaking:
                if self._quiet:
                    at = (self._first + len(self._flags) - 1) * FRAME_S
                    self._gaps.append((at, self._quiet * FRAME_S))
                self._quiet = 0
            elif self._quiet is not None:
                self._quiet += 1
                if self._quiet == pause:
                    self._rest = np.zeros(0, np.float32)
                    return (i + 1) * FRAME_SAMPLES - rest
        self._rest = audio[n * FRAME_SAMPLES :].copy()
        return len(audio) - rest

    def speech_s(self, start_s: float, end_s: float) -> float:
        """Seconds of speech between two stream times."""
        lo = max(int(start_s / FRAME_S) - self._first, 0)
        hi = max(int(np.ceil(end_s / FRAME_S)) - self._first, 0)
        return sum(self._flags[lo:hi]) * FRAME_S

    def tail_end_s(self, t_s: float, within_s: float) -> float:
        """Where the speech going on at ``t_s`` stops, if it stops within ``within_s``
        after it (the rest of a word Whisper ended early); else ``t_s``."""
        i = int(t_s / FRAME_S) - self._first
        limit = i + int(np.ceil(within_s / FRAME_S))
        if not 0 <= i < len(self._flags) or not self._flags[i]:
            return t_s
        while i < len(self._flags) and self._flags[i]:
            i += 1
            if i > limit:
                return t_s
        return max(t_s, (self._first + i) * FRAME_S) if i < len(self._flags) else t_s

    def last_speech_end_s(self) -> float | None:
        """End of the latest speech frame kept, or None."""
        for i in range(len(self._flags) - 1, -1, -1):
            if self._flags[i]:
                return (self._first + i + 1) * FRAME_S
        return None

    def paused_since(self, t_s: float, pause_s: float) -> bool:
        """A silence of at least ``pause_s`` ended after ``t_s``, or is going on now."""
        if self._quiet and self._quiet * FRAME_S >= pause_s and self.end_s > t_s:
            return True
        return any(at > t_s and gap >= pause_s for at, gap in self._gaps)

    def onset_s(self, pause_s: float) -> float | None:
        """Start of the latest run of speech that follows ``pause_s`` of silence (or the
        first speech kept), or None when no frame kept is speech."""
        gap = max(1, int(np.ceil(pause_s / FRAME_S)))
        start = None
        quiet = gap  # what lies before the first frame kept counts as silence
        for i, speech in enumerate(self._flags):
            if speech and quiet >= gap:
                start = i
            quiet = 0 if speech else quiet + 1
        return None if start is None else (self._first + start) * FRAME_S

    def forget_before(self, t_s: float) -> None:
        """Drop decisions before ``t_s`` (the buffer no longer holds that audio)."""
        drop = min(max(int(t_s / FRAME_S) - self._first, 0), len(self._flags))
        del self._flags[:drop]
        self._first += drop
