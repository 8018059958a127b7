"""``juno process NAME``: run one stage of the pipeline on its own.

``juno run`` starts the four stages this way; started by hand, a stage can run
on another machine and talk over tcp, e.g. a display for a room::

    juno process display --source tcp://10.0.0.5:5552 --target tcp://10.0.0.5:5553

Without ``--control`` a stage answers to no supervisor: it starts at once and
ends with the stream.
"""

from __future__ import annotations

import argparse
import importlib

from juno.config import Config
from juno.pipeline.bus import Endpoints

NAMES = ("capture", "transcribe", "translate", "display")


def configure(p: argparse.ArgumentParser) -> None:
    defaults = Endpoints.tcp("127.0.0.1", 5550)
    p.add_argument("name", choices=NAMES, help="the stage to run")
    for channel in ("audio", "words", "source", "target"):
        p.add_argument(
            f"--{channel}",
            default=getattr(defaults, channel),
            metavar="ENDPOINT",
            help=f"{channel} channel (default {getattr(defaults, channel)})",
        )
    p.add_argument("--control", metavar="ENDPOINT", help="the supervisor's control channel")
    p.add_argument("--input", help="capture: replay this audio file instead of the microphone")
    p.add_argument(
        "--pace", choices=("realtime", "fast"), help="capture: file pace (capture.file_pace)"
    )
    p.add_argument(
        "--subscribers",
        type=int,
        default=0,
        help="transcribe, translate: wait for this many displays before starting",
    )
    p.add_argument("--session", help="display: session folder (default: a new one)")
    p.add_argument("--room", action="store_true", help="display: large translation-only view")
    p.add_argument("--whisper", help="display: Whisper name for the status line")
    p.add_argument("--llm", help="display: LLM name for the status line")


def run(args: argparse.Namespace, cfg: Config) -> int:
    if args.pace is None:
        args.pace = cfg.capture.file_pace
    module = importlib.import_module(f"processes.{args.name}")
    return module.main(args, cfg)
