"""The transcribe process: AudioChunk -> committed SourceWord (to translate and to displays).

All audio that is waiting is inserted before the stepper steps: when a step
took longer than the audio it covered (a slow machine, a busy translator on
the same cores), the next step takes everything that arrived meanwhile, so the
transcriber catches up instead of queueing (a queue grows into minutes of
delay over a long talk). At end of stream it flushes the transcriber and
passes the end on.
"""

from __future__ import annotations

import argparse
import logging
import time

import zmq

from juno import backend
from juno.config import Config
from juno.errors import JunoError
from juno.pipeline import bus, stage
from juno.pipeline.messages import AudioChunk, EndOfStream, SourceWord
from juno.transcriber.words import Word

log = logging.getLogger(__name__)


def main(args: argparse.Namespace, cfg: Config) -> int:
    return stage.run("transcribe", args.control, lambda ctx, c: _transcribe(ctx, c, args, cfg))


class _Emitter:
    """Numbers sentences and sends each committed word downstream."""

    def __init__(self, words: zmq.Socket, source: zmq.Socket) -> None:
        self.words, self.source = words, source
        self.seq = 0
        self.sentence = 0
        self.origin_wall_s = 0.0
        self.open_language: str | None = None  # the open sentence's (None: none is open)
        self.tokens = 0  # the decoder's, so far
        self.compute_s = 0.0  # the transcriber's steps, so far

    def emit(self, committed: list[Word], final: bool = False) -> None:
        for i, word in enumerate(committed):
            if self.open_language is not None and word.language != self.open_language:
                # A change of speaker ends the sentence (the translator's Conversation ends
                # it too), even where the last word went before its full stop was heard.
                self.sentence += 1
            # The stream's last word closes its sentence.
            end = word.sentence_end or (final and i == len(committed) - 1)
            msg = SourceWord(
                self.seq, word.end_s, self.origin_wall_s, word.text, word.start_s, word.end_s,
                word.probability, end, self.sentence, time.time(), self.tokens, self.compute_s,
                word.language, word.attached,
            )  # fmt: skip
            bus.send(self.words, msg)
            bus.send(self.source, msg)
            self.seq += 1
            self.sentence += end
            self.open_language = None if end else word.language


def _transcribe(ctx: zmq.Context, control: stage.Control, args: argparse.Namespace, cfg: Config):
    from juno.models.loading import load_whisper
    from juno.transcriber.build import make_transcriber

    # Sockets first: a taken port fails before the model loads.
    audio = bus.socket(ctx, zmq.PULL, bind=args.audio)
    # The CPU backend: this stage's share of the cores (the other model stage has the rest).
    backend.share_cores(cfg.transcribe.cpu_threads)
    out = _Emitter(
        bus.socket(ctx, zmq.PUSH, connect=args.words), bus.socket(ctx, zmq.XPUB, bind=args.source)
    )
    model, path = load_whisper(cfg.transcribe.model, cfg)
    stepper = make_transcriber(model, cfg)
    stepper.window.warm_up()
    bus.wait_subscribers(out.source, args.subscribers, 60, "source words")
    control.ready(whisper=path.name)
    control.wait_start()
    poller = zmq.Poller()
    poller.register(audio, zmq.POLLIN)
    end: EndOfStream | None = None
    while end is None:
        control.handle()
        if control.stop_requested:
            return
        if not poller.poll(200):
            continue
        # All that is waiting, up to a window's worth: the rest stays queued in
        # the socket, where it holds the sender back (a file sent at full speed).
        while end is None and stepper.waiting_s < cfg.transcribe.buffer_max_s:
            msg = next(iter(bus.receive_waiting(audio, "audio", limit=1)), None)
            if msg is None:
                break
            if isinstance(msg, AudioChunk):
                out.origin_wall_s = msg.origin_wall_s
                try:
                    stepper.insert_audio(msg.samples, msg.stream_s, msg.sample_rate_hz)
                except JunoError as e:
                    log.warning("dropped audio chunk %d: %s", msg.seq, e)
            elif isinstance(msg, EndOfStream):
                end = msg
            else:
                log.warning("ignored %s on audio", type(msg).__name__)
        if end is None:
            out.emit(_timed(stepper, out, lambda: stepper.process(stepper.received_s)))
    out.emit(_timed(stepper, out, stepper.finish), final=True)
    eos = EndOfStream(out.seq, end.stream_s, end.reason)
    bus.send(out.words, eos)
    bus.send(out.source, eos)
    log.info("transcribed %.1f s: %d words in %d steps", end.stream_s, out.seq, stepper.steps)
    control.done()


def _timed(stepper, out: _Emitter, step):
    """Run a step of the stepper; count its compute and the tokens it decoded."""
    start = time.perf_counter()
    words = step()
    out.compute_s += time.perf_counter() - start
    out.tokens = stepper.window.generated_tokens
    return words
