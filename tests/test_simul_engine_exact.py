"""The engine's logits equal one forward pass with the paper's mask, under every policy.

The cache test (``test_simul_cache``) drives the cache by hand; this one runs
the whole :class:`StreamingTranslator` (its reads, header, writes, early-end
and unsure take-backs, writes forced after ``end_reads``, n-gram bans, example
turns and phi layouts) and records, for every target token left in the cache,
the source length it saw. At each sentence's end every logit row the engine
sampled from must equal the reference forward pass over the prefix, the source
read and the target written, with the mask where target token j sees the
source its cache entry saw.
"""

from __future__ import annotations

import mlx.core as mx
import pytest
from test_simul_cache import TOLERANCE, reference_logits, tiny_model
from test_simul_engine import CHARS, EOS, VOCAB, CharTokenizer, options

from juno.simul.cache import InterleavedCache
from juno.simul.engine import StreamingTranslator

SPACE, LETTER = CHARS.index(" "), CHARS.index("a")


class Recorder(StreamingTranslator):
    """The engine, recording what the reference pass needs; checks each sentence."""

    def __init__(self, *args, **kwargs) -> None:
        self.source_ids: list[int] = []
        self.target_ids: list[int] = []
        self.seen: list[int] = []  # source tokens each cached target token saw
        self.rows: dict[int, mx.array] = {}  # target index -> the logits sampled after it
        self.diffs: list[float] = []
        self.agree: list[bool] = []
        self.take_backs = 0
        self.unsure = 0  # take-backs because the writer was not sure of the next word
        self.early_words = 0  # target words written before their sentence's end was read
        self.forced = 0  # tokens written with the ending tokens masked (end_reads reached)
        self.reference_phi_shift = 0  # a negative control shifts the reference's layout
        self.kept_ahead = 0  # pipelined: tokens dispatched before they were known, and fed
        self.undone_ahead = 0  # ... and rolled back (a take-back, an end, the word limit)
        super().__init__(*args, **kwargs)

    def took(self, call, rows, seconds):
        super().took(call, rows, seconds)
        if rows is None:
            self.source_ids += call.tokens
        else:
            self.target_ids += call.tokens
            self.seen += [self.cache.source_len] * len(call.tokens)
            self.rows[len(self.target_ids) - 1] = rows[0, -1]

    def _keep_ahead(self, token: int) -> None:
        super()._keep_ahead(token)
        self.kept_ahead += 1
        self.target_ids.append(token)
        self.seen.append(self.cache.source_len)
        self.rows[len(self.target_ids) - 1] = self._logits[0]

    def _undo_ahead(self) -> None:
        self.undone_ahead += self._ahead is not None
        super()._undo_ahead()

    def _take_back(self, unsure: bool) -> None:
        super()._take_back(unsure)
        self.take_backs += 1
        self.unsure += unsure
        self.rows.pop(len(self.target_ids) - 1, None)
        self.target_ids.pop()
        self.seen.pop()

    def _sample(self):
        streak = self.policy.end_streak
        event = super()._sample()
        if event is not None and self.end_reads and streak >= self.end_reads:
            self.forced += 1
        if event is not None and event.word is not None and not self.policy.end_read:
            self.early_words += 1
        return event

    def _next_sentence(self) -> None:
        if self.rows:
            ref = reference_logits(
                self.model,
                self.source_ids,
                self.target_ids,
                self.cache.state.phi + self.reference_phi_shift,
                self.seen,
            )
            for i, row in self.rows.items():
                self.diffs.append(mx.abs(ref[i] - row).max().item())
                self.agree.append(int(mx.argmax(ref[i])) == int(mx.argmax(row)))
        super()._next_sentence()
        self.source_ids = self.source_ids[: self.prefix_slots]
        self.target_ids, self.seen, self.rows = [], [], {}


def every_third_wants_to_end(tokens, logits):
    """Deterministic: EOS is the argmax at every third sampling step."""
    every_third_wants_to_end.calls += 1
    if every_third_wants_to_end.calls % 3 == 0:
        return logits + mx.zeros((VOCAB,)).at[EOS].add(1e4)
    return logits


