"""``juno smoke``: the shortest real run: transcribe a clip, translate the transcript.

Whole-clip transcription and whole-sentence translation with the configured
models (on a machine with no hub: the imported Whisper base and
Qwen2.5-Coder-0.5B). It proves the models load and work; the live pipeline is
``juno run``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from juno.config import Config, add_flag
from juno.paths import shared_data

DEFAULT_AUDIO = (
    Path(__file__).resolve().parents[2].parent / "shared" / "data" / "audio" / "jfk.flac"
)


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("audio", nargs="?", type=Path, help="audio file (default: the JFK sample)")
    add_flag(p, "--target", key="target_language", help="target language code (target_language)")


def run(args: argparse.Namespace, cfg: Config) -> int:
    import mlx_whisper

    from juno.audio import load_audio
    from juno.models.loading import load_llm, load_whisper
    from juno.simul.offline import translate_offline

    target = cfg.target_language
    audio = load_audio(args.audio or shared_data() / "audio" / "jfk.flac")
    _, whisper_path = load_whisper(cfg.transcribe.model, cfg)
    start = time.perf_counter()
    result = mlx_whisper.transcribe(
        audio,
        path_or_hf_repo=str(whisper_path),
        language=cfg.source_language,
        fp16=False if _linux() else True,
    )
    transcript = result["text"].strip()
    asr_s = time.perf_counter() - start
    print(f"transcript ({whisper_path.name}, {asr_s:.1f} s): {transcript}")

    model, tokenizer, llm_path = load_llm(cfg.translate.model, cfg, cfg.translate.adapter)
    start = time.perf_counter()
    translation = translate_offline(
        model, tokenizer, cfg, transcript, cfg.source_language, target
    ).text
    mt_s = time.perf_counter() - start
    print(f"translation → {target} ({llm_path.name}, {mt_s:.1f} s): {translation}")
    return 0


def _linux() -> bool:
    from juno.backend import is_linux

    return is_linux()
