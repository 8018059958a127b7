"""Real Whisper base, imported from the PyPI-shipped CTranslate2 file, on the JFK sample."""

from __future__ import annotations

import re
from pathlib import Path

import jiwer
import mlx_whisper
import pytest
from mlx_whisper.audio import SAMPLE_RATE

from juno.audio import load_audio

JFK = (
    "And so my fellow Americans, ask not what your country can do for you,"
    " ask what you can do for your country."
)


def normalize(text: str) -> str:
    """Lowercase, no punctuation: the base model's commas vary with the audio padding."""
    return " ".join(re.sub(r"[^\w\s']", " ", text.lower()).split())


@pytest.mark.real_weights
def test_whisper_base_transcribes_jfk_with_sensible_word_times(
    whisper_base_path: Path, data_dir: Path
) -> None:
    audio = load_audio(data_dir / "audio" / "jfk.flac")
    duration_s = audio.shape[0] / SAMPLE_RATE
    result = mlx_whisper.transcribe(
        audio,
        path_or_hf_repo=str(whisper_base_path),
        fp16=False,
        word_timestamps=True,
        language="en",
    )

    assert jiwer.wer(normalize(JFK), normalize(result["text"])) == 0, result["text"]

    # Word times come from the alignment heads: wrong heads give times that
    # bunch up or run past the audio.
    words = [w for segment in result["segments"] for w in segment["words"]]
    assert [normalize(w["word"]) for w in words] == normalize(JFK).split()
    starts = [w["start"] for w in words]
    assert starts == sorted(starts)
    assert all(w["start"] <= w["end"] <= duration_s + 0.5 for w in words)
    assert words[0]["start"] < 1.0
    assert 9.0 < words[-1]["end"] <= duration_s
