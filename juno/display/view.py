"""What the display process shows: the transcript and its translation, live.

:class:`Transcript` holds the sentences as the words arrive, :class:`LiveView`
renders it for a :class:`rich.live.Live` (columns: the source and a translation
per target language, or a large "room" layout, plus a status line), and
:class:`PlainPrinter` writes one line per event when the output is not a
terminal. In a two-way conversation (``pair``) there is a column per language of
the pair: each turn's words in the column of the language spoken, its translation
in the other. None of them reads a clock: the display process passes in the
wall-clock time it shows each message at.
"""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

from rich import box
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.padding import Padding
from rich.segment import Segment, SegmentLines
from rich.table import Table
from rich.text import Text

from juno.display.targets import Targets
from juno.languages import NAMES
from juno.pipeline.messages import EndOfStream, Message, SentenceEnd, SourceWord, TargetWord
from juno.simul.policy import join_words

# Words the lag medians look back over.
LAG_WINDOW_WORDS = 20
# Trails the text still being written.
CURSOR = "…"
IN_PROGRESS_STYLE = "bold yellow"
# A conversation: the tag before a turn's spoken words ("en ▸"), and its translation's look.
SPEAKER_STYLE = "bold cyan"
TRANSLATED_STYLE = "italic"
LAYOUTS = ("columns", "room")


@dataclass
class Translation:
    """One sentence's translation into one language, as far as it has arrived."""

    words: list[TargetWord] = field(default_factory=list)
    # Complete (its SentenceEnd arrived).
    done: bool = False
    # The whole text from SentenceEnd, which wins over the joined words.
    text: str = ""

    @property
    def target(self) -> str:
        return self.text or join_words(self.words)


@dataclass
class Sentence:
    """One source sentence and its translations, as far as they have arrived."""

    index: int
    source_words: list[str] = field(default_factory=list)
    # The language its words were spoken in ("" until a tagged word arrives).
    language: str = ""
    # One per target language, in the transcript's order.
    translations: dict[str, Translation] = field(default_factory=dict)
    # The transcriber committed the sentence's last word.
    source_done: bool = False
    # The whole source from SentenceEnd, which wins over the joined words.
    source_text: str = ""

    @property
    def source(self) -> str:
        return self.source_text or " ".join(self.source_words)

    @property
    def target(self) -> str:
        """The translation into the first target language."""
        return next(iter(self.translations.values()), Translation()).target

    @property
    def done(self) -> bool:
        """Every translation is complete (and there is one)."""
        return bool(self.translations) and all(t.done for t in self.translations.values())

    def translation(self, language: str) -> Translation:
        return self.translations.setdefault(language, Translation())


def _median(values: Iterable[float]) -> float | None:
    values = list(values)
    return statistics.median(values) if values else None


