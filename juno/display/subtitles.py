"""Subtitles: cues laid out by the broadcast convention, written as SubRip or WebVTT.

A sentence becomes one cue, or several when it does not fit in two lines of
about 42 characters. Source cues span their own words' audio; a translation's
cues divide its source sentence's span by characters. :func:`fit` makes the
times whole milliseconds, long enough to read and never overlapping.
"""

from __future__ import annotations

from dataclasses import dataclass

# Subtitle convention (Netflix, BBC): about 42 characters a line, two lines a cue.
MAX_LINE_CHARS = 42
MAX_CUE_LINES = 2
# Shortest cue: a flash of text shorter than this cannot be read.
MIN_CUE_MS = 500


@dataclass(frozen=True)
class Cue:
    """One subtitle: its audio span and its (one or two) lines."""

    start_s: float
    end_s: float
    lines: tuple[str, ...]


def _groups(tokens: list[str]) -> list[tuple[int, int]]:
    """Token ranges [i, j), each fitting in MAX_CUE_LINES lines of MAX_LINE_CHARS (greedy)."""
    groups, first, lines, width = [], 0, 0, 0
    for i, token in enumerate(tokens):
        if lines and width + 1 + len(token) <= MAX_LINE_CHARS:
            width += 1 + len(token)
            continue
        if lines == MAX_CUE_LINES:
            groups.append((first, i))
            first, lines = i, 0
        lines, width = lines + 1, len(token)
    if tokens:
        groups.append((first, len(tokens)))
    return groups


def _lines(tokens: list[str]) -> tuple[str, ...]:
    """One line, or two balanced ones (the split with the shorter longer line)."""
    text = " ".join(tokens)
    if len(text) <= MAX_LINE_CHARS or len(tokens) < 2:
        return (text,)
    k = min(
        range(1, len(tokens)),
        key=lambda k: max(len(" ".join(tokens[:k])), len(" ".join(tokens[k:]))),
    )
    return (" ".join(tokens[:k]), " ".join(tokens[k:]))


def source_cues_of(words: list[tuple[str, float, float]]) -> list[Cue]:
    """Cues of a source sentence, each spanning its own words' audio."""
    tokens = [w for w, _, _ in words]
    return [Cue(words[i][1], words[j - 1][2], _lines(tokens[i:j])) for i, j in _groups(tokens)]


def target_cues_of(tokens: list[str], start_s: float, end_s: float) -> list[Cue]:
    """Cues of a translation over [start_s, end_s], divided by characters."""
    # A word wider than a line (unspaced scripts: one "word" per phrase) is cut.
    tokens = [t[k : k + MAX_LINE_CHARS] for t in tokens for k in range(0, len(t), MAX_LINE_CHARS)]
    total = sum(len(t) for t in tokens)
    cues, done = [], 0
    for i, j in _groups(tokens):
        chars = sum(len(t) for t in tokens[i:j])
        a = start_s + (end_s - start_s) * done / total
        b = start_s + (end_s - start_s) * (done + chars) / total
        cues.append(Cue(a, b, _lines(tokens[i:j])))
        done += chars
    return cues


# A cue ready to write: start and end in whole milliseconds, its lines.
Timed = tuple[int, int, tuple[str, ...]]


def fit(cues: list[Cue], after_ms: int = 0, next_start_ms: int | None = None) -> list[Timed]:
    """Cue times in ms, in order, each at least MIN_CUE_MS unless the next cue starts
    sooner, never overlapping it, and always ending after it starts.

    ``after_ms`` is the end of the cue before these, ``next_start_ms`` the start
    of the one after them (None: none).
    """
    out: list[Timed] = []
    for n, cue in enumerate(cues):
        start = max(round(cue.start_s * 1000), out[-1][1] if out else after_ms)
        end = max(round(cue.end_s * 1000), start + MIN_CUE_MS)
        next_ms = round(cues[n + 1].start_s * 1000) if n + 1 < len(cues) else next_start_ms
        if next_ms is not None and next_ms > start:
            end = min(end, next_ms)
        out.append((start, end, cue.lines))
    return out


def _timestamp(ms: int, sep: str) -> str:
    s, ms = divmod(ms, 1000)
    m, s = divmod(s, 60)
    h, m = divmod(m, 60)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def srt_cues(cues: list[Timed], first: int = 1) -> str:
    """SubRip cues numbered from ``first``, ``HH:MM:SS,mmm`` times."""
    return "".join(
        f"{n}\n{_timestamp(a, ',')} --> {_timestamp(b, ',')}\n" + "\n".join(lines) + "\n\n"
        for n, (a, b, lines) in enumerate(cues, start=first)
    )


def _vtt_escape(line: str) -> str:
    return line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def vtt_cues(cues: list[Timed]) -> str:
    """WebVTT cues (no header): ``HH:MM:SS.mmm`` times, ``&<>`` escaped."""
    return "".join(
        f"{_timestamp(a, '.')} --> {_timestamp(b, '.')}\n"
        + "\n".join(_vtt_escape(line) for line in lines)
        + "\n\n"
        for a, b, lines in cues
    )


def to_srt(cues: list[Cue]) -> str:
    """A whole SubRip file of ``cues``."""
    return srt_cues(fit(cues))
