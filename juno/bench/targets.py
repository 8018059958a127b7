"""``juno bench translate --parts targets``: several target languages as one batch.

Each language alone (one :class:`StreamingTranslator`), then all of them as one
:class:`BatchTranslator`, in the same run, on the same FLORES dev sentences fed
live (one source word at a time, the writer run until it waits after each):

- compute per source word, and the batch's against one language's (the mean of
  the languages alone) and against the languages run one after another;
- peak memory of each run (from a reset before it);
- the words: each language's batched translation against its translation alone
  (sentences that differ are printed, with the first differing word);
- quality per language (BLEU, chrF against FLORES, LAAL in source words), alone
  and batched;
- memory over a long session of the batch: peak after 10 and after N sentences
  (cut to a few words, as the memory part does for one language).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

from juno.config import Config
from juno.paths import flores_dev


@dataclass
class Run:
    """One run over the sentences: per language, its sentences' words and delays."""

    seconds: float = 0.0  # writer compute (wall time of the decode loops)
    source_words: int = 0
    peak_bytes: int = 0
    words: dict[str, list[list[str]]] = field(default_factory=dict)  # per sentence
    delays: dict[str, list[list[int]]] = field(default_factory=dict)

    @property
    def ms_per_word(self) -> float:
        return 1000 * self.seconds / max(1, self.source_words)


def _live(translator, sources: list[str], languages: list[str]) -> Run:
    """Feed each sentence word by word; the writer runs after each word and at its end."""
    import mlx.core as mx

    from juno.eval.score import whole_words

    run = Run()
    mx.reset_peak_memory()
    for source in sources:
        written: dict[int, list[Any]] = {i: [] for i in range(len(languages))}
        words = source.split()
        for i, word in enumerate(words):
            translator.feed(word)
            if i == len(words) - 1:
                translator.end_sentence()
            start = time.perf_counter()
            for event in translator.events():
                row, e = event if isinstance(event, tuple) else (0, event)
                if e.word is not None:
                    written[row].append(e.word)
            run.seconds += time.perf_counter() - start
        run.source_words += len(words)
        for row, lang in enumerate(languages):
            groups = whole_words(written[row], [w.attached for w in written[row]])
            run.words.setdefault(lang, []).append(["".join(w.text for w in g) for g in groups])
            run.delays.setdefault(lang, []).append([g[-1].delay for g in groups])
    run.peak_bytes = mx.get_peak_memory()
    return run


