"""Helpers for the tests that run the real pipeline (``juno run``) as a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf

JUNO = [sys.executable, "-m", "juno"]


def make_tiny_llm(folder: Path, tokenizer_from: Path) -> Path:
    """A random-weight qwen2 model with a real tokenizer: loads and decodes in no time."""
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_lm.models import qwen2

    config = {
        "model_type": "qwen2",
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "intermediate_size": 128,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "rms_norm_eps": 1e-6,
        "rope_theta": 1000000.0,
        "vocab_size": 151936,
        "max_position_embeddings": 32768,
        "tie_word_embeddings": True,
    }
    folder.mkdir(parents=True, exist_ok=True)
    mx.random.seed(0)
    model = qwen2.Model(qwen2.ModelArgs.from_dict(config))
    mx.save_safetensors(str(folder / "model.safetensors"), dict(tree_flatten(model.parameters())))
    (folder / "config.json").write_text(json.dumps(config))
    for name in ("tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        shutil.copy(tokenizer_from / name, folder / name)
    return folder


def speech_wav(data_dir: Path, out: Path, seconds: float | None = None, gap_s: float = 1.0) -> Path:
    """The English dev clips (JFK, LibriVox) joined with short pauses, repeated up to
    ``seconds``, as a 16 kHz WAV."""
    from juno.audio import load_audio

    clips = [
        data_dir / "audio" / "jfk.flac",
        *sorted((data_dir / "audio" / "librivox").glob("*.wav")),
    ]
    parts, total = [], 0
    gap = np.zeros(int(gap_s * 16000), np.float32)
    while seconds is not None and total < seconds * 16000 or not parts:
        for clip in clips:
            parts += [load_audio(clip), gap]
            total += len(parts[-2]) + len(gap)
            if seconds is None or total >= seconds * 16000:
                break
        if seconds is None:
            break
    audio = np.concatenate(parts)
    if seconds is not None:
        audio = audio[: int(seconds * 16000)]
    sf.write(out, audio, 16000, subtype="PCM_16")
    return out


def model_args(whisper: Path, llm: Path, sessions: Path) -> list[str]:
    """``--set`` flags for the two models and the sessions folder of ``juno run``."""
    return [
        "--set", f"transcribe.model={whisper}",
        "--set", f"translate.model={llm}",
        "--set", f"display.sessions_dir={sessions}",
    ]  # fmt: skip


def tiny_args(whisper: Path, llm: Path, sessions: Path) -> list[str]:
    """Models for plumbing tests; plain wait-k, so the random LLM writes words at every step
    (with the writer's guards it mostly wants to stop, and reads instead; after the example
    turns it writes only line breaks), and short ones (it rarely ends a word by itself)."""
    plain = ["--set", "translate.one_line=false", "--set", "translate.read_on_end=false"]
    plain += ["--set", "translate.examples=0", "--set", "translate.no_repeat_ngram=0"]
    plain += ["--set", "translate.phi=source"]
    plain += ["--set", "translate.max_tokens_per_word=4"]
    return model_args(whisper, llm, sessions) + plain


def start(args: list[str], cwd: Path, env: dict | None = None) -> subprocess.Popen:
    """``juno ARGS`` in its own process group, output captured."""
    return subprocess.Popen(
        JUNO + args,
        cwd=cwd,
        env=env or dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def wait_for(condition: Callable[[], object], timeout_s: float, what: str) -> object:
    """Poll ``condition`` until it is true (returns its value) or fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def stage_pid(supervisor_pid: int, name: str) -> int | None:
    """The pid of the supervisor's child running ``juno process NAME`` (Linux /proc)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == supervisor_pid and b"process" in cmdline and name.encode() in cmdline:
            return int(entry.name)
    return None


def session_folder(sessions: Path) -> Path | None:
    found = sorted(p for p in sessions.iterdir() if p.is_dir()) if sessions.exists() else []
    return found[-1] if found else None


def events(session: Path) -> list[dict]:
    path = session / "events.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def interrupt(proc: subprocess.Popen) -> None:
    """Ctrl-C, as a terminal sends it."""
    os.killpg(proc.pid, signal.SIGINT)
