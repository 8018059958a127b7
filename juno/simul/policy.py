"""Wait-k scheduling and target word boundaries: a pure stepper, no MLX.

The engine asks :meth:`WaitK.next_action` what to do, does it on the model
and reports back (``on_read``, ``on_started``, ``on_fed``, ``on_token``). The
scheduler holds the whole read/write logic of one sentence, so it is tested
on scripted input without a model.

Token life cycle. A sampled token is not fed to the model at once: it is
*held* until the policy allows writing. When a sampled token starts the next
target word while that word may not be written yet, the token stays held
across the read(s) and is fed only afterwards, so its cache entry sees the new
source: the token that started the next word is kept out of the target cache
and produced there again after the next read, at no extra forward pass.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

# Characters that end a target word when its text ends with one of them.
WORD_END_PUNCTUATION = frozenset(',.;:!?…»)]}"”、。，！？；：')

# Guard against a model that keeps going after the translation: at most this
# many target words per source word (plus a slack) unless a limit is given.
RUNAWAY_WORDS_PER_SOURCE_WORD = 2
RUNAWAY_SLACK_WORDS = 10


class Action(enum.Enum):
    """What the engine should do next."""

    READ = "read"  # encode the next source word
    READ_END = "read_end"  # encode the end-of-user-turn marker
    START = "start"  # first write of the sentence: fix phi, encode the assistant header
    FEED = "feed"  # encode the held token (``WaitK.held``) on the target stream
    SAMPLE = "sample"  # sample a token from the pending logits (EOS only if allowed)
    WAIT = "wait"  # starved: more source words or the sentence end are needed
    FINISH = "finish"  # sentence translated: return to the system-prompt prefix


def starts_new_word(word_text: str, piece: str) -> bool:
    """A token starts a new word when it opens with a space after non-space text."""
    return bool(word_text.strip()) and piece[:1].isspace()


def ends_word(word_text: str) -> bool:
    """A word ends with a punctuation mark (the mark stays in the word)."""
    text = word_text.rstrip()
    return bool(text) and text[-1] in WORD_END_PUNCTUATION


def repeated_ngram_bans(history: list[int], n: int) -> frozenset[int]:
    """Tokens that would complete an ``n``-gram already in ``history``."""
    if n < 2 or len(history) < n:
        return frozenset()
    context = history[len(history) - n + 1 :]
    return frozenset(
        history[i + n - 1] for i in range(len(history) - n + 1) if history[i : i + n - 1] == context
    )


class NgramIndex:
    """:func:`repeated_ngram_bans` of a growing history, at a constant cost per token: each
    ``n``-gram's last token is indexed under its first ``n - 1`` as the history grows."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.history: list[int] = []
        self._next: dict[tuple[int, ...], set[int]] = {}

    def add(self, token: int) -> None:
        self.history.append(token)
        if self.n >= 2 and len(self.history) >= self.n:
            context = tuple(self.history[-self.n : -1])
            self._next.setdefault(context, set()).add(token)

    def bans(self) -> frozenset[int]:
        """Tokens that would complete an ``n``-gram already in the history."""
        if self.n < 2 or len(self.history) < self.n:
            return frozenset()
        return frozenset(self._next.get(tuple(self.history[len(self.history) - self.n + 1 :]), ()))


@dataclass(frozen=True)
class TargetWord:
    """One finished target word."""

    text: str  # decoded text, stripped
    tokens: tuple[int, ...]  # its tokens (a leading space token included)
    delay: int  # source words read when it was written
    index: int  # 0-based position in the sentence's translation
    cut: bool = False  # ended by the per-word token cap, not by a boundary
    attached: bool = False  # follows the previous word without a space ("9:" "30")


def join_words(words: Iterable[Any]) -> str:
    """The text of words (``text`` and ``attached``: target words, or source words that
    continue the one before them), spaced as written."""
    out = ""
    for w in words:
        out += w.text if (not out or getattr(w, "attached", False)) else " " + w.text
    return out


