"""The session folder a display writes while a session runs.

- ``session.json``: the caller's meta (config, models) plus start time, the
  target languages when given and a conversation's ``pair``; rewritten at close
  with the end time.
- ``events.jsonl``: one JSON line per shown message (``type``, ``shown_wall_s``
  and the message's fields; a source word's ``language`` is the one it was spoken
  in, a translation's the target language it is in, an untagged one's too),
  flushed at once so a crash loses nothing shown.
- ``transcript.txt`` / ``translation.txt``: one sentence per line, line i of one
  pairing with line i of the other (a side with no text yet is an empty line).
- ``transcript.srt|vtt`` / ``translation.srt|vtt``: one cue per sentence (several
  for a long one); a translation cue spans its source sentence's audio. The
  layout and the formats are in :mod:`juno.display.subtitles`.

With several target languages each has its translation files, named with its
code: ``translation.de.txt``, ``translation.de.srt``, ``translation.de.vtt``
(:func:`translation_file`); line i of each still pairs with line i of the transcript.

A two-way conversation (``pair``, say en and fr) translates each turn (sentence)
into the language it was not spoken in: its target languages are the pair, and
``translation.fr.*`` holds the English turns' translations. Each language of the
pair also has the whole conversation in it, ``conversation.en.txt|srt|vtt``
(:func:`conversation_file`): every turn, as spoken where it was spoken in that
language, else its translation into it; line i still pairs with the transcript's
(``transcript.*`` holds every turn as spoken).

The texts are rewritten whole (each file atomically) by :meth:`write_texts`;
sentences still in progress are included with what they have so far.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from juno.display.subtitles import Cue, fit, source_cues_of, srt_cues, target_cues_of, vtt_cues
from juno.display.targets import Targets
from juno.pipeline.messages import TYPES, EndOfStream, Message, SentenceEnd, SourceWord, TargetWord
from juno.simul.policy import join_words

_RECORDED = (SourceWord, TargetWord, SentenceEnd, EndOfStream)
SUBTITLES = ("srt", "vtt")


def translation_file(languages: Sequence[str], language: str, ext: str) -> str:
    """The name of the translation file into ``language`` (``txt``, ``srt``, ``vtt``)
    of a session translating into ``languages``: named with its code when several."""
    return f"translation.{language}.{ext}" if len(languages) > 1 else f"translation.{ext}"


def conversation_file(language: str, ext: str) -> str:
    """The name of a conversation's file of every turn in ``language`` (``txt``, ``srt``,
    ``vtt``)."""
    return f"conversation.{language}.{ext}"


def text_files(languages: Sequence[str] = (), pair: Sequence[str] = ()) -> tuple[str, ...]:
    """The text and subtitle files of a session translating into ``languages``, or of a
    conversation between the languages of ``pair``."""
    languages = list(languages) or list(pair) or [""]
    texts = [translation_file(languages, lang, "txt") for lang in languages]
    subtitles = [translation_file(languages, lang, ext) for lang in languages for ext in SUBTITLES]
    turns = [conversation_file(lang, ext) for lang in pair for ext in ("txt", *SUBTITLES)]
    return ("transcript.txt", *texts, "transcript.srt", "transcript.vtt", *subtitles, *turns)


# The files of a session with one target language.
TEXT_FILES = text_files()

# The side of a sentence that is its source (the others are its target languages).
SOURCE = None


@dataclass(frozen=True)
class _Side:
    """A sentence's text and cues in one language: its source's, or a translation's."""

    text: str
    cues: list[Cue]


@dataclass(frozen=True)
class _Block:
    """A sentence's cues of one side, rendered for their place in the files."""

    # What the rendering depends on besides the sentence: the end of the cue
    # before (ms), the start of the cue after (ms, None for the last), its SRT number.
    key: tuple[int, int | None, int]
    srt: str
    vtt: str
    end_ms: int


