"""The session folder a display writes while a session runs.

- ``session.json``: the caller's meta (config, models) plus start time; rewritten
  at close with the end time.
- ``events.jsonl``: one JSON line per shown message (``type``, ``shown_wall_s``
  and the message's fields), flushed at once so a crash loses nothing shown.
- ``transcript.txt`` / ``translation.txt``: one sentence per line, line i of one
  pairing with line i of the other (a side with no text yet is an empty line).
- ``transcript.srt|vtt`` / ``translation.srt|vtt``: one cue per sentence (several
  for a long one); a translation cue spans its source sentence's audio. The
  layout and the formats are in :mod:`juno.display.subtitles`.

The texts are rewritten whole (each file atomically) by :meth:`write_texts`;
sentences still in progress are included with what they have so far.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from juno.display.subtitles import Cue, fit, source_cues_of, srt_cues, target_cues_of, vtt_cues
from juno.pipeline.messages import TYPES, EndOfStream, Message, SentenceEnd, SourceWord, TargetWord
from juno.simul.policy import join_words

_RECORDED = (SourceWord, TargetWord, SentenceEnd, EndOfStream)
TEXT_FILES = (
    "transcript.txt",
    "translation.txt",
    "transcript.srt",
    "transcript.vtt",
    "translation.srt",
    "translation.vtt",
)


@dataclass(frozen=True)
class _Layout:
    """A sentence's texts and cues, (source, target) each."""

    texts: tuple[str, str]
    cues: tuple[list[Cue], list[Cue]]


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
    target: list[TargetWord] = field(default_factory=list)
    # Set when the translation is complete; its texts are the whole sentence.
    end: SentenceEnd | None = None
    # Caches dropped on every change, so a rewrite of the files lays out and
    # renders only what changed (in practice the last sentence or two).
    cached: _Layout | None = None
    blocks: list[_Block | None] = field(default_factory=lambda: [None, None])

    def changed(self) -> None:
        self.cached = None
        self.blocks = [None, None]

    def layout(self) -> _Layout:
        if self.cached is None:
            if self.source:
                source_text = " ".join(w for w, _, _ in self.source)
            else:
                source_text = self.end.source.strip() if self.end else ""
            # SentenceEnd's target is the translator's own whole text (spacing included).
            target_text = self.end.target.strip() if self.end else join_words(self.target)
            # A translation is timed by its source: without source words it has no cue.
            target_cues = []
            if self.source:
                span = (self.source[0][1], self.source[-1][2])
                target_cues = target_cues_of(target_text.split(), *span)
            self.cached = _Layout(
                (source_text, target_text), (source_cues_of(self.source), target_cues)
            )
        return self.cached


class SessionRecorder:
    """Records what a display shows into ``folder`` (see the module docstring)."""

    def __init__(
        self, folder: Path, meta: dict[str, Any], clock: Callable[[], float] = time.time
    ) -> None:
        """Create ``folder`` (it may exist, but must hold no ``events.jsonl``).

        ``meta`` is anything JSON-able (non-JSON values are written with ``str``);
        the recorder adds ``start_wall_s``/``started_at`` and, at close,
        ``end_wall_s``/``ended_at``/``duration_s``.
        """
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._clock = clock
        self._meta = dict(meta)
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
        """
        from juno.display.latency import load_events

        self = cls.__new__(cls)
        self.folder = Path(folder)
        self._sentences, self._written, self._closed = {}, {}, True
        for event in load_events(self.folder / "events.jsonl"):
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
            sentence.end = msg
        elif text := msg.text.strip():
            if isinstance(msg, SourceWord):
                sentence.source.append((text, msg.start_s, msg.end_s))
            else:
                sentence.target.append(dataclasses.replace(msg, text=text))

    def texts(self) -> dict[str, str]:
        """The text files' contents, by file name."""
        sentences = [self._sentences[i] for i in sorted(self._sentences)]
        pairs = [t for s in sentences if any(t := s.layout().texts)]
        files = {
            "transcript.txt": "".join(src + "\n" for src, _ in pairs),
            "translation.txt": "".join(tgt + "\n" for _, tgt in pairs),
        }
        for side, name in enumerate(("transcript", "translation")):
            files[f"{name}.srt"], files[f"{name}.vtt"] = _render(sentences, side)
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


def _render(sentences: list[_Sentence], side: int) -> tuple[str, str]:
    """SRT and VTT of one side of ``sentences``, reusing each sentence's block
    while its cues and its neighbours' times stay the same."""
    items = [(s, cues) for s in sentences if (cues := s.layout().cues[side])]
    srt, vtt = [], []
    end_ms, number = 0, 1
    for n, (sentence, cues) in enumerate(items):
        next_ms = round(items[n + 1][1][0].start_s * 1000) if n + 1 < len(items) else None
        key = (end_ms, next_ms, number)
        block = sentence.blocks[side]
        if block is None or block.key != key:
            timed = fit(cues, end_ms, next_ms)
            block = _Block(key, srt_cues(timed, number), vtt_cues(timed), timed[-1][1])
            sentence.blocks[side] = block
        srt.append(block.srt)
        vtt.append(block.vtt)
        end_ms, number = block.end_ms, number + len(cues)
    return "".join(srt), "WEBVTT\n\n" + "".join(vtt)
