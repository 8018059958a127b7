"""The dual-stream cache reproduces the paper's attention exactly on unmodified models.

Tiny random-weight qwen2, qwen3 and llama models run an incremental schedule
(reads and writes interleaved, a multi-token header chunk, a rollback, a
sentence reset) through :class:`DualStreamCache`; every target logit row must
equal an independent reference forward pass with the paper's mask and grouped
positions, and greedy tokens must agree.

The reference. ``mx.fast.rope`` takes one offset per call (checked below), so
one call cannot give the source and the target their separate positions.
The reference therefore runs two calls over a plain concatenating cache:
all source tokens at positions 0..S-1 (causal), then all target tokens at
positions phi.. with an explicit mask where target j sees source[0:s_j] and
target[0..j]. That equals one pass over the concatenation with the full
paper mask because source rows never attend to target columns: layer by
layer, the source keys and values do not depend on the target, so computing
them first is exact, and the target rows then see exactly the keys and values
the one-pass computation would give them.
"""

from __future__ import annotations

import mlx.core as mx
import pytest
from mlx_lm.models import gpt2, llama, qwen2, qwen3

from juno.errors import JunoError
from juno.simul.cache import DualStreamCache, Stream
from juno.simul.support import check_supported

VOCAB = 97
TOLERANCE = 1e-4


def tiny_model(kind: str):
    mx.random.seed(7)
    common = dict(
        model_type=kind,
        hidden_size=64,
        num_hidden_layers=3,
        intermediate_size=96,
        num_attention_heads=4,
        num_key_value_heads=2,
        rms_norm_eps=1e-5,
        vocab_size=VOCAB,
    )
    if kind == "qwen2":
        model = qwen2.Model(qwen2.ModelArgs(**common))
    elif kind == "qwen3":
        args = qwen3.ModelArgs(
            **common,
            max_position_embeddings=4096,
            head_dim=16,
            tie_word_embeddings=False,
            rope_theta=10000.0,
        )
        model = qwen3.Model(args)
    else:
        model = llama.Model(llama.ModelArgs(**common, rope_theta=10000.0))
    model.set_dtype(mx.float32)
    mx.eval(model.parameters())
    return model


class ReferenceCache:
    """A plain cache: concatenates keys, RoPE at a set offset, a set mask."""

    def __init__(self, offset: int, mask):
        self.offset, self.mask = offset, mask
        self.keys = self.values = None

    def update_and_fetch(self, keys, values):
        if self.keys is None:
            self.keys, self.values = keys, values
        else:
            self.keys = mx.concatenate([self.keys, keys], axis=2)
            self.values = mx.concatenate([self.values, values], axis=2)
        return self.keys, self.values

    def make_mask(self, n, return_array=False, window_size=None):
        return self.mask


def reference_logits(model, source, target, phi, seen):
    """Target logits (T, V) of the paper's pattern, computed from scratch."""
    S, T = len(source), len(target)
    caches = [ReferenceCache(0, "causal") for _ in model.layers]
    model(mx.array([source]), cache=caches)
    rows = mx.arange(T)[:, None]
    sees_source = mx.arange(S)[None] < mx.array(seen)[:, None]
    sees_target = mx.arange(T)[None] <= rows
    mask = mx.concatenate([sees_source, sees_target], axis=1)
    for c in caches:
        c.offset, c.mask = phi, mask
    return model(mx.array([target]), cache=caches)[0]


class Run:
    """Drives the dual-stream cache and records what the reference needs."""

    def __init__(self, model, phi):
        self.model, self.phi = model, phi
        self.cache = DualStreamCache(len(model.layers))
        self.source, self.target, self.seen, self.rows = [], [], [], []
        self.used_phi = None

    def read(self, tokens):
        self.cache.use(Stream.SOURCE)
        self.model(mx.array([tokens]), cache=self.cache.layers)
        self.cache.commit(len(tokens))
        self.source += tokens

    def write(self, tokens):
        if not self.target:
            self.used_phi = len(self.source) if self.phi == "source" else self.phi
            self.cache.set_phi(self.used_phi)
        self.cache.use(Stream.TARGET)
        out = self.model(mx.array([tokens]), cache=self.cache.layers)[0]
        self.cache.commit(len(tokens))
        for i, t in enumerate(tokens):
            self.target.append(t)
            self.seen.append(len(self.source))
            self.rows.append(out[i])

    def greedy(self):
        token = int(mx.argmax(self.rows[-1]).item())
        self.write([token])
        return token

    def rollback(self, n):
        self.cache.rollback(n)
        del self.target[-n:], self.seen[-n:], self.rows[-n:]

    def reset(self, prefix_len):
        self.cache.truncate(prefix_len)
        self.source = self.source[:prefix_len]
        self.target, self.seen, self.rows = [], [], []

    def check(self, phi=None, seen=None):
        """Max |incremental - reference| over target rows; greedy agreement."""
        ref = reference_logits(
            self.model,
            self.source,
            self.target,
            self.used_phi if phi is None else phi,
            self.seen if seen is None else seen,
        )
        diff = mx.abs(mx.stack(self.rows) - ref).max().item()
        ref_greedy = mx.argmax(ref, axis=-1).tolist()
        return diff, ref_greedy


