"""Many target languages as one batch: each row exact, and the words of one language alone.

The rows are the exactness test's recording engines (:class:`Recorder`), each
checking at every sentence's end that the logits it sampled from equal one
reference forward pass with the paper's mask over its own prefix, source and
target. Their schedules differ (wait-k, phi, writer rules, a row that wants to
end early, one that is unsure), so rows join and leave the batch at different
times, and one batch holds source chunks and target tokens of different lengths.
"""

from __future__ import annotations

import mlx.core as mx
import pytest
from test_simul_cache import TOLERANCE, tiny_model
from test_simul_engine import EOS, VOCAB, CharTokenizer, options
from test_simul_engine_exact import LETTER, POLICIES, SPACE, Recorder

from juno.errors import JunoError
from juno.simul.batch import BatchTranslator
from juno.simul.cache import Stream
from juno.simul.engine import StreamingTranslator
from juno.simul.options import TranslateOptions

SENTENCES = ("the cat sat on the mat", "a dog ran far away from home today", "we ran")


def wants_to_end(every: int):
    """Deterministic, per row: EOS is the argmax at every ``every``-th sampling step."""
    calls = [0]

    def processor(tokens, logits):
        calls[0] += 1
        if calls[0] % every == 0:
            return logits + mx.zeros((VOCAB,)).at[EOS].add(1e4)
        return logits

    return processor


def sometimes_unsure():
    """Deterministic, per row: a sure word start, a sure letter, an unsure start, a letter."""
    calls = [0]

    def processor(tokens, logits):
        calls[0] += 1
        step = calls[0] % 4
        if step == 2:
            return mx.zeros_like(logits) + mx.zeros((VOCAB,)).at[SPACE].add(1.0)
        return logits + mx.zeros((VOCAB,)).at[SPACE if step == 0 else LETTER].add(1e4)

    return processor


# target language, wait-k, phi, writer rules, logits processor
ROWS = {
    "fr": (2, 0, {"one_line": True, "read_on_end": True}, lambda: wants_to_end(3)),
    "de": (3, "source+16", {"min_confidence": 0.5}, sometimes_unsure),
    "es": (1, 1024, {"no_repeat_ngram": 2}, lambda: wants_to_end(5)),
}


def recorder(model, lang, k, phi, rules, processor, examples=()) -> Recorder:
    """One recording row: wait-k, phi and writer rules of its own, short words and sentences."""
    return Recorder(
        model,
        CharTokenizer(),
        options(
            wait_k=k,
            phi=phi,
            max_tokens_per_word=3,
            max_words_per_sentence=6,
            target_language=lang,
            **rules,
        ),
        examples=list(examples),
        logits_processors=[processor],
        pipelined=False,  # batch rows write one token at a time (the default on a GPU is on)
    )


def recorders(model) -> list[Recorder]:
    return [
        recorder(model, lang, k, phi, rules, processor())
        for lang, (k, phi, rules, processor) in ROWS.items()
    ]


class WatchedBatch(BatchTranslator):
    """Records the shape of every batched forward."""

    def __init__(self, rows) -> None:
        super().__init__(rows)
        self.shapes: list[tuple[tuple[int, ...], frozenset[Stream]]] = []

    def _forward(self, calls):
        if len(calls) > 1:
            shape = tuple(len(c.tokens) for c in calls.values())
            self.shapes.append((shape, frozenset(c.stream for c in calls.values())))
        return super()._forward(calls)


def live(translator, words_of=SENTENCES) -> list[tuple[int, list[int]]]:
    """Feed word by word, running the writer after each; (row, tokens) of each word."""
    run = translator.events
    written = []
    for sentence in words_of:
        words = sentence.split()
        for i, word in enumerate(words):
            translator.feed(word)
            if i == len(words) - 1:
                translator.end_sentence()
            for event in run():
                row, e = event if isinstance(event, tuple) else (0, event)
                if e.word is not None:
                    written.append((row, list(e.word.tokens)))
    return written


