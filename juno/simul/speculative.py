"""Speculative writing: drafts proposed cheaply, verified by the writer in one forward.

When the writer feeds a token on its target stream, a drafter proposes the next
few tokens; the writer encodes the token and the drafts in one forward and keeps
the logits after each. Sampling then goes on exactly as without drafts, under
every writer rule: a sampled token equal to the next draft is already in the
cache (its forward is saved), the first that differs drops the rest. A source
read drops them too (tokens written after it must see it), and so does taking
a token back. The output is the writer's alone; drafts only save forwards.

Drafters:
- :class:`LookupDrafter` (prompt lookup): continues the last tokens written as
  they went on elsewhere in the sentence's source, the example turns or the
  translation so far (names, numbers, cognates, repeated phrases). Free.
- :class:`ModelDrafter`: a small model with the same tokenizer, on its own
  dual-stream cache laid out as the writer's (same source reads, same target
  tokens), decoding greedily.
- :class:`CombinedDrafter`: lookup first, the model where lookup finds nothing.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import mlx.core as mx

from juno.errors import JunoError
from juno.simul.cache import DualStreamCache, Stream
from juno.simul.options import parse_draft  # noqa: F401 (part of this module's API)
from juno.simul.support import check_supported, check_token_ids


class Drafter(Protocol):
    """What the writer tells a drafter, and what it asks."""

    def on_prefix(self, tokens: Sequence[int]) -> None:
        """The system prompt (and example turns), encoded once as source."""

    def on_source(self, tokens: Sequence[int], target: Sequence[int]) -> None:
        """Source tokens read; ``target``: the target tokens in the writer's cache then."""

    def on_start(self, phi: int) -> None:
        """A sentence's first write: the target stream starts at ``phi``."""

    def on_sentence_end(self) -> None:
        """The writer went back to its prefix."""

    def propose(self, target: Sequence[int], n: int) -> list[int]:
        """Up to ``n`` tokens to follow ``target`` (the target stream, header included)."""


@dataclass
class DraftLength:
    """The draft length, adapted to how many drafts the writer accepts.

    All of a round accepted: one more next time (up to ``most``); the first
    rejected at position i: i + 1 next time (at least ``least``).
    """

    least: int = 1
    most: int = 4
    n: int = 2

    def __post_init__(self) -> None:
        if not 1 <= self.least <= self.most:
            raise JunoError(f"draft lengths need 1 <= least <= most, got {self.least}, {self.most}")
        self.n = min(max(self.n, self.least), self.most)

    def update(self, proposed: int, accepted: int) -> None:
        if proposed == 0:
            return
        if accepted >= proposed:
            self.n = min(self.n + 1, self.most)
        else:
            self.n = min(max(accepted + 1, self.least), self.most)


@dataclass
class DraftStats:
    """Acceptance and cost of the drafts of one writer."""

    rounds: int = 0  # forwards that carried drafts
    proposed: int = 0  # drafts the writer decided on (accepted or not)
    accepted: int = 0
    withdrawn: int = 0  # drafts rolled back unread: a source read came first (catching up)
    draft_s: float = 0.0  # time spent proposing
    verify_s: float = 0.0  # time of the forwards that carried drafts
    accepted_lengths: list[int] = field(default_factory=list)

    @property
    def acceptance(self) -> float:
        return self.accepted / self.proposed if self.proposed else 0.0

    @property
    def mean_accepted(self) -> float:
        n = len(self.accepted_lengths)
        return sum(self.accepted_lengths) / n if n else 0.0

    def summary(self) -> dict[str, float]:
        return {
            "draft_rounds": self.rounds,
            "drafted": self.proposed,
            "accepted": self.accepted,
            "withdrawn": self.withdrawn,
            "acceptance": round(self.acceptance, 3),
            "mean_accepted": round(self.mean_accepted, 2),
            "draft_s": round(self.draft_s, 3),
            "verify_s": round(self.verify_s, 3),
        }


class LookupDrafter:
    """Prompt lookup: the continuation of the longest recent n-gram match."""

    def __init__(self, max_ngram: int = 3) -> None:
        self.max_ngram = max_ngram
        self.prefix: list[int] = []  # system prompt and example turns
        self.source: list[int] = []  # this sentence's source tokens

    def on_prefix(self, tokens: Sequence[int]) -> None:
        self.prefix = list(tokens)

    def on_source(self, tokens: Sequence[int], target: Sequence[int]) -> None:
        self.source += tokens

    def on_start(self, phi: int) -> None:
        pass

    def on_sentence_end(self) -> None:
        self.source = []

    def propose(self, target: Sequence[int], n: int) -> list[int]:
        corpora = (list(target), self.source, self.prefix)  # most relevant first
        for size in range(min(self.max_ngram, len(target)), 0, -1):
            tail = list(target[-size:])
            for corpus in corpora:
                # The latest occurrence that has a continuation.
                for start in range(len(corpus) - size - 1, -1, -1):
                    if corpus[start : start + size] == tail:
                        return corpus[start + size : start + size + n]
        return []