class Transcript:
    """The sentences so far, by index, and how far behind the speaker they are shown.

    Sentences fill independently: the source of sentence 3 may arrive while the
    translation of sentence 1 is still being written. ``languages`` are the target
    languages (see :class:`~juno.display.targets.Targets`; none given: one). A
    two-way conversation gives its ``pair`` instead: both are target languages, and
    each sentence (a turn) is translated into the one it was not spoken in.
    """

    def __init__(
        self,
        languages: Iterable[str] = (),
        lag_window_words: int = LAG_WINDOW_WORDS,
        pair: Iterable[str] = (),
    ) -> None:
        self.pair = list(pair)
        self.targets = Targets(self.pair or languages)
        self._sentences: dict[int, Sentence] = {}
        self._source_lags_s: deque[float] = deque(maxlen=lag_window_words)
        self._target_lags_s: deque[float] = deque(maxlen=lag_window_words)
        self.source_word_count = 0
        self.target_word_count = 0
        self.target_word_counts = dict.fromkeys(self.targets.languages, 0)
        # EndOfStream arrived: nothing more will.
        self.ended = False

    def add(self, msg: Message, shown_wall_s: float) -> None:
        """Take in a word, a sentence end or the end of stream; other messages are ignored.

        ``shown_wall_s`` is the wall-clock time (``time.time()``) the message is shown at.
        """
        if isinstance(msg, SourceWord):
            sentence = self._sentence(msg.sentence)
            if msg.attached and sentence.source_words:
                sentence.source_words[-1] += msg.text  # "cold" "-hearted": one word
            else:
                sentence.source_words.append(msg.text)
            if msg.language and not sentence.language:
                sentence.language = msg.language
                # A turn awaits its translation into the other language(s), not its own.
                for language in self.pair:
                    if language != msg.language:
                        sentence.translation(language)
            sentence.source_done = sentence.source_done or msg.sentence_end
            self.source_word_count += 1
            self._source_lags_s.append(shown_wall_s - (msg.origin_wall_s + msg.end_s))
        elif isinstance(msg, TargetWord):
            language = self.targets.of(msg.language)
            self._sentence(msg.sentence).translation(language).words.append(msg)
            self.target_word_count += 1
            self.target_word_counts[language] = self.target_word_counts.get(language, 0) + 1
            self._target_lags_s.append(shown_wall_s - (msg.origin_wall_s + msg.stream_s))
        elif isinstance(msg, SentenceEnd):
            sentence = self._sentence(msg.sentence)
            translation = sentence.translation(self.targets.of(msg.language))
            sentence.source_done = translation.done = True
            sentence.source_text, translation.text = msg.source, msg.target
        elif isinstance(msg, EndOfStream):
            self.ended = True

    def _sentence(self, index: int) -> Sentence:
        if index not in self._sentences:
            # A conversation's turn learns which translation it awaits from its words.
            languages = [] if self.pair else self.targets.languages
            translations = {language: Translation() for language in languages}
            self._sentences[index] = Sentence(index, translations=translations)
        return self._sentences[index]

    def spoken(self, sentence: Sentence) -> str:
        """The language a conversation's turn was spoken in: its words', else the one of
        the pair it is not translated into ("" when nothing tells)."""
        if sentence.language or not self.pair:
            return sentence.language
        others = [lang for lang in self.pair if lang not in sentence.translations]
        return others[0] if len(others) == 1 else ""

    @property
    def sentences(self) -> list[Sentence]:
        """All sentences, oldest first."""
        return [self._sentences[i] for i in sorted(self._sentences)]

    @property
    def source_lag_s(self) -> float | None:
        """Median delay from the end of a spoken word to its showing (recent words)."""
        return _median(self._source_lags_s)

    @property
    def target_lag_s(self) -> float | None:
        """Median delay from the source read for a translated word to its showing."""
        return _median(self._target_lags_s)


def _language(code: Any) -> str:
    return NAMES.get(str(code).lower(), str(code))


