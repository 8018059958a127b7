"""What the room's viewers are sent: the shown messages as numbered events, and live figures.

The display process adds each message it shows (:meth:`RoomFeed.add`, from its own
thread); the web server (:mod:`juno.display.server`) reads from its own thread. Each
event gets the next sequence number and is kept as JSON text, encoded once however
many viewers read it. A viewer asks for the events after the last one it has
(:meth:`RoomFeed.after`): that is how a new viewer gets the session so far, a slow
one catches up in larger batches, and one that reconnects gets what it missed.

Events (JSON objects; ``seq`` from 1 in every one):

- ``source``: a committed source word (``sentence``, ``text``, ``end``: it ends the
  sentence, ``lag_s``: shown this long after it was spoken; ``attached``: it continues
  the word before it without a space, as "-hearted" after "cold"; ``lang``: the
  language it was spoken in, when the word names it);
- ``target``: a translated word (``sentence``, ``lang``: the target language it is in,
  ``text``, ``attached``: it follows the previous word without a space, as "30" after "9:");
- ``sentence``: a sentence's translation into ``lang`` is complete (``sentence``, the
  whole ``source`` and ``target``, ``lag_s``: shown this long after its last word was
  spoken); with several target languages each sends its own;
- ``status``: the display's ``state`` (``starting``, ``listening``, ``draining``,
  ``done``, ``stopped``).

In a two-way conversation (``pair``) the target languages are the pair's, and each
turn (sentence) is translated into the language it was not spoken in: a viewer
reading in English is shown the English turns' source words and the French turns'
English translation. ``hello`` names the ``pair``.

No clock is read here: callers pass wall-clock times.
"""

from __future__ import annotations

import json
import secrets
import threading
from array import array
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from juno.display.targets import Targets
from juno.languages import NAMES
from juno.pipeline.messages import Message, SentenceEnd, SourceWord, TargetWord

# Events kept for viewers that join late or reconnect: about 2.5 hours of speech
# (about 5 events a second, 175 bytes each: at most about 9 MB).
HISTORY_EVENTS = 50_000
# Word rates are over the last this many seconds.
RATE_WINDOW_S = 30.0
# Sentence ends remembered for a source word that arrives after its sentence's end.
ENDED_KEPT = 64


@dataclass(frozen=True)
class Batch:
    """Events after a viewer's last one, as JSON texts."""

    events: list[str]
    # The seq of the last event in ``events`` (the viewer's new cursor).
    last_seq: int
    # Events the viewer has not seen are no longer kept: it must start over from these.
    reset: bool


@dataclass
class _Open:
    """A sentence whose translation is still being written, for the translation lag."""

    read: int = 0
    # (source word number from 1, wall-clock time its audio ended) awaiting a translated word.
    waiting: deque[tuple[int, float]] = field(default_factory=deque)
    # (source words read, shown time) of each translated word so far.
    targets: list[tuple[int, float]] = field(default_factory=list)


class _Lags:
    """The translation lags into one target language, as its words arrive."""

    def __init__(self) -> None:
        self.lags = array("d")
        self.sentences = 0
        self._open: dict[int, _Open] = {}
        self._ended: OrderedDict[int, float] = OrderedDict()

    def source(self, sentence_index: int, spoken_s: float) -> None:
        if sentence_index in self._ended:
            self.lags.append(self._ended[sentence_index] - spoken_s)
            return
        sentence = self._open.setdefault(sentence_index, _Open())
        sentence.read += 1
        # The translation may arrive first: it travels on another socket.
        at = next((t for r, t in sentence.targets if r >= sentence.read), None)
        if at is None:
            sentence.waiting.append((sentence.read, spoken_s))
        else:
            self.lags.append(at - spoken_s)

    def target(self, sentence_index: int, read: int, shown_wall_s: float) -> None:
        sentence = self._open.setdefault(sentence_index, _Open())
        sentence.targets.append((read, shown_wall_s))
        while sentence.waiting and sentence.waiting[0][0] <= read:
            self.lags.append(shown_wall_s - sentence.waiting.popleft()[1])

    def end(self, sentence_index: int, shown_wall_s: float) -> None:
        self.sentences += 1
        sentence = self._open.pop(sentence_index, _Open())
        for _, spoken_s in sentence.waiting:
            self.lags.append(shown_wall_s - spoken_s)
        self._ended[sentence_index] = shown_wall_s
        while len(self._ended) > ENDED_KEPT:
            self._ended.popitem(last=False)


