"""``juno transcribe FILE``: replay an audio file through the streaming transcriber.

The file is fed in chunks on a simulated clock (see juno.transcriber.replay);
each committed word is printed as one line, ``emission start end word``, in
seconds (the whisper_streaming convention), as soon as it is committed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from juno.config import Config, add_flag


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("audio", type=Path, help="audio file (WAV, FLAC, MP3, m4a, mp4, webm...)")
    p.add_argument(
        "--chunk-ms", type=int, default=100, help="audio chunk fed per tick (default 100)"
    )
    p.add_argument(
        "--compute-aware",
        action="store_true",
        help="advance the clock by compute time too (default: compute is free)",
    )
    add_flag(p, "--language", key="source_language", help="spoken language code (source_language)")


def run(args: argparse.Namespace, cfg: Config) -> int:
    from juno.audio import load_audio
    from juno.errors import JunoError
    from juno.transcriber.build import load_model, make_transcriber
    from juno.transcriber.replay import ReplayStats, format_emission, replay

    if args.chunk_ms <= 0:
        raise JunoError(f"--chunk-ms must be positive, got {args.chunk_ms}")
    audio = load_audio(args.audio)
    model = load_model(cfg)
    stepper = make_transcriber(model, cfg)
    stepper.window.warm_up()
    stats = ReplayStats()
    for emission in replay(stepper, audio, args.chunk_ms / 1000, args.compute_aware, stats):
        print(format_emission(emission), flush=True)
    print(
        f"# {stats.audio_s:.1f} s of audio, {stats.compute_s:.1f} s of compute "
        f"({stats.compute_s / max(stats.audio_s, 1e-9):.2f} s per audio second)",
        file=sys.stderr,
    )
    return 0