@dataclass
class WaitK:
    """Wait-k read/write schedule over one sentence at a time.

    Target word i (0-based) may be written once ``k + i`` source words are read;
    once the end of the sentence is read, writing goes on to the end (EOS or the
    word limit). Reading is lazy: a source word is read only when writing is not
    allowed, so a text fed all at once gets the same schedule as a live one.

    ``catch_up``: a live writer that fell behind the speaker reads, at the next word
    boundary, every source word that has arrived (and the sentence end, once it has)
    before it writes on: one forward for all of them instead of one per target word.
    Wait-k stays the floor; a writer that keeps up reads each word as it comes, as
    without it. A text fed all at once then reads it whole, as offline.
    """

    k: int
    max_tokens_per_word: int = 50
    max_words: int | None = None  # per sentence; None: the runaway guard
    catch_up: bool = False  # read every word that has arrived at a word boundary
    available: int = 0  # source words received for this sentence
    read: int = 0  # source words encoded
    source_ended: bool = False  # the sentence end was announced
    end_read: bool = False  # the end-of-turn marker is encoded
    started: bool = False  # the assistant header is encoded
    written: int = 0  # target words finished (the index of the word in progress)
    extra: int = 0  # words of lag added because the writer wanted to end early
    end_streak: int = 0  # words read in a row because the writer wanted to end early
    unsure_at: int | None = None  # source words read when the writer was last unsure
    held: int | None = None  # sampled token waiting to be fed
    finished: bool = False  # EOS sampled or the word limit reached
    word_tokens: list[int] = field(default_factory=list)
    word_text: str = ""

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"wait-k needs k >= 1, got {self.k}")
        if self.max_tokens_per_word < 1:
            raise ValueError("max_tokens_per_word must be at least 1")

    # -- input ------------------------------------------------------------

    def add_source(self, n_words: int = 1) -> None:
        """More source words arrived for this sentence."""
        if self.source_ended:
            raise ValueError("source words after the sentence end")
        self.available += n_words

    def end_source(self) -> None:
        """The sentence is complete: no more source words will come."""
        self.source_ended = True

    # -- decisions --------------------------------------------------------

    @property
    def word_limit(self) -> int:
        if self.max_words is not None:
            return self.max_words
        return RUNAWAY_WORDS_PER_SOURCE_WORD * self.available + RUNAWAY_SLACK_WORDS

    @property
    def eos_allowed(self) -> bool:
        """EOS only once the whole source sentence is read."""
        return self.end_read

    def may_write(self) -> bool:
        """Whether target word ``written`` may be (or keep being) written now."""
        if self.finished or self.written >= self.word_limit:
            return False
        if self.end_read:
            return True
        if self.unsure_at is not None and self.read <= self.unsure_at:
            return False
        return self.read >= self.k + self.extra + self.written

    def next_action(self) -> Action:
        if self.finished:
            return Action.FINISH
        if self.written >= self.word_limit:
            # Nothing more to write: skip the unread rest once the sentence is complete.
            return Action.FINISH if self.source_ended else Action.WAIT
        if self.may_write():
            if self.catch_up and self._at_word_boundary():
                if self.read < self.available:
                    return Action.READ
                if self.source_ended and not self.end_read:
                    return Action.READ_END
            if not self.started:
                return Action.START
            return Action.FEED if self.held is not None else Action.SAMPLE
        if self.read < self.available:
            return Action.READ
        if self.source_ended and not self.end_read:
            return Action.READ_END
        return Action.WAIT

    def _at_word_boundary(self) -> bool:
        """No target word in progress: none begun, or only its first token sampled
        (held, not yet fed)."""
        return not self.word_tokens or (self.held is not None and len(self.word_tokens) == 1)

    # -- reports from the engine -------------------------------------------

    def on_read(self) -> None:
        self.read += 1

    def on_read_end(self) -> None:
        self.end_read = True

    def on_started(self) -> None:
        self.started = True

    def on_fed(self) -> None:
        self.held = None

    def on_end_wanted(self, last_token: int) -> None:
        """The writer would end before the source is read: lag one more word.

        ``last_token`` was taken back out of the cache; it is fed again after
        the next read, so the next target token sees that word (k is a floor).
        """
        if self.held is not None or self.end_read:
            raise RuntimeError("an early end only while sampling, before the source end")
        self.extra += 1
        self.end_streak += 1
        self.held = last_token

    def on_unsure(self, last_token: int) -> None:
        """The writer is not sure enough of the next word: read one more word first.

        As with an early end, ``last_token`` was taken back out of the cache and
        is fed again after the read. Unlike it, no lag is added to the schedule:
        once the writer is sure, it catches up with wait-k (k is a floor).
        """
        if self.held is not None or self.end_read:
            raise RuntimeError("unsure only while sampling, before the source end")
        self.unsure_at = self.read
        self.held = last_token

    def on_token(self, token: int, piece: str, is_eos: bool) -> TargetWord | None:
        """A sampled token; returns the target word it finished, if any.

        ``piece`` is the text the token adds to the translation.
        """
        if self.held is not None:
            raise RuntimeError("a held token must be fed before sampling")
        self.end_streak = 0
        if is_eos:
            self.finished = True
            return self._finish_word(cut=False) if self.word_tokens else None
        if starts_new_word(self.word_text, piece):
            done = self._finish_word(cut=False)
            self.word_tokens, self.word_text = [token], piece
            self.held = token
            return done
        self.word_tokens.append(token)
        self.word_text += piece
        self.held = token
        if ends_word(self.word_text):
            return self._finish_word(cut=False)
        if len(self.word_tokens) >= self.max_tokens_per_word:
            return self._finish_word(cut=True)
        return None

    def _finish_word(self, cut: bool) -> TargetWord | None:
        """Close the word in progress; whitespace-only words count but are not shown."""
        text = self.word_text.strip()
        word = TargetWord(
            text=text,
            tokens=tuple(self.word_tokens),
            delay=self.read,
            index=self.written,
            cut=cut,
            attached=self.written > 0 and not self.word_text[:1].isspace(),
        )
        self.written += 1
        self.word_tokens, self.word_text = [], ""
        return word if text else None

    def reset(self, available: int = 0, source_ended: bool = False) -> None:
        """Start the next sentence (with the words already received for it)."""
        self.available, self.read = available, 0
        self.source_ended, self.end_read = source_ended, False
        self.started, self.finished = False, False
        self.written, self.held, self.extra, self.unsure_at = 0, None, 0, None
        self.end_streak = 0
        self.word_tokens, self.word_text = [], ""
