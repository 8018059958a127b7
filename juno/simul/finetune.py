"""Streaming-aware fine-tuning: LoRA trained under the engine's own masks and positions.

The paper's recipe. An off-the-shelf instruct model has only seen whole
sentences; in the engine, a target token sees a source *prefix* and sits at
positions that start at phi. Training on what the engine does makes the model
used to it: one (source, translation) pair becomes one sequence whose target
rows see exactly the source tokens the wait-k schedule had read when the
engine fed them, at the engine's positions.

The schedule is not re-derived here: :func:`make_example` drives the same
:class:`~juno.simul.policy.WaitK` stepper as the engine, teacher-forced with
the reference tokens, so word boundaries, the assistant header, the held
first token of each word and the end-of-turn read all match inference (a test
checks the training logits against the engine's, row by row).

One training step is two model calls (as in the engine's reference pass):
the source stream at positions 0..S-1 (causal), then the target stream at
positions phi.. with the paper's mask. The adapter is saved in mlx-lm's format
(``adapter_config.json`` + ``adapters.safetensors``), so ``mlx_lm.load(...,
adapter_path=...)`` and ``mlx_lm.fuse`` take it as it is.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import mlx.core as mx
import mlx.nn as nn

from juno.errors import JunoError
from juno.models.loading import ADAPTER_CONFIG
from juno.simul.engine import SentenceText
from juno.simul.options import Phi, phi_gap
from juno.simul.policy import Action, WaitK
from juno.simul.prompt import StreamPrompt, encode_word

ADAPTER_WEIGHTS = "adapters.safetensors"
# LoRA on attention only: what the engine changes is what each query sees and where.
LORA_KEYS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj")


@dataclass(frozen=True)
class Example:
    """One sentence pair laid out as the engine would stream it."""

    source: tuple[int, ...]  # prefix, source words, footer (positions 0..S-1)
    target: tuple[int, ...]  # assistant header then translation tokens (positions phi..)
    seen: tuple[int, ...]  # per target row: source tokens it attends to
    labels: tuple[int, ...]  # next token after each row from the header's last one on
    phi: int
    k: int

    @property
    def label_start(self) -> int:
        """Row whose logits predict ``labels[0]`` (the header's last row)."""
        return len(self.target) - len(self.labels) + 1


def _pieces(tokenizer: Any, tokens: Sequence[int]) -> list[str]:
    """The text each token adds, decoded in context (as the engine does)."""
    text = SentenceText(tokenizer)
    return [text.add(token) for token in tokens]


def make_example(
    tokenizer: Any,
    prompt: StreamPrompt,
    source_words: Sequence[str],
    target_tokens: Sequence[int],
    end_token: int,
    k: int,
    phi: Phi = "source",
    max_tokens_per_word: int = 50,
) -> Example:
    """Lay out ``source_words`` → ``target_tokens`` (then ``end_token``) under wait-``k``.

    The policy stepper runs the engine's schedule with the reference tokens in
    place of sampled ones; a reference longer than the runaway guard allows is cut
    where the engine would stop.
    """
    if not source_words:
        raise JunoError("a training pair needs source words")
    policy = WaitK(k=k, max_tokens_per_word=max_tokens_per_word)
    policy.add_source(len(source_words))
    policy.end_source()
    labels = [*target_tokens, end_token]
    pieces = _pieces(tokenizer, target_tokens) + [""]
    source = list(prompt.prefix)
    target: list[int] = []
    seen: list[int] = []
    used: list[int] = []
    gap = phi_gap(phi)
    start_phi = 0
    while True:
        action = policy.next_action()
        if action is Action.READ:
            source += encode_word(tokenizer, source_words[policy.read], policy.read == 0)
            policy.on_read()
        elif action is Action.READ_END:
            source += prompt.footer
            policy.on_read_end()
        elif action is Action.START:
            start_phi = phi if gap is None else len(source) + gap
            target += prompt.header
            seen += [len(source)] * len(prompt.header)
            policy.on_started()
        elif action is Action.FEED:
            target.append(policy.held)
            seen.append(len(source))
            policy.on_fed()
        elif action is Action.SAMPLE:
            i = len(used)
            used.append(labels[i])
            policy.on_token(labels[i], pieces[i], is_eos=i == len(labels) - 1)
        elif action is Action.FINISH:
            break
        else:  # WAIT cannot happen: the whole source is available
            raise AssertionError(f"unexpected {action} with the whole source given")
    # The engine never feeds the last sampled token (EOS, or a word past the limit).
    return Example(
        source=tuple(source),
        target=tuple(target),
        seen=tuple(seen),
        labels=tuple(used),
        phi=int(start_phi),
        k=k,
    )


def make_offline_example(
    tokenizer: Any,
    prompt: StreamPrompt,
    source_words: Sequence[str],
    target_tokens: Sequence[int],
    end_token: int,
    max_tokens_per_word: int = 50,
) -> Example:
    """The pair as an ordinary chat: the offline layout.

    Every target row sees the whole source (footer included) and the target's
    positions continue right after it, so the two streams are one causal
    sequence: what offline translation computes. Mixing these into training
    keeps the adapter from unlearning whole-sentence translation.
    """
    return make_example(
        tokenizer,
        prompt,
        source_words,
        target_tokens,
        end_token,
        k=len(source_words) + 1,  # nothing is written before the footer is read
        phi="source",
        max_tokens_per_word=max_tokens_per_word,
    )


class _LayoutCache:
    """A plain per-layer cache with a set RoPE offset and a set mask (differentiable)."""

    def __init__(self) -> None:
        self.offset, self.mask = 0, "causal"
        self.keys: mx.array | None = None
        self.values: mx.array | None = None

    def update_and_fetch(self, keys: mx.array, values: mx.array) -> tuple[mx.array, mx.array]:
        if self.keys is None:
            self.keys, self.values = keys, values
        else:
            self.keys = mx.concatenate([self.keys, keys], axis=2)
            self.values = mx.concatenate([self.values, values], axis=2)
        return self.keys, self.values

    def make_mask(self, n: int, return_array: bool = False, window_size: int | None = None):
        return self.mask


def streaming_logits(model: Any, example: Example) -> mx.array:
    """Target-row logits (T, V) of ``example`` in one pass over each stream."""
    caches = [_LayoutCache() for _ in model.layers]
    model(mx.array([example.source]), cache=caches)
    S, T = len(example.source), len(example.target)
    rows = mx.arange(T)[:, None]
    sees_source = mx.arange(S)[None] < mx.array(example.seen)[:, None]
    mask = mx.concatenate([sees_source, mx.arange(T)[None] <= rows], axis=1)
    for c in caches:
        c.offset, c.mask = example.phi, mask
    return model(mx.array([example.target]), cache=caches)[0]


def streaming_loss(model: Any, example: Example) -> mx.array:
    """Mean cross-entropy of the translation tokens (and the end) under the layout."""
    logits = streaming_logits(model, example)
    start = example.label_start - 1
    rows = logits[start : start + len(example.labels)]
    return nn.losses.cross_entropy(rows, mx.array(example.labels)).mean()


@dataclass(frozen=True)
class TuneOptions:
    """Fine-tuning settings (recorded in the adapter's config)."""

    steps: int = 400
    learning_rate: float = 1e-4
    rank: int = 8
    scale: float = 20.0  # LoRA output scale (mlx-lm's convention)
    max_grad_norm: float = 1.0  # gradients are scaled down to this global norm; 0: no clipping
    layers: int = -1  # last N transformer blocks get adapters; -1: all
    ks: tuple[int, ...] = (2, 3, 4, 5, 6)  # wait-k of each pair, drawn uniformly
    seed: int = 0
    phi: str = "source+32"
    examples: int = 0  # few-shot turns in the prompt while training (use the same at inference)
    offline_share: float = 0.0  # share of steps that lay the pair out offline (whole sentence)


@dataclass
class TuneReport:
    """What a run cost and how the loss moved."""

    steps: int = 0
    seconds: float = 0.0
    tokens: int = 0  # source + target tokens processed
    first_loss: float = math.nan  # mean over the first tenth of the steps
    last_loss: float = math.nan  # mean over the last tenth
    held_out_before: float = math.nan
    held_out_after: float = math.nan
    peak_memory_gb: float = 0.0
    losses: list[float] = field(default_factory=list)

    @property
    def seconds_per_step(self) -> float:
        return self.seconds / self.steps if self.steps else 0.0


def add_lora(model: Any, options: TuneOptions) -> dict[str, Any]:
    """Freeze ``model`` and give its attention LoRA adapters; mlx-lm's adapter config."""
    from mlx_lm.tuner.utils import linear_to_lora_layers

    num_layers = len(model.layers) if options.layers < 0 else options.layers
    params = {"rank": options.rank, "scale": options.scale, "dropout": 0.0, "keys": list(LORA_KEYS)}
    model.freeze()
    linear_to_lora_layers(model, num_layers, params)
    return {"fine_tune_type": "lora", "num_layers": num_layers, "lora_parameters": params}


def held_out_loss(model: Any, examples: Sequence[Example]) -> float:
    total = 0.0
    for ex in examples:
        loss = streaming_loss(model, ex)
        mx.eval(loss)
        total += loss.item()
    return total / len(examples) if examples else math.nan


def train(
    model: Any,
    train_set: Sequence[Callable[[int | None], Example]],
    held_out: Sequence[Example],
    options: TuneOptions,
    on_step: Callable[[int, float], None] | None = None,
) -> TuneReport:
    """Train the model's adapters (see :func:`add_lora`) for ``options.steps`` steps.

    ``train_set`` holds one builder per pair: called with a k, it lays the pair
    out under wait-k; called with None, in the offline layout (see
    :func:`make_offline_example`). Pairs are visited in a seeded shuffled
    order, each with a k drawn from ``options.ks``, or offline for a share
    ``options.offline_share`` of the steps.
    """
    import mlx.optimizers as optim

    if not train_set:
        raise JunoError("no training pairs")
    rng = random.Random(options.seed)
    report = TuneReport(held_out_before=held_out_loss(model, held_out))
    optimizer = optim.Adam(learning_rate=options.learning_rate)
    step_fn = nn.value_and_grad(model, streaming_loss)
    order: list[int] = []
    mx.reset_peak_memory()
    start = time.perf_counter()
    for step in range(options.steps):
        if not order:
            order = list(range(len(train_set)))
            rng.shuffle(order)
        offline = options.offline_share > 0 and rng.random() < options.offline_share
        example = train_set[order.pop()](None if offline else rng.choice(options.ks))
        loss, grads = step_fn(model, example)
        if options.max_grad_norm > 0:
            grads, _ = optim.clip_grad_norm(grads, options.max_grad_norm)
        optimizer.update(model, grads)
        mx.eval(model.trainable_parameters(), optimizer.state, loss)
        report.losses.append(loss.item())
        report.tokens += len(example.source) + len(example.target)
        if on_step is not None:
            on_step(step, report.losses[-1])
    report.seconds = time.perf_counter() - start
    report.steps = options.steps
    tenth = max(1, options.steps // 10)
    report.first_loss = sum(report.losses[:tenth]) / len(report.losses[:tenth])
    report.last_loss = sum(report.losses[-tenth:]) / len(report.losses[-tenth:])
    report.peak_memory_gb = mx.get_peak_memory() / 1e9
    report.held_out_after = held_out_loss(model, held_out)
    return report


def save_adapter(
    model: Any, folder: Path, lora_config: dict[str, Any], options: TuneOptions, info: dict
) -> None:
    """Write the adapter in mlx-lm's format, with Juno's training record beside it."""
    from mlx.utils import tree_flatten

    folder.mkdir(parents=True, exist_ok=True)
    weights = dict(tree_flatten(model.trainable_parameters()))
    mx.save_safetensors(str(folder / ADAPTER_WEIGHTS), weights)
    config = {**lora_config, "juno": {"options": asdict(options), **info}}
    (folder / ADAPTER_CONFIG).write_text(json.dumps(config, indent=2) + "\n")
