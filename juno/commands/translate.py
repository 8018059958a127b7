"""``juno translate``: streaming text translation from stdin or a file.

Each input line is one or more sentences (a word ending in . ! or ? ends a
sentence). Words are fed all at once, or paced at ``--words-per-second`` to
simulate a speaker; target words are printed as the wait-k policy releases
them, one translated sentence per output line.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from juno.config import Config, add_flag
from juno.errors import JunoError
from juno.simul.sentences import sentences


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", nargs="?", type=Path, help="text file (default: stdin)")
    add_flag(p, "--model", key="translate.model", help="LLM spec (translate.model)")
    add_flag(p, "--source", key="source_language", help="source language code (source_language)")
    add_flag(p, "--target", key="target_language", help="target language code (target_language)")
    add_flag(
        p,
        "--wait-k",
        key="translate.wait_k",
        type=int,
        help="wait-k lag in words (translate.wait_k)",
    )
    add_flag(
        p,
        "--phi",
        key="translate.phi",
        help="target start position: an integer, 'source' or 'source+N' (translate.phi)",
    )
    p.add_argument(
        "--words-per-second",
        type=float,
        default=0.0,
        help="feed source words at this pace (0: each sentence at once)",
    )
    p.add_argument(
        "--show-delays",
        action="store_true",
        help="print each target word with the number of source words read",
    )


def _read_lines(path: Path | None) -> Iterator[str]:
    if path is None:
        yield from sys.stdin
        return
    try:
        with path.open(encoding="utf-8") as f:
            yield from f
    except OSError as e:
        raise JunoError(f"cannot read {path}: {e.strerror}") from None


def run(args: argparse.Namespace, cfg: Config) -> int:
    from juno.models.loading import load_llm
    from juno.simul.engine import StreamingTranslator
    from juno.simul.options import TranslateOptions
    from juno.simul.speculative import load_drafter

    if args.words_per_second < 0:
        raise JunoError("--words-per-second must not be negative")
    tc = cfg.translate
    model, tokenizer, _ = load_llm(tc.model, cfg, tc.adapter)
    options = TranslateOptions.from_config(cfg)
    if not args.words_per_second:
        # Each sentence is given whole: it is read on the wait-k schedule, as live words
        # would be by a writer that keeps up, not all at once.
        options = replace(options, catch_up=False)
    drafter = load_drafter(options, cfg, tokenizer)
    translator = StreamingTranslator(model, tokenizer, options, drafter=drafter)
    out = _Printer(args.show_delays)
    pace = 1.0 / args.words_per_second if args.words_per_second else 0.0
    next_at = time.monotonic()
    for words in sentences(_read_lines(args.input)):
        if pace:
            for word in words:
                # The speaker's clock: wait until the word is spoken, never ahead.
                time.sleep(max(0.0, next_at - time.monotonic()))
                next_at = max(next_at, time.monotonic()) + pace
                translator.feed(word)
                out.words(translator.step())
        else:
            translator.feed(words)
        translator.end_sentence()
        out.words(translator.step())
        out.end_sentence()
    return 0


class _Printer:
    """Target words on one line per sentence, flushed as they come."""

    def __init__(self, show_delays: bool) -> None:
        self.show_delays = show_delays
        self.started = False

    def words(self, words) -> None:
        for w in words:
            text = f"{w.text}[{w.delay}]" if self.show_delays else w.text
            space = self.started and not w.attached
            sys.stdout.write((" " if space else "") + text)
            self.started = True
        sys.stdout.flush()

    def end_sentence(self) -> None:
        if self.started:
            sys.stdout.write("\n")
            sys.stdout.flush()
        self.started = False