@pytest.mark.parametrize("kind", ["qwen2", "qwen3", "llama"])
def test_each_batched_row_equals_the_reference_pass(kind):
    batch = WatchedBatch(recorders(tiny_model(kind)))
    live(batch)
    for lang, row in zip(batch.languages, batch.rows, strict=True):
        assert len(row.diffs) >= 8, lang  # every sentence: headers and written tokens
        assert max(row.diffs) <= TOLERANCE, (lang, max(row.diffs))
        assert all(row.agree), lang
    fr, de, _ = batch.rows
    assert fr.take_backs > 0 and de.unsure > 0  # each row's own rules ran inside the batch
    # Rows joined and left: batches of two and of three; source chunks beside target
    # tokens in one forward; rows of different token counts.
    assert {len(shape) for shape, _ in batch.shapes} == {2, 3}
    assert any(len(streams) == 2 for _, streams in batch.shapes)
    assert any(len(set(shape)) > 1 for shape, _ in batch.shapes)


def test_each_language_writes_what_it_writes_alone():
    model = tiny_model("qwen2")
    batched = live(BatchTranslator(recorders(model)))
    for row in range(len(ROWS)):
        alone = live(recorders(model)[row])  # a fresh row, with its processor's own count
        assert [tokens for r, tokens in batched if r == row] == [t for _, t in alone], row
    assert {r for r, _ in batched} == {0, 1, 2}


def test_a_waiting_language_does_not_hold_up_the_others():
    model = tiny_model("qwen2")
    rows = [
        StreamingTranslator(
            model,
            CharTokenizer(),
            options(wait_k=k, max_tokens_per_word=3, target_language=lang),
            examples=[],
            pipelined=False,
        )
        for lang, k in (("fr", 1), ("de", 4))
    ]
    batch = BatchTranslator(rows)
    batch.feed("one two")
    first = [row for row, e in batch.events() if e.word is not None]
    assert first and set(first) == {0}  # wait-1 writes; wait-4 has read two of four words
    batch.feed("three four five")
    second = [row for row, e in batch.events() if e.word is not None]
    assert 1 in second and 0 in second  # both write once wait-4 has its words
    batch.end_sentence()
    rest = list(batch.events())
    assert rest and rest[-1][1].sentence_done
    ended = {row for row, e in rest if e.sentence_done}
    assert ended == {0, 1} and batch.pending_words == 0
    for row in batch.rows:
        assert row.cache.slots == row.prefix_slots  # each back to its own prompt


def test_batch_construction_refuses_what_it_cannot_do():
    model = tiny_model("qwen2")
    tok = CharTokenizer()
    base = options(max_tokens_per_word=3)
    with pytest.raises(JunoError, match="given twice"):
        BatchTranslator.create(model, tok, base, ["fr", "de", "fr"])
    with pytest.raises(JunoError, match="no target language"):
        BatchTranslator.create(model, tok, base, [])
    with pytest.raises(JunoError, match="speculative"):
        BatchTranslator.create(model, tok, TranslateOptions(draft="lookup"), ["fr", "de"])
    batch = BatchTranslator.create(model, tok, base, ["fr", "de"])
    assert batch.languages == ["fr", "de"]
    assert all(not row.pipelined for row in batch.rows)
    other = tiny_model("llama")
    with pytest.raises(ValueError, match="share one model"):
        BatchTranslator([batch.rows[0], StreamingTranslator(other, tok, base, pipelined=False)])


def _processor(policy: str):
    """Each row's own copy of the exactness test's processor for ``policy``."""
    if "min_confidence" in POLICIES[policy]:
        return sometimes_unsure()
    if "end_reads" in POLICIES[policy]:
        calls = [0]

        def two_in_three(tokens, logits):
            calls[0] += 1
            if calls[0] % 3:
                return logits + mx.zeros((VOCAB,)).at[EOS].add(1e4)
            return logits

        return two_in_three
    return wants_to_end(3)


@pytest.mark.parametrize("policy", list(POLICIES))
def test_every_policy_of_the_exactness_test_stays_exact_in_a_batch(policy):
    """Three languages under one policy, at different k and phi: each row's logits equal
    its reference pass, and its words are those it writes alone."""
    model = tiny_model("qwen2")
    rules = dict(POLICIES[policy])
    examples = rules.pop("examples", [])

    def rows():
        return [
            recorder(model, lang, k, phi, rules, _processor(policy), examples)
            for lang, k, phi in (("fr", 2, 0), ("de", 3, "source+16"), ("es", 1, 1024))
        ]

    batch = BatchTranslator(rows())
    batched = live(batch)
    for row in batch.rows:
        assert len(row.diffs) >= 8 and max(row.diffs) <= TOLERANCE and all(row.agree)
    for i in range(3):
        alone = live(rows()[i])
        assert [t for r, t in batched if r == i] == [t for _, t in alone], i
