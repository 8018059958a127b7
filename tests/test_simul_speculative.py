"""Speculative writing: drafts verified in one forward give the writer's words and logits
alone, under every policy of the engine's exactness test; the caches roll back; the
draft length follows acceptance."""

from __future__ import annotations

import mlx.core as mx
import pytest
import test_simul_engine_exact as exact
from test_simul_cache import TOLERANCE, tiny_model
from test_simul_engine import CharTokenizer, options

from juno.errors import JunoError
from juno.simul.engine import StreamingTranslator
from juno.simul.speculative import (
    CombinedDrafter,
    DraftLength,
    LookupDrafter,
    ModelDrafter,
    parse_draft,
)

SENTENCES = ("the cat sat on the mat", "a dog ran far away from home today")


class Copier:
    """Proposes what the plain writer wrote next (known from a run without drafts),
    with every ``wrong``-th proposal changed: acceptance is partial and scripted."""

    def __init__(self, sentences: list[list[int]], header: int, wrong: int = 3) -> None:
        self.sentences, self.header, self.wrong = sentences, header, wrong
        self.index, self.calls = 0, 0

    def on_prefix(self, tokens):
        pass

    def on_source(self, tokens, target):
        pass

    def on_start(self, phi):
        pass

    def on_sentence_end(self):
        self.index += 1

    def propose(self, target, n):
        done = len(target) - self.header
        out = list(self.sentences[self.index][done : done + n])
        self.calls += 1
        if out and self.calls % self.wrong == 0:
            out[-1] = (out[-1] + 1) % exact.VOCAB
        return out


def run(policy: str, phi, drafter=None, length: DraftLength | None = None):
    """The writer over both sentences: the tokens of each sentence, and the logits each
    sampling step saw (before the writer's rules), in order."""
    for f in (
        exact.every_third_wants_to_end,
        exact.sometimes_unsure,
        exact.two_in_three_want_to_end,
    ):
        f.calls = 0
    keys = dict(exact.POLICIES[policy])
    examples = keys.pop("examples", [])
    processor = exact.every_third_wants_to_end
    if "min_confidence" in keys:
        processor = exact.sometimes_unsure
    elif "end_reads" in keys:
        processor = exact.two_in_three_want_to_end
    seen: list[mx.array] = []

    def record(tokens, logits):
        seen.append(logits[0])
        return processor(tokens, logits)

    t = StreamingTranslator(
        tiny_model("qwen2"),
        CharTokenizer(),
        options(wait_k=2, phi=phi, max_tokens_per_word=3, max_words_per_sentence=6, **keys),
        examples=examples,
        logits_processors=[record],
        drafter=drafter,
        draft_length=length,
    )
    tokens = []
    for sentence in SENTENCES:
        t.feed(sentence)
        tokens.append(
            [e.token for e in t.events()] + [e.token for e in (t.end_sentence(), *t.events())[1:]]
        )
    return t, tokens, seen


def _written(tokens: list[list[int]], eos: int) -> list[list[int]]:
    """The tokens fed on the target stream, per sentence (all but a final end token)."""
    return [[tok for tok in sentence if tok != eos] for sentence in tokens]


@pytest.mark.parametrize("phi", [0, "source", "source+16"])
@pytest.mark.parametrize("policy", list(exact.POLICIES))
def test_drafts_change_nothing_but_the_forwards(policy, phi):
    plain, tokens, logits = run(policy, phi)
    header = len(plain.prompt.header)
    drafters = {
        "copier": Copier(_written(tokens, exact.EOS), header),
        "lookup": LookupDrafter(),
        "model": ModelDrafter(tiny_model("qwen2")),
        "lookup+model": CombinedDrafter(LookupDrafter(), ModelDrafter(tiny_model("qwen2"))),
    }
    for name, drafter in drafters.items():
        t, drafted_tokens, drafted_logits = run(policy, phi, drafter, DraftLength(1, 4, 3))
        assert drafted_tokens == tokens, name
        assert len(drafted_logits) == len(logits)
        diff = max(mx.abs(a - b).max().item() for a, b in zip(logits, drafted_logits, strict=True))
        assert diff <= TOLERANCE, (name, diff)
        assert t.cache.slots == t.prefix_slots  # every draft rolled back or used
        assert t.draft_stats.accepted <= t.draft_stats.proposed
    assert drafters["copier"].calls > 0


class Counting(StreamingTranslator):
    forwards = 0

    def _execute(self, call):
        self.forwards += call.rows > 0
        return super()._execute(call)


