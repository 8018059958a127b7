"""The translate process: SourceWord -> TargetWord and SentenceEnd, published to displays.

Words are fed to the streaming translator as they arrive, also between two
decoded tokens, so the wait-k policy always sees every word already spoken.
Sentences follow one another; end of stream finishes the last one. With several
target languages, one :class:`~juno.simul.batch.BatchTranslator` writes them all
(each word and sentence end is sent tagged with its language). In a two-way
conversation (``conversation.pair``), a :class:`~juno.simul.conversation.Conversation`
translates each word from the language it was spoken in into the other.
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import replace

import zmq

from juno import backend
from juno.config import Config
from juno.pipeline import bus, stage
from juno.pipeline.messages import EndOfStream, SentenceEnd, SourceWord, TargetWord
from juno.simul.policy import join_words

log = logging.getLogger(__name__)


def main(args: argparse.Namespace, cfg: Config) -> int:
    return stage.run("translate", args.control, lambda ctx, c: _translate(ctx, c, args, cfg))


class _Link:
    """The translator between its sockets: feeds source words, sends what it writes."""

    def __init__(self, translator, words: zmq.Socket, target: zmq.Socket) -> None:
        self.translator = translator  # a StreamingTranslator, or a BatchTranslator
        self.rows = getattr(translator, "rows", [translator])
        # A conversation: each word goes to the direction of the language it was spoken in.
        self.by_language = hasattr(translator, "row_of")
        self.words, self.target = words, target
        self.seq = 0
        self.origin_wall_s = 0.0
        self.end: EndOfStream | None = None
        self.translated = 0  # sentences finished

    def take_input(self) -> None:
        """Feed every source word that has arrived (non-blocking)."""
        while self.end is None and self.words.poll(0):
            msg = bus.receive(self.words, "words")
            if isinstance(msg, SourceWord):
                self._feed(msg)
            elif isinstance(msg, EndOfStream):
                self.end = msg
                self.translator.end_sentence()
            elif msg is not None:
                log.warning("ignored %s on words", type(msg).__name__)

    def _feed(self, word: SourceWord) -> None:
        self.origin_wall_s = word.origin_wall_s
        if self.by_language:
            self.translator.feed([word], word.language)
        else:
            self.translator.feed([word])  # the events give the SourceWord back
        if word.sentence_end:
            self.translator.end_sentence()

    def translate(self, control: stage.Control) -> None:
        """Write what the policy allows, taking new words between tokens."""
        for item in self.translator.events():
            row, event = item if isinstance(item, tuple) else (0, item)
            language = self.rows[row].options.target_language
            sentence = event.sentence
            index = sentence.fed[0].sentence  # the transcriber's sentence number
            if event.word is not None:
                read = sentence.fed[max(0, event.word.delay - 1)]
                self._send(
                    TargetWord(
                        self.seq,
                        read.end_s,
                        self.origin_wall_s,
                        event.word.text,
                        index,
                        event.word.delay,
                        time.time(),
                        event.word.attached,
                        language,
                    )  # fmt: skip
                )
            if event.sentence_done:
                self._send(
                    SentenceEnd(
                        self.seq,
                        sentence.fed[-1].end_s,
                        self.origin_wall_s,
                        index,
                        join_words(sentence.items),
                        sentence.text,
                        language,
                    )  # fmt: skip
                )
                self.translated += row == 0 or self.by_language  # (once per sentence)
            control.handle()
            if control.stop_requested:
                return
            self.take_input()

    def _send(self, msg) -> None:
        tokens = sum(row.stats.sampled for row in self.rows)
        work = sum(r.stats.source_s + r.stats.header_s + r.stats.target_s for r in self.rows)
        bus.send(self.target, replace(msg, stage_tokens=tokens, stage_compute_s=work))
        self.seq += 1


def _translate(ctx: zmq.Context, control: stage.Control, args: argparse.Namespace, cfg: Config):
    from juno.models.loading import load_llm
    from juno.simul.batch import BatchTranslator
    from juno.simul.conversation import Conversation
    from juno.simul.engine import StreamingTranslator
    from juno.simul.options import TranslateOptions
    from juno.simul.speculative import load_drafter

    # Sockets first: a taken port fails before the model loads.
    words = bus.socket(ctx, zmq.PULL, bind=args.words)
    # The CPU backend: this stage's share of the cores (the other model stage has the rest).
    backend.share_cores(cfg.translate.cpu_threads)
    target = bus.socket(ctx, zmq.XPUB, bind=args.target)
    model, tokenizer, path = load_llm(cfg.translate.model, cfg, cfg.translate.adapter)
    targets = cfg.target_languages
    options = TranslateOptions.from_config(cfg, targets[0])
    if cfg.pair:
        drafter = None
        translator = Conversation.create(model, tokenizer, options, cfg.pair)
    elif len(targets) > 1:
        drafter = None
        translator = BatchTranslator.create(model, tokenizer, options, targets)
    else:
        drafter = load_drafter(options, cfg, tokenizer)
        translator = StreamingTranslator(model, tokenizer, options, drafter=drafter)
    link = _Link(translator, words, target)
    bus.wait_subscribers(link.target, args.subscribers, 60, "translations")
    control.ready(llm=path.name, wait_k=options.wait_k)
    control.wait_start()
    while link.end is None or translator.pending_words:
        control.handle()
        if control.stop_requested:
            return
        if link.end is None and not words.poll(200):
            continue
        link.take_input()
        link.translate(control)
    bus.send(link.target, EndOfStream(link.seq, link.end.stream_s, link.end.reason))
    log.info("translated %d sentences", link.translated)
    if len(translator_rows := getattr(translator, "rows", [])) > 1:
        log.info(
            "%d directions or languages: %d batched forwards, %.2f rows each",
            len(translator_rows),
            translator.batches,
            translator.batched_rows / max(1, translator.batches),
        )
    drafts = translator.draft_stats.summary() if drafter is not None else {}
    if drafts:
        log.info("drafts: %s", drafts)
    control.done(**({"drafts": drafts} if drafts else {}))
