"""Recordings soundfile cannot read (m4a, mp4, webm) decoded by FFmpeg through PyAV.

The files are written here with PyAV from the JFK sample at 48 kHz stereo, as a
meeting recorder (AAC in MP4) or a browser (Opus in WebM) would write it.
"""

from __future__ import annotations

import re
import subprocess
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from pipeline import JUNO, session_folder, tiny_args

from juno.audio import SAMPLE_RATE_HZ, check_audio_file, load_audio, resample
from juno.cli import main
from juno.errors import JunoError

RATE = 48000
CODECS = {"m4a": "aac", "webm": "libopus"}
QUOTE = (
    "And so my fellow Americans, ask not what your country can do for you, "
    "ask what you can do for your country."
)


def _encode(path: Path, audio: np.ndarray, rate: int, codec: str, fmt: str | None = None) -> Path:
    """``audio`` (channels x samples, float) encoded into ``path``, with the timestamps a
    recorder writes (so the muxer records the encoder's priming to be skipped)."""
    layout = "mono" if len(audio) == 1 else "stereo"
    with av.open(str(path), "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=rate, layout=layout)
        for at in range(0, audio.shape[1], 960):
            block = np.ascontiguousarray(audio[:, at : at + 960], dtype=np.float32)
            frame = av.AudioFrame.from_ndarray(block, format="fltp", layout=layout)
            frame.sample_rate, frame.pts, frame.time_base = rate, at, Fraction(1, rate)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def _tone(hz: float, seconds: float, rate: int) -> np.ndarray:
    return 0.5 * np.sin(2 * np.pi * hz * np.arange(int(seconds * rate)) / rate)


def _pitch_hz(audio: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    return float(np.argmax(spectrum) * SAMPLE_RATE_HZ / len(audio))


def _words(text: str) -> str:
    return " ".join(re.findall(r"[a-z']+", text.lower()))


def _word_errors(ref: str, hyp: str) -> int:
    import jiwer

    out = jiwer.process_words(_words(ref), _words(hyp))
    return out.substitutions + out.deletions + out.insertions


@pytest.fixture(scope="module")
def jfk(data_dir) -> np.ndarray:
    return load_audio(data_dir / "audio" / "jfk.flac")


@pytest.fixture(scope="module")
def recordings(tmp_path_factory, jfk) -> dict[str, Path]:
    """JFK as ``m4a`` (AAC) and ``webm`` (Opus), 48 kHz stereo."""
    folder = tmp_path_factory.mktemp("recordings")
    stereo = np.tile(resample(jfk, SAMPLE_RATE_HZ, RATE), (2, 1))
    return {ext: _encode(folder / f"jfk.{ext}", stereo, RATE, c) for ext, c in CODECS.items()}


@pytest.mark.parametrize("ext", CODECS)
def test_a_recording_decodes_to_the_speech_it_holds(recordings, jfk, ext):
    check_audio_file(recordings[ext])
    audio = load_audio(recordings[ext])
    assert audio.dtype == np.float32
    assert abs(len(audio) - len(jfk)) <= 0.05 * SAMPLE_RATE_HZ  # codec padding at most
    n = min(len(audio), len(jfk))
    assert np.corrcoef(audio[:n], jfk[:n])[0, 1] > 0.95  # and not shifted in time


def test_ffmpeg_mixes_and_resamples_as_soundfile_does(tmp_path):
    import soundfile as sf

    rng = np.random.default_rng(0)
    left, right = _tone(440, 1.0, 44100), 0.3 * rng.standard_normal(44100)
    pcm = (np.stack([left, right]) * 32767).astype(np.int16)
    sf.write(tmp_path / "clip.wav", pcm.T, 44100)
    with av.open(str(tmp_path / "clip.mkv"), "w") as out:  # the same samples, for FFmpeg
        stream = out.add_stream("pcm_s16le", rate=44100, layout="stereo")
        frame = av.AudioFrame.from_ndarray(pcm.T.reshape(1, -1).copy(), "s16", "stereo")
        frame.sample_rate = 44100
        out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    via_soundfile, via_ffmpeg = load_audio(tmp_path / "clip.wav"), load_audio(tmp_path / "clip.mkv")
    np.testing.assert_allclose(via_ffmpeg, via_soundfile, atol=1e-6)


def test_a_stream_that_changes_channels_and_rate_midway_keeps_its_pitch(tmp_path):
    # Two ADTS (raw AAC) files joined, as a recorder resumed with other settings writes them.
    first = _encode(tmp_path / "a.aac", _tone(440, 1.0, 48000)[None], 48000, "aac", "adts")
    stereo = np.tile(_tone(440, 1.0, 44100), (2, 1))
    then = _encode(tmp_path / "b.aac", stereo, 44100, "aac", "adts")
    joined = tmp_path / "joined.aac"
    joined.write_bytes(first.read_bytes() + then.read_bytes())
    audio = load_audio(joined)
    assert abs(len(audio) / SAMPLE_RATE_HZ - 2.0) <= 0.1
    one_s = SAMPLE_RATE_HZ
    for part in (audio[one_s // 4 : one_s * 3 // 4], audio[-one_s * 3 // 4 : -one_s // 4]):
        assert abs(_pitch_hz(part) - 440) <= 4  # 44.1 kHz taken for 48 kHz would be 479 Hz


def _video_only(path: Path) -> None:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for _ in range(5):
            image = np.zeros((48, 64, 3), np.uint8)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        out.mux(stream.encode(None))


BAD_FILES = {
    "video.mp4": (_video_only, "has no audio stream (video only)"),
    "notes.m4a": (lambda p: p.write_text("these are not sounds\n"), "not a readable audio file"),
    "noise.webm": (
        lambda p: p.write_bytes(np.random.default_rng(0).bytes(4000)),
        "not a readable audio file",
    ),
    "empty.m4a": (lambda p: p.touch(), "is an empty file"),
    "folder.webm": (lambda p: p.mkdir(), "is a folder, not an audio file"),
    "missing.m4a": (lambda p: None, "no such file"),
}


@pytest.mark.parametrize("name", BAD_FILES)
def test_a_file_without_audio_is_a_one_line_error(tmp_path, capsys, name):
    make, message = BAD_FILES[name]
    path = tmp_path / name
    make(path)
    for read in (check_audio_file, load_audio):
        with pytest.raises(JunoError) as error:
            read(path)
        assert str(error.value).startswith(f"{path}: {message}")
        assert "\n" not in str(error.value)
    # `juno run --input` says so before it starts anything.
    assert main(["run", "--input", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err


@pytest.mark.real_weights
@pytest.mark.parametrize("ext", CODECS)
def test_juno_transcribe_reads_a_recording(recordings, capsys, whisper_base_path, ext):
    args = ["transcribe", str(recordings[ext]), "--set", f"transcribe.model={whisper_base_path}"]
    assert main(args) == 0
    words = [line.split(" ", 3)[3] for line in capsys.readouterr().out.splitlines()]
    assert _word_errors(QUOTE, " ".join(words)) <= 1, words


@pytest.mark.real_weights
@pytest.mark.parametrize("ext", CODECS)
def test_juno_run_replays_a_recording(recordings, tmp_path, whisper_tiny_en_path, tiny_llm, ext):
    sessions = tmp_path / "sessions"
    args = ["run", "--input", str(recordings[ext]), "--fast"]
    args += tiny_args(whisper_tiny_en_path, tiny_llm, sessions)
    done = subprocess.run(JUNO + args, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    transcript = _words((session_folder(sessions) / "transcript.txt").read_text())
    assert {"fellow", "americans", "country"} <= set(transcript.split()), transcript
