"""Reading audio files into what the pipeline runs on: 16 kHz mono float32."""

from __future__ import annotations

from math import gcd
from pathlib import Path

import numpy as np

from juno.errors import JunoError

SAMPLE_RATE_HZ = 16000


def check_audio_file(path: str | Path) -> None:
    """Fail now, in one line, if ``path`` is not an audio file soundfile can read."""
    _read(path, lambda sf, name: sf.info(name).frames)


def load_audio(path: str | Path, sample_rate_hz: int = SAMPLE_RATE_HZ) -> np.ndarray:
    """Read any file soundfile can (WAV, FLAC, OGG, MP3...), mixed to mono and resampled."""
    data, rate = _read(path, lambda sf, name: sf.read(name, dtype="float32", always_2d=True))
    return resample(data.mean(axis=1), rate, sample_rate_hz)


def _read(path: str | Path, reader):
    """``reader(soundfile, name)`` with every way a file can be bad as a one-line error."""
    import soundfile as sf

    path = Path(path)
    if not path.exists():
        raise JunoError(f"{path}: no such file")
    if path.is_dir():
        raise JunoError(f"{path}: is a folder, not an audio file")
    try:
        out = reader(sf, str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError) as e:
        raise JunoError(f"{path}: not a readable audio file ({e})") from None
    frames = out if isinstance(out, int) else len(out[0])
    if frames == 0:
        raise JunoError(f"{path}: contains no audio")
    return out


def resample(audio: np.ndarray, from_hz: int, to_hz: int) -> np.ndarray:
    """Polyphase resampling (anti-aliased), float32 out."""
    if from_hz == to_hz:
        return np.ascontiguousarray(audio, dtype=np.float32)
    from scipy.signal import resample_poly

    g = gcd(int(from_hz), int(to_hz))
    return resample_poly(audio, to_hz // g, from_hz // g).astype(np.float32)
