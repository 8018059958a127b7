"""Helpers for the tests that run the real pipeline (``juno run``) as a subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf

JUNO = [sys.executable, "-m", "juno"]


# A ChatML template, as Qwen's, without its default system prompt and tool calls.
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
# What the tokenizer learns its merges from: a sentence in each language tested, and
# made-up two-syllable words, so that it holds a few hundred whole words.
SYLLABLES = [c + v for c in "bdfklmnprstvz" for v in "aeiou"]
CORPUS = [
    "And so, my fellow Americans: ask not what your country can do for you.",
    "Et donc, mes chers compatriotes : ne demandez pas ce que votre pays peut faire pour vous.",
    "Und so, meine amerikanischen Mitbürger: Fragt nicht, was euer Land für euch tun kann.",
    *(" ".join(a + b for b in SYLLABLES) for a in SYLLABLES),
]


def make_tokenizer(folder: Path) -> int:
    """A small byte-level BPE with Qwen's chat tokens, trained here (no download):
    any text encodes, as with the real one. Returns its vocabulary size."""
    from tokenizers import Tokenizer, decoders, pre_tokenizers, trainers
    from tokenizers.models import BPE

    tok = Tokenizer(BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=1000,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=SPECIAL_TOKENS,
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer)
    folder.mkdir(parents=True, exist_ok=True)
    tok.save(str(folder / "tokenizer.json"))
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": None,
        "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>",
        "add_bos_token": False,
        "clean_up_tokenization_spaces": False,
        "chat_template": CHAT_TEMPLATE,
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=1))
    eos = {"eos_token_id": [tok.token_to_id("<|im_end|>")]}
    (folder / "generation_config.json").write_text(json.dumps(eos))
    return tok.get_vocab_size()


def make_tiny_llm(folder: Path) -> Path:
    """A random-weight qwen2 model with a tokenizer made here: loads and decodes in no time.

    Its output layer gives a zero logit to every token that does not start a word (word
    pieces, punctuation, line breaks, end of turn), so greedy decoding, which a random
    model soon turns into repeating one token, repeats a word: it writes a word a token.
    """
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_lm.models import qwen2
    from tokenizers import Tokenizer

    vocab_size = make_tokenizer(folder)
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    config = {
        "model_type": "qwen2",
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "intermediate_size": 128,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "rms_norm_eps": 1e-6,
        "rope_theta": 1000000.0,
        "vocab_size": vocab_size,
        "max_position_embeddings": 32768,
        "tie_word_embeddings": False,
    }
    mx.random.seed(0)
    model = qwen2.Model(qwen2.ModelArgs.from_dict(config))
    words = [tok.decode([i]) for i in range(vocab_size)]
    starts_word = mx.array([w[:1] == " " and w[1:].isalpha() for w in words])
    model.lm_head.weight = model.lm_head.weight * starts_word[:, None]
    mx.save_safetensors(str(folder / "model.safetensors"), dict(tree_flatten(model.parameters())))
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def make_tiny_whisper(folder: Path) -> Path:
    """A random-weight English-only Whisper of tiny.en's input and vocabulary shapes but
    small layers: the pipeline runs with it as with a real one, and hears nothing."""
    from dataclasses import asdict

    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_whisper.whisper import ModelDimensions, Whisper

    dims = ModelDimensions(
        n_mels=80,
        n_audio_ctx=1500,
        n_audio_state=64,
        n_audio_head=2,
        n_audio_layer=2,
        n_vocab=51864,
        n_text_ctx=448,
        n_text_state=64,
        n_text_head=2,
        n_text_layer=2,
    )
    mx.random.seed(0)
    model = Whisper(dims, mx.float32)
    weights = {k: v for k, v in tree_flatten(model.parameters()) if k != "alignment_heads"}
    folder.mkdir(parents=True, exist_ok=True)
    mx.save_safetensors(str(folder / "weights.safetensors"), weights)
    (folder / "config.json").write_text(json.dumps({"model_type": "whisper", **asdict(dims)}))
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