def two_in_three_want_to_end(tokens, logits):
    """Deterministic: EOS is the argmax at two sampling steps of every three."""
    two_in_three_want_to_end.calls += 1
    if two_in_three_want_to_end.calls % 3:
        return logits + mx.zeros((VOCAB,)).at[EOS].add(1e4)
    return logits


def sometimes_unsure(tokens, logits):
    """Deterministic: a sure word start, a sure letter, an unsure word start, a sure letter."""
    sometimes_unsure.calls += 1
    step = sometimes_unsure.calls % 4
    if step == 2:  # a space leads, at e / (e + VOCAB - 1) < 0.5
        return mx.zeros_like(logits) + mx.zeros((VOCAB,)).at[SPACE].add(1.0)
    return logits + mx.zeros((VOCAB,)).at[SPACE if step == 0 else LETTER].add(1e4)


def recorder(phi, pipelined=False, **kw) -> Recorder:
    """A recording engine on the tiny model: wait-2, short words, short sentences."""
    examples = kw.pop("examples", [])
    processors = kw.pop("logits_processors", ())
    return Recorder(
        tiny_model("qwen2"),
        CharTokenizer(),
        options(wait_k=2, phi=phi, max_tokens_per_word=3, max_words_per_sentence=6, **kw),
        examples=examples,
        logits_processors=processors,
        pipelined=pipelined,
    )


POLICIES = {
    "plain": {"one_line": False, "read_on_end": False},
    "guarded": {"one_line": True, "read_on_end": True},
    "guarded-punct": {"one_line": True, "read_on_end": True, "read_on_sentence_end": True},
    "examples+ngram": {"examples": [("one two", "un deux")], "no_repeat_ngram": 2},
    "unsure": {"min_confidence": 0.5},
    "end-reads": {"read_on_end": True, "end_reads": 1},
}


@pytest.mark.parametrize("pipelined", [False, True], ids=["synced", "pipelined"])
@pytest.mark.parametrize("phi", [0, "source", "source+16", 1024])
@pytest.mark.parametrize("policy", list(POLICIES))
def test_engine_logits_equal_the_reference_pass(policy, phi, pipelined):
    every_third_wants_to_end.calls = sometimes_unsure.calls = two_in_three_want_to_end.calls = 0
    unsure = "min_confidence" in POLICIES[policy]
    forcing = "end_reads" in POLICIES[policy]
    processor = every_third_wants_to_end
    if unsure:
        processor = sometimes_unsure
    elif forcing:
        processor = two_in_three_want_to_end
    t = recorder(phi, pipelined, logits_processors=[processor], **POLICIES[policy])
    # The short last one: words written after its end was read (pipelined, ahead of time).
    for sentence in ("the cat sat on the mat", "a dog ran far away from home today", "we ran"):
        t.feed(sentence)
        t.finish()
    assert len(t.diffs) >= 8  # both sentences: the headers and the written tokens
    assert max(t.diffs) <= TOLERANCE, max(t.diffs)
    assert all(t.agree)
    if POLICIES[policy].get("read_on_end", True):
        assert t.take_backs > 0  # the early-end path ran and stayed exact
    if forcing:
        assert t.forced > 0  # a wish to end after the last allowed read was written over
    if unsure:
        assert t.unsure > 0  # the unsure path ran too, and words were still written live
        assert t.early_words > 0
    if pipelined:
        assert t.kept_ahead > 0 and t.undone_ahead > 0  # both paths ran, and stayed exact
    else:
        assert t.kept_ahead == t.undone_ahead == 0


def test_the_recorder_would_see_a_wrong_layout():
    """Negative control: the same run checked against a shifted phi does not match."""
    t = recorder("source+16")
    t.reference_phi_shift = -16  # as if the target continued right after the source
    t.feed("the cat sat on the mat")
    t.finish()
    assert t.diffs and min(t.diffs) > 100 * TOLERANCE


