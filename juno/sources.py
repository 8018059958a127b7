"""Where capture gets audio: a microphone or a recorded file, as 16 kHz mono chunks.

Both yield ``(samples, stream_s)`` chunks of ``chunk_ms``, or ``None`` now and
then while waiting, so the capture loop can answer its supervisor. PortAudio
(through sounddevice) is imported only when a microphone is used: it lists the
devices when imported.
"""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from juno.audio import SAMPLE_RATE_HZ, load_audio, resample
from juno.errors import JunoError

log = logging.getLogger(__name__)

Chunk = tuple[np.ndarray, float]  # samples, stream time of the first sample


def _sounddevice() -> Any:
    try:
        import sounddevice
    except OSError as e:  # libportaudio missing
        raise JunoError(f"no audio input available: {e}") from None
    return sounddevice


def input_devices() -> list[dict]:
    """The input devices PortAudio sees: index, name, channels, default rate."""
    sd = _sounddevice()
    default = sd.default.device[0]
    out = []
    for index, dev in enumerate(sd.query_devices()):
        if dev["max_input_channels"] > 0:
            out.append(
                {
                    "index": index,
                    "name": dev["name"],
                    "channels": dev["max_input_channels"],
                    "sample_rate_hz": int(dev["default_samplerate"]),
                    "default": index == default,
                }
            )
    return out


def find_device(spec: str | int | None) -> int | None:
    """An input device index from a name (case-insensitive substring) or index."""
    if spec is None or spec == "":
        devices = input_devices()
        if not devices:
            raise JunoError("no microphone: the system has no audio input device")
        return None
    devices = input_devices()
    names = ", ".join(f"{d['index']}: {d['name']}" for d in devices) or "none"
    if isinstance(spec, int) or str(spec).isdigit():
        index = int(spec)
        if any(d["index"] == index for d in devices):
            return index
        raise JunoError(f"no input device with index {index} (inputs: {names})")
    matches = [d for d in devices if str(spec).lower() in d["name"].lower()]
    if not matches:
        raise JunoError(f"no input device matches {spec!r} (inputs: {names})")
    return matches[0]["index"]


class FileSource:
    """A recorded file, paced in real time or as fast as the pipeline takes it."""

    def __init__(self, path: str | Path, chunk_ms: int, realtime: bool) -> None:
        self.audio = load_audio(path)
        self.chunk = max(1, SAMPLE_RATE_HZ * chunk_ms // 1000)
        self.realtime = realtime
        self.duration_s = len(self.audio) / SAMPLE_RATE_HZ

    def chunks(self, started: float) -> Iterator[Chunk | None]:
        """Chunks in order; in real time each is released once the speaker has said it."""
        for at in range(0, len(self.audio), self.chunk):
            samples = self.audio[at : at + self.chunk]
            if self.realtime:
                due = started + (at + len(samples)) / SAMPLE_RATE_HZ
                while (left := due - time.monotonic()) > 0:
                    time.sleep(min(left, 0.1))  # pacing, not synchronization
                    yield None
            yield samples, at / SAMPLE_RATE_HZ

    def stop(self) -> None:
        """Nothing to release."""


class MicSource:
    """A microphone through PortAudio, resampled to 16 kHz mono if it cannot run at it."""

    def __init__(self, device: str | int | None, chunk_ms: int) -> None:
        sd = _sounddevice()
        self.device = find_device(device)
        self.queue: queue.Queue[np.ndarray] = queue.Queue()
        self.overflows = 0
        info = sd.query_devices(self.device, "input")
        self.name = info["name"]
        rate = SAMPLE_RATE_HZ
        try:
            sd.check_input_settings(self.device, channels=1, dtype="float32", samplerate=rate)
        except Exception:
            rate = int(info["default_samplerate"])
        self.rate = rate
        self.listening = False
        try:
            self.stream = sd.InputStream(
                samplerate=rate,
                blocksize=rate * chunk_ms // 1000,
                device=self.device,
                channels=1,
                dtype="float32",
                callback=self._callback,
            )
        except sd.PortAudioError as e:
            raise JunoError(f"cannot open microphone {self.name!r}: {e}") from None
        log.info("microphone %r at %d Hz", self.name, rate)

    def _callback(self, indata, frames, time_info, status) -> None:
        if status.input_overflow:
            self.overflows += 1
        self.queue.put(indata[:, 0].copy())

    def chunks(self, started: float) -> Iterator[Chunk | None]:
        self.stream.start()
        self.listening = True
        at = 0
        while self.listening or not self.queue.empty():
            try:
                block = self.queue.get(timeout=0.1)
            except queue.Empty:
                yield None
                continue
            samples = resample(block, self.rate, SAMPLE_RATE_HZ)
            yield samples, at / SAMPLE_RATE_HZ
            at += len(samples)

    def stop(self) -> None:
        """Stop listening; chunks already heard are still yielded."""
        self.listening = False
        self.stream.stop()
        self.stream.close(ignore_errors=True)