class _Figures:
    """Counts, lags and rates, updated word by word.

    The lags are :mod:`juno.display.latency`'s, computed as the words arrive: a source
    word's lag is from the end of its audio to its showing; its translation lag into each
    target language, to the showing of the first word of that language that had read it,
    else of that language's end of its sentence.
    """

    def __init__(self, languages: list[str], conversation: bool = False) -> None:
        self.source_words = self.target_words = 0
        self.source_lags = array("d")
        self.translations = {language: _Lags() for language in languages}
        # Each turn is translated into one language: the other than the one it is in.
        self.conversation = conversation
        self.shown: dict[str, deque[float]] = {"transcribe": deque(), "translate": deque()}
        # Each stage's work so far as its last message said: (tokens, compute seconds).
        self.work: dict[str, tuple[int, float]] = {"transcribe": (0, 0.0), "translate": (0, 0.0)}

    @property
    def sentences(self) -> int:
        """Sentences translated (into the language that has translated the most; in a
        conversation, into either)."""
        counts = [t.sentences for t in self.translations.values()]
        return sum(counts) if self.conversation else max(counts, default=0)

    def _work(self, stage: str, msg: SourceWord | TargetWord | SentenceEnd) -> None:
        if msg.stage_compute_s >= self.work[stage][1]:  # (a late message says less)
            self.work[stage] = (msg.stage_tokens, msg.stage_compute_s)

    def tokens_per_s(self, stage: str) -> float | None:
        """Tokens the stage's model generated per second of its compute (None before any)."""
        tokens, compute_s = self.work[stage]
        return round(tokens / compute_s, 2) if compute_s > 0 else None

    def source(self, msg: SourceWord, shown_wall_s: float) -> float:
        self.source_words += 1
        self._rate("transcribe", shown_wall_s)
        self._work("transcribe", msg)
        spoken_s = msg.origin_wall_s + msg.end_s
        self.source_lags.append(shown_wall_s - spoken_s)
        if msg.text.strip():
            for language, translation in self.translations.items():
                # (A conversation's turn awaits no translation into its own language.)
                if not (self.conversation and language == msg.language):
                    translation.source(msg.sentence, spoken_s)
        return shown_wall_s - spoken_s

    def target(self, msg: TargetWord, language: str, shown_wall_s: float) -> None:
        self.target_words += 1
        self._rate("translate", shown_wall_s)
        self._work("translate", msg)
        translation = self.translations.setdefault(language, _Lags())
        translation.target(msg.sentence, msg.source_words_read, shown_wall_s)

    def sentence_end(self, msg: SentenceEnd, language: str, shown_wall_s: float) -> float:
        self._work("translate", msg)
        self.translations.setdefault(language, _Lags()).end(msg.sentence, shown_wall_s)
        return shown_wall_s - (msg.origin_wall_s + msg.stream_s)

    def _rate(self, stage: str, shown_wall_s: float) -> None:
        times = self.shown[stage]
        times.append(shown_wall_s)
        while times[0] < shown_wall_s - RATE_WINDOW_S:
            times.popleft()

    def rate(self, stage: str, now_wall_s: float) -> float | None:
        """Words shown per second over the last RATE_WINDOW_S (None before any)."""
        if not self.shown[stage]:
            return None
        recent = sum(t >= now_wall_s - RATE_WINDOW_S for t in self.shown[stage])
        return round(recent / RATE_WINDOW_S, 2)


def _lag_stats(*values: array) -> dict[str, float | None]:
    """Median and p90 of the values of all ``values`` together."""
    if not any(values):
        return {"median": None, "p90": None}
    pooled = np.concatenate([np.frombuffer(v, dtype=float) for v in values if v])
    median, p90 = np.percentile(pooled, [50, 90])
    return {"median": round(float(median), 3), "p90": round(float(p90), 3)}


def _language(code: str) -> dict[str, str]:
    return {"code": code, "name": NAMES.get(code.lower(), code)}


