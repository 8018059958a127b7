"""Many target languages at once: one translator per language, their model calls batched.

Each language keeps its own :class:`~juno.simul.engine.StreamingTranslator`
(prompt, dual-stream cache, wait-k schedule and writer rules), so it writes the
words the single-language translator writes. What they share is the model: the
decode loops run side by side, each until it needs a model call (a
:class:`~juno.simul.engine.Forward`) or has nothing to do, and the calls waiting
at that moment go through the model as one batch, as in continuous batching. A
language waiting for source is simply not in the batch; it joins again when a
word arrives, and rows of different lengths, streams and token counts share a
forward:

- keys and values stay in each row's own cache; for the batch each layer's are
  padded to the longest row;
- each row's mask is the one its own cache gives (the paper's pattern), padded
  with hidden slots; padded query positions see only slot 0 and are discarded;
- each row's RoPE offset is its own group position (a vector offset);
- logits are computed only at the positions a row asked for.

The source is read once per language: its prompt (the target language named in
the system prompt, the examples) comes before the source, so the source's keys
differ per language. Reading it once for all would change every prompt, and the
words with it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from typing import Any

import mlx.core as mx
from mlx_lm.models.base import create_causal_mask

from juno.errors import JunoError
from juno.simul.cache import LayerCache, StreamState
from juno.simul.engine import Forward, StreamingTranslator, TokenEvent
from juno.simul.options import TranslateOptions
from juno.simul.policy import Action


class BatchTranslator:
    """One source, several target languages: ``rows``, one translator per language.

    The same interface as :class:`StreamingTranslator` for input (:meth:`feed`,
    :meth:`end_sentence`, :meth:`finish`); :meth:`events` yields ``(row, event)``
    pairs, ``row`` indexing :attr:`rows` and :attr:`languages`. Build one with
    :meth:`create`; the rows must share one model and write without drafts.
    """

    @classmethod
    def create(
        cls, model: Any, tokenizer: Any, options: TranslateOptions, targets: Sequence[str]
    ) -> BatchTranslator:
        """A row for each of ``targets`` (language codes), with ``options`` otherwise."""
        if not targets:
            raise JunoError("no target language to translate into")
        if len(set(targets)) != len(targets):
            raise JunoError(f"a target language is given twice: {', '.join(targets)}")
        if options.draft != "off":
            raise JunoError("speculative writing (translate.draft) is for one target language")
        return cls(
            [
                StreamingTranslator(
                    model, tokenizer, replace(options, target_language=t), pipelined=False
                )
                for t in targets
            ]
        )

    def __init__(self, rows: Sequence[StreamingTranslator]) -> None:
        if not rows:
            raise JunoError("no target language to translate into")
        model = rows[0].model
        if any(r.model is not model for r in rows):
            raise ValueError("the rows of a batch must share one model")
        if any(r.drafter is not None or r.pipelined for r in rows):
            raise ValueError("the rows of a batch write without drafts, one token at a time")
        self.rows = list(rows)
        self.languages = [r.options.target_language for r in rows]
        self.model = model
        self._body = getattr(model, "model", model)
        self._num_layers = len(model.layers)
        self.batches = 0  # batched forwards run (a lone call runs as the single translator's)
        self.batched_rows = 0  # rows in them

    # -- live input -----------------------------------------------------------

    def feed(self, words: str | Iterable[Any]) -> None:
        items = words.split() if isinstance(words, str) else list(words)
        for row in self.rows:
            row.feed(items)

    def end_sentence(self) -> None:
        for row in self.rows:
            row.end_sentence()

    def finish(self) -> list[tuple[int, Any]]:
        """End the open sentence and translate everything queued: (row, word) pairs."""
        self.end_sentence()
        return [(i, e.word) for i, e in self.events() if e.word is not None]

    @property
    def pending_words(self) -> int:
        """Source words not yet translated by the language furthest behind."""
        return max(row.pending_words for row in self.rows)

    # -- the decode loops -----------------------------------------------------

    def events(self) -> Iterator[tuple[int, TokenEvent]]:
        """Run every language until starved; yield ``(row, event)`` for each sampled token.

        Input fed between two events is seen by every language, as with one translator.
        """
        runs: dict[int, Any] = {}  # each working row's decode loop
        results: dict[int, mx.array | None] = {}  # what to send it next
        while True:
            for i, row in enumerate(self.rows):
                # (Again each round: input fed between events may give a starved row work.)
                if i not in runs and row.policy.next_action() is not Action.WAIT:
                    runs[i], results[i] = row.run(), None
            if not runs:
                return
            calls: dict[int, Forward] = {}
            for i in list(runs):
                while True:
                    try:
                        item = runs[i].send(results[i])
                    except StopIteration:
                        del runs[i]
                        break
                    results[i] = None
                    if isinstance(item, Forward):
                        calls[i] = item
                        break
                    yield i, item
            if calls:
                results.update(self._forward(calls))

    def _forward(self, calls: dict[int, Forward]) -> dict[int, mx.array | None]:
        """Run the waiting calls as one batch; each row's logits (or None)."""
        if len(calls) == 1:
            ((i, call),) = calls.items()
            return {i: self.rows[i]._execute(call)}
        start = time.perf_counter()
        order = list(calls)
        rows = [self.rows[i] for i in order]
        forwards = [calls[i] for i in order]
        sizes = [len(f.tokens) for f in forwards]
        for row, f in zip(rows, forwards, strict=True):
            row.cache.use(f.stream)
        states = [row.cache.state for row in rows]
        offsets = mx.array([s.position for s in states])
        mask, length = batch_mask(states, sizes)
        layers = [
            BatchLayer([row.cache.layers[n] for row in rows], sizes, offsets, mask, length)
            for n in range(self._num_layers)
        ]
        width = max(sizes)
        tokens = mx.array([f.tokens + [0] * (width - len(f.tokens)) for f in forwards])
        hidden = self._body(tokens, cache=layers)
        for row, size in zip(rows, sizes, strict=True):
            row.cache.commit(size)
        wanted = [(b, f.rows) for b, f in enumerate(forwards) if f.rows]
        logits: list[mx.array | None] = [None] * len(rows)
        if wanted:
            picked = mx.concatenate(
                [hidden[b : b + 1, sizes[b] - n : sizes[b]] for b, n in wanted], axis=1
            )
            out = lm_head(self.model, picked)
            at = 0
            for b, n in wanted:
                logits[b] = out[:, at : at + n]
                at += n
        mx.eval(
            [a for row in rows for a in row.cache.arrays()], *[x for x in logits if x is not None]
        )
        share = (time.perf_counter() - start) / len(rows)
        self.batches += 1
        self.batched_rows += len(rows)
        for row, f, out_rows in zip(rows, forwards, logits, strict=True):
            row.took(f, out_rows, share)
        return dict(zip(order, logits, strict=True))

    # -- reports --------------------------------------------------------------

    @property
    def compute_s(self) -> float:
        """Model compute of all languages (batched calls counted once)."""
        return sum(r.stats.source_s + r.stats.header_s + r.stats.target_s for r in self.rows)

    @property
    def nbytes(self) -> int:
        """KV-cache bytes of all languages."""
        return sum(row.cache.nbytes for row in self.rows)


