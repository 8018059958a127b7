"""LocalAgreement-2: commit the words two successive hypotheses agree on.

The stepper re-transcribes its whole audio buffer at every step and hands the
word hypothesis (stream times) to :class:`LocalAgreement`. The policy strips the
words it already committed from the front of the hypothesis, compares the rest
with the previous hypothesis, and commits the longest prefix both agree on.
Committed words are final: nothing is ever retracted.

Words are compared by their normalized characters (case and punctuation
ignored), and agreement is only taken at places where both hypotheses have a
word boundary, so "New York" against "NewYork" agrees while "not" against
"nothing" does not. Pure Python: no MLX, no clock.
"""

from __future__ import annotations

from collections import deque
from dataclasses import replace

from juno.transcriber.words import Word, ends_sentence, normalize

# A re-transcribed word this far before the last committed end still counts as
# new when its midpoint lies after it (Whisper's word times jitter by ~0.1 s).
_TIME_SLACK_S = 0.1
# Longest run of words matched when removing a re-transcribed committed tail.
_MAX_OVERLAP_WORDS = 5


def common_boundaries(prev: list[str], cur: list[str]) -> list[tuple[int, int]]:
    """Word counts (in ``cur``, in ``prev``) at which both texts agree so far.

    ``prev`` and ``cur`` are normalized words. A pair (i, j) means the first i
    words of ``cur`` spell exactly the first j words of ``prev``.
    """
    a, b = "".join(prev), "".join(cur)
    same = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        same += 1
    ends_prev: dict[int, int] = {}
    pos = 0
    for j, word in enumerate(prev, 1):
        pos += len(word)
        ends_prev[pos] = j
    pairs = []
    pos = 0
    for i, word in enumerate(cur, 1):
        pos += len(word)
        if pos > same:
            break
        if pos in ends_prev:
            pairs.append((i, ends_prev[pos]))
    return pairs


class LocalAgreement:
    """The commit policy of the streaming transcriber (see the module docstring)."""

    def __init__(self, pause_s: float = 1.0, prompt_words: int = 50) -> None:
        # A gap at least this long after a word makes it a sentence end.
        self.pause_s = pause_s
        self._in_buffer: list[Word] = []  # committed, audio still in the buffer
        self._before: deque[Word] = deque(maxlen=prompt_words)  # committed, trimmed out
        self._pending: list[Word] = []  # the previous hypothesis, past the committed
        self._last_end_s = 0.0

    @property
    def last_end_s(self) -> float:
        """End time of the last committed word (0 before any)."""
        return self._last_end_s

    @property
    def pending(self) -> list[Word]:
        """The uncommitted tail of the latest hypothesis."""
        return list(self._pending)

    def insert(self, hypothesis: list[Word], complete: bool = False) -> list[Word]:
        """Take the newest hypothesis of the whole buffer; return the newly committed words.

        ``complete`` says no more speech follows (a long pause, or the end of
        the stream): then the whole hypothesis is committed and its last word
        ends a sentence.
        """
        tail = [w for w in self._strip_committed(hypothesis) if normalize(w.text)]
        pairs = common_boundaries(
            [normalize(w.text) for w in self._pending], [normalize(w.text) for w in tail]
        )
        n = len(tail) if complete else (pairs[-1][0] if pairs else 0)
        if not complete and n == len(tail) and n and ends_sentence(tail[-1].text):
            # Whisper ends any window with a period, mid-sentence or not: a final
            # word with one waits until more words or a pause confirm it.
            n -= 1
        out = []
        for i in range(n):
            word = tail[i]
            last = i == len(tail) - 1
            pause = not last and tail[i + 1].start_s - word.end_s >= self.pause_s
            end = ends_sentence(word.text) or pause or (complete and last)
            out.append(replace(word, sentence_end=end))
        self._pending = tail[n:]
        self._commit(out)
        return out

    def flush(self) -> list[Word]:
        """Commit the pending words as they are; the last one ends a sentence."""
        words, self._pending = self._pending, []
        out = [replace(w, sentence_end=w is words[-1] or ends_sentence(w.text)) for w in words]
        self._commit(out)
        return out

    def sentence_cut_s(self) -> float | None:
        """End of the latest committed sentence still in the buffer, where it can be cut."""
        for word in reversed(self._in_buffer):
            if word.sentence_end:
                return word.end_s
        return None

    def trim(self, cut_s: float) -> list[Word]:
        """The buffer now starts at ``cut_s``: forget the words before it.

        Pending words that end before the cut would be lost with their audio,
        so they are committed (and returned) first.
        """
        rescued = [w for w in self._pending if w.end_s <= cut_s]
        if rescued:
            self._pending = self._pending[len(rescued) :]
            rescued = [replace(w, sentence_end=ends_sentence(w.text)) for w in rescued]
            self._commit(rescued)
        self._pending = [w for w in self._pending if w.start_s >= cut_s]
        keep = [w for w in self._in_buffer if w.end_s > cut_s]
        self._before.extend(self._in_buffer[: len(self._in_buffer) - len(keep)])
        self._in_buffer = keep
        return rescued

    def prompt(self, max_chars: int = 200) -> str:
        """Recent committed text from before the buffer, to prompt the next window."""
        text = " ".join(w.text for w in self._before)
        return text[-max_chars:].lstrip() if len(text) > max_chars else text

    def _commit(self, words: list[Word]) -> None:
        self._in_buffer.extend(words)
        if words:
            self._last_end_s = max(self._last_end_s, words[-1].end_s)

    def _strip_committed(self, hypothesis: list[Word]) -> list[Word]:
        """The part of a buffer hypothesis that comes after the committed words."""
        if not self._in_buffer:
            return hypothesis
        ref = "".join(normalize(w.text) for w in self._in_buffer)
        spelled = ""
        for k, word in enumerate(hypothesis, 1):
            spelled += normalize(word.text)
            if spelled == ref:
                return hypothesis[k:]
            if not ref.startswith(spelled):
                break
        # Whisper re-worded the committed part: fall back on time, then drop a
        # repeated committed tail at the seam (whisper_streaming does the same).
        tail = [
            w for w in hypothesis if (w.start_s + w.end_s) / 2 > self._last_end_s - _TIME_SLACK_S
        ]
        done = [normalize(w.text) for w in [*self._before, *self._in_buffer][-_MAX_OVERLAP_WORDS:]]
        new = [normalize(w.text) for w in tail]
        for n in range(min(len(done), len(new)), 0, -1):
            if done[-n:] == new[:n]:
                return tail[n:]
        return tail
