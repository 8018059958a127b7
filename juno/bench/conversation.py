"""``juno bench conversation``: a two-way conversation, against one-way runs of its turns.

How much speech identification needs (``--lid-lengths 1,1.5,2,2.5,3``): every
development clip of the pairs' languages, cut to its first N seconds of speech
(after a 0.5 s lead-in, as the stepper keeps), identified among English and the
other language as the stepper does it; the share named right per language.

Speech: for each pair (``--pairs en-fr,en-de,en-es``) a recording of turns that
alternate between English (the English clips and LibriVox) and the other
language (its FLEURS clips), ``--pause`` seconds apart, is replayed through the
streaming transcriber in conversation mode on a simulated clock with compute
counted (as ``juno bench transcribe`` replays). Beside it, in the same run, each
turn is replayed alone through a one-way transcriber told its language (what a
one-way run of that direction hears). Per pair:

- language identification: a turn is identified right when all its committed
  words carry its language. A word belongs to the turn whose reference word it
  matches (the committed text aligned to the turns' references); a word that
  matches none, to the turn nearest the end of its audio. The count by time
  alone is printed too: Whisper places a turn's first or last word in the pause,
  a timing error and not one of language;
- WER per direction, conversation and one-way;
- source lag (end of a spoken word to its commit): the first word of each turn
  (a change of speaker), and the others; the added lag at a change of speaker is
  the median over turns of the first word's lag in the conversation minus the
  same turn's first-word lag one-way.

Text (``--sentences N``, with the LLM): FLORES dev sentences alternating
English and the other language, written by a :class:`Conversation` and by the
two one-way translators: BLEU and chrF per direction against FLORES, and how
many sentences are the same.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from juno.config import Config
from juno.errors import JunoError
from juno.paths import flores_dev, shared_data
from juno.transcriber.vad import SAMPLE_RATE_HZ

console = Console(width=200)
LANGS = ("fr", "de", "es")


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pairs", default="en-fr,en-de,en-es", help="language pairs (en-X)")
    p.add_argument("--turns", type=int, default=20, help="speech turns per pair (alternating)")
    p.add_argument("--pause", type=float, default=1.5, help="seconds of silence between turns")
    p.add_argument("--modes", default="aware", help="replays: unaware, aware (comma list)")
    p.add_argument(
        "--sentences", type=int, default=0, help="text: FLORES sentences per pair (0: skip)"
    )
    p.add_argument("--chunk-ms", type=int, default=100, help="replay chunk (default 100)")
    p.add_argument(
        "--lid-lengths",
        default="1,1.5,2,2.5,3",
        help="identification alone on each clip's first N s of speech (comma list; '' to skip)",
    )


@dataclass
class Turn:
    language: str
    audio: np.ndarray
    reference: str
    start_s: float = 0.0  # in the recording
    end_s: float = 0.0


def pairs_of(text: str) -> list[str]:
    out = []
    for item in (p.strip() for p in text.split(",") if p.strip()):
        source, _, other = item.partition("-")
        if source != "en" or other not in LANGS:
            known = ", ".join(f"en-{x}" for x in LANGS)
            raise JunoError(f"--pairs: {item} not available ({known})")
        out.append(other)
    if not out:
        raise JunoError("--pairs: no language pair given")
    return out


def turns_for(other: str, n: int, data: Path) -> list[Turn]:
    """``n`` turns alternating English and ``other``, from the development clips."""
    from juno.audio import load_audio

    english = sorted((data / "en" / "clips").glob("*.flac")) + sorted(
        (data / "librivox").glob("*.wav")
    )
    foreign = sorted((data / "fleurs").glob(f"fleurs-{other}-*.ogg"))
    if not english or not foreign:
        raise JunoError(f"no development clips for en-{other} under {data}")
    turns = []
    for i in range(n):
        lang, files = ("en", english) if i % 2 == 0 else (other, foreign)
        path = files[(i // 2) % len(files)]
        turns.append(Turn(lang, load_audio(path), path.with_suffix(".txt").read_text().strip()))
    return turns


def join(turns: list[Turn], pause_s: float) -> np.ndarray:
    """The turns one after another, each followed by ``pause_s`` of silence."""
    pause = np.zeros(int(pause_s * SAMPLE_RATE_HZ), np.float32)
    pieces, at = [], 0.0
    for turn in turns:
        turn.start_s = at
        turn.end_s = at + len(turn.audio) / SAMPLE_RATE_HZ
        pieces += [turn.audio, pause]
        at = turn.end_s + pause_s
    return np.concatenate(pieces)


@dataclass
class Heard:
    """What one replay committed, per turn."""

    words: list[list[str]] = field(default_factory=list)
    languages: list[list[str]] = field(default_factory=list)
    lags: list[list[float]] = field(default_factory=list)
    compute_s: float = 0.0
    audio_s: float = 0.0


def _replay(model, cfg: Config, audio, mode: str, chunk_s: float, **options):
    from juno.transcriber.build import make_transcriber
    from juno.transcriber.replay import ReplayStats, replay

    stepper = make_transcriber(model, cfg, **options)
    stats = ReplayStats()
    out = list(replay(stepper, audio, chunk_s, mode == "aware", stats))
    return out, stats, stepper


def conversation_run(
    model, cfg, turns, audio, pair, mode, chunk_s
) -> tuple[Heard, int, list[bool]]:
    """The conversation's words per turn (by text), its identifications, and per turn
    whether its words by time alone all carry its language."""
    emissions, stats, stepper = _replay(
        model, cfg, audio, mode, chunk_s, languages=pair, language=None
    )
    heard = Heard([[] for _ in turns], [[] for _ in turns], [[] for _ in turns], stats.compute_s)
    heard.audio_s = stats.audio_s
    by_time: list[list[str]] = [[] for _ in turns]
    owners = turns_by_text(turns, [e.word.text for e in emissions])
    for e, owner in zip(emissions, owners, strict=True):
        at = _turn_of(turns, e.word.end_s)
        i = at if owner is None else owner
        heard.words[i].append(e.word.text)
        heard.languages[i].append(e.word.language)
        heard.lags[i].append(e.emitted_s - e.word.end_s)
        by_time[at].append(e.word.language)
    return heard, stepper.identifications, _identified_right(turns, by_time)


def _identified_right(turns: list[Turn], languages: list[list[str]]) -> list[bool]:
    """Per turn: it has words, and all of them carry its language."""
    return [
        bool(langs) and all(lang == t.language for lang in langs)
        for t, langs in zip(turns, languages, strict=True)
    ]


def turns_by_text(turns: list[Turn], words: list[str]) -> list[int | None]:
    """For each committed word, the turn whose reference words it transcribes: the
    words (normalized as WER is) aligned to the turns' references one after another,
    as WER aligns them (jiwer); a word that matches its reference word takes its turn,
    one substituted or inserted gets None (a substitution's place is a guess: "8" for
    a turn's "eight" aligns as well with the last word of the turn before)."""
    import jiwer

    from juno.eval.wer import normalize_text

    ref = [(w, i) for i, t in enumerate(turns) for w in normalize_text(t.reference).split()]
    hyp = [(w, k) for k, word in enumerate(words) for w in normalize_text(word).split()]
    owner: list[int | None] = [None] * len(words)
    if not ref or not hyp:
        return owner
    out = jiwer.process_words(" ".join(w for w, _ in ref), " ".join(w for w, _ in hyp))
    for chunk in out.alignments[0]:
        if chunk.type == "equal":
            for h in range(chunk.hyp_start_idx, chunk.hyp_end_idx):
                r = chunk.ref_start_idx + h - chunk.hyp_start_idx
                k = hyp[h][1]
                if owner[k] is None:
                    owner[k] = ref[r][1]
    return owner


def one_way_run(model, cfg, turns, mode, chunk_s, pause_s) -> Heard:
    heard = Heard()
    pause = np.zeros(int(pause_s * SAMPLE_RATE_HZ), np.float32)
    for turn in turns:
        audio = np.concatenate([turn.audio, pause])
        emissions, stats, _ = _replay(model, cfg, audio, mode, chunk_s, language=turn.language)
        heard.words.append([e.word.text for e in emissions])
        heard.languages.append([turn.language] * len(emissions))
        heard.lags.append([e.emitted_s - e.word.end_s for e in emissions])
        heard.compute_s += stats.compute_s
        heard.audio_s += stats.audio_s
    return heard


def _turn_of(turns: list[Turn], t_s: float) -> int:
    """The turn nearest time ``t_s``: its audio, and the pauses around it up to their
    middles (Whisper can place a turn's first word early in the pause before it, and its
    last word late in the pause after it)."""
    for i, turn in enumerate(turns):
        if i + 1 == len(turns) or t_s < (turn.end_s + turns[i + 1].start_s) / 2:
            return i
    return len(turns) - 1


def _median(values) -> float:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else float("nan")


def speech_part(model, cfg, args, other: str, mode: str) -> list[list[str]]:
    from juno.eval.wer import wer

    turns = turns_for(other, args.turns, shared_data() / "audio")
    audio = join(turns, args.pause)
    chunk_s = args.chunk_ms / 1000
    conv, identifications, right_by_time = conversation_run(
        model, cfg, turns, audio, ("en", other), mode, chunk_s
    )
    alone = one_way_run(model, cfg, turns, mode, chunk_s, args.pause)
    right = _identified_right(turns, conv.languages)
    for i, turn in enumerate(turns):
        if not right[i]:  # which words were heard in the other language (or none at all)
            heard = [
                w if lang == turn.language else f"{w} [{lang}]"
                for w, lang in zip(conv.words[i], conv.languages[i], strict=True)
            ]
            console.print(
                f"  turn {i + 1} ({turn.language}, {turn.start_s:.1f}-{turn.end_s:.1f} s): "
                + (" ".join(heard) or "(no word)"),
                markup=False,  # the [lang] tags are text
            )
    rows = []
    for direction in ("en", other):
        idx = [i for i, t in enumerate(turns) if t.language == direction]
        refs = [turns[i].reference for i in idx]
        cells = [f"en-{other}, {direction} turns ({len(idx)})"]
        cells.append(f"{sum(right[i] for i in idx)} of {len(idx)}")
        for heard in (conv, alone):
            cells.append(f"{wer(refs, [' '.join(heard.words[i]) for i in idx]):.1f}")
        firsts = [conv.lags[i][0] if conv.lags[i] else None for i in idx]
        rest = [lag for i in idx for lag in conv.lags[i][1:]]
        alone_firsts = [alone.lags[i][0] if alone.lags[i] else None for i in idx]
        pairs = zip(firsts, alone_firsts, strict=True)
        added = [c - a for c, a in pairs if c is not None and a is not None]
        cells += [
            f"{_median(firsts):.2f}",
            f"{_median(rest):.2f}",
            f"{_median(alone_firsts):.2f}",
            f"{_median(added):+.2f}",
        ]
        rows.append(cells)
    console.print(
        f"en-{other} ({mode}): {sum(right)} of {len(turns)} turns identified right "
        f"({100 * sum(right) / len(turns):.0f}%; {sum(right_by_time)} with words given to turns "
        f"by time alone), {identifications} identifications; compute "
        f"{conv.compute_s / conv.audio_s:.2f} s per audio s in conversation, "
        f"{alone.compute_s / alone.audio_s:.2f} one-way"
    )
    return rows


def text_part(model, tokenizer, cfg, other: str, n: int) -> list[list[str]]:
    """FLORES sentences alternating en and ``other`` through a Conversation and one-way."""
    from dataclasses import replace

    from juno.eval.score import corpus_quality
    from juno.simul.conversation import Conversation
    from juno.simul.engine import StreamingTranslator
    from juno.simul.options import TranslateOptions
    from juno.simul.policy import join_words

    options = replace(TranslateOptions.from_config(cfg, other), draft="off")
    conv = Conversation.create(model, tokenizer, options, ["en", other])
    one_way = {
        lang: StreamingTranslator(
            model,
            tokenizer,
            replace(options, source_language=lang, target_language=dest),
        )
        for lang, dest in (("en", other), (other, "en"))
    }
    turns = [("en" if i % 2 == 0 else other, i) for i in range(n)]
    hyps: dict[str, dict[str, list[str]]] = {"conversation": {}, "one-way": {}}
    for lang, i in turns:
        source = flores_dev(lang)[i]
        for word in source.split():
            conv.feed(word, lang)
            list(conv.events())
        conv.end_sentence()
        done = [e for _, e in conv.events() if e.sentence_done]
        hyps["conversation"].setdefault(lang, []).append(done[-1].sentence.text if done else "")
        t = one_way[lang]
        words = []
        for word in source.split():
            t.feed(word)
            words += t.step()
        words += t.finish()
        hyps["one-way"].setdefault(lang, []).append(join_words(words))
    rows = []
    for lang, dest in (("en", other), (other, "en")):
        idx = [i for lg, i in turns if lg == lang]
        refs = [flores_dev(dest)[i] for i in idx]
        cells = [f"{lang}→{dest} ({len(idx)} sentences)"]
        for setting in ("conversation", "one-way"):
            q = corpus_quality(hyps[setting][lang], refs, dest)
            cells += [f"{q.bleu:.1f}", f"{q.chrf:.1f}"]
        same = sum(
            a.split() == b.split()
            for a, b in zip(hyps["conversation"][lang], hyps["one-way"][lang], strict=True)
        )
        cells.append(f"{same} of {len(idx)}")
        rows.append(cells)
    return rows


def lid_part(model, others: list[str], lengths: list[float]) -> Table:
    """Identification among (en, X) of each clip's first N seconds of speech."""
    from juno.audio import load_audio
    from juno.transcriber.whisper_window import WhisperWindow

    data = shared_data() / "audio"
    window = WhisperWindow(model, context_pad_s=2.0)
    english = sorted((data / "en" / "clips").glob("*.flac")) + sorted(
        (data / "librivox").glob("*.wav")
    )
    clips = [(path, "en") for path in english]
    clips += [(p, x) for x in others for p in sorted((data / "fleurs").glob(f"fleurs-{x}-*.ogg"))]
    right: dict[tuple[str, float], list[bool]] = {}
    for path, lang in clips:
        audio = load_audio(path)
        loud = np.sqrt(np.convolve(audio**2, np.ones(160) / 160, mode="same")) > 0.01
        onset = max(0, int(np.argmax(loud)) - SAMPLE_RATE_HZ // 2)
        for seconds in lengths:
            piece = audio[onset : onset + int((seconds + 0.5) * SAMPLE_RATE_HZ)]
            for other in others if lang == "en" else ["en"]:
                among = ("en", lang if lang != "en" else other)
                named = window.detect_language(piece, among)
                key = (lang if lang != "en" else f"en (vs {other})", seconds)
                right.setdefault(key, []).append(named == lang)
    table = _table(
        "identification alone: each clip's first N s of speech, named among English and the "
        "other language (share right)",
        ["spoken", "clips", *[f"{s:g} s" for s in lengths]],
    )
    for name in dict.fromkeys(key for key, _ in right):
        cells = [right[(name, s)] for s in lengths]
        table.add_row(name, str(len(cells[0])), *[f"{100 * sum(c) / len(c):.0f}%" for c in cells])
    return table


def _table(title: str, columns: list[str]) -> Table:
    t = Table(title=title, title_justify="left")
    for i, c in enumerate(columns):
        t.add_column(c, justify="left" if i == 0 else "right")
    return t


def run(args: argparse.Namespace, cfg: Config) -> int:
    from juno.models.loading import load_whisper

    others = pairs_of(args.pairs)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not modes or set(modes) - {"unaware", "aware"}:
        raise JunoError(f"--modes: unaware, aware (got {args.modes!r})")
    if args.turns < 2:
        raise JunoError("--turns: at least 2")
    started = time.perf_counter()
    model, path = load_whisper(cfg.transcribe.model, cfg)
    from juno.transcriber.whisper_window import WhisperWindow

    WhisperWindow(model).warm_up()
    lengths = [float(x) for x in args.lid_lengths.split(",") if x.strip()]
    if lengths:
        console.print(lid_part(model, others, lengths))
    console.print(
        f"Whisper {path.name}, policy {cfg.transcribe.policy}, identify from "
        f"{cfg.conversation.identify_speech_s} s of speech; {args.turns} turns per pair, "
        f"{args.pause} s apart\n"
    )
    for mode in modes:
        table = _table(
            f"conversation vs one-way, speech ({mode}): turns identified, WER %, source lag "
            "(s, median): first word of a turn and the others, one-way's first word, added",
            ["direction", "identified", "WER conv", "WER one-way", "first word",
             "other words", "first, one-way", "added"],
        )  # fmt: skip
        for other in others:
            for row in speech_part(model, cfg, args, other, mode):
                table.add_row(*row)
        console.print(table)
    if args.sentences:
        from juno.models.loading import load_llm

        llm, tokenizer, llm_path = load_llm(cfg.translate.model, cfg, cfg.translate.adapter)
        table = _table(
            f"conversation vs one-way, text: {args.sentences} FLORES dev sentences per pair, "
            f"alternating ({llm_path.name}, wait-{cfg.translate.wait_k})",
            ["direction", "BLEU conv", "chrF", "BLEU one-way", "chrF", "same sentences"],
        )
        for other in others:
            for row in text_part(llm, tokenizer, cfg, other, args.sentences):
                table.add_row(*row)
        console.print(table)
    console.print(f"bench took {time.perf_counter() - started:.0f} s")
    return 0
