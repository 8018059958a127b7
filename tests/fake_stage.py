"""A stand-in for ``python -m juno process NAME`` that the supervisor tests start.

It takes the same command line the supervisor gives a real stage and runs
``juno.pipeline.stage.run`` with the real control link, but its body only
plays a part, chosen with ``--part``:

- ``finish``: ready, then done as soon as started;
- ``drain``: ready, started, then done once asked to drain (capture's part);
- ``wait``: ready, started, then waits until told to stop;
- ``die``: ready, started, then killed by SIGKILL (a crash no handler sees);
- ``fail``: ready, started, then a user error ("no microphone");
- ``never-ready``: waits, never ready, until told to stop.

Whatever the part, it gives up after ``GIVE_UP_S`` so that nothing outlives a
failed test.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time

from juno import log
from juno.errors import JunoError
from juno.pipeline import stage

GIVE_UP_S = 30.0


def _until(control: stage.Control, condition) -> None:
    deadline = time.monotonic() + GIVE_UP_S
    while not condition():
        if time.monotonic() > deadline:
            raise JunoError(f"gave up after {GIVE_UP_S:.0f} s")
        control.sock.poll(50)
        control.handle()


def body(part: str):
    def run(ctx, control: stage.Control) -> None:
        if part == "never-ready":
            _until(control, lambda: control.stop_requested)
            return
        control.ready(part=part)
        control.wait_start()
        if control.stop_requested:
            return
        logging.info("started")
        if part == "die":
            logging.info("about to die")
            os.kill(os.getpid(), signal.SIGKILL)
        if part == "fail":
            raise JunoError("no microphone")
        if part == "drain":
            _until(control, lambda: control.drain_requested)
        if part == "wait":
            _until(control, lambda: control.stop_requested)
            return
        if control.stop_requested:
            return
        control.done(part=part, steps=3)

    return run


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("-m")  # "juno"
    p.add_argument("command")  # "process"
    p.add_argument("name")
    p.add_argument("--control")
    p.add_argument("--part", required=True)
    args, _ = p.parse_known_args()  # --config and the data endpoints: not used
    log.setup(args.name)
    return stage.run(args.name, args.control, body(args.part))


if __name__ == "__main__":
    sys.exit(main())
