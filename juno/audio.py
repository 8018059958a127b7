"""Reading audio files into what the pipeline runs on: 16 kHz mono float32.

soundfile (libsndfile) reads WAV, FLAC, OGG and MP3; everything else a user may
have (m4a and mp4 from meeting recorders, webm from browsers) is decoded by
FFmpeg through PyAV, whose wheel ships the FFmpeg libraries.
"""

from __future__ import annotations

from math import gcd
from pathlib import Path

import numpy as np

from juno.errors import JunoError

SAMPLE_RATE_HZ = 16000


class _NotForSoundfile(Exception):
    """soundfile cannot read the file: FFmpeg gets a try."""


def check_audio_file(path: str | Path) -> None:
    """Fail now, in one line, if ``path`` holds no audio Juno can read (decodes its start only)."""
    _read(path, start_only=True)


def load_audio(path: str | Path, sample_rate_hz: int = SAMPLE_RATE_HZ) -> np.ndarray:
    """Read any audio file soundfile or FFmpeg decodes (WAV, FLAC, MP3, m4a, mp4, webm...),
    mixed to mono and resampled."""
    audio, rate = _read(path, start_only=False)
    return resample(audio, rate, sample_rate_hz)


def _read(path: str | Path, start_only: bool) -> tuple[np.ndarray, int]:
    """Mono samples and their rate, with every way a file can be bad as a one-line error.

    ``start_only`` reads just enough to know the file holds audio that decodes.
    """
    path = Path(path)
    if not path.exists():
        raise JunoError(f"{path}: no such file")
    if path.is_dir():
        raise JunoError(f"{path}: is a folder, not an audio file")
    if path.stat().st_size == 0:
        raise JunoError(f"{path}: is an empty file")
    try:
        audio, rate = _read_soundfile(path, start_only)
    except _NotForSoundfile:
        audio, rate = _read_ffmpeg(path, start_only)
    if len(audio) == 0:
        raise JunoError(f"{path}: contains no audio")
    return audio, rate


def _read_soundfile(path: Path, start_only: bool) -> tuple[np.ndarray, int]:
    import soundfile as sf

    try:
        with sf.SoundFile(str(path)) as f:
            frames = f.samplerate if start_only else -1
            data = f.read(frames, dtype="float32", always_2d=True)
            return data.mean(axis=1), f.samplerate
    except (sf.LibsndfileError, RuntimeError, TypeError):
        raise _NotForSoundfile from None


def _read_ffmpeg(path: Path, start_only: bool) -> tuple[np.ndarray, int]:
    """The first audio stream through PyAV, mixed to mono the way soundfile's reads are."""
    import av

    parts: list[np.ndarray] = []
    try:
        with av.open(str(path), metadata_errors="replace") as container:
            if not container.streams.audio:
                video = " (video only)" if container.streams.video else ""
                raise JunoError(f"{path}: has no audio stream{video}")
            converter, setup, rate = None, None, 0
            for frame in container.decode(container.streams.audio[0]):
                if (frame.format.name, frame.layout.name, frame.sample_rate) != setup:
                    # A converter takes one input setup; a stream may change it midway.
                    parts += _mono(converter.resample(None)) if converter else []
                    setup = (frame.format.name, frame.layout.name, frame.sample_rate)
                    rate = rate or frame.sample_rate
                    converter = av.AudioResampler(format="fltp", rate=rate)
                parts += _mono(converter.resample(frame))
                if start_only and sum(map(len, parts)):
                    break
            parts += _mono(converter.resample(None)) if converter else []
    except av.error.FFmpegError as e:
        raise JunoError(f"{path}: not a readable audio file ({e.strerror})") from None
    return np.concatenate(parts or [np.zeros(0)]).astype(np.float32), rate


def _mono(frames: list) -> list[np.ndarray]:
    """Planar float frames (one row per channel), each mixed down to one row."""
    return [frame.to_ndarray().mean(axis=0) for frame in frames]


def resample(audio: np.ndarray, from_hz: int, to_hz: int) -> np.ndarray:
    """Polyphase resampling (anti-aliased), float32 out."""
    if from_hz == to_hz:
        return np.ascontiguousarray(audio, dtype=np.float32)
    from scipy.signal import resample_poly

    g = gcd(int(from_hz), int(to_hz))
    return resample_poly(audio, to_hz // g, from_hz // g).astype(np.float32)
