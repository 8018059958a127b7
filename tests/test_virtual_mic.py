"""The virtual microphone: a child process's sounddevice.InputStream hears what is played.

sounddevice is imported only in child processes (PortAudio lists devices at import).
"""

from __future__ import annotations

import select
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from virtual_mic import no_device_env

from juno.audio import SAMPLE_RATE_HZ, load_audio

RECORD_S = 4.0
CLIP = slice(int(0.5 * SAMPLE_RATE_HZ), int(3.0 * SAMPLE_RATE_HZ))  # 2.5 s of speech
TIMEOUT_S = 30.0

RECORD = textwrap.dedent(
    """
    import sys
    import numpy as np
    import sounddevice as sd

    out, seconds = sys.argv[1], float(sys.argv[2])
    frames, total = [], int(seconds * 16000)
    with sd.InputStream(samplerate=16000, channels=1, dtype="float32") as stream:
        while sum(map(len, frames)) < total:
            data, overflowed = stream.read(1600)
            if overflowed:
                print("overflow", file=sys.stderr, flush=True)
            frames.append(data[:, 0].copy())
            if len(frames) == 1:  # audio flows: now the parent may play
                print("READY", stream.samplerate, flush=True)
    np.save(out, np.concatenate(frames)[:total])
    """
)


OPEN = textwrap.dedent(
    """
    import sounddevice as sd

    try:
        sd.InputStream(samplerate=16000, channels=1, dtype="float32")
    except sd.PortAudioError as e:
        print("PortAudioError:", e)
        raise SystemExit(3)
    print("opened")
    """
)


def _wait_line(proc: subprocess.Popen, deadline: float) -> str:
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.1)
        if ready:
            return proc.stdout.readline()
        if proc.poll() is not None:
            return proc.stdout.readline()
    return ""


def test_child_input_stream_hears_played_wav(virtual_mic, data_dir: Path, tmp_path: Path):
    clip = load_audio(data_dir / "audio" / "jfk.flac")[CLIP]
    wav = tmp_path / "clip.wav"
    sf.write(wav, clip, SAMPLE_RATE_HZ, subtype="PCM_16")
    clip, _ = sf.read(wav, dtype="float32")  # what the file really holds (16-bit)

    out = tmp_path / "rec.npy"
    child = subprocess.Popen(
        [sys.executable, "-c", RECORD, str(out), str(RECORD_S)],
        env=virtual_mic.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = _wait_line(child, time.monotonic() + TIMEOUT_S)
        if not line.startswith("READY"):
            child.kill()
            _, err = child.communicate(timeout=TIMEOUT_S)
            raise AssertionError(f"child did not open the stream: {line!r}\n{err}")
        assert line.split()[1] == "16000.0", line
        virtual_mic.play(wav, timeout=TIMEOUT_S)
        _, err = child.communicate(timeout=TIMEOUT_S)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=TIMEOUT_S)
    assert child.returncode == 0, err
    assert "overflow" not in err

    rec = np.load(out)
    assert rec.shape == (int(RECORD_S * SAMPLE_RATE_HZ),)
    assert np.sqrt(np.mean(rec**2)) > 0.1 * np.sqrt(np.mean(clip**2)) > 0

    # Where the clip starts in the recording: the cross-correlation's peak
    # (indices past len(rec) wrap round to negative lags: clip started before the recording).
    n = len(rec) + len(clip)
    xcorr = np.fft.irfft(np.fft.rfft(rec, n) * np.conj(np.fft.rfft(clip, n)), n)
    lag = int(np.argmax(xcorr))
    lag = lag - n if lag >= len(rec) else lag
    assert 0 <= lag <= len(rec) - len(clip), f"clip at {lag / SAMPLE_RATE_HZ:.3f} s: cut off"
    heard = rec[lag : lag + len(clip)]
    ncc = float(heard @ clip / np.sqrt((heard @ heard) * (clip @ clip)))
    assert ncc > 0.999, ncc
    # Same rate end to end, no resampling: sample for sample, to within 16-bit rounding.
    assert np.max(np.abs(heard - clip)) <= 2 / 32768
    # Silence before the clip arrives (the null sink plays zeros).
    assert np.max(np.abs(rec[:lag]), initial=0.0) < 1e-3


def test_no_device_env_child_input_stream_fails(virtual_mic):
    # Even with a virtual microphone up (its env not given), the child finds no input.
    proc = subprocess.run(
        [sys.executable, "-c", OPEN],
        env=no_device_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert proc.stdout.startswith("PortAudioError:"), proc.stdout
