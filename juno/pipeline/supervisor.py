"""The supervisor behind ``juno run``: starts the four stages and watches them.

Each stage is its own OS process (``python -m juno process NAME``) in its own
session, so a Ctrl-C in the terminal reaches only the supervisor, which turns
it into an orderly drain: capture stops and sends end of stream, and every
stage finishes what it holds before it exits. A second Ctrl-C stops at once.
A stage that dies or reports an error stops the whole pipeline within a
couple of seconds, naming the stage.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import zmq

from juno.errors import JunoError
from juno.pipeline import bus
from juno.pipeline.messages import Done, Error, Heartbeat, Ready, Shutdown, Start

log = logging.getLogger(__name__)

STAGES = ("capture", "transcribe", "translate", "display")
# After a stop, how long stages get to leave on their own before they are killed.
STOP_GRACE_S = 1.5
# How long loading models may take before the pipeline gives up.
READY_TIMEOUT_S = 900.0


class StageFailed(JunoError):
    """A stage died or reported an error."""


@dataclass
class Child:
    name: str
    popen: subprocess.Popen
    log_path: Path
    ready: bool = False
    done: bool = False
    info: dict = field(default_factory=dict)
    summary: dict = field(default_factory=dict)  # from its Done
    heartbeats: list[dict] = field(default_factory=list)

    def last_log_line(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return lines[-1] if lines else ""


def _exit_reason(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


class Supervisor:
    """Runs one session of the pipeline (see the module docstring)."""

    def __init__(
        self,
        endpoints: bus.Endpoints,
        config_path: Path,
        session_dir: Path,
        stage_args: dict[str, list[str]],
        on_state: Callable[[str], None] = lambda state: None,
    ) -> None:
        self.endpoints = endpoints
        self.config_path = config_path
        self.session_dir = session_dir
        self.stage_args = stage_args
        self.on_state = on_state
        self.children: dict[str, Child] = {}
        self.ctx = zmq.Context()
        self.control = bus.socket(self.ctx, zmq.ROUTER, bind=endpoints.control)
        self.draining = False
        self.started = False
        self.interrupts = 0  # Ctrl-C count, set by the caller's signal handler

    # -- lifecycle ------------------------------------------------------------

    def run(self) -> None:
        """Start, wait for Ready, start audio, and watch until every stage is done."""
        try:
            self._spawn()
            self._wait(lambda: all(c.ready for c in self.children.values()), READY_TIMEOUT_S)
            for name in self.children:
                self._send(name, Start())
            self.started = True
            self.on_state("running")
            self._wait(lambda: all(c.done for c in self.children.values()), None)
            self._reap(STOP_GRACE_S)
        except BaseException:
            self.stop()
            raise
        finally:
            self.ctx.destroy(linger=0)

    def drain(self) -> None:
        """Ctrl-C: capture stops listening; the rest finish what they hold."""
        self.draining = True
        self.on_state("draining")
        self._send("capture", Shutdown("drain"))

    def stop(self) -> None:
        """Stop every stage now; kill those that do not leave in time."""
        for name, child in self.children.items():
            if child.popen.poll() is None:
                self._send(name, Shutdown("stop"))
        self._reap(STOP_GRACE_S)

    # -- internals ------------------------------------------------------------

    def _spawn(self) -> None:
        logs = self.session_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, JUNO_SUPERVISED="1")
        for name in STAGES:
            log_path = logs / f"{name}.log"
            cmd = [
                sys.executable, "-m", "juno", "process", name,
                "--config", str(self.config_path), *self.endpoints.as_args(),
                *self.stage_args.get(name, []),
            ]  # fmt: skip
            with open(log_path, "ab") as stderr:
                popen = subprocess.Popen(
                    cmd,
                    stdin=subprocess.DEVNULL,
                    stdout=None if name == "display" else subprocess.DEVNULL,
                    stderr=stderr,
                    env=env,
                    start_new_session=True,  # Ctrl-C reaches the supervisor only
                )
            self.children[name] = Child(name, popen, log_path)
            log.debug("started %s (pid %d)", name, popen.pid)

    def _wait(self, condition: Callable[[], bool], timeout_s: float | None) -> None:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while not condition():
            if self.interrupts and (self.interrupts > 1 or not self.started):
                raise KeyboardInterrupt
            if self.interrupts and not self.draining:
                self.drain()
            if self.control.poll(100):
                self._take_status()
            self._check_children()
            if deadline is not None and time.monotonic() > deadline:
                waiting = [c.name for c in self.children.values() if not c.ready]
                raise StageFailed(f"stages not ready after {timeout_s:.0f} s: {', '.join(waiting)}")

    def _take_status(self) -> None:
        while self.control.poll(0):
            frames = self.control.recv_multipart()
            name = frames[0].decode(errors="replace")
            child = self.children.get(name)
            msg = bus.receive_frames(frames[1:], "control")
            if child is None or msg is None:
                log.warning("dropped a status message from %r", name)
                continue
            if isinstance(msg, Ready):
                child.ready, child.info = True, msg.info
                log.debug("%s ready %s", name, msg.info)
            elif isinstance(msg, Heartbeat):
                beat = {"process": name, "cpu_s": msg.cpu_s, "rss_bytes": msg.rss_bytes}
                beat.update(mlx_peak_bytes=msg.mlx_peak_bytes, wall_s=time.time())
                child.heartbeats.append(beat)
            elif isinstance(msg, Done):
                child.done, child.summary = True, msg.summary
            elif isinstance(msg, Error):
                raise StageFailed(f"{name}: {msg.message}")

    def _check_children(self) -> None:
        for child in self.children.values():
            code = child.popen.poll()
            if code is None or (child.done and code == 0):
                continue
            # Its Done may still be queued; an Error it sent explains more than its exit code.
            self._take_status()
            if child.done and code == 0:
                continue
            hint = child.last_log_line()
            raise StageFailed(
                f"stage '{child.name}' died ({_exit_reason(code)})"
                + (f": {hint}" if hint else "")
                + f" [log: {child.log_path}]"
            )

    def _send(self, name: str, msg) -> None:
        try:
            self.control.send_multipart([name.encode(), *bus.pack(msg)], zmq.NOBLOCK)
        except zmq.ZMQError:
            log.debug("could not reach %s", name)

    def _reap(self, grace_s: float) -> None:
        deadline = time.monotonic() + grace_s
        for child in self.children.values():
            try:
                child.popen.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in time: killed", child.name)
                child.popen.kill()
                child.popen.wait()

    @property
    def heartbeats(self) -> dict[str, list[dict]]:
        return {name: c.heartbeats for name, c in self.children.items()}

    @property
    def summaries(self) -> dict[str, dict]:
        """What each stage that finished said of its work (empty for the others)."""
        return {name: c.summary for name, c in self.children.items() if c.summary}
