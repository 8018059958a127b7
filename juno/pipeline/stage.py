"""What every pipeline process shares: its link to the supervisor and its exit rules.

A stage connects a DEALER to the supervisor's control channel, says Ready once
its models are loaded and its sockets are up, sends a Heartbeat (CPU and
memory) about every second while it works, Done when it has passed end of
stream on, and Error when it fails. Started alone (no control endpoint), it
starts at once and the link is silent.
"""

from __future__ import annotations

import logging
import os
import resource
import sys
import time
import traceback
from collections.abc import Callable

import zmq

from juno.errors import JunoError
from juno.pipeline import bus
from juno.pipeline.messages import Done, Error, Heartbeat, Message, Ready, Shutdown, Start

log = logging.getLogger(__name__)

HEARTBEAT_S = 1.0
# At a normal end, how long a stage waits for the next one to take what it sent
# (a dead peer is the supervisor's to handle: it kills the waiting stage).
DRAIN_LINGER_MS = 600_000
ERROR_LINGER_MS = 1000


def rss_bytes() -> int:
    """Resident memory now (Linux), else the peak (macOS has no cheap "now")."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def mlx_peak_bytes() -> int:
    mx = sys.modules.get("mlx.core")
    return int(mx.get_peak_memory()) if mx is not None else 0


class Control:
    """The stage's end of the control channel."""

    def __init__(self, ctx: zmq.Context, endpoint: str | None, process: str) -> None:
        self.process = process
        self.sock = None
        self.stop_requested = False  # Shutdown(stop): leave now
        self.drain_requested = False  # Shutdown(drain): finish what you hold
        self._last_beat = 0.0
        # A supervised stage leaves when its supervisor is gone (killed, say).
        self._parent = os.getppid() if endpoint else None
        if endpoint:
            self.sock = ctx.socket(zmq.DEALER)
            self.sock.setsockopt(zmq.LINGER, 0)
            self.sock.setsockopt_string(zmq.IDENTITY, process)
            self.sock.connect(endpoint)

    def send(self, msg: Message) -> None:
        if self.sock is not None:
            bus.send(self.sock, msg, timeout_ms=1000)

    def ready(self, **info: object) -> None:
        self.send(Ready(self.process, {k: v for k, v in info.items() if v is not None}))
        log.info("ready")

    def done(self, **summary: object) -> None:
        self.beat(force=True)
        self.send(Done(self.process, summary))

    def error(self, message: str) -> None:
        self.send(Error(self.process, message))

    def beat(self, force: bool = False) -> None:
        """Send a heartbeat if one is due."""
        now = time.monotonic()
        if force or now - self._last_beat >= HEARTBEAT_S:
            self._last_beat = now
            self.send(Heartbeat(self.process, cpu_seconds(), rss_bytes(), mlx_peak_bytes()))

    def handle(self) -> None:
        """Take every pending control message (non-blocking)."""
        while self.sock is not None and self.sock.poll(0):
            msg = bus.receive(self.sock, "control")
            if isinstance(msg, Shutdown):
                log.info("shutdown (%s) requested", msg.mode)
                self.stop_requested |= msg.mode == "stop"
                self.drain_requested = True
            elif msg is not None and not isinstance(msg, Start):
                log.warning("ignored %s on control", type(msg).__name__)
        self._check_parent()
        self.beat()

    def _check_parent(self) -> None:
        if self._parent is not None and os.getppid() != self._parent:
            log.error("the supervisor is gone: stopping")
            self.stop_requested = self.drain_requested = True

    def wait_start(self) -> None:
        """Block until the supervisor says Start (at once when alone)."""
        while self.sock is not None:
            if self.sock.poll(int(1000 * HEARTBEAT_S)):
                msg = bus.receive(self.sock, "control")
                if isinstance(msg, Start):
                    return
                if isinstance(msg, Shutdown):
                    self.stop_requested = self.drain_requested = True
                    return
            self._check_parent()
            if self.stop_requested:
                return
            self.beat()


class _Context(zmq.Context):
    """A context that keeps its sockets until destroyed.

    pyzmq holds sockets weakly: a socket the stage's body let go of would be
    collected and closed with its own (zero) linger, dropping what it still
    holds, before :func:`run` can choose how long the sockets may linger.
    """

    _held: list[zmq.Socket]  # declared: pyzmq takes other attributes for options

    def __init__(self) -> None:
        super().__init__()
        self._held = []

    def socket(self, *args, **kwargs) -> zmq.Socket:
        sock = super().socket(*args, **kwargs)
        self._held.append(sock)
        return sock


def run(process: str, control_endpoint: str | None, body: Callable[[zmq.Context, Control], None]):
    """Run a stage's body; report failures to the supervisor; the exit code."""
    ctx = _Context()
    control = Control(ctx, control_endpoint, process)
    # Closing sockets drops what they still hold unless they linger: at a normal
    # end everything queued (the last audio, end of stream) must reach the next
    # stage, however long it takes; a failure's last word gets a moment; a stop, none.
    linger_ms = ERROR_LINGER_MS
    try:
        body(ctx, control)
        linger_ms = 0 if control.stop_requested else DRAIN_LINGER_MS
        return 0
    except JunoError as e:
        log.error("%s", e)
        control.error(str(e))
        print(f"juno {process}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as e:
        log.error("crashed:\n%s", traceback.format_exc())
        control.error(f"{type(e).__name__}: {e}")
        return 1
    finally:
        ctx.destroy(linger=linger_ms)