class ModelDrafter:
    """A small model's greedy continuation, on a dual-stream cache laid out as the writer's."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.cache = DualStreamCache(check_supported(model))
        self._body = getattr(model, "model", model)
        self.prefix_slots = 0
        self.target: list[int] = []  # target tokens in this cache, in order
        self._logits: mx.array | None = None  # after the last target token

    def on_prefix(self, tokens: Sequence[int]) -> None:
        check_token_ids(self.model, tokens, "the draft model")
        self._encode_source(list(tokens))
        self.prefix_slots = self.cache.slots

    def on_source(self, tokens: Sequence[int], target: Sequence[int]) -> None:
        self._sync(target)
        self._encode_source(list(tokens))
        self._logits = None  # the target stream must see the new source

    def on_start(self, phi: int) -> None:
        self.cache.set_phi(phi)

    def on_sentence_end(self) -> None:
        self.cache.truncate(self.prefix_slots)
        self.target, self._logits = [], None

    def propose(self, target: Sequence[int], n: int) -> list[int]:
        self._sync(target)  # feeds the writer's new token: fresh logits, after every read
        out: list[int] = []
        while len(out) < n:
            if self._logits is None:
                return out
            token = int(mx.argmax(self._logits, axis=-1).item())
            out.append(token)
            if len(out) < n:
                self._forward([token])
        return out

    def _sync(self, target: Sequence[int]) -> None:
        """Make this cache's target stream ``target``: roll back what differs, feed the rest."""
        same = 0
        while same < min(len(self.target), len(target)) and self.target[same] == target[same]:
            same += 1
        if same < len(self.target):
            self.cache.rollback(len(self.target) - same)
            del self.target[same:]
            self._logits = None
        if len(target) > same:
            self._forward(list(target[same:]))

    def _encode_source(self, tokens: list[int]) -> None:
        if not tokens:
            return
        self.cache.use(Stream.SOURCE)
        self._body(mx.array([tokens]), cache=self.cache.layers)
        self.cache.commit(len(tokens))
        mx.eval(self.cache.arrays())

    def _forward(self, tokens: list[int]) -> None:
        self.cache.use(Stream.TARGET)
        logits = self.model(mx.array([tokens]), cache=self.cache.layers)
        self.cache.commit(len(tokens))
        self.target += tokens
        self._logits = logits[:, -1, :]
        mx.eval(self._logits)


class CombinedDrafter:
    """Lookup where it finds a continuation; the model otherwise."""

    def __init__(self, *drafters: Any) -> None:
        self.drafters = drafters

    def on_prefix(self, tokens: Sequence[int]) -> None:
        for d in self.drafters:
            d.on_prefix(tokens)

    def on_source(self, tokens: Sequence[int], target: Sequence[int]) -> None:
        for d in self.drafters:
            d.on_source(tokens, target)

    def on_start(self, phi: int) -> None:
        for d in self.drafters:
            d.on_start(phi)

    def on_sentence_end(self) -> None:
        for d in self.drafters:
            d.on_sentence_end()

    def propose(self, target: Sequence[int], n: int) -> list[int]:
        for d in self.drafters:
            if drafts := d.propose(target, n):
                return drafts
        return []


def load_drafter(options: Any, cfg: Any, tokenizer: Any) -> Drafter | None:
    """The drafter ``options.draft`` names, its model loaded (``cfg`` for the models folder).

    A draft model must share the writer's tokenizer: its tokens are the writer's.
    """
    lookup, spec = parse_draft(options.draft)
    model = None
    if spec is not None:
        if spec not in _loaded:  # one copy of the weights for every translator
            from juno.models.loading import load_llm

            _loaded[spec] = load_llm(spec, cfg)
        model, draft_tokenizer, path = _loaded[spec]
        if draft_tokenizer.get_vocab() != tokenizer.get_vocab():
            raise JunoError(f"draft model {path.name} has another tokenizer than the writer's")
    return make_drafter(lookup, model)


_loaded: dict[str, tuple[Any, Any, Any]] = {}


def make_drafter(lookup: bool, draft_model: Any | None) -> Drafter | None:
    """The drafter for a parsed ``translate.draft`` and its loaded model (if any)."""
    drafters: list[Any] = []
    if lookup:
        drafters.append(LookupDrafter())
    if draft_model is not None:
        drafters.append(ModelDrafter(draft_model))
    if not drafters:
        return None
    return drafters[0] if len(drafters) == 1 else CombinedDrafter(*drafters)


def timed(stats: DraftStats, fn, *args):
    """``fn(*args)``, its time added to the draft time."""
    start = time.perf_counter()
    try:
        return fn(*args)
    finally:
        stats.draft_s += time.perf_counter() - start
