"""A dual-stream KV cache that gives unmodified mlx-lm models grouped positions.

mlx-lm's attention layers take their RoPE offset from ``cache.offset``, their
keys and values from ``cache.update_and_fetch`` and their mask from the first
layer's ``cache.make_mask``. :class:`DualStreamCache` answers those three
calls so that a standard full-attention RoPE model (qwen2, qwen3, llama)
computes the group-position-encoding pattern (arXiv 2505.16983) without a
forked model file:

- positions: the source stream counts from 0, the target stream from phi;
- source tokens attend to earlier source tokens only, never to the target;
- a target token attends to all source read so far and to earlier targets;
- inside a multi-token chunk, attention is causal.

Storage is one preallocated buffer per layer, in arrival order (as mlx-lm's
``KVCache``), with a per-slot stream tag. Keys are stored already rotated at
their group positions, so the order of slots does not matter to attention,
only the mask does. In arrival order every key before a target token is
exactly what it may see, so target steps use the plain causal mask (``None``
for one token: the fast path, no copies, flat per-token cost). Only source
chunks read after target tokens need an explicit mask that hides the target
slots. Rolling back the last tokens and returning to the system-prompt prefix
are trims of the end of the buffer.
"""

from __future__ import annotations

import enum

import mlx.core as mx
from mlx_lm.models.base import create_causal_mask
from mlx_lm.models.cache import KVCache, _BaseCache


class Stream(enum.Enum):
    SOURCE = "source"
    TARGET = "target"


