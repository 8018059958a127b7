"""WhisperLiveKit as a peer row for ``juno bench transcribe``.

WhisperLiveKit 0.2.26 runs in its own environment (``scripts/setup-peer.sh``
makes ``.venv-peer/`` and the model folders), on Juno's Whisper base weights::

    .venv-peer/bin/python juno/bench/peer.py --backend localagreement --mode aware FILE...

prints one JSON line per file: ``{"file", "text", "words": [[emitted_s,
start_s, end_s, word], ...], "compute_s", "audio_s"}``; the words are those
WhisperLiveKit shows (see :func:`whole_words`), timed as it timed them.

The replay is juno/transcriber/replay.py's: chunks of ``--chunk-ms`` on a
virtual clock that is the audio time (``unaware``) or also advances by each
step's measured compute (``aware``, where a step gets all the audio arrived
meanwhile). A step is one ``process_iter()`` of WhisperLiveKit's per-stream
processor, run as its server does: once ``--min-chunk-ms`` of audio has come
(its ``--min-chunk-size``, 0.1 s by default, so on every chunk), on all the
audio come by then (no coalescing); the end of the stream is its ``finish()``
(LocalAgreement) or ``start_silence()`` (SimulStreaming). Voice activity
detection (the server's VAC) is off: the processors see the whole audio, as
Juno's replay does.
faster-whisper runs as WhisperLiveKit sets it (compute type "auto": int8 on a
CPU), SimulStreaming's decoder in float32 torch.

This file runs where Juno is not installed: it imports neither juno nor (at
module level) whisperlivekit, so Juno's environment imports :func:`run_peer`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

SAMPLE_RATE_HZ = 16000
BACKENDS = ("localagreement", "simulstreaming")
MODES = ("unaware", "aware")
# Where setup-peer.sh puts the model folders (beside Juno's models folder).
DEFAULT_PEER_DIR = Path("~/.cache/juno/peer")
# The CTranslate2 folder faster-whisper reads (LocalAgreement; SimulStreaming's encoder).
CT2_FOLDER = "whisper-base-ct2"
# Juno's import of the same model.bin (float32), SimulStreaming's PyTorch decoder.
MLX_FOLDER = "whisper-base-mlx"
# WhisperLiveKit's default --min-chunk-size: the server steps once this much audio is in.
MIN_CHUNK_S = 0.1
# WhisperLiveKit warms up on JFK (11 s, downloaded); here on the start of the first file.
WARMUP_S = 11.0
NOT_INSTALLED = "WhisperLiveKit is not installed: run scripts/setup-peer.sh"
# run_peer relays the stderr line that starts with this as a one-line error.
ERROR_PREFIX = "peer: error: "
SCRIPT = Path(__file__).resolve()
CHECKOUT = SCRIPT.parents[2]
DEFAULT_PYTHON = CHECKOUT / ".venv-peer" / "bin" / "python"
_KEYS = ("file", "text", "words", "compute_s", "audio_s")


class PeerError(Exception):
    """Something the user can fix (a missing file or model folder): one line, no traceback."""


@dataclass(frozen=True)
class Emission:
    """A token WhisperLiveKit committed (a word, a piece of one or punctuation), and when."""

    # Seconds since the stream started, on the replay's clock.
    emitted_s: float
    # The word's span in the audio, as WhisperLiveKit timed it.
    start_s: float
    end_s: float
    # As WhisperLiveKit returned it: a leading space unless it continues the word
    # before (SimulStreaming returns punctuation, even pieces of words, on their own).
    text: str

    @property
    def word(self) -> str:
        return self.text.strip()


# ---------------------------------------------------------------- Juno's side


def run_peer(
    python: Path,
    backend: str,
    mode: str,
    files: list[Path],
    language: str,
    chunk_ms: int,
    peer_dir: Path | None = None,
    min_chunk_ms: int = round(MIN_CHUNK_S * 1000),
) -> list[dict]:
    """Run this script with ``python`` (the peer environment's) and return its records.

    Raises JunoError in one line: the peer environment is missing, or the peer
    failed (with its last error line).
    """
    from juno.errors import JunoError

    if not Path(python).is_file():
        raise JunoError(NOT_INSTALLED)
    cmd = [str(python), str(SCRIPT), "--backend", backend, "--mode", mode]
    cmd += ["--chunk-ms", str(chunk_ms), "--min-chunk-ms", str(min_chunk_ms)]
    cmd += ["--language", language]
    if peer_dir is not None:
        cmd += ["--peer-dir", str(peer_dir)]
    cmd += [str(f) for f in files]
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    except OSError as e:
        raise JunoError(f"{NOT_INSTALLED} ({python}: {e.strerror})") from None
    if done.returncode != 0:
        raise JunoError(_failure(done.returncode, done.stderr))
    return parse_lines(done.stdout)


def _failure(code: int, stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith(ERROR_PREFIX):
            return line[len(ERROR_PREFIX) :]
    last = lines[-1] if lines else "no output"
    return f"WhisperLiveKit peer failed (exit {code}): {last}"


def parse_lines(stdout: str) -> list[dict]:
    """The peer's records, one per non-empty line; a malformed line is a JunoError."""
    from juno.errors import JunoError

    records = []
    for n, line in enumerate(stdout.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            raise JunoError(f"WhisperLiveKit peer: line {n} is not JSON: {line[:80]!r}") from None
        missing = [k for k in _KEYS if not isinstance(record, dict) or k not in record]
        if missing:
            raise JunoError(f"WhisperLiveKit peer: line {n} lacks {', '.join(missing)}")
        bad = [w for w in record["words"] if not (isinstance(w, list) and len(w) == 4)]
        if bad:
            raise JunoError(f"WhisperLiveKit peer: line {n} has a malformed word {bad[0]!r}")
        records.append(record)
    return records


# ------------------------------------------------------- the peer environment


def load_audio(path: Path) -> np.ndarray:
    """16 kHz mono float32, read and resampled as juno.audio does (soundfile, polyphase)."""
    from math import gcd

    import numpy as np
    import soundfile as sf
    from scipy.signal import resample_poly

    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (OSError, RuntimeError, sf.LibsndfileError) as e:
        raise PeerError(f"{path}: cannot read audio ({e})") from None
    audio = data.mean(axis=1)
    if rate == SAMPLE_RATE_HZ:
        return np.ascontiguousarray(audio, dtype=np.float32)
    g = gcd(int(rate), SAMPLE_RATE_HZ)
    return resample_poly(audio, SAMPLE_RATE_HZ // g, rate // g).astype(np.float32)


def replay(
    processor,
    audio,
    chunk_s: float,
    compute_aware: bool,
    clock: Callable[[], float] = time.perf_counter,
    min_chunk_s: float = MIN_CHUNK_S,
) -> tuple[list[Emission], float]:
    """Feed ``audio`` to a WhisperLiveKit per-stream processor on Juno's replay clock.

    As its server does, audio is held until ``min_chunk_s`` of it has arrived (or
    the stream ends), then inserted at once and a step runs. Returns the
    committed tokens and the compute seconds spent in the steps.
    """
    chunk = max(1, round(chunk_s * SAMPLE_RATE_HZ))
    min_chunk = round(min_chunk_s * SAMPLE_RATE_HZ)
    total = len(audio)
    fed, stepped, now, compute_s = 0, 0, 0.0, 0.0
    out: list[Emission] = []

    def step(call) -> None:
        nonlocal now, compute_s
        start = clock()
        tokens, _ = call()
        spent = clock() - start
        compute_s += spent
        if compute_aware:
            now += spent
        for t in tokens or []:
            if t.text and t.text.strip():
                out.append(Emission(now, float(t.start), float(t.end), t.text))

    while fed < total:
        # Wait (virtually) for the next chunk, then take everything arrived by now.
        now = max(now, min(fed + chunk, total) / SAMPLE_RATE_HZ)
        arrived = min(total, max(fed + chunk, int(now * SAMPLE_RATE_HZ) // chunk * chunk))
        fed = arrived
        if arrived - stepped < min_chunk and arrived < total:
            continue
        processor.insert_audio_chunk(audio[stepped:arrived], arrived / SAMPLE_RATE_HZ)
        stepped = arrived
        step(processor.process_iter)
    # What WhisperLiveKit's AudioProcessor calls at the end of a stream.
    step(processor.finish if hasattr(processor, "finish") else processor.start_silence)
    return out, compute_s


def whole_words(emissions: list[Emission]) -> list[Emission]:
    """WhisperLiveKit's tokens as the words it shows (its separator is "").

    A token without a leading space continues the word before it. A piece of a
    word (SimulStreaming may commit "p" and "aced" a step apart) completes it:
    the word is out when its last piece is. Punctuation only ("," ".") is
    attached, as Whisper writes it, and leaves the word's times alone.
    """
    words: list[Emission] = []
    for e in emissions:
        if not words or e.text[:1].isspace():
            words.append(e)
        elif any(c.isalnum() for c in e.text):
            last = words[-1]
            words[-1] = Emission(e.emitted_s, last.start_s, e.end_s, last.text + e.text)
        else:
            words[-1] = replace(words[-1], text=words[-1].text + e.text)
    return words


def _engine(backend: str, language: str, peer_dir: Path, warmup_file: str, min_chunk_ms: int):
    """WhisperLiveKit's shared model, built as its server builds it from these options."""
    from whisperlivekit.core import TranscriptionEngine
    from whisperlivekit.whisper import _ALIGNMENT_HEADS

    ct2, mlx = peer_dir / CT2_FOLDER, peer_dir / MLX_FOLDER
    for folder, name in ((ct2, "model.bin"), (mlx, "weights.safetensors")):
        if not (folder / name).is_file():
            raise PeerError(f"{folder / name} not found: run scripts/setup-peer.sh")
    common = dict(
        lan=language, vac=False, warmup_file=warmup_file, min_chunk_size=min_chunk_ms / 1000
    )
    if backend == "localagreement":
        return TranscriptionEngine(
            backend_policy="localagreement", backend="faster-whisper", model_dir=str(ct2), **common
        )
    # The decoder loads Juno's MLX-named weights (WhisperLiveKit renames them, and
    # skips the encoder's). It looks alignment heads up by model name, and a folder
    # is no name: they are given as its table has them for base (the same 8 heads
    # as the CTranslate2 config's).
    return TranscriptionEngine(
        backend_policy="simulstreaming",
        backend="faster-whisper",
        encoder_model_path=str(ct2),
        decoder_model_path=str(mlx),
        custom_alignment_heads=_ALIGNMENT_HEADS["base"].decode(),
        **common,
    )


def _describe(engine) -> str:
    asr = engine.asr
    fw = getattr(asr, "fw_encoder", None) or getattr(asr, "model", None)
    compute_type = getattr(getattr(fw, "model", None), "compute_type", "?")
    return (
        f"WhisperLiveKit {_version()} {engine.config.backend_policy}, faster-whisper "
        f"{compute_type} on {getattr(getattr(fw, 'model', None), 'device', '?')}, "
        f"lan {engine.config.lan}, min chunk {engine.config.min_chunk_size} s, vac off"
    )


def _version() -> str:
    from importlib.metadata import version

    return version("whisperlivekit")


def _write_warmup(audio, folder: Path) -> str:
    import soundfile as sf

    path = folder / "warmup.wav"
    sf.write(str(path), audio[: int(WARMUP_S * SAMPLE_RATE_HZ)], SAMPLE_RATE_HZ)
    return str(path)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backend", choices=BACKENDS, required=True)
    p.add_argument("--mode", choices=MODES, required=True)
    p.add_argument("--chunk-ms", type=int, default=100, help="replay chunk (default 100)")
    p.add_argument(
        "--min-chunk-ms",
        type=int,
        default=round(MIN_CHUNK_S * 1000),
        help="audio between two steps, WhisperLiveKit's --min-chunk-size (default 100)",
    )
    p.add_argument("--language", default="en", help="spoken language (ISO 639-1)")
    p.add_argument("--peer-dir", type=Path, default=DEFAULT_PEER_DIR, help="model folders")
    p.add_argument("files", nargs="+", type=Path, metavar="FILE")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Records go to the real stdout; whatever the libraries print goes to stderr.
    records, sys.stdout = sys.stdout, sys.stderr
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    logging.basicConfig(level=logging.WARNING, format="peer %(name)s: %(message)s")
    try:
        import whisperlivekit  # noqa: F401
    except ImportError:
        print(ERROR_PREFIX + NOT_INSTALLED, file=sys.stderr)
        return 2
    try:
        audios = [load_audio(f) for f in args.files]
        with tempfile.TemporaryDirectory(prefix="juno-peer-") as tmp:
            warmup = _write_warmup(audios[0], Path(tmp))
            engine = _engine(
                args.backend, args.language, args.peer_dir.expanduser(), warmup, args.min_chunk_ms
            )
        print(f"peer: {_describe(engine)}", file=sys.stderr)
        from whisperlivekit.core import online_factory

        for path, audio in zip(args.files, audios, strict=True):
            processor = online_factory(engine.args, engine.asr)
            tokens, compute_s = replay(
                processor,
                audio,
                args.chunk_ms / 1000,
                args.mode == "aware",
                min_chunk_s=args.min_chunk_ms / 1000,
            )
            words = whole_words(tokens)
            record = {
                "file": str(path),
                "text": " ".join(w.word for w in words),
                "words": [[w.emitted_s, w.start_s, w.end_s, w.word] for w in words],
                "compute_s": compute_s,
                "audio_s": len(audio) / SAMPLE_RATE_HZ,
            }
            print(json.dumps(record, ensure_ascii=False), file=records, flush=True)
    except PeerError as e:
        print(ERROR_PREFIX + str(e), file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