@dataclass
class _Sentence:
    """What has been shown of one sentence; it grows word by word, so not frozen."""

    # (text, start_s, end_s) of each source word, in the order shown.
    source: list[tuple[str, float, float]] = field(default_factory=list)
    # The language its words were spoken in ("" until a tagged word arrives).
    language: str = ""
    # By target language: its words, and its SentenceEnd once its translation is
    # complete (whose texts are the whole sentence).
    target: dict[str, list[TargetWord]] = field(default_factory=dict)
    end: dict[str, SentenceEnd] = field(default_factory=dict)
    # By side (SOURCE, or a target language; blocks also by a conversation's "turns.LANG"):
    # caches dropped on every change, so a rewrite of the files lays out and renders only
    # what changed (in practice the last sentence or two).
    cached: dict[str | None, _Side] = field(default_factory=dict)
    blocks: dict[str | None, _Block] = field(default_factory=dict)

    def changed(self) -> None:
        self.cached.clear()
        self.blocks.clear()

    def turn(self, language: str, pair: Sequence[str]) -> str | None:
        """A conversation's turn in ``language``: its source (``SOURCE``) where it was
        spoken in it, else its translation into it. The language spoken is its words',
        else the one it is not translated into; untold, the pair's first."""
        spoken = self.language
        if not spoken:
            others = [lang for lang in pair if lang not in self.target and lang not in self.end]
            spoken = others[0] if len(others) == 1 else pair[0]
        return SOURCE if language == spoken else language

    def side(self, language: str | None) -> _Side:
        """The source's text and cues (``SOURCE``), or the translation's into ``language``."""
        if language not in self.cached:
            if language is SOURCE:
                if self.source:
                    text = " ".join(w for w, _, _ in self.source)
                else:
                    text = next((e.source.strip() for e in self.end.values()), "")
                self.cached[language] = _Side(text, source_cues_of(self.source))
            else:
                end = self.end.get(language)
                # SentenceEnd's target is the translator's own whole text (spacing included).
                text = end.target.strip() if end else join_words(self.target.get(language, []))
                # A translation is timed by its source: without source words it has no cue.
                cues = []
                if self.source:
                    span = (self.source[0][1], self.source[-1][2])
                    cues = target_cues_of(text.split(), *span)
                self.cached[language] = _Side(text, cues)
        return self.cached[language]