class RoomFeed:
    """The session's events for the room, and its live figures (see the module docstring).

    Thread-safe: :meth:`add` and :meth:`set_state` from the display's thread, the
    rest from the server's. ``target_languages``: one code, or several (see
    :class:`~juno.display.targets.Targets`); a conversation's are its ``pair``.
    ``info`` is what the page's status shows (models, wait-k).
    """

    def __init__(
        self,
        source_language: str,
        target_languages: str | Iterable[str],
        start_wall_s: float,
        info: Mapping[str, Any] | None = None,
        history_events: int = HISTORY_EVENTS,
        pair: Sequence[str] = (),
    ) -> None:
        # A new session id tells a reconnecting viewer that its events are of another session.
        self.session = secrets.token_hex(8)
        self.source_language = source_language
        if isinstance(target_languages, str):
            target_languages = [target_languages]
        self.pair = list(pair)
        self.targets = Targets(self.pair or target_languages)
        self.start_wall_s = start_wall_s
        self.info = dict(info or {})
        self.state = "starting"
        self._history = history_events
        self._lock = threading.Lock()
        self._texts: list[str] = []
        self._first_seq = 1  # seq of _texts[0]
        self.last_seq = 0
        self._figures = _Figures(self.targets.languages, conversation=bool(self.pair))
        self._listeners: list[Callable[[], None]] = []

    @property
    def target_languages(self) -> list[str]:
        """The target languages in order (a language first met in a message joins them)."""
        return self.targets.languages

    def subscribe(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` (from the adding thread) after each new event."""
        self._listeners.append(listener)

    def add(self, msg: Message, shown_wall_s: float) -> None:
        """Take in a message the display shows at ``shown_wall_s``; other than words and
        sentence ends, messages are ignored."""
        with self._lock:
            figures = self._figures
            if isinstance(msg, SourceWord):
                lag = figures.source(msg, shown_wall_s)
                event = {"type": "source", "sentence": msg.sentence, "text": msg.text}
                event.update(end=msg.sentence_end, lag_s=round(lag, 3), attached=msg.attached)
                if msg.language:
                    event["lang"] = msg.language
            elif isinstance(msg, TargetWord):
                language = self.targets.of(msg.language)
                figures.target(msg, language, shown_wall_s)
                event = {"type": "target", "sentence": msg.sentence, "text": msg.text}
                event.update(lang=language, attached=msg.attached)
            elif isinstance(msg, SentenceEnd):
                language = self.targets.of(msg.language)
                lag = figures.sentence_end(msg, language, shown_wall_s)
                event = {"type": "sentence", "sentence": msg.sentence}
                event.update(lang=language, source=msg.source.strip())
                event.update(target=msg.target.strip(), lag_s=round(lag, 3))
            else:
                return
            self._append(event)
        self._notify()

    def set_state(self, state: str) -> None:
        """The display's state, as the page shows it."""
        with self._lock:
            if state == self.state:
                return
            self.state = state
            self._append({"type": "status", "state": state})
        self._notify()

    def _append(self, event: dict[str, Any]) -> None:
        self.last_seq += 1
        event = {"seq": self.last_seq, **event}
        self._texts.append(json.dumps(event, ensure_ascii=False, separators=(",", ":")))
        # Trimmed a tenth at a time, so a long session does not move the list at every event.
        if len(self._texts) > self._history + self._history // 10:
            cut = len(self._texts) - self._history
            del self._texts[:cut]
            self._first_seq += cut

    def _notify(self) -> None:
        for listener in self._listeners:
            listener()

    def after(self, seq: int, limit: int) -> Batch:
        """At most ``limit`` events after ``seq``, oldest first."""
        with self._lock:
            reset = seq + 1 < self._first_seq
            start = max(seq + 1, self._first_seq) - self._first_seq
            events = self._texts[start : start + limit]
            return Batch(events, self._first_seq + start + len(events) - 1, reset)

    def hello(self) -> dict[str, Any]:
        """What a viewer is told first: the session, its languages and state."""
        with self._lock:
            return {
                "type": "hello",
                "session": self.session,
                "last_seq": self.last_seq,
                "state": self.state,
                "source": _language(self.source_language),
                "targets": [_language(code) for code in self.targets.languages],
                "pair": [_language(code) for code in self.pair],
                "info": self.info,
            }

    def stats(self, now_wall_s: float, viewers: Mapping[str, int]) -> dict[str, Any]:
        """The live figures (the ``/stats`` endpoint); ``viewers`` counts the viewers."""
        with self._lock:
            f = self._figures
            lags = {lang: t.lags for lang, t in f.translations.items()}
            return {
                "uptime_s": round(now_wall_s - self.start_wall_s, 3),
                "state": self.state,
                "words": {"in": f.source_words, "out": f.target_words},
                "sentences": f.sentences,
                # The translation lag over all target languages; with several, each's too.
                "lag_s": {
                    "source": _lag_stats(f.source_lags),
                    "translation": _lag_stats(*lags.values()),
                    **(
                        {"translation_by_language": {k: _lag_stats(v) for k, v in lags.items()}}
                        if self.targets.several
                        else {}
                    ),
                },
                # Words shown per second lately; tokens generated per second of compute.
                "stages": {
                    stage: {
                        "words_per_s": f.rate(stage, now_wall_s),
                        "tokens_per_s": f.tokens_per_s(stage),
                        "tokens": f.work[stage][0],
                        "compute_s": round(f.work[stage][1], 3),
                    }
                    for stage in ("transcribe", "translate")
                },
                "viewers": dict(viewers),
                "events": self.last_seq,
                "languages": {
                    "source": self.source_language,
                    "targets": self.target_languages,
                    **({"pair": self.pair} if self.pair else {}),
                },
            }
