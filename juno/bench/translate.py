"""``juno bench translate``: the streaming translator measured in one run.

Parts (``--parts``, all by default), on the first FLORES-200 dev sentences:

- cost: per-source-word compute vs the word's position in long sentences
  (flat per-word cost: words 31-40 against words 1-10);
- baseline: total compute vs re-translation, which re-encodes the whole source
  prefix and re-generates its translation from scratch each time a word arrives;
- speed: decode tokens/s vs mlx-lm's ``stream_generate`` (same model, dtype,
  prompt length);
- quality: BLEU, chrF, AL and LAAL (source words) for wait-k and phi against
  offline whole-sentence translation, en->fr and en->de;
- memory: peak memory and cache size after 10 and after N sentences of one session;
- speculative: drafting writers against the plain one (``juno.simul.speculative``);
- targets: several target languages as one batch against each alone
  (:mod:`juno.bench.targets`);
- catch-up: a writer behind a speaker, reading lazily against catching up
  (:mod:`juno.bench.catch_up`).

On 2 shared CPU cores the 0.5B model decodes a few tokens per second, so the
defaults are small (roughly 45 minutes on 2 idle cores, over an hour when they
are shared); raise ``--sentences`` for tighter BLEU.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from juno.config import Config, add_flag
from juno.errors import JunoError
from juno.paths import flores_dev, flores_pairs

DEFAULT_LLM = "qwen2.5-coder-0.5b-instruct"
PARTS = ("cost", "baseline", "speed", "quality", "memory", "speculative", "targets", "catch-up")


def _policy(
    line: bool, end: bool, examples: int, ngram: int, mark: bool, end_reads: int = 0
) -> dict[str, Any]:
    return {
        "one_line": line,
        "read_on_end": end,
        "examples": examples,
        "no_repeat_ngram": ngram,
        "read_on_sentence_end": mark,
        "end_reads": end_reads,
    }


# Writer policies, as translate-config overrides: the paper's plain wait-k, then the
# guards added one at a time so each contribution is measured; "juno" is the default.
# Each sets every key it measures, so a new config default does not change a row.
POLICIES: dict[str, dict[str, Any]] = {
    "plain": _policy(False, False, 0, 0, False),
    # The paper's plain wait-k on one ordinary cache, source and target in arrival order.
    "interleaved": {**_policy(False, False, 0, 0, False), "interleaved": True},
    "one-line": _policy(True, False, 0, 0, False),
    "guarded": _policy(True, True, 0, 0, False),
    "no-repeat": _policy(True, True, 0, 4, False),
    "primed": _policy(True, True, 2, 0, False),
    "no-mark-read": _policy(True, True, 2, 4, False),
    "4-examples": _policy(True, True, 4, 4, False),
    "1-example": _policy(True, True, 1, 4, True),
    # The default before end_reads: an early end reads on with no limit.
    "mark-read": _policy(True, True, 2, 4, True),
    "end-reads-2": _policy(True, True, 2, 4, True, end_reads=2),
    "juno": _policy(True, True, 2, 4, True, end_reads=1),
    # The guards of "mark-read" without example turns: for a model tuned with `juno tune`
    # (which trains without them), e.g. --set translate.adapter=FOLDER.
    "tuned": _policy(True, True, 0, 4, True),
}

console = Console()
wide = Console(width=200)  # (Console.print's own width cannot exceed the console's)


def configure(p: argparse.ArgumentParser) -> None:
    add_flag(
        p, "--model", key="translate.model", default=DEFAULT_LLM, help=f"LLM spec ({DEFAULT_LLM})"
    )
    p.add_argument("--parts", default=",".join(PARTS), help=f"comma list of {', '.join(PARTS)}")
    p.add_argument("--sentences", type=int, default=5, help="quality: sentences per setting")
    p.add_argument("--pairs", default="en-fr,en-de", help="quality: language pairs")
    p.add_argument("--ks", default="1,3,5,7", help="quality: wait-k values")
    p.add_argument("--phis", default="0,1024,source", help="quality: phi values")
    p.add_argument(
        "--policies",
        default="plain,guarded",
        help=f"quality: writer policies ({', '.join(POLICIES)})",
    )
    p.add_argument(
        "--settings",
        help="quality: explicit POLICY/PHI/K runs, comma-separated (e.g. plain/source/5,"
        "juno/source+32/3); replaces the product of --policies, --phis and --ks; "
        "'none' for the offline rows only",
    )
    p.add_argument(
        "--hyps",
        type=Path,
        help="quality: also write every row's translations to this JSONL file "
        "(one line per pair and setting)",
    )
    p.add_argument(
        "--offline-examples",
        default="",
        help="quality: example-turn counts to translate offline with (default: the config's; "
        "ratios are to the config's)",
    )
    p.add_argument(
        "--no-offline",
        action="store_true",
        help="quality: skip the offline translations (no ratio column)",
    )
    add_flag(
        p,
        "--wait-k",
        key="translate.wait_k",
        type=int,
        help="k for cost, baseline and memory (translate.wait_k)",
    )
    p.add_argument(
        "--speed-rounds", type=int, default=5, help="speed: rounds of the decoders back to back"
    )
    p.add_argument("--cost-sentences", type=int, default=1, help="cost: sentences of 40+ words")
    p.add_argument("--baseline-sentences", type=int, default=1, help="baseline: 30+-word ones")
    p.add_argument("--memory-sentences", type=int, default=200, help="memory: session length")
    p.add_argument("--memory-words", type=int, default=4, help="memory: words kept per sentence")
    p.add_argument(
        "--draft-model",
        default="qwen2.5-coder-0.5b-instruct",
        help="speculative: the small model that drafts (and is measured alone)",
    )
    p.add_argument("--spec-sentences", type=int, default=30, help="speculative: FLORES sentences")
    p.add_argument(
        "--spec-start", type=int, default=100, help="speculative: first FLORES dev line (0-based)"
    )
    p.add_argument("--spec-ks", default="3,5", help="speculative: wait-k values")
    p.add_argument(
        "--shapes",
        help="speed: random-weight models of these Qwen2.5 shapes (0.5b,1.5b,3b,7b) instead "
        "of --model, in bf16 on a GPU (float32 on the CPU), with --model's tokenizer or "
        "--tokenizer's: for machines without the weights",
    )
    p.add_argument(
        "--tokenizer", type=Path, help="speed with --shapes: a folder with tokenizer.json"
    )
    p.add_argument("--targets", default="fr,de,es", help="targets: the target languages")
    p.add_argument("--targets-sentences", type=int, default=10, help="targets: FLORES sentences")
    p.add_argument(
        "--targets-start", type=int, default=0, help="targets: first FLORES dev line (0-based)"
    )
    p.add_argument("--catch-up-sentences", type=int, default=30, help="catch-up: FLORES sentences")
    p.add_argument(
        "--catch-up-start", type=int, default=100, help="catch-up: first FLORES dev line (0-based)"
    )
    p.add_argument(
        "--catch-up-rate", type=float, default=2.5, help="catch-up: words spoken per second"
    )
    p.add_argument(
        "--mac-cost-ratio",
        type=float,
        default=0.08,
        help="speculative: draft/verify cost per token assumed for the Mac projection "
        "(0.5B drafting for a 7B-4bit writer)",
    )


def _with(cfg: Config, **translate: Any) -> Config:
    """``cfg`` with translate keys replaced."""
    return dataclasses.replace(cfg, translate=dataclasses.replace(cfg.translate, **translate))


def _translator(
    model, tokenizer, cfg: Config, target: str, cache=None, processors=(), **changes: Any
):
    """A translator with the config's options from English into ``target``, changed by
    ``changes`` (option fields); ``cache`` replaces the dual-stream cache; ``processors``:
    logits processors (mlx-lm's signature)."""
    from juno.simul.engine import StreamingTranslator
    from juno.simul.options import TranslateOptions
    from juno.simul.speculative import load_drafter

    # Sentences are given whole: read on the wait-k schedule, not all at once.
    changes = {"catch_up": False, **changes}
    options = dataclasses.replace(
        TranslateOptions.from_config(cfg, target), source_language="en", **changes
    )
    drafter = load_drafter(options, cfg, tokenizer)
    extra = {"logits_processors": processors} if processors else {}
    if cache is not None:
        extra["cache"] = cache
    return StreamingTranslator(model, tokenizer, options, drafter=drafter, **extra)


def _offline(model, tokenizer, cfg: Config, text: str, target: str, max_tokens: int | None = None):
    from juno.simul.offline import translate_offline

    return translate_offline(model, tokenizer, cfg, text, "en", target, max_tokens)


def _table(title: str, columns: list[str]) -> Table:
    t = Table(title=title, title_justify="left")
    for i, c in enumerate(columns):
        t.add_column(c, justify="left" if i == 0 else "right")
    return t


# -- (a) per-word cost ----------------------------------------------------------


@dataclass
class WordCost:
    seconds: list[float]  # compute after each source word arrives
    tokens: list[int]  # tokens encoded (both streams) after each word
    total_s: float  # the whole sentence, its end included
    total_tokens: int


def _stream_live(translator, words: list[str]) -> WordCost:
    """Feed one word at a time, as a live speaker; time each step."""
    stats = translator.stats
    seconds, tokens = [], []
    for word in words:
        before = stats.source_tokens + stats.target_tokens
        start = time.perf_counter()
        translator.feed(word)
        translator.step()
        seconds.append(time.perf_counter() - start)
        tokens.append(stats.source_tokens + stats.target_tokens - before)
    before = stats.source_tokens + stats.target_tokens
    start = time.perf_counter()
    translator.finish()
    end_s = time.perf_counter() - start
    end_tokens = stats.source_tokens + stats.target_tokens - before
    return WordCost(seconds, tokens, sum(seconds) + end_s, sum(tokens) + end_tokens)


def part_cost(model, tokenizer, cfg: Config, k: int, n_sentences: int) -> list[WordCost]:
    long = [s for s in flores_dev("en") if len(s.split()) >= 40][:n_sentences]
    translator = _translator(model, tokenizer, cfg, "fr", wait_k=k)
    costs = [_stream_live(translator, s.split()) for s in long]
    table = _table(
        f"(a) compute per source word vs position (en->fr, wait-{k}, {len(long)} sentences "
        f"of 40+ words, {', '.join(str(len(s.split())) for s in long)} words)",
        ["source words", "ms / word", "tokens encoded / word", "ms / token"],
    )
    means = {}
    for lo in range(0, 40, 10):
        secs = [c.seconds[i] for c in costs for i in range(lo, lo + 10)]
        toks = [c.tokens[i] for c in costs for i in range(lo, lo + 10)]
        means[lo] = statistics.mean(secs)
        table.add_row(
            f"{lo + 1}-{lo + 10}",
            f"{1000 * means[lo]:.0f}",
            f"{statistics.mean(toks):.2f}",
            f"{1000 * sum(secs) / max(1, sum(toks)):.0f}",
        )
    console.print(table)
    ratio = means[30] / means[0]
    verdict = "ok" if ratio <= 1.3 else "OVER"
    console.print(f"words 31-40 cost {ratio:.2f}x words 1-10 (target <= 1.3x): {verdict}\n")
    return costs


# -- (b) re-translation baseline ----------------------------------------------


def _retranslate(model, tokenizer, cfg: Config, words: list[str]) -> tuple[float, int]:
    """Re-encode the prefix and re-generate its translation at every word."""
    total_s, total_tokens = 0.0, 0
    for n in range(1, len(words) + 1):
        text = " ".join(words[:n])
        # Cap like the streaming runaway guard: a translation of about the source's length.
        cap = 2 * len(tokenizer.encode(text)) + 10
        offline = _offline(model, tokenizer, cfg, text, "fr", max_tokens=cap)
        total_s += offline.seconds
        total_tokens += offline.tokens
    return total_s, total_tokens


def part_baseline(model, tokenizer, cfg: Config, k: int, n_sentences: int) -> None:
    # The shortest 30+-word sentences among the first 100: re-translation is slow.
    first = flores_dev("en", 100)
    chosen = sorted((s for s in first if len(s.split()) >= 30), key=lambda s: len(s.split()))
    chosen = chosen[:n_sentences]
    table = _table(
        f"(b) total compute: streaming (wait-{k}) vs re-translation from scratch per word",
        ["words", "streaming s", "re-translation s", "speed-up", "tokens: stream", "re-transl."],
    )
    ratios = []
    for sentence in chosen:
        words = sentence.split()
        translator = _translator(model, tokenizer, cfg, "fr", wait_k=k)
        ours = _stream_live(translator, words)
        base_s, base_tokens = _retranslate(model, tokenizer, cfg, words)
        ratios.append(base_s / ours.total_s)
        table.add_row(
            str(len(words)),
            f"{ours.total_s:.1f}",
            f"{base_s:.1f}",
            f"{ratios[-1]:.1f}x",
            str(ours.total_tokens),
            str(base_tokens),
        )
    console.print(table)
    verdict = "ok" if min(ratios) >= 5 else "UNDER"
    console.print(f"streaming needs {min(ratios):.1f}x less compute (target >= 5x): {verdict}\n")


# -- (c) decode speed -----------------------------------------------------------


def _decode_rate(stamps: list[float]) -> float:
    """Tokens per second after the first token (as mlx-lm counts generation speed)."""
    return (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 else 0.0


def _no_ending(tokenizer, vocab: int):
    """A logits processor (mlx-lm's signature) that bans EOS and line breaks: a model with
    random weights then writes to the word limit, so the decode runs long enough to time."""
    import mlx.core as mx

    from juno.simul.engine import line_break_tokens

    ends = sorted(set(tokenizer.eos_token_ids) | line_break_tokens(tokenizer, vocab))
    banned = mx.zeros((vocab,), dtype=mx.bool_)
    banned[mx.array(ends)] = True
    return lambda tokens, logits: mx.where(banned, -mx.inf, logits)


class _Reference:
    """A logits processor (mlx-lm's signature) that has a model with random weights write
    given sentences, one per sentence of the session: their next token gets a large lead
    (the writer's rules still apply), and, past their end, the end of text does. Its words
    are then real words, of the lengths real translations have."""

    def __init__(self, tokenizer, sentences: list[str]) -> None:
        self.tokens = [tokenizer.encode(s, add_special_tokens=False) for s in sentences]
        self.end = tokenizer.eos_token_id
        self.sentence, self.last_len = -1, 0
        self.ids = None  # the vocabulary's ids, on the device (one op per token, timed)

    def __call__(self, history, logits):
        import mlx.core as mx

        if len(history) == 0 and (self.sentence < 0 or self.last_len):
            self.sentence += 1  # a new sentence's first token
        self.last_len = len(history)
        ref = self.tokens[min(self.sentence, len(self.tokens) - 1)]
        token = ref[len(history)] if len(history) < len(ref) else self.end
        if self.ids is None:
            self.ids = mx.arange(logits.shape[-1])
        return mx.where(self.ids == token, logits + 100.0, logits)


class _HostTimer:
    """Within ``with``: the time spent inside ``mx.async_eval`` and ``mx.eval``
    (dispatching a graph's kernels; on a CPU, also running them) and inside
    ``array.item()`` (waiting for the device), wrapped in place and restored after.
    Whatever else a decode loop spends between two tokens is its Python work."""

    NAMES = ("dispatch", "wait")

    def __init__(self) -> None:
        self.spent = dict.fromkeys(self.NAMES, 0.0)

    def _timed(self, name: str, f):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return f(*args, **kwargs)
            finally:
                self.spent[name] += time.perf_counter() - start

        return timed

    def __enter__(self) -> _HostTimer:
        import mlx.core as mx

        self._saved = (mx.async_eval, mx.eval, mx.array.item)
        mx.async_eval = self._timed("dispatch", mx.async_eval)
        mx.eval = self._timed("dispatch", mx.eval)
        mx.array.item = self._timed("wait", mx.array.item)
        return self

    def __exit__(self, *exc) -> None:
        import mlx.core as mx

        mx.async_eval, mx.eval, mx.array.item = self._saved

    def per_token(self, tokens) -> tuple[list[tuple[float, float, float, float]], int]:
        """Drain ``tokens`` (an iterator); per token after the first: (wall, dispatch,
        wait, the rest) seconds; and the number of tokens."""
        rows, n = [], 0
        before, last = dict(self.spent), time.perf_counter()
        for _ in tokens:
            now, n = time.perf_counter(), n + 1
            if n > 1:
                dispatch, wait = (self.spent[k] - before[k] for k in self.NAMES)
                wall = now - last
                rows.append((wall, dispatch, wait, wall - dispatch - wait))
            before, last = dict(self.spent), now
        return rows, n


def _breakdown(decoders: dict[str, Any], label: str) -> None:
    """One more round, untimed for the ratio: per token, where each decoder's time goes,
    over the first and the last quarter of its tokens (a loop slowing down on long decodes
    shows as a difference between the two)."""
    table = _table(
        f"(c) where a token's time goes, {label}: inside mx.async_eval / mx.eval (dispatch), "
        "inside .item() (waiting for the device), the rest (Python: graphs, rules, policy, "
        "text); microseconds per token, first / last quarter",
        ["decoder", "tokens", "wall", "dispatch", "wait", "Python"],
    )
    for name, tokens in decoders.items():
        with _HostTimer() as timer:
            rows, n = timer.per_token(tokens())
        quarter = max(1, len(rows) // 4)
        cells = []
        for column in range(4):
            first, last = (
                1e6 * statistics.fmean(r[column] for r in part)
                for part in (rows[:quarter], rows[-quarter:])
            )
            cells.append(f"{first:.0f} / {last:.0f}")
        table.add_row(name, str(n), *cells)
    console.print(table)


def part_speed(
    model, tokenizer, cfg: Config, label: str, random_weights: bool = False, rounds: int = 3
) -> float:
    """Same sentence, whole source read first: both decode after the same prompt, timed
    alike (wall time between tokens, the first excluded); the writer pipelined (its forward
    dispatched before the token is read back) and synced, in ``rounds`` rounds after one to
    warm up. ``random_weights``: both are kept from ending (see _no_ending). A shared
    host's speed drifts within seconds, so each round's ratio (the decoders run back to back)
    is reported too. Returns the median of those ratios."""
    from mlx_lm import stream_generate

    from juno import backend
    from juno.simul.engine import StreamingTranslator

    sentence = flores_dev("en", 4)[3]
    words = sentence.split()
    from juno.simul.offline import offline_prompt

    prompt = offline_prompt(tokenizer, cfg, sentence, "en", "fr")
    processors = [_no_ending(tokenizer, model.args.vocab_size)] if random_weights else []
    options = _translator(model, tokenizer, cfg, "fr", wait_k=len(words) + 1).options
    if random_weights:  # a long decode, for steady figures: 120 words of random text
        options = dataclasses.replace(options, max_words_per_sentence=120)
    rates: dict[str, list[float]] = {"pipelined": [], "synced": [], "mlx-lm": []}
    default = "pipelined" if backend.uses_gpu() else "synced"
    modes = ["pipelined", "synced"]
    modes.sort(key=lambda m: m == default)  # the default last, built as the product builds it

    def writer(pipelined: bool | None) -> StreamingTranslator:
        """A translator given the whole sentence (``pipelined`` None: the default)."""
        translator = StreamingTranslator(
            model, tokenizer, options, logits_processors=processors, pipelined=pipelined
        )
        translator.feed(words)
        translator.end_sentence()
        return translator

    def reference():
        return stream_generate(
            model, tokenizer, prompt, max_tokens=tokens, logits_processors=processors
        )

    tokens = 0
    order = [*modes, "mlx-lm"]
    for run in range(rounds + 1):  # the first round warms up
        # Each round starts with a different decoder: whichever runs first after a pause
        # (a GPU clocking up, a host's caches) is not always the same one.
        for name in order[run % len(order) :] + order[: run % len(order)]:
            if name == "mlx-lm":
                stamps = [time.perf_counter() for _ in reference()]
            else:
                translator = writer((name == "pipelined") if name != default else None)
                stamps = [time.perf_counter() for _ in translator.events()]
                tokens = len(stamps)
            if run:
                rates[name].append(_decode_rate(stamps))
    # The streaming prompt: system prefix, source words and end marker, assistant header.
    prompt_len = (
        translator.prefix_slots + translator.stats.source_tokens + len(translator.prompt.header)
    )
    table = _table(
        f"(c) decode speed against mlx-lm's stream_generate, {label}, {len(prompt)}-token "
        f"prompt ({prompt_len} in the streaming cache), {tokens} tokens, every writer rule "
        f"on, {rounds} rounds",
        ["decoder", "tok/s, best", "runs", "best / mlx-lm", "median per round"],
    )
    best = {name: max(r) for name, r in rates.items()}
    paired = {
        name: statistics.median(a / b for a, b in zip(runs, rates["mlx-lm"], strict=True))
        for name, runs in rates.items()
    }
    for name, runs in rates.items():
        decoder = "mlx-lm" if name == "mlx-lm" else f"juno, {name}"
        table.add_row(
            decoder, f"{best[name]:.1f}", ", ".join(f"{r:.1f}" for r in runs),
            f"{best[name] / best['mlx-lm']:.3f}x", f"{paired[name]:.3f}x",
        )  # fmt: skip
    console.print(table)
    _breakdown(
        {
            "juno, pipelined": lambda: writer(True).events(),
            "juno, synced": lambda: writer(False).events(),
            "mlx-lm": reference,
        },
        label,
    )
    ratio = paired[default]
    verdict = "ok" if ratio >= 0.97 else "UNDER"
    console.print(
        f"decode speed, {default} (the default here): {ratio:.3f}x mlx-lm, median of "
        f"{rounds} rounds (target >= 0.97x): {verdict}\n"
    )
    return ratio


def part_word_times(
    model, tokenizer, cfg: Config, label: str, sentences: int = 12, random_weights: bool = False
) -> None:
    """Per target word, the compute of writing it live at wait-3: each source word fed
    alone, the writer's work until it waits again shared among the words it wrote.
    One sentence first, untimed (the first calls of a model plan and compile).
    ``random_weights``: the model writes FLORES's French reference (see _Reference)."""
    sources = flores_dev("en", sentences + 1)
    processors = [_Reference(tokenizer, flores_dev("fr", sentences + 1))] if random_weights else []
    translator = _translator(model, tokenizer, cfg, "fr", processors=processors, wait_k=3)
    per_word: list[float] = []
    per_forward: list[float] = []
    per_token: list[float] = []  # each word's own time over its tokens
    for n, source in enumerate(sources):
        words = source.split()
        for i, word in enumerate(words):
            translator.feed([word])
            if i == len(words) - 1:
                translator.end_sentence()
            start, calls = time.perf_counter(), translator.stats.forwards
            written, last = 0, start
            for event in translator.events():
                if event.word is not None:
                    now = time.perf_counter()
                    if n:
                        per_token.append((now - last) / max(1, len(event.word.tokens)))
                    written, last = written + 1, now
            spent = time.perf_counter() - start
            if written and n:
                per_word += [spent / written] * written
            forwards = translator.stats.forwards - calls  # source chunks, target tokens, ahead
            if forwards and n:
                per_forward += [spent / forwards] * forwards
    if not per_word:
        console.print(f"(g) write time per word, {label}: no word written\n")
        return
    table = _table(
        f"(g) write time per target word, {label}, wait-3, {sentences} FLORES sentences live "
        "(after one untimed): each source word fed alone, the writer's work until it waits "
        "again shared among the words it wrote, and among its model calls; and each word's "
        "own time (from the word before, or the source word) over its tokens",
        ["per", "count", "median ms", "p90 ms", "p99 ms", "max ms", "p99 / median"],
    )
    rows = (
        ("target word", per_word), ("word ÷ its tokens", per_token), ("model call", per_forward)
    )  # fmt: skip
    for name, times in rows:
        ms = sorted(1000 * t for t in times)
        median = statistics.median(ms)
        p90, p99 = (ms[min(len(ms) - 1, int(q * len(ms)))] for q in (0.9, 0.99))
        table.add_row(
            name, str(len(ms)), f"{median:.1f}", f"{p90:.1f}", f"{p99:.1f}", f"{ms[-1]:.1f}",
            f"{p99 / median:.2f}",
        )  # fmt: skip
    console.print(table)


# -- (d) quality and latency ----------------------------------------------------


def _stream_sentences(translator, sources: list[str]) -> tuple[list[str], list[list[int]]]:
    """Each sentence given whole (read word by word by the policy) in one session."""
    from juno.eval.score import whole_words

    hyps, delays = [], []
    for source in sources:
        translator.feed(source.split())
        # A word written in parts ("9:" "30") counts once, when its last part is written.
        groups = whole_words(words := translator.finish(), [w.attached for w in words])
        hyps.append(" ".join("".join(w.text for w in group) for group in groups))
        delays.append([group[-1].delay for group in groups])
    return hyps, delays


def _score(
    hyps: list[str], delays: list[list[int]], sources: list[str], refs: list[str], target: str
):
    """Table cells (BLEU, chrF, AL, LAAL, words) and the BLEU signature, scored as
    ``juno eval`` scores (:func:`juno.eval.score.corpus_quality`)."""
    from juno.eval.metrics import average_lagging, corpus_mean, length_adaptive_average_lagging
    from juno.eval.score import corpus_quality

    quality = corpus_quality(hyps, refs, target)
    score, chrf = quality.bleu, quality.chrf
    sizes = [
        (d, len(s.split()), len(r.split())) for d, s, r in zip(delays, sources, refs, strict=True)
    ]
    al = corpus_mean([average_lagging(d, n, r) for d, n, r in sizes])
    laal = corpus_mean([length_adaptive_average_lagging(d, n, r) for d, n, r in sizes])
    words = statistics.mean(len(h.split()) for h in hyps)
    cells = [f"{score:.1f}", f"{chrf:.1f}", f"{al:.2f}", f"{laal:.2f}", f"{words:.1f}"]
    return cells, quality.bleu_signature


Setting = tuple[str, int | str, int]  # policy, phi, k


def quality_plan(args: argparse.Namespace) -> tuple[list[Setting], list[tuple[str, str]]]:
    """The quality part's settings and pairs, checked before any model loads."""
    from juno.simul.options import parse_phi

    if args.settings == "none":
        runs = []
    elif args.settings:
        runs = [run.strip().split("/") for run in args.settings.split(",")]
    else:
        runs = [
            [policy.strip(), phi, k]
            for policy in args.policies.split(",")
            if policy.strip()
            for phi in args.phis.split(",")
            for k in args.ks.split(",")
        ]
    settings = []
    for run in runs:
        if len(run) != 3 or not run[2].strip().isdigit():
            raise JunoError(f"--settings: {'/'.join(run)!r} is not POLICY/PHI/K")
        settings.append((run[0], parse_phi(run[1].strip()), int(run[2])))
    unknown = sorted({policy for policy, _, _ in settings} - set(POLICIES))
    if unknown:
        raise JunoError(f"--policies: unknown {', '.join(unknown)} ({', '.join(POLICIES)})")
    return settings, flores_pairs(args.pairs)


def part_quality(
    model,
    tokenizer,
    cfg: Config,
    args: argparse.Namespace,
    settings: list[Setting],
    pairs: list[tuple[str, str]],
) -> None:
    from juno.simul.cache import InterleavedCache

    sources = flores_dev("en", args.sentences)
    signature = None
    rows: list[dict[str, Any]] = []

    def save(pair: str, setting: str, hyps: list[str], delays: list[list[int]]) -> None:
        """Rewrite ``--hyps`` after each row, so an interrupted run keeps what it made."""
        rows.append({"pair": pair, "setting": setting, "hyps": hyps, "delays": delays})
        if args.hyps:
            text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
            args.hyps.write_text(text, encoding="utf-8")

    for src, tgt in pairs:
        pair = f"{src}-{tgt}"
        refs = flores_dev(tgt, args.sentences)
        table = _table(
            f"(d) {src}->{tgt}, {len(sources)} FLORES-200 dev sentences, greedy",
            ["setting", "BLEU", "chrF", "AL", "LAAL", "words/sent.", "BLEU / offline"],
        )
        # Offline: the first line of a whole-sentence translation, every word at the
        # source end. Ratios are to the offline translation with the configured prompt.
        counts: set[int] = set()
        if not args.no_offline:
            counts = {cfg.translate.examples}
            counts.update(int(n) for n in args.offline_examples.split(",") if n.strip())
        offline: dict[int, float] = {}
        for n in sorted(counts):
            ocfg = _with(cfg, examples=n)
            hyps = [_offline(model, tokenizer, ocfg, s, tgt).text for s in sources]
            delays = [[len(s.split())] * len(h.split()) for s, h in zip(sources, hyps, strict=True)]
            cells, signature = _score(hyps, delays, sources, refs, tgt)
            offline[n] = float(cells[0])
            save(pair, f"offline/{n}", hyps, delays)
            table.add_row(f"offline, {n} examples", *cells, "")
            console.print(f"  {pair} offline, {n} examples: {' | '.join(cells)}", style="dim")
        base = offline.get(cfg.translate.examples)
        for policy, phi, k in settings:
            keys = dict(POLICIES[policy])
            cache = InterleavedCache if keys.pop("interleaved", False) else None
            translator = _translator(
                model, tokenizer, cfg, tgt, cache=cache, wait_k=k, phi=phi, **keys
            )
            hyps, delays = _stream_sentences(translator, sources)
            cells, signature = _score(hyps, delays, sources, refs, tgt)
            ratio = f"{float(cells[0]) / base:.2f}" if base else "-"
            label = f"wait-{k} phi={phi} {policy}"
            save(pair, f"{policy}/{phi}/{k}", hyps, delays)
            table.add_row(label, *cells, ratio)
            console.print(f"  {pair} {label}: {' | '.join(cells)} | {ratio}", style="dim")
            console.print(f"    {hyps[0]}", style="dim")
        console.print(table)
    if args.hyps:
        console.print(f"translations written to {args.hyps}")
    if signature is not None:
        console.print(f"BLEU signature: {signature}\n")


# -- (e) memory -----------------------------------------------------------------


def part_memory(model, tokenizer, cfg: Config, k: int, n: int, n_words: int) -> None:
    import mlx.core as mx

    sources = [" ".join(s.split()[:n_words]) for s in flores_dev("en", n)]
    # As many target words as source words: the session length is what is measured.
    translator = _translator(model, tokenizer, cfg, "fr", wait_k=k, max_words_per_sentence=n_words)
    mx.reset_peak_memory()
    table = _table(
        f"(e) memory over one session (wait-{k}, sentences cut to {n_words} words)",
        ["after sentences", "peak GB", "active GB", "cache slots", "cache MB (allocated)"],
    )
    marks = {}
    for i, source in enumerate(sources, start=1):
        translator.feed(source.split())
        translator.finish()
        if i in (10, n):
            marks[i] = mx.get_peak_memory()
            table.add_row(
                str(i),
                f"{marks[i] / 1e9:.3f}",
                f"{mx.get_active_memory() / 1e9:.3f}",
                str(translator.cache.slots),
                f"{translator.cache.nbytes / 1e6:.1f}",
            )
    console.print(table)
    if 10 in marks and n in marks and n > 10:
        growth = marks[n] / marks[10] - 1
        verdict = "ok" if growth <= 0.05 else "OVER"
        console.print(
            f"peak memory grew {100 * growth:.2f}% from 10 to {n} (target <= 5%): {verdict}\n"
        )


# -- (f) speculative writing ------------------------------------------------------------


def _projected_speedup(acceptance: float, n: float, cost_ratio: float) -> float:
    """Tokens per round over the round's cost, in writer-token forwards: drafts of length
    ``n`` accepted each with ``acceptance`` (the usual geometric model), a verify forward
    costing one token's (memory-bound decoding), each draft token ``cost_ratio`` of one."""
    a = min(acceptance, 0.999)
    tokens = (1 - a ** (n + 1)) / (1 - a)
    return tokens / (1 + n * cost_ratio)


def part_speculative(model, tokenizer, cfg: Config, args: argparse.Namespace, pairs) -> None:
    """The writer alone, with each draft kind, and the draft model alone: per-word compute,
    quality and acceptance, side by side; the texts with and without drafts must agree."""
    from juno.models.loading import load_llm
    from juno.simul.speculative import CombinedDrafter, LookupDrafter, ModelDrafter

    small, small_tokenizer, small_path = load_llm(args.draft_model, cfg)
    if small_tokenizer.get_vocab() != tokenizer.get_vocab():
        raise JunoError(f"--draft-model {small_path.name} has another tokenizer than the writer's")
    drafters = {
        "alone": lambda: None,
        "lookup": LookupDrafter,
        "model": lambda: ModelDrafter(small),
        "lookup+model": lambda: CombinedDrafter(LookupDrafter(), ModelDrafter(small)),
    }
    ks = [int(k) for k in args.spec_ks.split(",") if k.strip()]
    n = args.spec_sentences
    sources = flores_dev("en")[args.spec_start : args.spec_start + n]
    from juno.simul.engine import StreamingTranslator
    from juno.simul.options import TranslateOptions

    def options(target: str, k: int) -> TranslateOptions:
        return dataclasses.replace(
            TranslateOptions.from_config(cfg, target),
            source_language="en",
            wait_k=k,
            draft="off",
            catch_up=False,  # sentences given whole, read on the schedule
        )

    def timed_stream(translator):
        start = time.perf_counter()
        hyps, delays = _stream_sentences(translator, sources)
        words = sum(len(d) for d in delays)
        return hyps, delays, (time.perf_counter() - start) / max(1, words)

    mac_lines = []
    for src, tgt in pairs:
        refs = flores_dev(tgt)[args.spec_start : args.spec_start + n]
        offline = [_offline(model, tokenizer, cfg, s, tgt).text for s in sources]
        ceiling = corpus_quality_cells(offline, refs, tgt)
        for k in ks:
            table = _table(
                f"(f) speculative writing, {src}->{tgt}, wait-{k}, FLORES dev lines "
                f"{args.spec_start + 1}-{args.spec_start + len(sources)}, greedy "
                f"(offline ceiling BLEU {ceiling[0]}, chrF {ceiling[1]})",
                ["writer", "ms / word", "speed-up", "BLEU", "chrF", "LAAL", "BLEU / offline",
                 "acceptance", "mean accepted", "draft s", "verify s", "same text"],
            )  # fmt: skip
            base_hyps, base_ms = None, None
            for name, make in drafters.items():
                t = StreamingTranslator(model, tokenizer, options(tgt, k), drafter=make())
                hyps, delays, per_word = timed_stream(t)
                cells, _ = _score(hyps, delays, sources, refs, tgt)
                if base_hyps is None:
                    base_hyps, base_ms = hyps, per_word
                st = t.draft_stats
                ratio = f"{float(cells[0]) / float(ceiling[0]):.2f}" if float(ceiling[0]) else "-"
                table.add_row(
                    f"{Path(str(cfg.translate.model)).name} {name}",
                    f"{1000 * per_word:.0f}",
                    f"{base_ms / per_word:.2f}x",
                    cells[0], cells[1], cells[3], ratio,
                    f"{st.acceptance:.2f}" if st.proposed else "-",
                    f"{st.mean_accepted:.2f}" if st.proposed else "-",
                    f"{st.draft_s:.1f}", f"{st.verify_s:.1f}",
                    _same(hyps, base_hyps),
                )  # fmt: skip
                console.print(
                    f"  {tgt} wait-{k} {name}: {1000 * per_word:.0f} ms/word", style="dim"
                )
                if st.proposed:
                    length = st.proposed / max(1, st.rounds)
                    gain = _projected_speedup(st.acceptance, length, args.mac_cost_ratio)
                    mac_lines.append(
                        f"{tgt} wait-{k} {name}: acceptance {st.acceptance:.2f} at mean draft "
                        f"length {length:.2f} -> projected {gain:.2f}x"
                    )
            t = StreamingTranslator(small, small_tokenizer, options(tgt, k))
            hyps, delays, per_word = timed_stream(t)
            cells, _ = _score(hyps, delays, sources, refs, tgt)
            table.add_row(
                f"{small_path.name} alone", f"{1000 * per_word:.0f}",
                f"{base_ms / per_word:.2f}x", cells[0], cells[1], cells[3], "-", "-", "-", "-",
                "-", "-",
            )  # fmt: skip
            wide.print(table)  # not cut to 80 columns when the output is not a terminal
    console.print(
        f"Projected for a Mac pair (draft/verify cost per token {args.mac_cost_ratio}, a verify "
        "forward costing one token's): " + ("; ".join(mac_lines) or "no drafts")
    )


def _same(hyps: list[str], base: list[str]) -> str:
    differ = sum(a != b for a, b in zip(hyps, base, strict=True))
    return "yes" if not differ else f"NO ({differ} differ)"


def corpus_quality_cells(hyps: list[str], refs: list[str], target: str) -> list[str]:
    from juno.eval.score import corpus_quality

    q = corpus_quality(hyps, refs, target)
    return [f"{q.bleu:.1f}", f"{q.chrf:.1f}"]


def run(args: argparse.Namespace, cfg: Config) -> int:
    import mlx.core as mx

    from juno.models.loading import load_llm
    from juno.simul.support import model_type

    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        raise JunoError(f"--parts: unknown {', '.join(unknown)} (choose from {', '.join(PARTS)})")
    if "quality" in parts:  # bad options fail before the model loads
        settings, pairs = quality_plan(args)
        if args.hyps:
            try:
                args.hyps.write_text("", encoding="utf-8")
            except OSError as e:
                raise JunoError(f"--hyps: cannot write {args.hyps}: {e.strerror}") from None
    if "speed" in parts and args.speed_rounds < 1:
        raise JunoError("--speed-rounds must be at least 1")
    if "catch-up" in parts and (args.catch_up_rate <= 0 or args.catch_up_sentences < 1):
        raise JunoError("--catch-up-rate must be positive and --catch-up-sentences at least 1")
    if args.shapes:
        return _run_shapes(args, cfg, parts)
    model, tokenizer, path = load_llm(cfg.translate.model, cfg, cfg.translate.adapter)
    console.print(
        f"model {Path(path).name} ({model_type(model)}), {mx.default_device()}, "
        f"phi default {cfg.translate.phi}, max {cfg.translate.max_tokens_per_word} tokens/word\n"
    )
    started = time.perf_counter()
    if "cost" in parts:
        part_cost(model, tokenizer, cfg, cfg.translate.wait_k, args.cost_sentences)
    if "baseline" in parts:
        part_baseline(model, tokenizer, cfg, cfg.translate.wait_k, args.baseline_sentences)
    if "speed" in parts:
        label = f"{Path(path).name}, {mx.default_device()}, {model.model.norm.weight.dtype}"
        part_speed(model, tokenizer, cfg, label, rounds=args.speed_rounds)
        part_word_times(model, tokenizer, cfg, label)
    if "quality" in parts:
        part_quality(model, tokenizer, cfg, args, settings, pairs)
    if "speculative" in parts:
        part_speculative(model, tokenizer, cfg, args, flores_pairs(args.pairs))
    if "targets" in parts:
        from juno.bench.targets import part_targets

        targets = [t.strip() for t in args.targets.split(",") if t.strip()]
        part_targets(
            model,
            tokenizer,
            cfg,
            targets,
            args.targets_sentences,
            args.targets_start,
            wide,
            args.memory_sentences,
        )
    if "catch-up" in parts:
        from juno.bench.catch_up import part_catch_up

        part_catch_up(
            model,
            tokenizer,
            cfg,
            flores_pairs(args.pairs),
            args.catch_up_start,
            args.catch_up_sentences,
            args.catch_up_rate,
            wide,
        )
    if "memory" in parts:
        part_memory(
            model, tokenizer, cfg, cfg.translate.wait_k, args.memory_sentences, args.memory_words
        )
    console.print(f"bench took {time.perf_counter() - started:.0f} s")
    return 0


def _run_shapes(args: argparse.Namespace, cfg: Config, parts: list[str]) -> int:
    """Speed on random-weight models of real shapes (see juno.bench.shapes)."""
    import mlx.core as mx

    from juno import backend
    from juno.bench.shapes import load_tokenizer, parse_shapes, random_model
    from juno.models.resolve import resolve

    shapes = parse_shapes(args.shapes)
    if parts != ["speed"]:
        raise JunoError("--shapes measures speed only: add --parts speed")
    folder = args.tokenizer or resolve(cfg.translate.model, "llm", cfg.models)
    tokenizer = load_tokenizer(Path(folder))
    backend.select_device()
    backend.log_backend()
    dtype = getattr(mx, backend.compute_dtype_name() or "bfloat16")
    console.print(f"{backend.describe()}; tokenizer {Path(folder).name}\n")
    started = time.perf_counter()
    for shape in shapes:
        model = random_model(shape, dtype, len(tokenizer.get_vocab()))
        label = f"Qwen2.5 {shape} shape (random weights), {mx.default_device()}, {dtype}"
        part_speed(model, tokenizer, cfg, label, random_weights=True, rounds=args.speed_rounds)
        part_word_times(model, tokenizer, cfg, label, random_weights=True)
        del model
        mx.clear_cache()
    console.print(f"bench took {time.perf_counter() - started:.0f} s")
    return 0