def test_accepted_drafts_save_forwards():
    """After the source end no read comes between tokens: right drafts are kept."""

    def write(drafter=None):
        t = Counting(
            tiny_model("qwen2"),
            CharTokenizer(),
            options(wait_k=1, max_tokens_per_word=3, max_words_per_sentence=10, one_line=False),
            drafter=drafter,
            draft_length=DraftLength(1, 4, 2),
            pipelined=False,  # forwards counted one per token, as with drafts (on a GPU too)
        )
        t.feed("the cat sat")
        t.end_sentence()
        return t, [e.token for e in t.events()]

    plain, tokens = write()
    header = len(plain.prompt.header)
    t, drafted = write(Copier([[tok for tok in tokens if tok != exact.EOS]], header, wrong=4))
    assert drafted == tokens
    assert t.draft_stats.accepted > 0 and t.draft_stats.accepted < t.draft_stats.proposed
    assert t.forwards == plain.forwards - t.draft_stats.accepted
    t, drafted = write(ModelDrafter(tiny_model("qwen2")))  # the same model: right but for rules
    assert drafted == tokens and t.draft_stats.accepted > 0


def test_a_partial_acceptance_rolls_both_caches_back():
    plain, tokens, _ = run("guarded", "source")
    header = len(plain.prompt.header)
    # Drafts right for two tokens, then wrong: the writer keeps two, drops the rest.
    copier = Copier(_written(tokens, exact.EOS), header, wrong=1)
    model = tiny_model("qwen2")
    t = StreamingTranslator(
        model,
        CharTokenizer(),
        options(wait_k=1, max_tokens_per_word=3, max_words_per_sentence=4),
        drafter=copier,
        draft_length=DraftLength(3, 3, 3),
    )
    t.feed("the cat sat")
    events = t.events()
    next(events)  # the first token sampled and held; its feed comes with 3 drafts
    next(events)
    slots = t.cache.slots
    ids = list(t._target_ids)
    assert len(t._pending) <= 3
    # What the cache holds is what the target ids say, drafts included.
    assert t.cache.target_len == len(ids)
    t._drop_drafts()
    assert t.cache.slots == slots - (len(ids) - len(t._target_ids))
    assert t.cache.target_len == len(t._target_ids) and not t._pending

    drafter = ModelDrafter(tiny_model("qwen2"))
    drafter.on_prefix([1, 2, 3])
    drafter.on_source([4, 5], [])
    drafter.on_start(10)
    proposal = drafter.propose([6, 7], 3)
    assert len(proposal) == 3 and drafter.target == [6, 7, *proposal[:2]]
    drafter.propose([6, 8], 2)  # a different token: the draft cache rolls back to [6]
    assert drafter.target[:2] == [6, 8] and drafter.cache.target_len == len(drafter.target)
    drafter.on_source([9], [6, 8])  # a read: the drafts go, the layout is the writer's
    assert drafter.target == [6, 8]
    assert drafter.cache.source_len == 3 + 2 + 1


def test_the_draft_length_follows_acceptance():
    length = DraftLength(least=1, most=5, n=2)
    script = [(2, 2), (3, 3), (4, 1), (2, 0), (1, 1), (2, 2), (3, 3), (4, 4), (5, 5), (5, 2)]
    seen = []
    for proposed, accepted in script:
        assert proposed == length.n
        length.update(proposed, accepted)
        seen.append(length.n)
    assert seen == [3, 4, 2, 1, 2, 3, 4, 5, 5, 3]
    with pytest.raises(JunoError):
        DraftLength(least=3, most=2)


def test_lookup_continues_the_latest_match():
    d = LookupDrafter()
    d.on_prefix([1, 2, 3, 4, 5])
    d.on_source([7, 8, 9, 10], [])
    assert d.propose([0, 7, 8], 2) == [9, 10]  # from the source
    assert d.propose([0, 3], 3) == [4, 5]  # from the example turns
    assert d.propose([5, 6, 5], 2) == [6, 5]  # from the translation so far
    assert d.propose([42], 2) == []


def test_parse_draft():
    assert parse_draft("off") == (False, None)
    assert parse_draft("lookup") == (True, None)
    assert parse_draft("model:qwen-0.5b") == (False, "qwen-0.5b")
    assert parse_draft("lookup+model:qwen-0.5b") == (True, "qwen-0.5b")
    for bad in ("fast", "model:", "lookup+fast"):
        with pytest.raises(JunoError, match="draft must be"):
            parse_draft(bad)