class InterleavedRecorder(StreamingTranslator):
    """The engine on one ordinary cache, recording the sequence in arrival order."""

    def __init__(self, *args, **kwargs) -> None:
        self.sequence: list[int] = []  # every token in the cache, source and target
        self.rows: dict[int, mx.array] = {}  # sequence index -> the logits sampled after it
        self.diffs: list[float] = []
        self.interleaved = 0  # source tokens read after a target token of their sentence
        super().__init__(*args, cache=InterleavedCache, **kwargs)

    def _execute(self, call):
        rows = super()._execute(call)
        if rows is None and self.cache.target_len:
            self.interleaved += len(call.tokens)
        self.sequence += call.tokens
        if rows is not None:
            self.rows[len(self.sequence) - 1] = rows[0, -1]
        return rows

    def _take_back(self, unsure: bool) -> None:
        super()._take_back(unsure)
        self.rows.pop(len(self.sequence) - 1, None)
        self.sequence.pop()

    def _next_sentence(self) -> None:
        # One causal forward pass over the whole sequence, no cache.
        ref = self.model(mx.array([self.sequence]))[0]
        for i, row in self.rows.items():
            self.diffs.append(mx.abs(ref[i] - row).max().item())
        super()._next_sentence()
        self.sequence = self.sequence[: self.prefix_slots]
        self.rows = {}


def test_the_interleaved_baseline_equals_one_causal_pass_over_the_arrival_order():
    every_third_wants_to_end.calls = 0
    t = InterleavedRecorder(
        tiny_model("qwen2"),
        CharTokenizer(),
        options(wait_k=2, max_tokens_per_word=3, max_words_per_sentence=6),
        logits_processors=[every_third_wants_to_end],
    )
    for sentence in ("the cat sat on the mat", "a dog ran far away from home today"):
        t.feed(sentence)
        t.finish()
    assert t.interleaved > 0  # source words did come after target tokens
    assert len(t.diffs) >= 8
    assert max(t.diffs) <= TOLERANCE, max(t.diffs)
    assert t.cache.slots == t.prefix_slots  # back to the system prompt


@pytest.mark.parametrize("policy", list(POLICIES))
def test_the_pipelined_loop_writes_the_same_tokens(policy):
    """Dispatching each forward before its token is read back changes nothing written."""
    written = {}
    for pipelined in (False, True):
        every_third_wants_to_end.calls = sometimes_unsure.calls = 0
        two_in_three_want_to_end.calls = 0
        unsure = "min_confidence" in POLICIES[policy]
        processor = sometimes_unsure if unsure else every_third_wants_to_end
        if "end_reads" in POLICIES[policy]:
            processor = two_in_three_want_to_end
        t = recorder("source", pipelined, logits_processors=[processor], **POLICIES[policy])
        tokens = []
        for sentence in ("the cat sat on the mat", "a dog ran far away from home today", "we ran"):
            t.feed(sentence)
            t.end_sentence()
            tokens += [(e.token, e.source_words_read, e.sentence_done) for e in t.events()]
        written[pipelined] = (tokens, t.take_backs)
        assert t.cache.slots == t.prefix_slots  # every slot dispatched ahead was kept or undone
    assert written[True] == written[False]


@pytest.mark.parametrize("pipelined", [False, True], ids=["synced", "pipelined"])
def test_a_writer_catching_up_stays_exact(pipelined):
    """Words arriving in bursts while the writer writes: each burst is read in one chunk
    at the next word boundary, and every logit row still equals the reference pass."""
    reads = {}
    for catch_up in (False, True):
        every_third_wants_to_end.calls = 0
        t = recorder(
            "source+16", pipelined, logits_processors=[every_third_wants_to_end], catch_up=catch_up
        )
        for sentence in ("the cat sat on the mat today", "a dog ran far away from home"):
            words = sentence.split()
            for burst in (words[:2], words[2:5], words[5:]):
                t.feed(burst)
                t.step()  # writes what the words read allow, then starves
            t.finish()
        assert len(t.diffs) >= 8
        assert max(t.diffs) <= TOLERANCE, max(t.diffs)
        assert all(t.agree)
        reads[catch_up] = t.stats.source_reads
    # Caught up, a burst is one read where the schedule reads word by word.
    assert reads[True] < reads[False], reads