class LiveView:
    """A rich renderable of a :class:`Transcript` that fits the console height.

    ``layout="columns"``: source and translation side by side (a column per target
    language, titled with its name, when there are several), one row per sentence,
    the newest at the bottom, a status line under them.
    ``layout="room"``: the translation only (each language's under the one before),
    large and spaced, for an audience.
    In a conversation the columns are the pair's languages: each turn's words, tagged
    with their language ("en ▸"), in its language's column, its translation (italic) in
    the other's, on one row; the room layout shows each translation after that tag.
    Translations not yet complete are shown in yellow with a trailing cursor (the
    source too until all its translations are). ``status`` holds what the status
    line shows (``whisper``, ``llm``, ``source_language``, ``target_language``,
    ``wait_k``); missing keys are left out. ``state`` is the state text the
    display process sets ("listening", "draining…"); it reads "done" once
    EndOfStream arrived.
    """

    def __init__(
        self,
        status: Mapping[str, Any] | None = None,
        transcript: Transcript | None = None,
        layout: str = "columns",
    ) -> None:
        if layout not in LAYOUTS:
            raise ValueError(f"unknown layout {layout!r} (known: {', '.join(LAYOUTS)})")
        self.status = dict(status or {})
        self.transcript = transcript if transcript is not None else Transcript()
        self.layout = layout
        self.state = "listening"

    def add(self, msg: Message, shown_wall_s: float) -> None:
        """Take in a message (see :meth:`Transcript.add`)."""
        self.transcript.add(msg, shown_wall_s)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        height = options.height or options.max_height
        options = options.reset_height()
        if self.layout == "room":
            sentences = reversed(self.transcript.sentences)
            rows = (self._room_row(s) for s in sentences if any(_targets(s)))
            yield SegmentLines(_last_lines(console, options, rows, height), new_lines=True)
            return
        header = console.render_lines(self._header(), options, pad=False)
        footer = console.render_lines(self.status_line(), options, pad=False)
        budget = max(1, height - len(header) - len(footer))
        rows = map(self._row, reversed(self.transcript.sentences))
        body = _last_lines(console, options, rows, budget)
        yield SegmentLines([*header, *body, *footer], new_lines=True)

    def _header(self) -> Table:
        def title(kind: str, key: str) -> str:
            return f"{kind} ({_language(self.status[key])})" if key in self.status else kind

        targets = self.transcript.targets
        if self.transcript.pair:
            table = _columns(show_header=True, translations=len(self.transcript.pair) - 1)
            for column, language in zip(table.columns, self.transcript.pair, strict=True):
                column.header = _language(language)
            return table
        table = _columns(show_header=True, translations=len(targets.languages))
        table.columns[0].header = title("Source", "source_language")
        if targets.several:
            for column, language in zip(table.columns[1:], targets.languages, strict=True):
                column.header = _language(language)
        else:
            table.columns[1].header = title("Translation", "target_language")
        return table

    def _row(self, sentence: Sentence) -> Table:
        source = sentence.source if sentence.source_done else _with_cursor(sentence.source)
        source_style = "" if sentence.done else IN_PROGRESS_STYLE
        pair = self.transcript.pair
        if pair:
            # A turn of unknown language (untagged words) goes in the first column.
            spoken = self.transcript.spoken(sentence) or pair[0]
            cells = [
                Text.assemble((f"{spoken} ▸ ", SPEAKER_STYLE), (source, source_style))
                if language == spoken
                else _translation_cell(sentence.translations.get(language), TRANSLATED_STYLE)
                for language in pair
            ]
        else:
            cells = [Text(source, style=source_style)]
            for language in self.transcript.targets.languages:
                cells.append(_translation_cell(sentence.translations.get(language)))
        table = _columns(show_header=False, translations=len(cells) - 1)
        table.add_row(*cells)
        return table

    def _room_row(self, sentence: Sentence) -> RenderableType:
        # A conversation tags each translation with the language its turn was spoken in.
        spoken = self.transcript.spoken(sentence) if self.transcript.pair else ""
        texts = []
        for translation in _targets(sentence):
            if translation.done:
                text = Text(translation.target, style="bold")
            else:
                text = Text(_with_cursor(translation.target), style=IN_PROGRESS_STYLE)
            if spoken:
                text = Text.assemble((f"{spoken} ▸ ", SPEAKER_STYLE), text)
            text.justify = "center"
            texts.append(text)
        return Padding(Group(*texts), (0, 4, 1, 4))

    def status_line(self) -> Text:
        """State, lags, word counts, languages, models and wait-k, on one line.

        The changing fields come first so a narrow console cuts the fixed ones.
        """
        s, t = self.status, self.transcript
        languages = t.targets.languages
        written, targets = str(t.target_word_count), s.get("target_language", "?")
        if t.targets.several:
            # The words written in each target language, in the columns' order.
            written = ", ".join(str(t.target_word_counts.get(lang, 0)) for lang in languages)
            targets = ", ".join(languages)
        parts = [
            f"lag src {_seconds(t.source_lag_s)}, tgt {_seconds(t.target_lag_s)}",
            f"words {t.source_word_count} → {written}",
        ]
        if "room" in s:
            parts.append(f"room {s['room']}")
        if t.pair:
            parts.append(" ⇄ ".join(t.pair))
        elif "source_language" in s or "target_language" in s or t.targets.several:
            parts.append(f"{s.get('source_language', '?')} → {targets}")
        parts += [f"{key} {s[key]}" for key in ("whisper", "llm") if key in s]
        if "wait_k" in s:
            parts.append(f"wait-k {s['wait_k']}")
        line = Text(no_wrap=True, overflow="ellipsis")
        line.append("done" if t.ended else self.state, style="bold")
        line.append(" · " + " · ".join(parts), style="dim")
        return line


