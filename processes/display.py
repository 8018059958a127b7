"""The display process: source and target words -> the screen and the session files.

It subscribes to the transcriber's words and the translator's words, records
every event in the session folder as it arrives (the texts and subtitles are
rewritten after each batch, so a crash anywhere loses nothing shown), and
shows them live on a terminal or as plain lines otherwise; with ``display.web``
it also serves them to a room's browsers (juno.display.server). With several target
languages, each language's words (tagged with it) have their own column, files and
choice in the room; a two-way conversation (``conversation.pair``) translates into both
its languages, and each shows every turn in it. It ends when both publishers have sent
end of stream, or when the supervisor stops it.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import time
from pathlib import Path

import zmq

from juno.config import Config, to_dict
from juno.display.room import RoomFeed
from juno.display.session import SessionRecorder, new_session_folder
from juno.display.view import LiveView, PlainPrinter, Transcript
from juno.pipeline import bus, stage
from juno.pipeline.messages import EndOfStream, Message, SentenceEnd, SourceWord, TargetWord

log = logging.getLogger(__name__)

REFRESH_S = 0.125


def main(args: argparse.Namespace, cfg: Config) -> int:
    return stage.run("display", args.control, lambda ctx, c: _display(ctx, c, args, cfg))


def _sink(mode: str, status: dict, room: bool, languages: list[str], pair: list[str]):
    from rich.console import Console
    from rich.live import Live

    console = Console()
    if mode == "live" or (mode == "auto" and console.is_terminal):
        transcript = Transcript(languages, pair=pair)
        view = LiveView(status, transcript, layout="room" if room else "columns")
        return view, Live(view, console=console, auto_refresh=False, vertical_overflow="crop")
    return PlainPrinter(sys.stdout, languages, pair=pair), contextlib.nullcontext()


def _display(ctx: zmq.Context, control: stage.Control, args: argparse.Namespace, cfg: Config):
    channels = {"source": args.source, "target": args.target}
    subs = {}
    for name, endpoint in channels.items():
        subs[name] = bus.socket(ctx, zmq.SUB, connect=endpoint)
        subs[name].setsockopt(zmq.SUBSCRIBE, b"")
    folder = (
        Path(args.session) if args.session else new_session_folder(Path(cfg.display.sessions_dir))
    )
    # A conversation translates each turn into the other language of its pair.
    targets = cfg.pair or cfg.target_languages
    status = {
        "source_language": cfg.source_language,
        "target_language": ", ".join(targets),
        "wait_k": cfg.translate.wait_k,
        "whisper": args.whisper or Path(cfg.transcribe.model).name,
        "llm": args.llm or Path(cfg.translate.model).name,
    }
    if cfg.display.web:
        from juno.display.server import page_url

        # In the status line, where the address printed before the run would have scrolled
        # away (without its token: the screen may be the room's).
        status["room"] = page_url(cfg.display.web_host, cfg.display.web_port)
    sink, live = _sink(cfg.display.mode, status, args.room, targets, cfg.pair)
    poller = zmq.Poller()
    for sock in subs.values():
        poller.register(sock, zmq.POLLIN)
    ended: set[str] = set()
    room = _room(cfg, folder, status)
    meta = {"config": to_dict(cfg), "status": status}
    recorder = SessionRecorder(folder, meta, target_languages=targets, pair=cfg.pair)
    with recorder, live:
        control.ready(session=str(folder))
        log.info("session folder %s", folder)
        control.wait_start()
        sinks = [sink] + ([room.feed] if room else [])
        if room:
            room.feed.set_state("listening")
        while len(ended) < len(subs):
            control.handle()
            if control.stop_requested:
                break
            if control.drain_requested and isinstance(sink, LiveView):
                sink.state = "draining…"
            if control.drain_requested and room:
                room.feed.set_state("draining")
            events = dict(poller.poll(int(1000 * REFRESH_S)))
            got = False
            for name, sock in subs.items():
                while sock in events and sock.poll(0):
                    msg = bus.receive(sock, name)
                    if _show(msg, recorder, sinks):
                        got = True
                    if isinstance(msg, EndOfStream):
                        ended.add(name)
                        break
            if got:
                recorder.write_texts()
            if hasattr(live, "refresh"):
                live.refresh()
    if room:
        complete = len(ended) == len(subs)
        room.close("done" if complete else "stopped", flush=not control.stop_requested)
    log.info("session written to %s", folder)
    if len(ended) == len(subs):
        control.done()


def _room(cfg: Config, folder: Path, status: dict):
    """The room's server when display.web is on. A display started alone prints the
    page's address; under `juno run` (supervised), run does, before the stages start."""
    if not cfg.display.web:
        return None
    from juno.display.server import open_room

    targets = cfg.pair or cfg.target_languages
    feed = RoomFeed(cfg.source_language, targets, time.time(), status, pair=cfg.pair)
    supervised = os.environ.get("JUNO_SUPERVISED") == "1"
    host, port = cfg.display.web_host, cfg.display.web_port
    return open_room(feed, folder, host, port, announce_to=None if supervised else sys.stderr)


def _show(msg: Message | None, recorder: SessionRecorder, sinks: list) -> bool:
    if isinstance(msg, SourceWord | TargetWord | SentenceEnd | EndOfStream):
        now = time.time()
        recorder.record(msg, now)
        for sink in sinks:
            sink.add(msg, now)
        return True
    if msg is not None:
        log.warning("ignored %s", type(msg).__name__)
    return False
