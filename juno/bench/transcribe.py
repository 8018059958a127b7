"""``juno bench transcribe``: streaming against whole-clip transcription, side by side.

On the development audio (JFK, LibriVox, FLEURS de/fr/es/pt) with the
configured Whisper: WER (normalized) of the streamed words and of mlx-whisper's
whole-clip transcription; commit lag per word (audio time of the word's end to
its commit) computation-unaware and -aware (and, with ``--modes``, on the full
30 s context or with it only at pauses); compute seconds per audio second;
one step's time at 3 s and 25 s of buffer, with the encoder fitted to the audio
and on the full 30 s context. ``--vad-check`` counts the words each VAD lets
through on silence, noise and music.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from juno.config import Config
from juno.errors import JunoError
from juno.eval.wer import wer
from juno.simul.policy import join_words

JFK_TEXT = (
    "And so my fellow Americans, ask not what your country can do for you, "
    "ask what you can do for your country."
)
SAMPLE_RATE_HZ = 16000
# Development sets: JFK, LibriVox, the English clips and long-form address, FLEURS.
SETS = ("jfk", "librivox", "en", "longform", "fleurs")
# Replays: the configured stepper on a clock that ignores or counts compute; on
# the full 30 s context; fitted, with the full context at pauses (both unaware).
MODES = ("unaware", "aware", "full-ctx", "full-at-pause")
# The transcribe keys each mode sets (the others replay the config as it is).
MODE_KEYS: dict[str, dict[str, bool]] = {
    "full-ctx": {"fit_audio_ctx": False},
    "full-at-pause": {"fit_audio_ctx": True, "full_ctx_at_pause": True},
}


@dataclass(frozen=True)
class Variant:
    """One replay: a policy on a clock (``mode``), with transcribe keys set."""

    policy: str
    mode: str
    settings: tuple[tuple[str, Any], ...] = ()  # (transcribe key, value)

    def __str__(self) -> str:
        names = [
            f"b{v}" if k == "beam_size" else f"{k}={str(v).lower() if isinstance(v, bool) else v}"
            for k, v in self.settings
        ]
        return " ".join([self.policy, *names, self.mode])


@dataclass(frozen=True)
class Clip:
    group: str
    name: str
    audio: np.ndarray
    reference: str
    language: str
    path: Path


@dataclass
class Result:
    """Per group: texts and lags gathered over its clips."""

    refs: list[str] = field(default_factory=list)
    offline: list[str] = field(default_factory=list)
    # Whole clips through AlignAtt's decoder, per beam width (mlx-whisper's is greedy).
    offline_beams: dict[int, list[str]] = field(default_factory=dict)
    streams: dict[str, list[str]] = field(default_factory=dict)
    lags: dict[str, list[float]] = field(default_factory=dict)
    compute_s: dict[str, float] = field(default_factory=dict)
    audio_s: float = 0.0


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sets", default="jfk,librivox,en,fleurs", help=f"subsets ({', '.join(SETS)})")
    p.add_argument("--langs", default="de,fr,es,pt", help="FLEURS languages (comma list)")
    p.add_argument("--limit", type=int, default=0, help="at most N clips per set and language")
    p.add_argument(
        "--modes",
        default="unaware,aware",
        help=f"replays: {', '.join(MODES)} (comma list)",
    )
    p.add_argument(
        "--policies",
        default="alignatt,local-agreement",
        help="commit policies replayed side by side (comma list; default both)",
    )
    p.add_argument(
        "--beams",
        default="",
        help="AlignAtt beam widths replayed side by side, each also decoding the whole clip "
        "(comma list, e.g. 1,5; default transcribe.beam_size alone)",
    )
    p.add_argument(
        "--vary",
        default="",
        help="a transcribe key replayed at each of its values side by side under AlignAtt "
        "(KEY=V1,V2, e.g. commit_at_word_boundary=false,true)",
    )
    p.add_argument(
        "--peer",
        default="",
        help="also replay WhisperLiveKit on the same weights and clock: localagreement, "
        "simulstreaming (comma list; needs scripts/setup-peer.sh)",
    )
    p.add_argument(
        "--peer-python",
        type=Path,
        default=None,
        help="the peer environment's interpreter (default .venv-peer/bin/python)",
    )
    p.add_argument(
        "--long",
        action="store_true",
        help="also replay a 10-minute recording (the English sets joined with pauses) with "
        "compute counted, and print the lag per minute",
    )
    p.add_argument("--no-offline", action="store_true", help="skip whole-clip transcription")
    p.add_argument("--no-steps", action="store_true", help="skip the 3 s / 25 s step timing")
    p.add_argument(
        "--step-shape",
        default="",
        help="only time AlignAtt steps against buffer length, on a random-weight Whisper of "
        f"this shape ({', '.join(WHISPER_SHAPES)}), in the model dtype: speed where the "
        "weights can't be had",
    )
    p.add_argument("--vad-check", action="store_true", help="words on silence/noise/music per VAD")
    p.add_argument("--chunk-ms", type=int, default=100, help="replay chunk (default 100)")
    p.add_argument(
        "--jsonl",
        type=Path,
        help="also write one JSON line per clip (reference, whole-clip and streamed text, lags), "
        "and one for --long's recording",
    )


def collect(data: Path, sets: list[str], langs: list[str], limit: int) -> list[Clip]:
    from juno.audio import load_audio

    clips = []
    for name, folder in (("en", "en/clips"), ("longform", "en/longform")):
        if name in sets:
            flacs = sorted((data / folder).glob("*.flac"))
            for flac in flacs[:limit] if limit else flacs:
                ref = flac.with_suffix(".txt").read_text()
                clips.append(Clip(name, flac.stem, load_audio(flac), ref, "en", flac))
    if "jfk" in sets:
        jfk = data / "jfk.flac"
        clips.append(Clip("jfk", "jfk", load_audio(jfk), JFK_TEXT, "en", jfk))
    if "librivox" in sets:
        wavs = sorted((data / "librivox").glob("*.wav"))
        for wav in wavs[:limit] if limit else wavs:
            ref = wav.with_suffix(".txt").read_text()
            clips.append(Clip("librivox", wav.stem, load_audio(wav), ref, "en", wav))
    if "fleurs" in sets:
        for lang in langs:
            oggs = sorted((data / "fleurs").glob(f"fleurs-{lang}-*.ogg"))
            for ogg in oggs[:limit] if limit else oggs:
                ref = ogg.with_suffix(".txt").read_text()
                clips.append(Clip(f"fleurs-{lang}", ogg.stem, load_audio(ogg), ref, lang, ogg))
    return clips


# The long recording: the English development speech, joined with pauses, twice over.
LONG_PAUSE_S = 1.5
LONG_REPEATS = 2


def long_recording(data: Path) -> tuple[np.ndarray, str]:
    """Over 10 minutes of English speech with pauses: the long-form address, then
    the English clips, LibriVox and JFK, each followed by ``LONG_PAUSE_S`` of
    silence; all of it twice. Returns the audio and its reference text."""
    clips = collect(data, ["longform", "en", "librivox", "jfk"], [], 0)
    pause = np.zeros(int(LONG_PAUSE_S * SAMPLE_RATE_HZ), np.float32)
    pieces = [piece for c in clips for piece in (c.audio, pause)] * LONG_REPEATS
    reference = " ".join(c.reference.strip() for c in clips * LONG_REPEATS)
    return np.concatenate(pieces), reference


def per_minute(emissions, minutes: int) -> list[list[float]]:
    """Lags of the words grouped by the minute of the recording they end in."""
    out: list[list[float]] = [[] for _ in range(minutes)]
    for e in emissions:
        out[min(minutes - 1, int(e.word.end_s // 60))].append(e.emitted_s - e.word.end_s)
    return out


def long_run(
    model,
    cfg: Config,
    data: Path,
    variants: list[Variant],
    chunk_s: float,
    jsonl: Path | None = None,
) -> list[str]:
    """Each variant over the long recording, compute counted: WER, lag, lag per minute;
    ``jsonl``: its text and lags are appended there, one line."""
    audio, reference = long_recording(data)
    record: dict[str, Any] = {"set": "long", "clip": "long recording", "language": "en"}
    record |= {"audio_s": len(audio) / SAMPLE_RATE_HZ, "reference": reference}
    minutes = int(len(audio) / SAMPLE_RATE_HZ // 60) or 1
    lines = [f"long recording: {len(audio) / SAMPLE_RATE_HZ:.1f} s, compute counted"]
    labels = [str(v).removesuffix(" aware") for v in variants]
    width = max([16, *map(len, labels)])
    head = f"{'policy':{width}s} {'WER':>6s} {'lag med':>7s} {'p90':>6s} {'cmp/s':>5s} | lag median"
    lines.append(head + " per minute " + " ".join(f"{m + 1:>5d}" for m in range(minutes)))
    for variant, label in zip(variants, labels, strict=True):
        emitted, stats = _stream(model, cfg, audio, "en", variant, chunk_s)
        text = join_words(e.word for e in emitted)
        lags = [e.emitted_s - e.word.end_s for e in emitted]
        minute = [statistics.median(m) if m else float("nan") for m in per_minute(emitted, minutes)]
        ratio = minute[-1] / minute[0]
        record[str(variant)] = _replayed(text, lags, stats.compute_s)
        lines.append(
            f"{label:{width}s} {wer([reference], [text]):5.1f}% {statistics.median(lags):6.2f}s "
            f"{_pct(lags, 90):5.2f}s {stats.compute_s / stats.audio_s:5.2f} | "
            + " ".join(f"{m:5.2f}" for m in minute)
            + f"  (last/first {ratio:.2f})"
        )
    if jsonl:
        with jsonl.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    return lines


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def _stream(model, cfg: Config, audio: np.ndarray, language: str, variant: Variant, chunk_s: float):
    """Replay ``audio`` under ``variant``: the emissions and the stats."""
    from juno.transcriber.build import make_transcriber
    from juno.transcriber.replay import ReplayStats, replay

    cfg = _with(cfg, policy=variant.policy, **dict(variant.settings))
    cfg = _with(cfg, **MODE_KEYS.get(variant.mode, {}))
    stepper = make_transcriber(model, cfg, language=language)
    stats = ReplayStats()
    out = list(replay(stepper, audio, chunk_s, variant.mode == "aware", stats))
    return out, stats


def _varied(arg: str, cfg: Config) -> list[tuple[str, Any]]:
    """``--vary KEY=V1,V2``: (key, value) for each value, each checked as ``--set`` is."""
    from juno.config import overridden

    key, sep, values = arg.partition("=")
    key = key.removeprefix("transcribe.")
    if not sep or not key or not values:
        raise JunoError("--vary: expected KEY=V1,V2, e.g. commit_at_word_boundary=false,true")
    out = []
    for raw in values.split(","):
        varied = overridden(cfg, f"transcribe.{key}={raw}")
        out.append((key, getattr(varied.transcribe, key)))
    return out


def whole_clip(model, audio: np.ndarray, language: str, beams: int) -> str:
    """A whole clip in one AlignAtt decoding with ``beams`` (on the full 30 s context,
    as mlx-whisper's own transcription): what the stream's decoder says with all the
    audio there."""
    from juno.transcriber import alignatt
    from juno.transcriber.whisper_window import MAX_TOKENS_PER_S, MAX_WINDOW_S, WhisperWindow

    seconds = len(audio) / SAMPLE_RATE_HZ
    if seconds > MAX_WINDOW_S:
        raise JunoError(f"whole-clip beams: a clip of {seconds:.0f} s is over one window")
    window = WhisperWindow(model, fit_context=False, beams=beams)
    out = window.continue_decoding(
        audio, language, "", [], alignatt.stop_s(seconds, 0.0, None, complete=True),
        int(MAX_TOKENS_PER_S * seconds) + 16,
    )  # fmt: skip
    return " ".join(w.text for w in out.words)


def _replayed(text: str, lags: list[float], compute_s: float) -> dict[str, Any]:
    """One replay of a clip, as ``--jsonl`` writes it (Juno's and the peer's alike)."""
    return {"text": text, "lags_s": lags, "compute_s": compute_s}


def _with(cfg: Config, **fields) -> Config:
    return replace(cfg, transcribe=replace(cfg.transcribe, **fields))


def step_times(model, cfg: Config, clips: list[Clip]) -> list[str]:
    """One window's compute at 3 s and 25 s of buffer, fitted and full context."""
    from juno.transcriber.build import pad_s
    from juno.transcriber.whisper_window import WhisperWindow

    english = [c.audio for c in clips if c.language == "en"] or [c.audio for c in clips]
    audio = np.concatenate(english * (1 + int(25 * SAMPLE_RATE_HZ / sum(map(len, english)))))
    lines = []
    for fit in (True, False):
        window = WhisperWindow(model, fit_context=fit, context_pad_s=pad_s(cfg))
        for seconds in (3, 25):
            piece = audio[: seconds * SAMPLE_RATE_HZ]
            best = float("inf")
            for _ in range(2):
                start = time.perf_counter()
                result = window.transcribe(piece, "en")
                best = min(best, time.perf_counter() - start)
            label = "fitted" if fit else "full 30 s"
            lines.append(
                f"step at {seconds:2d} s of buffer, {label:9s} context "
                f"({result.encoder_positions:4d} positions): {best:.2f} s"
            )
    return lines


# Whisper's shapes (mlx-whisper's ModelDimensions), for step times where the weights can't
# be had (a GPU lent without network): time depends on the shape, not on the weights.
WHISPER_SHAPES: dict[str, dict[str, int]] = {
    "tiny": {"n_audio_state": 384, "n_audio_head": 6, "n_audio_layer": 4,
             "n_text_state": 384, "n_text_head": 6, "n_text_layer": 4},
    "base": {"n_audio_state": 512, "n_audio_head": 8, "n_audio_layer": 6,
             "n_text_state": 512, "n_text_head": 8, "n_text_layer": 6},
    "small": {"n_audio_state": 768, "n_audio_head": 12, "n_audio_layer": 12,
              "n_text_state": 768, "n_text_head": 12, "n_text_layer": 12},
    "large-v3-turbo": {"n_mels": 128, "n_vocab": 51866, "n_audio_state": 1280,
                       "n_audio_head": 20, "n_audio_layer": 32, "n_text_state": 1280,
                       "n_text_head": 20, "n_text_layer": 4},
}  # fmt: skip
SAMPLE_JFK = Path(__file__).resolve().parents[2] / "samples" / "jfk.flac"  # in the checkout
# Their alignment heads (openai-whisper's _ALIGNMENT_HEADS): how many heads' attention a
# step reads back and filters, which a random model would otherwise take as half of all.
ALIGNMENT_HEADS = {
    "tiny": b"ABzY8bu8Lr0{>%RKn9Fp%m@SkK7Kt=7ytkO",
    "base": b"ABzY8KQ!870{>%RzyTQH3`Q^yNP!>##QT-<FaQ7m",
    "small": b"ABzY8DmU6=0{>%Rpa?J`kvJ6qF(V^F86#Xh7JUGMK}P<N0000",
    "large-v3-turbo": b"ABzY8j^C+e0{>%RARaKHP%t(lGR*)0g!tONPyhe`",
}
STEP_BUFFERS_S = (2, 5, 10, 15, 20, 28)
STEP_TOKENS_PER_S = 3  # committed words' tokens forced per second of buffer (JFK: 2.6)
STEP_NEW_TOKENS = 4  # tokens a step writes: about a second of speech


def random_whisper(shape: str, dtype: Any) -> Any:
    """A multilingual Whisper of ``shape`` with mlx's random initial weights."""
    import mlx.core as mx
    from mlx_whisper.whisper import ModelDimensions, Whisper

    if shape not in WHISPER_SHAPES:
        raise JunoError(f"--step-shape: unknown {shape} (choose from {', '.join(WHISPER_SHAPES)})")
    dims = {"n_mels": 80, "n_audio_ctx": 1500, "n_vocab": 51865, "n_text_ctx": 448}
    mx.random.seed(0)
    model = Whisper(ModelDimensions(**(dims | WHISPER_SHAPES[shape])), dtype)
    model.set_alignment_heads(ALIGNMENT_HEADS[shape])
    mx.eval(model.parameters())
    return model


def alignatt_steps(model: Any, pad_s: float, reps: int = 5) -> list[str]:
    """One AlignAtt step's time against buffer length: the encoder on the buffer (fitted
    context) and one decoder pass over the committed words' tokens (forced, as AlignAtt
    forces them) followed by :data:`STEP_NEW_TOKENS` new ones, each read back to check its
    attention. JFK's speech, repeated to fill the buffer; its words' tokens forced. The
    decoder runs to the token count whatever it writes (no stop), so random weights time
    the same work as real ones."""
    from mlx_whisper.tokenizer import get_tokenizer

    from juno.audio import load_audio
    from juno.transcriber.whisper_window import WhisperWindow

    jfk = load_audio(SAMPLE_JFK)
    audio = np.tile(jfk, 1 + int(30 * SAMPLE_RATE_HZ / len(jfk)))
    tokenizer = get_tokenizer(model.is_multilingual, num_languages=model.num_languages)
    words = tokenizer.encode(" " + JFK_TEXT) * 12
    window = WhisperWindow(model, fit_context=True, context_pad_s=pad_s)
    window.warm_up()
    lines = [
        f"AlignAtt step against buffer length (encoder fitted, +{pad_s:g} s; forced "
        f"{STEP_TOKENS_PER_S} tokens per s of buffer, {STEP_NEW_TOKENS} new), median of {reps}:",
        f"{'buffer s':>8s} {'encoder ms':>10s} {'decoder ms':>10s} {'step ms':>8s} {'p90 ms':>7s}",
    ]
    for seconds in STEP_BUFFERS_S:
        forced = words[: STEP_TOKENS_PER_S * (seconds - 1)]
        encode, decode, total = [], [], []
        for rep in range(reps + 1):  # the first, untimed, plans this shape
            buffer = audio[: seconds * SAMPLE_RATE_HZ].copy()  # a new array: encoded anew
            start = time.perf_counter()
            window.encode(buffer, fit=True)
            encoded = time.perf_counter()
            window.continue_decoding(buffer, "en", "", forced, 1e9, STEP_NEW_TOKENS)
            done = time.perf_counter()
            if rep:
                encode.append(encoded - start)
                decode.append(done - encoded)
                total.append(done - start)
        lines.append(
            f"{seconds:8d} {1e3 * statistics.median(encode):10.1f} "
            f"{1e3 * statistics.median(decode):10.1f} {1e3 * statistics.median(total):8.1f} "
            f"{1e3 * _pct(total, 90):7.1f}"
        )
    return lines


def _noises(seconds: float) -> dict[str, np.ndarray]:
    """Non-speech test signals (fixed seed): silence, noises at -30 dBFS, synthetic music."""
    rng = np.random.default_rng(0)
    n = int(seconds * SAMPLE_RATE_HZ)
    t = np.arange(n) / SAMPLE_RATE_HZ
    level = 10 ** (-30 / 20)

    def at_level(x: np.ndarray) -> np.ndarray:
        return (x / np.sqrt(np.mean(x**2)) * level).astype(np.float32)

    white = rng.standard_normal(n)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    pink = np.fft.irfft(spectrum / np.sqrt(np.maximum(np.arange(len(spectrum)), 1)), n)
    room = pink + 0.5 * np.sin(2 * np.pi * 50 * t) * pink.std()  # fan-like noise and mains hum
    notes = 220 * 2 ** (np.array([0, 4, 7, 12, 7, 4, 2, 5]) / 12)
    note = notes[(t * 2).astype(int) % len(notes)]
    envelope = np.exp(-3 * ((t * 2) % 1))
    music = sum(np.sin(2 * np.pi * k * note * t) / k for k in (1, 2, 3)) * envelope
    music += 0.3 * np.sin(2 * np.pi * 110 * t)
    return {
        "digital silence": np.zeros(n, np.float32),
        "white noise -30 dBFS": at_level(white),
        "room noise -30 dBFS": at_level(room),
        "music -20 dBFS": (at_level(music) * 10 ** (10 / 20)).astype(np.float32),
    }


def vad_check(model, cfg: Config, clips: list[Clip], chunk_s: float) -> list[str]:
    """Words per VAD on non-speech signals, and WER on the speech clips."""
    from juno.transcriber.build import make_transcriber
    from juno.transcriber.replay import replay

    lines = []
    signals = _noises(30.0)
    for vad in ("silero", "energy", "off"):
        vcfg = _with(cfg, vad=vad)
        counts = []
        for name, audio in signals.items():
            words = [e.word.text for e in replay(make_transcriber(model, vcfg), audio, chunk_s)]
            counts.append(f"{name}: {len(words)}" + (f" {' '.join(words[:6])!r}" if words else ""))
        hyps = []
        for c in clips:
            stepper = make_transcriber(model, vcfg, language=c.language)
            hyps.append(join_words(e.word for e in replay(stepper, c.audio, chunk_s)))
        score = wer([c.reference for c in clips], hyps)
        lines.append(f"vad {vad:6s}: words on {'; '.join(counts)}")
        lines.append(f"vad {vad:6s}: streaming WER on the speech clips {score:.1f}%")
    return lines


def run(args: argparse.Namespace, cfg: Config) -> int:
    import mlx_whisper

    from juno import backend
    from juno.models.loading import load_whisper
    from juno.paths import shared_data
    from juno.transcriber.build import pad_s
    from juno.transcriber.streaming import POLICIES

    if args.step_shape:
        from juno.models.loading import whisper_dtype

        backend.select_device()
        print(f"# {backend.describe()}; Whisper {args.step_shape} shape, random weights")
        model = random_whisper(args.step_shape, whisper_dtype())
        for line in alignatt_steps(model, pad_s(cfg)):
            print(line)
        return 0
    sets = [s for s in args.sets.split(",") if s]
    modes = [m for m in args.modes.split(",") if m]
    policies = [p for p in args.policies.split(",") if p]
    unknown = set(modes) - set(MODES)
    if unknown:
        raise JunoError(f"--modes: unknown {', '.join(sorted(unknown))} ({', '.join(MODES)})")
    if set(policies) - set(POLICIES) or not policies:
        raise JunoError(f"--policies: choose from {', '.join(POLICIES)}")
    unknown = set(sets) - set(SETS)
    if unknown:
        raise JunoError(f"--sets: unknown {', '.join(sorted(unknown))} ({', '.join(SETS)})")
    try:
        beams = [int(b) for b in args.beams.split(",") if b] or [cfg.transcribe.beam_size]
    except ValueError:
        raise JunoError(f"--beams: beam widths, like 1,5 (got {args.beams!r})") from None
    if min(beams) < 1:
        raise JunoError("--beams: each width is 1 (greedy) or more")
    # AlignAtt's variants: each beam width (when there are several), each --vary value.
    settings: list[tuple[tuple[str, Any], ...]] = [()]
    if len(beams) > 1:
        settings = [(("beam_size", n),) for n in beams]
    if args.vary:
        settings = [s + (v,) for s in settings for v in _varied(args.vary, cfg)]
    variants = [
        Variant(p, m, s)
        for m in modes
        for p in policies
        for s in (settings if p == "alignatt" else [()])
    ]
    # With several widths, the whole clips through AlignAtt's decoder at each too.
    whole_beams = beams if len(beams) > 1 and not args.no_offline else []
    peers = [b for b in args.peer.split(",") if b]
    if set(peers) - {"localagreement", "simulstreaming"}:
        raise JunoError("--peer: choose from localagreement, simulstreaming")
    if set(modes) - {"unaware", "aware"} and peers:
        raise JunoError("--peer replays the unaware and aware modes only")
    clips = collect(shared_data() / "audio", sets, args.langs.split(","), args.limit)
    if not clips:
        raise JunoError("no clips selected (see --sets, --langs)")
    model, path = load_whisper(cfg.transcribe.model, cfg)
    from juno.transcriber.whisper_window import WhisperWindow

    WhisperWindow(model).warm_up()
    chunk_s = args.chunk_ms / 1000
    t = cfg.transcribe
    print(f"# {backend.describe()}; load average {os.getloadavg()[0]:.1f} at start")
    print(
        f"# model {path.name}; step {t.step_ms} ms, buffer max {t.buffer_max_s} s, vad {t.vad}, "
        f"fitted context {t.fit_audio_ctx} (+{t.audio_ctx_pad_s or 'policy'} s, full at pauses "
        f"{t.full_ctx_at_pause}), AlignAtt threshold {t.frame_threshold} frames, "
        f"chunk {args.chunk_ms} ms"
    )
    results: dict[str, Result] = {}
    with contextlib.ExitStack() as files:
        per_clip = (
            files.enter_context(args.jsonl.open("w", encoding="utf-8")) if args.jsonl else None
        )
        for clip in clips:
            r = results.setdefault(clip.group, Result())
            r.refs.append(clip.reference)
            r.audio_s += len(clip.audio) / SAMPLE_RATE_HZ
            if not args.no_offline:
                whole = mlx_whisper.transcribe(
                    clip.audio, path_or_hf_repo=str(path), language=clip.language, fp16=False
                )
                r.offline.append(whole["text"])
            for n in whole_beams:
                text = whole_clip(model, clip.audio, clip.language, n)
                r.offline_beams.setdefault(n, []).append(text)
            record: dict = {"set": clip.group, "clip": clip.name, "language": clip.language}
            record |= {"audio_s": len(clip.audio) / SAMPLE_RATE_HZ, "reference": clip.reference}
            record["whole"] = r.offline[-1] if not args.no_offline else None
            for n in whole_beams:
                record[f"whole b{n}"] = r.offline_beams[n][-1]
            for variant in variants:
                emitted, stats = _stream(model, cfg, clip.audio, clip.language, variant, chunk_s)
                text = join_words(e.word for e in emitted)
                lags = [e.emitted_s - e.word.end_s for e in emitted]
                mode = str(variant)
                r.streams.setdefault(mode, []).append(text)
                r.lags.setdefault(mode, []).extend(lags)
                r.compute_s[mode] = r.compute_s.get(mode, 0.0) + stats.compute_s
                record[mode] = _replayed(text, lags, stats.compute_s)
            if per_clip:
                per_clip.write(json.dumps(record, ensure_ascii=False) + "\n")
                per_clip.flush()
            first = r.streams[str(variants[0])][-1] if variants else ""
            print(f"# {clip.name}: {first}", flush=True)

        labels = [str(v) for v in variants]
        for peer in peers:
            for mode in modes:
                variant = f"wlk-{peer} {mode}"
                labels.append(variant)
                for clip, record in zip(clips, _peer(args, peer, mode, clips), strict=True):
                    r = results[clip.group]
                    lags = [e - end for e, _, end, _ in record["words"]]
                    r.streams.setdefault(variant, []).append(record["text"])
                    r.lags.setdefault(variant, []).extend(lags)
                    r.compute_s[variant] = r.compute_s.get(variant, 0.0) + record["compute_s"]
                    if per_clip:
                        line = {"set": clip.group, "clip": clip.name, "language": clip.language}
                        line[variant] = _replayed(record["text"], lags, record["compute_s"])
                        per_clip.write(json.dumps(line, ensure_ascii=False) + "\n")

    head = f"{'set':12s} {'clips':>5s} {'audio s':>7s} {'WER whole':>9s}"
    head += "".join(f" {f'whole b{n}':>9s}" for n in whole_beams)
    width = max([22, *map(len, labels)])
    for mode in labels:
        head += f" | {mode:{width}s} {'WER':>5s} {'lag med':>7s} {'p90':>5s} {'cmp/s':>5s}"
    print(head)
    for group, r in [*results.items(), ("all", _merge(results.values()))]:
        line = f"{group:12s} {len(r.refs):5d} {r.audio_s:7.1f} "
        line += f"{wer(r.refs, r.offline):8.1f}%" if r.offline else f"{'-':>9s}"
        line += "".join(f" {wer(r.refs, r.offline_beams[n]):8.1f}%" for n in whole_beams)
        for mode in labels:
            lags = r.lags.get(mode, [])
            median = statistics.median(lags) if lags else float("nan")
            line += (
                f" | {'':{width}s} {wer(r.refs, r.streams[mode]):4.1f}% {median:6.2f}s"
                f" {_pct(lags, 90):4.2f}s {r.compute_s[mode] / r.audio_s:5.2f}"
            )
        print(line)
    if not args.no_steps:
        for line in step_times(model, cfg, clips) + alignatt_steps(model, pad_s(cfg)):
            print(line)
    if args.long:
        # Each policy and AlignAtt variant (--beams, --vary), always with compute counted.
        long_variants = list(dict.fromkeys(replace(v, mode="aware") for v in variants))
        data = shared_data() / "audio"
        for line in long_run(model, cfg, data, long_variants, chunk_s, args.jsonl):
            print(line, flush=True)
    if args.vad_check:
        english = [c for c in clips if c.group in ("jfk", "librivox")] or clips
        for line in vad_check(model, cfg, english, chunk_s):
            print(line)
    return 0


def _peer(args: argparse.Namespace, backend: str, mode: str, clips: list[Clip]) -> list[dict]:
    """WhisperLiveKit's records for ``clips``, in order: one peer run per language.

    The peer steps on 1 s of new audio, as Juno does (its server's default is
    0.1 s, where two hypotheses of nearly the same audio agree on cut-off words).
    """
    from juno.bench.peer import DEFAULT_PYTHON, run_peer

    python = args.peer_python or DEFAULT_PYTHON
    by_path: dict[Path, dict] = {}
    for language in dict.fromkeys(c.language for c in clips):
        files = [c.path for c in clips if c.language == language]
        records = run_peer(python, backend, mode, files, language, args.chunk_ms, None, 1000)
        by_path.update(zip(files, records, strict=True))
    return [by_path[c.path] for c in clips]


def _merge(results) -> Result:
    out = Result()
    for r in results:
        out.refs += r.refs
        out.offline += r.offline
        for n, texts in r.offline_beams.items():
            out.offline_beams.setdefault(n, []).extend(texts)
        out.audio_s += r.audio_s
        for mode, texts in r.streams.items():
            out.streams.setdefault(mode, []).extend(texts)
            out.lags.setdefault(mode, []).extend(r.lags[mode])
            out.compute_s[mode] = out.compute_s.get(mode, 0.0) + r.compute_s[mode]
    return out