def _targets(sentence: Sentence) -> list[Translation]:
    """The sentence's translations that have a text so far."""
    return [t for t in sentence.translations.values() if t.target]


def _translation_cell(translation: Translation | None, style: str = "") -> Text:
    """A translation as far as it has arrived: in yellow with a cursor until complete."""
    translation = translation or Translation()
    if translation.done:
        return Text(translation.target, style=style)
    return Text(_with_cursor(translation.target), style=IN_PROGRESS_STYLE)


def _columns(show_header: bool, translations: int = 1) -> Table:
    # One table per row, all with the same ratio columns (the source, then a translation
    # per language), so rows line up and each row's height can be measured to fit whole
    # rows in the console.
    table = Table(
        box=box.MINIMAL,
        show_header=show_header,
        show_edge=False,
        expand=True,
        padding=(0, 1),
        header_style="bold",
    )
    for _ in range(1 + translations):
        table.add_column(ratio=1)
    return table


def _last_lines(
    console: Console, options: ConsoleOptions, newest_first: Iterable[RenderableType], height: int
) -> list[list[Segment]]:
    """The last ``height`` lines of the rows stacked oldest first; only the oldest may be cut."""
    kept: list[list[list[Segment]]] = []
    used = 0
    # Lazily, so only the rows that fit are rendered.
    for row in newest_first:
        if used >= height:
            break
        lines = console.render_lines(row, options, pad=False)
        kept.append(lines[max(0, len(lines) - (height - used)) :])
        used += len(kept[-1])
    return [line for lines in reversed(kept) for line in lines]


def _with_cursor(text: str) -> str:
    return f"{text} {CURSOR}" if text else CURSOR


def _seconds(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f} s"


class PlainPrinter:
    """One tab-separated line per event, flushed, for output that is not a terminal.

    Lines (``\\t`` between fields; tabs and newlines in texts become spaces)::

        source    <sentence>  <start_s:.2f>  <end_s:.2f>  <text>
        target    <sentence>  <source_words_read>  <text>
        sentence  <sentence>  <whole translation of the sentence>

    With several target ``languages``, target and sentence lines name theirs after
    the kind (``target  de  <sentence> ...``); in a conversation (``pair``), source
    lines name the language spoken too (``source  en  <sentence> ...``). Other
    messages print nothing. :meth:`add` takes the same arguments as
    :meth:`LiveView.add`, so the display process can hold either.
    """

    def __init__(
        self, stream: TextIO, languages: Iterable[str] = (), pair: Iterable[str] = ()
    ) -> None:
        self.stream = stream
        self.pair = list(pair)
        self.targets = Targets(self.pair or languages)

    def add(self, msg: Message, shown_wall_s: float | None = None) -> None:
        """Print the line of ``msg``, if it has one."""
        if isinstance(msg, SourceWord):
            fields = ["source", msg.sentence, f"{msg.start_s:.2f}", f"{msg.end_s:.2f}", msg.text]
        elif isinstance(msg, TargetWord):
            fields = ["target", msg.sentence, msg.source_words_read, msg.text]
        elif isinstance(msg, SentenceEnd):
            fields = ["sentence", msg.sentence, msg.target]
        else:
            return
        if isinstance(msg, TargetWord | SentenceEnd) and self.targets.several:
            fields.insert(1, self.targets.of(msg.language))
        elif isinstance(msg, SourceWord) and self.pair:
            fields.insert(1, msg.language)
        line = "\t".join(str(f).replace("\t", " ").replace("\n", " ") for f in fields)
        self.stream.write(line + "\n")
        self.stream.flush()
