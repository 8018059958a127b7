"""The latency report of a session, from its recorded events (``events.jsonl``).

Times are wall-clock seconds; a source word's audio end happened at
``origin_wall_s + end_s``.

- source lag of a source word: ``shown_wall_s - (origin_wall_s + end_s)``, how
  long after the speaker finished the word it appeared on screen.
- translation lag of a source word, the i-th (from 1) of its sentence: the
  shown time of the first target word of that sentence written after reading
  it (``source_words_read >= i``), minus ``origin_wall_s + end_s``. When no such
  target word exists (the translation ended on fewer reads, or the sentence's
  last words were only read at its end), the sentence's SentenceEnd shown time
  is used; without a SentenceEnd the word has no translation lag. Words with
  empty text are not counted in i, as the translator skips them.

With several target languages (the ``language`` of target words and sentence
ends; an empty one is the first language the events name) a source word has a
translation lag in each, matched within that language only:
``translation_lag_by_language`` gives each language's statistics, and
``translation_lag`` is over all languages together (each source word counted
once per language), as for a single language it is over that one.

Over a session of two minutes of audio or more, ``by_minute`` gives the median
source and translation lag of the words spoken in each minute (by the word's
audio end), and ``last_over_first`` their last full minute's over their first's:
whether the pipeline keeps up with a long talk or falls further behind.

A two-way conversation (source words spoken in two languages, each translated
into the other: :func:`pair_of`) is also reported by direction ("en→fr": the
source and translation lags of the words spoken in English), and with the lag a
change of speaker adds (:func:`speaker_change`): the source lag of the first
word of each turn (sentence) spoken in another language than the turn before,
against that of all other words. A turn's first words wait for its language to
be identified.

Per process, from heartbeats (dicts with ``process, cpu_s, rss_bytes,
mlx_peak_bytes, wall_s``): CPU seconds between the first and last heartbeat,
the mean CPU % over that span, peak RSS, RSS at the first heartbeat 60 s or more
after the session start (the audio origin, else the process's first heartbeat)
and at the last one: "memory flat after the first minute" compares those two.
"""

from __future__ import annotations

import io
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

# The memory of a stage should be flat after warm-up; this is where warm-up ends.
WARMUP_S = 60.0
MINUTE_S = 60.0
# The events of a translation, each in one target language.
_TRANSLATED = ("target_word", "sentence_end")


def load_events(path: Path) -> list[dict[str, Any]]:
    """The events of an events.jsonl; a torn last line (a crash mid-write) is skipped."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    events = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            if n == len(lines):
                break
            raise ValueError(f"{path}:{n}: not a JSON line") from None
    return events


def _source_lag(e: dict[str, Any]) -> float:
    return e["shown_wall_s"] - (e["origin_wall_s"] + e["end_s"])


def source_lags(events: list[dict[str, Any]]) -> list[float]:
    """Source lag of each source word, in event order."""
    return [_source_lag(e) for e in events if e["type"] == "source_word"]


def languages_of(events: list[dict[str, Any]]) -> list[str]:
    """The target languages the events name, in order of first appearance (none: ``[]``)."""
    named = (e.get("language", "") for e in events if e["type"] in _TRANSLATED)
    return list(dict.fromkeys(language for language in named if language))


def spoken_languages(events: list[dict[str, Any]]) -> list[str]:
    """The languages the source words name, in order of first appearance (none: ``[]``)."""
    named = (e.get("language", "") for e in events if e["type"] == "source_word")
    return list(dict.fromkeys(language for language in named if language))


def pair_of(events: list[dict[str, Any]]) -> list[str]:
    """The languages of the two-way conversation the events are of, in order of first
    appearance: two spoken, translated into none but them (``[]`` when not one)."""
    spoken = spoken_languages(events)
    if len(spoken) == 2 and set(languages_of(events)) <= set(spoken):
        return spoken
    return []


def translation_lags(events: list[dict[str, Any]]) -> list[float]:
    """Translation lag of each source word that has one, in event order, language after
    language (see :func:`translation_lags_by_language`)."""
    return [lag for lags in translation_lags_by_language(events).values() for lag in lags]


def translation_lags_by_language(events: list[dict[str, Any]]) -> dict[str, list[float]]:
    """By target language (``""`` when the events name none), the translation lag of
    each source word that has one in it, in event order."""
    languages = languages_of(events) or [""]
    return {language: _lags(events, language, languages[0]) for language in languages}


def _lags(events: list[dict[str, Any]], language: str, first: str) -> list[float]:
    """Translation lags into ``language``: matched within each sentence to its target
    words and sentence end in ``language`` only (an untagged one is in ``first``)."""
    return [lag for _, lag in _timed_lags(events, language, first)]


def _timed_lags(
    events: list[dict[str, Any]], language: str, first: str
) -> list[tuple[float, float]]:
    """As :func:`_lags`, each with its source word's audio end (``end_s``)."""
    targets: dict[int, list[dict]] = defaultdict(list)
    ends: dict[int, float] = {}
    for e in events:
        if e["type"] not in _TRANSLATED or (e.get("language") or first) != language:
            continue
        if e["type"] == "target_word":
            targets[e["sentence"]].append(e)
        else:
            ends.setdefault(e["sentence"], e["shown_wall_s"])
    read: dict[int, int] = defaultdict(int)
    lags = []
    for e in events:
        if e["type"] != "source_word" or not e["text"].strip():
            continue
        sentence = e["sentence"]
        read[sentence] += 1
        shown = [
            t["shown_wall_s"] for t in targets[sentence] if t["source_words_read"] >= read[sentence]
        ]
        at = min(shown) if shown else ends.get(sentence)
        if at is not None:
            lags.append((e["end_s"], at - (e["origin_wall_s"] + e["end_s"])))
    return lags


