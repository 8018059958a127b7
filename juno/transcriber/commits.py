"""What a streaming policy has committed: the words still in the audio buffer and
the text before it.

Both policies (LocalAgreement, AlignAtt) keep the same books: committed words
are final; the buffer is cut at the end of a committed sentence; the words cut
out of the buffer prompt the next window. Pure Python: no MLX, no clock.
"""

from __future__ import annotations

from collections import deque
from dataclasses import replace

from juno.simul.policy import join_words
from juno.transcriber.words import Word, ends_sentence


class CommitLog:
    """Committed words, and the uncommitted tail of the latest hypothesis."""

    def __init__(self, pause_s: float = 1.0, prompt_words: int = 50) -> None:
        # A gap at least this long after a word makes it a sentence end.
        self.pause_s = pause_s
        self._in_buffer: list[Word] = []  # committed, audio still in the buffer
        self._before: deque[Word] = deque(maxlen=prompt_words)  # committed, trimmed out
        self._pending: list[Word] = []  # decoded, not committed yet
        self._last_end_s = 0.0

    @property
    def last_end_s(self) -> float:
        """End time of the last committed word (0 before any)."""
        return self._last_end_s

    @property
    def pending(self) -> list[Word]:
        """The uncommitted tail of the latest hypothesis."""
        return list(self._pending)

    @property
    def in_buffer(self) -> list[Word]:
        """Committed words whose audio is still in the buffer."""
        return list(self._in_buffer)

    @property
    def at_sentence_start(self) -> bool:
        """Nothing committed yet, or the last committed word ended a sentence."""
        last = self._in_buffer[-1] if self._in_buffer else (self._before or [None])[-1]
        return last is None or last.sentence_end

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

    def trim(self, cut_s: float, rescue: bool = True) -> list[Word]:
        """The buffer now starts at ``cut_s``: forget the words before it.

        Pending words that end before the cut would be lost with their audio,
        so they are committed (and returned) first; not ``rescue``: dropped.
        """
        rescued = [w for w in self._pending if w.end_s <= cut_s]
        self._pending = self._pending[len(rescued) :]
        rescued = rescued if rescue else []
        if rescued:
            rescued = [replace(w, sentence_end=ends_sentence(w.text)) for w in rescued]
            self._commit(rescued)
        self._pending = [w for w in self._pending if w.start_s >= cut_s]
        keep = [w for w in self._in_buffer if w.end_s > cut_s]
        self._before.extend(self._in_buffer[: len(self._in_buffer) - len(keep)])
        self._in_buffer = keep
        return rescued

    def forget_prompt(self) -> None:
        """Forget the text before the buffer (it was in another language)."""
        self._before.clear()

    def prompt(self, max_chars: int = 200) -> str:
        """Recent committed text from before the buffer, to prompt the next window."""
        text = join_words(self._before)
        return text[-max_chars:].lstrip() if len(text) > max_chars else text

    def _mark_ends(self, words: list[Word], n: int, complete: bool) -> list[Word]:
        """The first ``n`` words, each marked where it ends a sentence: its own
        punctuation, a pause before the next word, or the utterance's end."""
        out = []
        for i in range(n):
            word = words[i]
            last = i == len(words) - 1
            pause = not last and words[i + 1].start_s - word.end_s >= self.pause_s
            end = ends_sentence(word.text) or pause or (complete and last)
            out.append(replace(word, sentence_end=end))
        return out

    def _commit(self, words: list[Word]) -> None:
        self._in_buffer.extend(words)
        if words:
            self._last_end_s = max(self._last_end_s, words[-1].end_s)