def lm_head(model: Any, hidden: mx.array) -> mx.array:
    """The model's output projection, as its ``__call__`` applies it after the body."""
    args = getattr(model, "args", None)
    if getattr(args, "tie_word_embeddings", False) or not hasattr(model, "lm_head"):
        return model.model.embed_tokens.as_linear(hidden)
    return model.lm_head(hidden)


def batch_mask(states: Sequence[StreamState], sizes: Sequence[int]) -> tuple[mx.array, int]:
    """The batch's attention mask, (rows, 1, width, length), and its key length.

    Row b's own mask (from its cache's state: what its ``sizes[b]`` new tokens see)
    is padded with hidden slots to the longest row; padded query positions see slot 0
    only, so that no softmax is empty (their outputs are discarded)."""
    width = max(sizes)
    length = max(s.slots + n for s, n in zip(states, sizes, strict=True))
    masks = []
    for state, n in zip(states, sizes, strict=True):
        own = state.make_mask(n, return_array=True)
        if own is None:
            own = create_causal_mask(n, state.slots)
        own = mx.pad(own, [(0, 0), (0, length - own.shape[1])], constant_values=False)
        if n < width:
            pad = mx.zeros((width - n, length), dtype=mx.bool_)
            own = mx.concatenate([own, mx.concatenate([pad[:, :1] | True, pad[:, 1:]], 1)])
        masks.append(own)
    return mx.stack(masks)[:, None], length


class BatchLayer:
    """One layer's caches of the batch's rows, as mlx-lm's attention calls a cache.

    Each row's new keys and values (its own tokens, not the padding) go into its own
    :class:`~juno.simul.cache.LayerCache`; attention gets them all, padded to ``length``.
    """

    def __init__(
        self,
        rows: Sequence[LayerCache],
        sizes: Sequence[int],
        offsets: mx.array,
        mask: mx.array,
        length: int,
    ) -> None:
        self.rows, self.sizes = rows, sizes
        self.offset = offsets  # RoPE: each row's group position
        self._mask, self._length = mask, length

    def update_and_fetch(self, keys: mx.array, values: mx.array) -> tuple[mx.array, mx.array]:
        all_keys, all_values = [], []
        for b, (row, n) in enumerate(zip(self.rows, self.sizes, strict=True)):
            k, v = row.update_and_fetch(keys[b : b + 1, :, :n], values[b : b + 1, :, :n])
            pad = [(0, 0), (0, 0), (0, self._length - k.shape[2]), (0, 0)]
            all_keys.append(mx.pad(k, pad))
            all_values.append(mx.pad(v, pad))
        return mx.concatenate(all_keys), mx.concatenate(all_values)

    def make_mask(
        self, n: int, *, return_array: bool = False, window_size: int | None = None
    ) -> mx.array:
        if window_size is not None:
            raise ValueError("sliding-window attention is not supported by DualStreamCache")
        return self._mask