class SessionRecorder:
    """Records what a display shows into ``folder`` (see the module docstring)."""

    def __init__(
        self,
        folder: Path,
        meta: dict[str, Any],
        clock: Callable[[], float] = time.time,
        target_languages: Iterable[str] = (),
        pair: Sequence[str] = (),
    ) -> None:
        """Create ``folder`` (it may exist, but must hold no ``events.jsonl``).

        ``meta`` is anything JSON-able (non-JSON values are written with ``str``);
        the recorder adds ``start_wall_s``/``started_at``, ``target_languages``
        when given, ``pair`` in a conversation, and, at close,
        ``end_wall_s``/``ended_at``/``duration_s``.
        ``target_languages``: see :class:`~juno.display.targets.Targets` (none: one; a
        conversation's are its ``pair``).
        """
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._clock = clock
        self.pair = list(pair)
        self.targets = Targets(list(target_languages) or self.pair)
        self._meta = dict(meta)
        if any(self.targets.languages):
            # The list itself: a language first met later is in session.json at close.
            self._meta["target_languages"] = self.targets.languages
        if self.pair:
            self._meta["pair"] = self.pair
        self._start_wall_s = clock()
        self._sentences: dict[int, _Sentence] = {}
        # Last text written per file: an unchanged file is not rewritten.
        self._written: dict[str, str] = {}
        self._closed = False
        self._write_session(end_wall_s=None)
        # "x": never append to (or truncate) an earlier session's events.
        self._events = open(self.folder / "events.jsonl", "x", encoding="utf-8")

    def __enter__(self) -> SessionRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def record(self, msg: Message, shown_wall_s: float) -> None:
        """Append ``msg`` (shown at ``shown_wall_s``) to events.jsonl and the sentences.

        Only SourceWord, TargetWord, SentenceEnd and EndOfStream are recorded;
        other messages are ignored.
        """
        if not isinstance(msg, _RECORDED):
            return
        if self._closed:
            raise ValueError("record() on a closed session")
        if isinstance(msg, TargetWord | SentenceEnd):
            # Recorded in the language it is shown in (an unnamed one keeps its tag).
            msg = dataclasses.replace(msg, language=self.targets.of(msg.language) or msg.language)
        fields = {f.name: getattr(msg, f.name) for f in dataclasses.fields(msg)}
        line = {"type": msg.TAG, "shown_wall_s": shown_wall_s, **fields}
        self._events.write(json.dumps(line, ensure_ascii=False) + "\n")
        # Flushed to the OS, so a crash of this process later keeps the line.
        self._events.flush()
        self._apply(msg)

    @classmethod
    def replay(cls, folder: Path) -> SessionRecorder:
        """A closed recorder rebuilt from ``folder``'s events.jsonl.

        After a crash (of the display, or of a stage that stopped it mid-batch)
        its :meth:`write_texts` brings the texts up to the last recorded event.
        The target languages and a conversation's pair are session.json's, else those
        the events name.
        """
        from juno.display.latency import languages_of, load_events, pair_of

        self = cls.__new__(cls)
        self.folder = Path(folder)
        self._sentences, self._written, self._closed = {}, {}, True
        events = load_events(self.folder / "events.jsonl")
        try:
            info = json.loads((self.folder / "session.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            info = {}
        self.pair = list(info.get("pair") or pair_of(events))
        self.targets = Targets(info.get("target_languages") or languages_of(events))
        for event in events:
            cls_ = TYPES[event["type"]]
            names = {f.name for f in dataclasses.fields(cls_)}
            self._apply(cls_(**{k: v for k, v in event.items() if k in names}))
        return self

    def _apply(self, msg: Message) -> None:
        if isinstance(msg, EndOfStream):
            return
        sentence = self._sentences.setdefault(msg.sentence, _Sentence())
        sentence.changed()
        if isinstance(msg, SentenceEnd):
            sentence.end[self.targets.of(msg.language)] = msg
        elif text := msg.text.strip():
            if isinstance(msg, SourceWord):
                if msg.attached and sentence.source:  # "cold" "-hearted": one word
                    before, start_s, _ = sentence.source[-1]
                    sentence.source[-1] = (before + text, start_s, msg.end_s)
                else:
                    sentence.source.append((text, msg.start_s, msg.end_s))
                sentence.language = sentence.language or msg.language
            else:
                words = sentence.target.setdefault(self.targets.of(msg.language), [])
                words.append(dataclasses.replace(msg, text=text))

    def texts(self) -> dict[str, str]:
        """The text files' contents, by file name (see :func:`text_files`)."""
        sentences = [self._sentences[i] for i in sorted(self._sentences)]
        languages, pair = self.targets.languages, self.pair
        sides = [SOURCE, *languages]
        # Line i of every file is sentence i of those with a text in any of them.
        lines = [(s, t) for s in sentences if any(t := [s.side(side).text for side in sides])]
        files = {"transcript.txt": "".join(texts[0] + "\n" for _, texts in lines)}
        for n, language in enumerate(languages, start=1):
            files[translation_file(languages, language, "txt")] = "".join(
                texts[n] + "\n" for _, texts in lines
            )
        files["transcript.srt"], files["transcript.vtt"] = _render(sentences, SOURCE)
        for language in languages:
            srt, vtt = _render(sentences, language)
            files[translation_file(languages, language, "srt")] = srt
            files[translation_file(languages, language, "vtt")] = vtt
        for language in pair:
            files[conversation_file(language, "txt")] = "".join(
                s.side(s.turn(language, pair)).text + "\n" for s, _ in lines
            )
            turn = functools.partial(_Sentence.turn, language=language, pair=pair)
            srt, vtt = _render(sentences, f"turns.{language}", turn)
            files[conversation_file(language, "srt")] = srt
            files[conversation_file(language, "vtt")] = vtt
        return files

    def write_texts(self) -> None:
        """(Re)write the transcript and translation files; unchanged ones are skipped."""
        for name, text in self.texts().items():
            if self._written.get(name) != text:
                write_atomic(self.folder / name, text)
                self._written[name] = text

    def close(self) -> None:
        """Write the texts, close events.jsonl, stamp the end time. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self.write_texts()
        finally:
            self._events.close()
            self._write_session(end_wall_s=self._clock())

    def _write_session(self, end_wall_s: float | None) -> None:
        info = {**self._meta, **_stamps("start", self._start_wall_s)}
        if end_wall_s is not None:
            info.update(_stamps("end", end_wall_s))
            info["duration_s"] = round(end_wall_s - self._start_wall_s, 3)
        text = json.dumps(info, indent=2, ensure_ascii=False, default=str) + "\n"
        write_atomic(self.folder / "session.json", text)


def _stamps(which: str, wall_s: float) -> dict[str, Any]:
    local = datetime.fromtimestamp(wall_s).astimezone()
    return {f"{which}_wall_s": wall_s, f"{which}ed_at": local.isoformat(timespec="seconds")}


def new_session_folder(base: Path, now: datetime | None = None) -> Path:
    """Create and return ``base/YYYYmmdd-HHMMSS`` (``-2``, ``-3``... if taken)."""
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    base.mkdir(parents=True, exist_ok=True)
    n = 1
    while True:
        folder = base / (stamp if n == 1 else f"{stamp}-{n}")
        try:
            # mkdir is the reservation: two displays starting in the same second get two folders.
            folder.mkdir()
            return folder
        except FileExistsError:
            n += 1


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temp file in its folder, so readers see old or new."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _render(
    sentences: list[_Sentence],
    key: str | None,
    side_of: Callable[[_Sentence], str | None] | None = None,
) -> tuple[str, str]:
    """SRT and VTT of one side of ``sentences`` (``key``: SOURCE or a target language;
    or each sentence's ``side_of`` it, its blocks kept under ``key``), reusing each
    sentence's block while its cues and its neighbours' times stay the same."""
    items = [(s, cues) for s in sentences if (cues := s.side(side_of(s) if side_of else key).cues)]
    srt, vtt = [], []
    end_ms, number = 0, 1
    for n, (sentence, cues) in enumerate(items):
        next_ms = round(items[n + 1][1][0].start_s * 1000) if n + 1 < len(items) else None
        place = (end_ms, next_ms, number)
        block = sentence.blocks.get(key)
        if block is None or block.key != place:
            timed = fit(cues, end_ms, next_ms)
            block = _Block(place, srt_cues(timed, number), vtt_cues(timed), timed[-1][1])
            sentence.blocks[key] = block
        srt.append(block.srt)
        vtt.append(block.vtt)
        end_ms, number = block.end_ms, number + len(cues)
    return "".join(srt), "WEBVTT\n\n" + "".join(vtt)