HEADER = [90, 91, 92]  # a multi-token chunk, like the assistant header
PREFIX = [1, 2, 3, 4, 5, 6]


def first_sentence(run: Run) -> list[int]:
    """Reads and writes interleaved, a rollback; the greedy-chosen positions."""
    run.read(PREFIX + [10, 11])
    run.read([12])
    run.write(HEADER)
    chosen = [len(run.target)]
    run.greedy()
    run.read([13, 14])
    chosen.append(len(run.target))
    run.greedy()
    token = run.greedy()  # starts the next word ...
    run.rollback(1)  # ... so it is taken back out of the target cache
    run.read([15])  # source after target tokens: the explicit-mask path
    run.write([token])  # and produced again after the read
    chosen.append(len(run.target))
    run.greedy()
    run.read([16, 17, 18])
    run.read([19])
    chosen += [len(run.target), len(run.target) + 1]
    run.greedy()
    run.greedy()
    return chosen


def second_sentence(run: Run) -> list[int]:
    run.reset(len(PREFIX))
    run.read([20, 21, 22, 23])
    run.write(HEADER)
    chosen = [len(run.target)]
    run.greedy()
    run.read([24])
    chosen += [len(run.target), len(run.target) + 1]
    run.greedy()
    run.greedy()
    return chosen


def assert_exact(run: Run, chosen: list[int]) -> None:
    diff, ref_greedy = run.check()
    assert diff <= TOLERANCE, f"max abs logit diff {diff:.2e}"
    # Each greedily written token is the argmax of the reference row before it.
    for j in chosen:
        assert run.target[j] == ref_greedy[j - 1]


def test_rope_takes_one_offset_per_call():
    """Why the reference needs two calls: no per-token RoPE offsets."""
    x = mx.zeros((1, 2, 4, 8))
    with pytest.raises(ValueError):
        mx.fast.rope(x, 8, traditional=False, base=1e4, scale=1.0, offset=mx.array([0, 5, 6, 7]))


@pytest.mark.parametrize("kind", ["qwen2", "qwen3", "llama"])
@pytest.mark.parametrize("phi", [0, 1024, "source"])
def test_incremental_equals_reference(kind, phi):
    model = tiny_model(kind)
    assert check_supported(model) == 3
    run = Run(model, phi)
    assert_exact(run, first_sentence(run))
    prefix_slots = len(PREFIX)
    assert_exact(run, second_sentence(run))
    # After the reset only the prefix and the second sentence are cached.
    assert run.cache.slots == prefix_slots + 5 + len(run.target)


def test_check_catches_a_wrong_mask_or_a_wrong_phi():
    """Negative control: the comparison is sensitive to the pattern and to phi."""
    run = Run(tiny_model("qwen2"), "source")
    first_sentence(run)
    good, _ = run.check()
    all_source = [len(run.source)] * len(run.target)  # targets see later source
    wrong_mask, _ = run.check(seen=all_source)
    wrong_phi, _ = run.check(phi=run.used_phi + 1)
    assert good <= TOLERANCE
    assert wrong_mask > 100 * TOLERANCE
    assert wrong_phi > 100 * TOLERANCE


def test_rollback_only_takes_target_tokens_from_the_end():
    run = Run(tiny_model("llama"), 0)
    run.read([1, 2, 3])
    run.write([4, 5])
    run.read([6])
    with pytest.raises(RuntimeError):
        run.cache.rollback(1)


def test_models_it_cannot_handle_are_refused_by_type():
    sliding = llama.Model(
        llama.ModelArgs(
            model_type="llama",
            hidden_size=32,
            num_hidden_layers=2,
            intermediate_size=64,
            num_attention_heads=2,
            rms_norm_eps=1e-5,
            vocab_size=VOCAB,
            layer_types=["full_attention", "sliding_attention"],
            sliding_window=8,
        )
    )
    with pytest.raises(JunoError, match="'llama'.*RotatingKVCache"):
        check_supported(sliding)
    learned_positions = gpt2.Model(
        gpt2.ModelArgs(
            model_type="gpt2",
            n_ctx=64,
            n_embd=32,
            n_head=2,
            n_layer=1,
            n_positions=64,
            layer_norm_epsilon=1e-5,
            vocab_size=VOCAB,
        )
    )
    with pytest.raises(JunoError, match="model type 'gpt2'"):
        check_supported(learned_positions)