def by_minute(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per minute of audio (by each source word's end), from the first: its ``words``
    and the median source and translation lag of those words (``None`` where none has
    one; translation lags pooled over the target languages). Empty when the words end
    within the first two minutes: too short to speak of a trend."""
    words = [e for e in events if e["type"] == "source_word"]
    last_end_s = max((e["end_s"] for e in words), default=0.0)
    if last_end_s < 2 * MINUTE_S:
        return []
    minutes = int(last_end_s // MINUTE_S) + 1
    source: list[list[float]] = [[] for _ in range(minutes)]
    translation: list[list[float]] = [[] for _ in range(minutes)]
    for e in words:
        source[int(e["end_s"] // MINUTE_S)].append(_source_lag(e))
    languages = languages_of(events) or [""]
    for language in languages:
        for end_s, lag in _timed_lags(events, language, languages[0]):
            translation[int(end_s // MINUTE_S)].append(lag)
    return [
        {
            "minute": n + 1,
            "words": len(source[n]),
            "source_median_s": _stats(source[n])["median_s"],
            "translation_median_s": _stats(translation[n])["median_s"],
        }
        for n in range(minutes)
    ]


def _last_over_first(minutes: list[dict[str, Any]], key: str) -> float | None:
    """The last full minute's median ``key`` over the first's, among minutes that have one.
    The minute the words end in is left out: it is partial, and holds the talk's last
    sentence, whose last words are translated once it ends, whatever came before."""
    medians = [m[key] for m in minutes[:-1] if m[key] is not None]
    if len(medians) < 2 or medians[0] <= 0:
        return None
    return medians[-1] / medians[0]


def direction_lags(events: list[dict[str, Any]], pair: list[str]) -> dict[str, dict[str, list]]:
    """A conversation's lags by direction (``"en→fr"``): ``source``, the source lag of
    each word spoken in its first language; ``translation``, the translation lag into
    its second of each word that has one (matched per sentence, as in :func:`_lags`)."""
    other = {pair[0]: pair[1], pair[1]: pair[0]}
    out: dict[str, dict[str, list]] = {
        f"{x}→{y}": {"source": [], "translation": []} for x, y in other.items()
    }
    for e in events:
        if e["type"] == "source_word" and e.get("language") in other:
            out[f"{e['language']}→{other[e['language']]}"]["source"].append(_source_lag(e))
    first = (languages_of(events) or pair)[0]  # (what an untagged translation is in)
    for target in pair:
        out[f"{other[target]}→{target}"]["translation"] = _lags(events, target, first)
    return out


def speaker_change(events: list[dict[str, Any]]) -> dict[str, Any]:
    """The lag a change of speaker adds: ``count`` turns (sentences) spoken in another
    language than the turn before; the median source lag of their first words
    (``first_word_median_s``) and of all other source words (``others_median_s``); the
    ``difference_s`` (None when either has no word)."""
    words = [e for e in events if e["type"] == "source_word"]
    firsts: dict[int, int] = {}  # sentence -> its first word's place in words
    spoken: dict[int, str] = {}  # sentence -> its language
    for n, e in enumerate(words):
        firsts.setdefault(e["sentence"], n)
        if e.get("language"):
            spoken.setdefault(e["sentence"], e["language"])
    changed, previous = set(), None
    for sentence in sorted(spoken):
        if previous is not None and spoken[sentence] != previous:
            changed.add(firsts[sentence])
        previous = spoken[sentence]
    first = [_source_lag(e) for n, e in enumerate(words) if n in changed]
    others = [_source_lag(e) for n, e in enumerate(words) if n not in changed]
    a, b = _stats(first)["median_s"], _stats(others)["median_s"]
    return {
        "count": len(first),
        "first_word_median_s": a,
        "others_median_s": b,
        "difference_s": None if a is None or b is None else a - b,
    }


def _stats(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"count": 0, "median_s": None, "p90_s": None}
    a = np.asarray(values, dtype=float)
    return {
        "count": len(values),
        "median_s": float(np.percentile(a, 50, method="linear")),
        "p90_s": float(np.percentile(a, 90, method="linear")),
    }


def _process(beats: list[dict[str, Any]], start_wall_s: float | None) -> dict[str, Any]:
    beats = sorted(beats, key=lambda b: b["wall_s"])
    first, last = beats[0], beats[-1]
    span_s = last["wall_s"] - first["wall_s"]
    cpu_s = last["cpu_s"] - first["cpu_s"]
    t0 = first["wall_s"] if start_wall_s is None else start_wall_s
    after = next((b for b in beats if b["wall_s"] - t0 >= WARMUP_S), None)
    return {
        "heartbeats": len(beats),
        "wall_s": span_s,
        "cpu_s": cpu_s,
        "cpu_percent": 100.0 * cpu_s / span_s if span_s > 0 else None,
        "peak_rss_bytes": max(b["rss_bytes"] for b in beats),
        "rss_after_warmup_bytes": after["rss_bytes"] if after else None,
        "rss_end_bytes": last["rss_bytes"],
        "mlx_peak_bytes": max(b.get("mlx_peak_bytes", 0) for b in beats),
    }


def report(
    events: list[dict[str, Any]],
    heartbeats: dict[str, list[dict[str, Any]]] | None = None,
    summaries: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Counts, lag statistics (median, p90; seconds), per-process resource use, and the
    writer's drafts when it drafted (``summaries``: what each stage's Done said).

    ``sentences`` counts the sentences translated (in any target language); with several
    languages, ``translation_lag_by_language`` gives each one's lag statistics. A
    conversation adds its ``pair``, each direction's ``source_lag`` and
    ``translation_lag`` (``directions``, by ``"en→fr"``) and ``speaker_change`` (see
    :func:`speaker_change`).
    """
    origin = next((e["origin_wall_s"] for e in events if "origin_wall_s" in e), None)
    drafts = (summaries or {}).get("translate", {}).get("drafts")
    by_language = translation_lags_by_language(events)
    pooled = [lag for lags in by_language.values() for lag in lags]
    pair = pair_of(events)
    conversation = {}
    if pair:
        directions = {
            direction: {
                "source_lag": _stats(lags["source"]),
                "translation_lag": _stats(lags["translation"]),
            }
            for direction, lags in direction_lags(events, pair).items()
        }
        conversation = {
            "pair": pair,
            "directions": directions,
            "speaker_change": speaker_change(events),
        }
    return {
        "source_words": sum(e["type"] == "source_word" for e in events),
        "target_words": sum(e["type"] == "target_word" for e in events),
        "sentences": len({e["sentence"] for e in events if e["type"] == "sentence_end"}),
        "source_lag": _stats(source_lags(events)),
        "translation_lag": _stats(pooled),
        **(
            {"translation_lag_by_language": {k: _stats(v) for k, v in by_language.items()}}
            if len(by_language) > 1
            else {}
        ),
        **conversation,
        **_minutes(events),
        "processes": {
            name: _process(beats, origin)
            for name, beats in sorted((heartbeats or {}).items())
            if beats
        },
        **({"drafts": drafts} if drafts else {}),
    }


def _minutes(events: list[dict[str, Any]]) -> dict[str, Any]:
    """``by_minute`` and ``last_over_first`` (source, translation), for a long session."""
    minutes = by_minute(events)
    if not minutes:
        return {}
    return {
        "by_minute": minutes,
        "last_over_first": {
            "source": _last_over_first(minutes, "source_median_s"),
            "translation": _last_over_first(minutes, "translation_median_s"),
        },
    }


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def _mib(value: int | None) -> str:
    return "-" if value is None else f"{value / 2**20:.0f} MiB"


def _minutes_line(minutes: list[dict[str, Any]], ratios: dict[str, float | None]) -> str:
    """One line: the first, the slowest and the last minute's median lags (shown /
    translated), and the last over the first."""

    def pair(m: dict[str, Any]) -> str:
        source, translation = m["source_median_s"], m["translation_median_s"]
        return f"{_seconds(source)} / {_seconds(translation)}"

    def ratio(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}x"

    full = [m for m in minutes[:-1] if m["words"]]
    slowest = max(
        full, key=lambda m: max(m["source_median_s"] or 0, m["translation_median_s"] or 0)
    )
    return (
        f"lag by minute of audio (median shown / translated): first {pair(full[0])}, "
        f"slowest (minute {slowest['minute']}) {pair(slowest)}, last full (minute "
        f"{full[-1]['minute']}) {pair(full[-1])}, last (partial) {pair(minutes[-1])}; "
        f"last full over first {ratio(ratios['source'])} / {ratio(ratios['translation'])}"
    )


def format_report(rep: dict[str, Any]) -> str:
    """The report as a short text block (rich tables rendered to plain text)."""
    lags = Table(title="Latency", title_justify="left")
    for column in ("", "words", "median", "p90"):
        lags.add_column(column, justify="left" if not column else "right")
    by_language = rep.get("translation_lag_by_language", {})
    rows = [("shown", rep["source_lag"]), ("translated", rep["translation_lag"])]
    if "directions" in rep:
        for direction, d in rep["directions"].items():
            rows += [(f"  {direction} shown", d["source_lag"])]
            rows += [(f"  {direction} translated", d["translation_lag"])]
    else:
        rows += [(f"  into {language}", s) for language, s in by_language.items()]
    for label, s in rows:
        lags.add_row(label, str(s["count"]), _seconds(s["median_s"]), _seconds(s["p90_s"]))
    console = Console(file=io.StringIO(), width=100, color_system=None)
    console.print(lags)
    into = f" into {', '.join(by_language)}" if by_language else ""
    if "pair" in rep:
        into = f", {' ⇄ '.join(rep['pair'])}"
    console.print(
        f"{rep['source_words']} source words, {rep['target_words']} target words, "
        f"{rep['sentences']} sentences translated{into}"
    )
    if minutes := rep.get("by_minute"):
        console.print(_minutes_line(minutes, rep["last_over_first"]), soft_wrap=True)
    if change := rep.get("speaker_change"):
        difference = change["difference_s"]
        console.print(
            f"speaker changes: {change['count']}, a new speaker's first word shown after "
            f"{_seconds(change['first_word_median_s'])} (median), others "
            f"{_seconds(change['others_median_s'])}"
            + ("" if difference is None else f" ({difference:+.2f} s)"),
            soft_wrap=True,  # one line, however long its figures
        )
    if rep["processes"]:
        procs = Table(title="Processes", title_justify="left")
        for column in ("", "CPU", "CPU %", "peak RSS", "RSS @60 s", "RSS end", "MLX peak"):
            procs.add_column(column, justify="left" if not column else "right")
        for name, p in rep["processes"].items():
            cpu_percent = "-" if p["cpu_percent"] is None else f"{p['cpu_percent']:.0f}"
            procs.add_row(
                name,
                _seconds(p["cpu_s"]),
                cpu_percent,
                _mib(p["peak_rss_bytes"]),
                _mib(p["rss_after_warmup_bytes"]),
                _mib(p["rss_end_bytes"]),
                _mib(p["mlx_peak_bytes"]) if p["mlx_peak_bytes"] else "-",
            )
        console.print(procs)
    if rep.get("drafts"):
        d = rep["drafts"]
        console.print(
            f"drafts: {d['accepted']} of {d['drafted']} tokens accepted "
            f"({100 * d['acceptance']:.0f}%), {d['mean_accepted']:.2f} per round; "
            f"drafting {d['draft_s']:.1f} s, verifying {d['verify_s']:.1f} s"
        )
    return console.file.getvalue()