def part_targets(
    model,
    tokenizer,
    cfg: Config,
    targets: list[str],
    n_sentences: int,
    start: int,
    console,
    memory_sentences: int = 200,
) -> None:
    from juno.bench.translate import _score, _table
    from juno.simul.batch import BatchTranslator
    from juno.simul.engine import StreamingTranslator
    from juno.simul.options import TranslateOptions

    options = TranslateOptions.from_config(cfg, targets[0])
    # Sentences given whole are read on the wait-k schedule.
    options = replace(options, source_language="en", draft="off", catch_up=False)
    sources = flores_dev("en")[start : start + n_sentences]
    # One sentence first, untimed, alone and batched: the first calls of a shape compile.
    warm = flores_dev("en")[start + n_sentences : start + n_sentences + 1]
    _live(BatchTranslator.create(model, tokenizer, options, targets), warm, targets)
    alone: dict[str, Run] = {}
    for lang in targets:
        t = StreamingTranslator(model, tokenizer, replace(options, target_language=lang))
        _live(t, warm, [lang])
        alone[lang] = _live(t, sources, [lang])
    batch = BatchTranslator.create(model, tokenizer, options, targets)
    batched = _live(batch, sources, targets)

    k = options.wait_k
    table = _table(
        f"(h) {len(targets)} target languages as one batch: {n_sentences} FLORES dev "
        f"sentences from line {start + 1}, fed live, wait-{k} ({batched.source_words} "
        "source words)",
        ["run", "ms / source word", "x one language", "peak GB", "x one language (peak)"],
    )
    one = sum(r.ms_per_word for r in alone.values()) / len(alone)
    one_peak = sum(r.peak_bytes for r in alone.values()) / len(alone)
    for lang, r in alone.items():
        table.add_row(
            f"en->{lang} alone",
            f"{r.ms_per_word:.0f}",
            f"{r.ms_per_word / one:.2f}",
            f"{r.peak_bytes / 1e9:.3f}",
            f"{r.peak_bytes / one_peak:.2f}",
        )
    in_turn = sum(r.ms_per_word for r in alone.values())
    table.add_row("one after another", f"{in_turn:.0f}", f"{in_turn / one:.2f}", "", "")
    table.add_row(
        f"batch of {len(targets)}",
        f"{batched.ms_per_word:.0f}",
        f"{batched.ms_per_word / one:.2f}",
        f"{batched.peak_bytes / 1e9:.3f}",
        f"{batched.peak_bytes / one_peak:.2f}",
    )
    console.print(table)
    rows = batch.batched_rows / max(1, batch.batches)
    console.print(
        f"batched forwards: {batch.batches}, {rows:.2f} rows each on average; "
        f"cost {batched.ms_per_word / one:.2f}x one language (target <= 1.6x), "
        f"peak memory {batched.peak_bytes / one_peak:.2f}x (target <= 1.5x)\n"
    )

    quality = _table(
        "(h) per language: the batch's words against the language alone, and quality "
        "(BLEU, chrF against FLORES; AL, LAAL in source words)",
        ["language", "same sentences", "BLEU", "chrF", "AL", "LAAL", "words", "batched BLEU",
         "chrF", "AL", "LAAL", "words"],
    )  # fmt: skip
    differing = []
    for lang in targets:
        single, multi = alone[lang], batched
        same = sum(a == b for a, b in zip(single.words[lang], multi.words[lang], strict=True))
        refs = flores_dev(lang)[start : start + n_sentences]
        cells = []
        for r in (single, multi):
            hyps = [" ".join(w) for w in r.words[lang]]
            cells += _score(hyps, r.delays[lang], sources, refs, lang)[0]
        quality.add_row(lang, f"{same} of {len(sources)}", *cells)
        for n, (a, b) in enumerate(zip(single.words[lang], multi.words[lang], strict=True)):
            if a != b:
                at = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), None)
                at = min(len(a), len(b)) if at is None else at
                differing.append((lang, start + n + 1, at, " ".join(a), " ".join(b)))
    console.print(quality)
    for lang, line, at, a, b in differing:
        console.print(f"  {lang} line {line}, from word {at + 1}:")
        console.print(f"    alone:   {a}\n    batched: {b}")
    console.print()
    if memory_sentences > 10:
        batch = BatchTranslator.create(model, tokenizer, options, targets)
        _memory(batch, memory_sentences, console)


def _memory(batch, n: int, console, n_words: int = 4) -> None:
    """Peak memory of one batch session after 10 and after ``n`` sentences."""
    import mlx.core as mx

    sources = [" ".join(s.split()[:n_words]) for s in flores_dev("en", n)]
    mx.reset_peak_memory()
    marks = {}
    for i, source in enumerate(sources, start=1):
        batch.feed(source.split())
        batch.finish()
        if i in (10, n):
            marks[i] = (mx.get_peak_memory(), batch.nbytes)
    growth = marks[n][0] / marks[10][0] - 1
    verdict = "ok" if growth <= 0.05 else "OVER"
    console.print(
        f"(h) memory of the batch over one session ({n} sentences cut to {n_words} words): "
        f"peak {marks[10][0] / 1e9:.3f} GB after 10, {marks[n][0] / 1e9:.3f} GB after {n} "
        f"(grew {100 * growth:.2f}%, target <= 5%: {verdict}); KV caches "
        f"{marks[10][1] / 1e6:.1f} MB, then {marks[n][1] / 1e6:.1f} MB\n"
    )
