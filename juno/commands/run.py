"""``juno run``: live translation of the microphone, or replay of a recorded file.

Starts the four stages (capture, transcribe, translate, display) and watches
them (see juno.pipeline.supervisor). Ctrl-C stops listening and lets the pipeline
finish what was said; a second Ctrl-C stops at once. A replayed file ends by
itself once fully translated. Every session leaves a folder with the event
log, the transcript, the translation, subtitles and a latency report.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

import yaml

from juno.config import Config, add_flag, flag, to_dict
from juno.errors import JunoError


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input", type=Path, help="replay this audio file instead of the microphone")
    add_flag(
        p,
        "--fast",
        key="capture.file_pace",
        action="store_const",
        const="fast",
        help="replay as fast as the pipeline takes it, not as spoken (capture.file_pace)",
    )
    add_flag(
        p,
        "--device",
        key="capture.device",
        help="microphone name (part of it) or index; see `juno devices` (capture.device)",
    )
    add_flag(p, "--source", key="source_language", help="spoken language code (source_language)")
    add_flag(
        p,
        "--target",
        key="target_language",
        help="translation language code, or several at once: fr,de,es (target_language)",
    )
    add_flag(
        p,
        "--pair",
        key="conversation.pair",
        help="a two-way conversation between these two languages, e.g. en,fr: each "
        "utterance translated into the other (conversation.pair)",
    )
    add_flag(
        p,
        "--wait-k",
        key="translate.wait_k",
        type=int,
        help="source words read before writing (translate.wait_k)",
    )
    p.add_argument("--room", action="store_true", help="large translation-only view for a room")
    add_flag(
        p,
        "--web",
        key="display.web",
        action="store_const",
        const=True,
        help="also serve the room page, live in any browser (display.web)",
    )
    add_flag(
        p,
        "--host",
        key="display.web_host",
        help="with --web: the address to listen on; beyond 127.0.0.1 every viewer needs the "
        "session's token (display.web_host)",
    )
    add_flag(p, "--port", key="display.web_port", type=int, help="with --web: its port (8765)")
    p.add_argument("--session", type=Path, help="session folder (default: a new one in sessions/)")


def _resolved(cfg: Config) -> Config:
    """The config with both models resolved to folders (downloads happen here, once)."""
    from juno.models.resolve import resolve

    whisper = resolve(cfg.transcribe.model, "whisper", cfg.models)
    llm = resolve(cfg.translate.model, "llm", cfg.models)
    return dataclasses.replace(
        cfg,
        transcribe=dataclasses.replace(cfg.transcribe, model=str(whisper)),
        translate=dataclasses.replace(cfg.translate, model=str(llm)),
    )


def run(args: argparse.Namespace, cfg: Config) -> int:
    from juno.audio import check_audio_file
    from juno.display import latency
    from juno.display.session import SessionRecorder, new_session_folder
    from juno.pipeline import bus
    from juno.pipeline.supervisor import Supervisor

    if args.input:
        check_audio_file(args.input)
    room_token = _check_room(args, cfg)
    cfg = _resolved(cfg)
    if args.session and (args.session / "events.jsonl").exists():
        raise JunoError(f"{args.session} already holds a session: choose a new folder")
    session = args.session or new_session_folder(Path(cfg.display.sessions_dir))
    (session / "logs").mkdir(parents=True, exist_ok=True)
    run_dir = Path(tempfile.mkdtemp(prefix="juno-"))
    config_path = run_dir / "config.yaml"
    config_path.write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
    if cfg.bus.port:
        endpoints = bus.Endpoints.tcp(cfg.bus.host, cfg.bus.port)
    else:
        endpoints = bus.Endpoints.ipc(run_dir)
    capture = ["--input", str(args.input), "--pace", cfg.capture.file_pace] if args.input else []
    display = ["--session", str(session), "--whisper", Path(cfg.transcribe.model).name]
    display += ["--llm", Path(cfg.translate.model).name] + (["--room"] if args.room else [])
    supervisor = Supervisor(
        endpoints,
        config_path,
        session,
        {
            "capture": capture,
            "transcribe": ["--subscribers", "1"],
            "translate": ["--subscribers", "1"],
            "display": display,
        },
    )
    forget_token = _announce_room(cfg, room_token) if cfg.display.web else lambda: None
    previous = _trap_signals(supervisor)
    quiet = _log_to(session / "logs" / "supervisor.log")
    ok = False
    try:
        supervisor.run()
        ok = True
    finally:
        quiet()
        forget_token()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if (session / "events.jsonl").exists():
            # Texts up to the last recorded event, whichever stage stopped first.
            SessionRecorder.replay(session).write_texts()
            _report(session, supervisor, latency, show=ok)
        shutil.rmtree(run_dir, ignore_errors=True)
    return 0


def _check_room(args: argparse.Namespace, cfg: Config) -> str | None:
    """With --web: fail now if its port is taken; the session's token (None on loopback)."""
    if not cfg.display.web:
        if flag(args, "display.web_host") or flag(args, "display.web_port") is not None:
            raise JunoError("--host and --port are the room page's: add --web")
        return None
    from juno.display import server

    server.check_port(cfg.display.web_host, cfg.display.web_port)
    return server.session_token(cfg.display.web_host)


def _announce_room(cfg: Config, token: str | None):
    """Print the page's address (with its token and a QR code when it has one) and hand
    the token to the display through its environment, not its command line (which other
    users can read). Returns the undo."""
    from juno.display import server

    url = server.page_url(cfg.display.web_host, cfg.display.web_port, token)
    server.announce(url, token is not None, sys.stderr)
    if token is not None:
        os.environ[server.TOKEN_ENV] = token
    return lambda: os.environ.pop(server.TOKEN_ENV, None)


def _log_to(path: Path):
    """While the pipeline runs, log to ``path``; the terminal gets errors only (the
    display owns it). Returns the undo."""
    root = logging.getLogger()
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s supervisor %(levelname)s: %(message)s"))
    handler.setLevel(logging.DEBUG)
    levels = [(h, h.level) for h in root.handlers]
    for h in root.handlers:
        h.setLevel(max(h.level, logging.ERROR))
    root.addHandler(handler)

    def undo() -> None:
        root.removeHandler(handler)
        handler.close()
        for h, level in levels:
            h.setLevel(level)

    return undo


def _trap_signals(supervisor) -> dict:
    """Ctrl-C (or SIGTERM) drains; a second one stops at once."""

    def handler(signum, frame) -> None:
        supervisor.interrupts += 1

    return {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}


def _report(session: Path, supervisor, latency, show: bool) -> None:
    events = latency.load_events(session / "events.jsonl")
    rep = latency.report(events, supervisor.heartbeats, supervisor.summaries)
    (session / "latency.json").write_text(json.dumps(rep, indent=2) + "\n")
    if show:
        print(latency.format_report(rep), file=sys.stderr)
    print(f"session files: {session}", file=sys.stderr)
