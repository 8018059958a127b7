"""The capture process: microphone or file -> AudioChunk on the audio channel.

It opens its source before saying Ready (a missing microphone or a bad file
fails at once), waits for Start, then sends chunks until the file ends or the
supervisor asks it to drain; end of stream then flows down the pipeline.
"""

from __future__ import annotations

import argparse
import logging
import time

import zmq

from juno.config import Config
from juno.pipeline import bus, stage
from juno.pipeline.messages import AudioChunk, EndOfStream
from juno.sources import SAMPLE_RATE_HZ, FileSource, MicSource

log = logging.getLogger(__name__)


def main(args: argparse.Namespace, cfg: Config) -> int:
    return stage.run("capture", args.control, lambda ctx, c: _capture(ctx, c, args, cfg))


def _capture(ctx: zmq.Context, control: stage.Control, args: argparse.Namespace, cfg: Config):
    chunk_ms = cfg.capture.chunk_ms
    if args.input:
        source = FileSource(args.input, chunk_ms, realtime=args.pace == "realtime")
        what = f"{args.input} ({source.duration_s:.1f} s, {args.pace})"
    else:
        source = MicSource(cfg.capture.device, chunk_ms)
        what = f"microphone {source.name!r}"
    audio = bus.socket(ctx, zmq.PUSH, connect=args.audio)
    control.ready(input=what)
    control.wait_start()
    log.info("capturing %s", what)
    seq, end_s, reason = 0, 0.0, "end of input"
    started = time.monotonic()
    origin_wall_s = time.time()
    for item in source.chunks(started):
        control.handle()
        if control.stop_requested:
            return
        if control.drain_requested and reason != "drain":
            reason = "drain"
            source.stop()
            if args.input:
                break
        if item is None:
            continue
        samples, stream_s = item
        chunk = AudioChunk(seq, stream_s, origin_wall_s, SAMPLE_RATE_HZ, samples)
        # A full queue means the pipeline is behind: wait for it, answering control.
        while not bus.send(audio, chunk, timeout_ms=200):
            control.handle()
            if control.stop_requested:
                return
        seq += 1
        end_s = stream_s + len(samples) / SAMPLE_RATE_HZ
    bus.send(audio, EndOfStream(seq, end_s, reason))
    log.info("sent %.1f s of audio in %d chunks (%s)", end_s, seq, reason)
    control.done()
