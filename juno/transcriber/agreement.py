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

from juno.transcriber.commits import CommitLog
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


class LocalAgreement(CommitLog):
    """The commit policy of the streaming transcriber (see the module docstring)."""

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
        out = self._mark_ends(tail, n, complete)
        self._pending = tail[n:]
        self._commit(out)
        return out

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