class StreamState:
    """What all layers of one model share: the current stream and the slot tags.

    Each forward call happens on one stream: select it with :meth:`use`, run
    the model, then :meth:`commit` the number of tokens (the layers read
    ``offset`` before writing, so positions only move after the whole call).
    """

    def __init__(self) -> None:
        self.stream = Stream.SOURCE
        self.phi = 0
        self.source_len = 0  # source tokens in the cache (= next source position)
        self.target_len = 0  # target tokens in the cache
        self.is_source: list[bool] = []  # per slot, arrival order
        # The same tags on the device, for masks: written up to ``_synced`` when a mask
        # needs them, so a read uploads only the slots since the last one.
        self._tags: mx.array | None = None
        self._synced = 0

    @property
    def slots(self) -> int:
        return len(self.is_source)

    @property
    def position(self) -> int:
        """RoPE position of the next token on the current stream."""
        if self.stream is Stream.SOURCE:
            return self.source_len
        return self.phi + self.target_len

    def use(self, stream: Stream) -> None:
        self.stream = stream

    def commit(self, n_tokens: int) -> None:
        is_source = self.stream is Stream.SOURCE
        self.is_source.extend([is_source] * n_tokens)
        if is_source:
            self.source_len += n_tokens
        else:
            self.target_len += n_tokens

    def truncate(self, slots: int) -> None:
        """Forget every slot from ``slots`` on."""
        dropped = self.is_source[slots:]
        del self.is_source[slots:]
        self._synced = min(self._synced, slots)
        n_source = sum(dropped)
        self.source_len -= n_source
        self.target_len -= len(dropped) - n_source

    def make_mask(self, n: int, return_array: bool = False) -> mx.array | str | None:
        """Mask for ``n`` new tokens on the current stream over all slots."""
        offset = self.slots
        if self.stream is Stream.TARGET or self.target_len == 0:
            # Arrival order: everything earlier is visible; causal inside the chunk.
            if n == 1:
                return None
            return create_causal_mask(n, offset) if return_array else "causal"
        visible = mx.concatenate([self._device_tags(), mx.ones((n,), dtype=mx.bool_)])
        return create_causal_mask(n, offset) & visible[None]

    def _device_tags(self) -> mx.array:
        """``is_source`` as a device array, its new slots written in place."""
        slots = self.slots
        if self._tags is None or self._tags.shape[0] < slots:
            size = (slots // 256 + 1) * 256
            grown = mx.zeros((size,), dtype=mx.bool_)
            if self._tags is not None and self._synced:
                grown[: self._synced] = self._tags[: self._synced]
            self._tags = grown
        if self._synced < slots:
            self._tags[self._synced : slots] = mx.array(self.is_source[self._synced : slots])
            self._synced = slots
        return self._tags[:slots]


class LayerCache(_BaseCache):
    """One layer's keys and values; positions and masks come from the shared state."""

    step = 256  # slots added when the buffer grows (as mlx-lm's KVCache)

    def __init__(self, state: StreamState) -> None:
        self.shared = state
        self.keys: mx.array | None = None
        self.values: mx.array | None = None
        self.length = 0

    @property
    def offset(self) -> int:
        # The RoPE offset: the group position, not the slot index.
        return self.shared.position

    def update_and_fetch(self, keys: mx.array, values: mx.array) -> tuple[mx.array, mx.array]:
        prev, n = self.length, keys.shape[2]
        if self.keys is None or prev + n > self.keys.shape[2]:
            B, n_kv_heads, _, k_dim = keys.shape
            grow = (self.step + n - 1) // self.step * self.step
            new_k = mx.zeros((B, n_kv_heads, grow, k_dim), keys.dtype)
            new_v = mx.zeros((B, n_kv_heads, grow, values.shape[3]), values.dtype)
            if self.keys is None:
                self.keys, self.values = new_k, new_v
            else:
                self.keys = mx.concatenate([self.keys[..., :prev, :], new_k], axis=2)
                self.values = mx.concatenate([self.values[..., :prev, :], new_v], axis=2)
        self.length = prev + n
        self.keys[..., prev : self.length, :] = keys
        self.values[..., prev : self.length, :] = values
        return self.keys[..., : self.length, :], self.values[..., : self.length, :]

    def make_mask(
        self, n: int, *, return_array: bool = False, window_size: int | None = None
    ) -> mx.array | str | None:
        if window_size is not None:
            raise ValueError("sliding-window attention is not supported by DualStreamCache")
        return self.shared.make_mask(n, return_array)

    def size(self) -> int:
        return self.length

    def empty(self) -> bool:
        return self.keys is None

    @property
    def state(self) -> tuple[mx.array | None, mx.array | None]:
        return self.keys, self.values

    @property
    def nbytes(self) -> int:
        return 0 if self.keys is None else self.keys.nbytes + self.values.nbytes


class DualStreamCache:
    """The per-layer caches of one model plus their shared stream state.

    Pass :attr:`layers` as mlx-lm's ``cache`` argument:
    ``model(tokens, cache=dual.layers)`` after ``dual.use(Stream.SOURCE)`` or
    ``dual.use(Stream.TARGET)``, then ``dual.commit(n)``.
    """

    def __init__(self, num_layers: int) -> None:
        self.state = StreamState()
        self.layers = [LayerCache(self.state) for _ in range(num_layers)]

    def use(self, stream: Stream) -> None:
        self.state.use(stream)

    def set_phi(self, phi: int) -> None:
        """Target start position; only while the target stream is empty."""
        if self.state.target_len:
            raise RuntimeError("phi can only change while the target stream is empty")
        self.state.phi = phi

    def commit(self, n_tokens: int) -> None:
        self.state.commit(n_tokens)
        if {layer.length for layer in self.layers} != {self.state.slots}:
            raise RuntimeError("the model did not write every layer of the cache")

    def rollback(self, n_tokens: int) -> None:
        """Take the last ``n_tokens`` target tokens back out of the cache."""
        tail = self.state.is_source[self.state.slots - n_tokens :]
        if n_tokens > self.state.target_len or any(tail):
            raise RuntimeError("rollback can only remove target tokens at the end")
        self.truncate(self.state.slots - n_tokens)

    def truncate(self, slots: int) -> None:
        """Keep the first ``slots`` slots (e.g. the system-prompt prefix)."""
        self.state.truncate(slots)
        for layer in self.layers:
            layer.length = min(layer.length, slots)

    @property
    def slots(self) -> int:
        return self.state.slots

    @property
    def source_len(self) -> int:
        return self.state.source_len

    @property
    def target_len(self) -> int:
        return self.state.target_len

    @property
    def nbytes(self) -> int:
        return sum(layer.nbytes for layer in self.layers)

    def arrays(self) -> list[mx.array]:
        """The buffers, to evaluate after a forward whose output is not needed."""
        return [a for layer in self.layers for a in (layer.keys, layer.values) if a is not None]


class InterleavedCache:
    """The baseline the dual cache is measured against: one ordinary mlx-lm cache.

    Source and target tokens go into one sequence in the order they are read and
    written, with consecutive positions, every token attending to all before it
    (so a source word read after a target word sees it). Same interface as
    :class:`DualStreamCache`; phi has no meaning here and is ignored.
    """

    def __init__(self, num_layers: int) -> None:
        self.layers = [KVCache() for _ in range(num_layers)]
        self.stream = Stream.SOURCE
        self.source_len = 0
        self.target_len = 0

    def use(self, stream: Stream) -> None:
        self.stream = stream

    def set_phi(self, phi: int) -> None:
        """Ignored: target tokens take the next position, as in any chat."""

    def commit(self, n_tokens: int) -> None:
        if self.stream is Stream.SOURCE:
            self.source_len += n_tokens
        else:
            self.target_len += n_tokens
        if any(layer.offset != self.slots for layer in self.layers):
            raise RuntimeError("the model did not write every layer of the cache")

    def rollback(self, n_tokens: int) -> None:
        """Take the last ``n_tokens`` target tokens back out (they must be the last)."""
        if n_tokens > self.target_len:
            raise RuntimeError("rollback can only remove target tokens")
        for layer in self.layers:
            layer.trim(n_tokens)
        self.target_len -= n_tokens

    def truncate(self, slots: int) -> None:
        """Keep the first ``slots`` slots; only back to the source prefix."""
        for layer in self.layers:
            layer.trim(layer.offset - slots)
        self.source_len, self.target_len = slots, 0

    @property
    def slots(self) -> int:
        return self.source_len + self.target_len

    @property
    def nbytes(self) -> int:
        return sum(layer.nbytes for layer in self.layers)

    def arrays(self) -> list[mx.array]:
        return [a for layer in self.layers for a in (layer.keys, layer.values) if a is not None]
