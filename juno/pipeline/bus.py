"""ZeroMQ plumbing: the pipeline's endpoints and typed send/receive.

Channels (who binds is fixed, so a stage can run on another machine):

- ``audio``   capture PUSH -> transcribe PULL (binds)
- ``words``   transcribe PUSH -> translate PULL (binds)
- ``source``  transcribe XPUB (binds) -> displays SUB
- ``target``  translate XPUB (binds) -> displays SUB
- ``control`` supervisor ROUTER (binds) <-> each stage DEALER (identity = its name)

Data flows through PUSH/PULL (no silent drops: a full queue blocks the sender);
displays subscribe, and a publisher can wait until its displays have
subscribed (XPUB sees each subscription), so nothing is sent before anyone
listens. Default endpoints are ipc sockets in a private folder; tcp on
127.0.0.1 (or another host, by explicit config) when a port is configured.
"""

from __future__ import annotations

import errno
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import zmq

from juno.errors import JunoError
from juno.pipeline.messages import Message, MessageError, pack, unpack

__all__ = ["Endpoints", "pack", "receive", "receive_frames", "send", "socket"]

log = logging.getLogger(__name__)

CHANNELS = ("audio", "words", "source", "target", "control")
# A publisher keeps up to this many messages per slow subscriber before dropping.
PUB_HWM = 100_000


@dataclass(frozen=True)
class Endpoints:
    """Where each channel lives (ZeroMQ addresses)."""

    audio: str
    words: str
    source: str
    target: str
    control: str

    @classmethod
    def ipc(cls, folder: Path) -> Endpoints:
        """Unix sockets in ``folder`` (local only)."""
        return cls(**{name: f"ipc://{folder / name}.sock" for name in CHANNELS})

    @classmethod
    def tcp(cls, host: str, port: int) -> Endpoints:
        """tcp ports ``port`` .. ``port + 4`` on ``host``."""
        return cls(**{name: f"tcp://{host}:{port + i}" for i, name in enumerate(CHANNELS)})

    def as_args(self) -> list[str]:
        """Command-line flags for ``juno process`` (``--audio EP`` ...)."""
        return [arg for name, ep in asdict(self).items() for arg in (f"--{name}", ep)]


def socket(ctx: zmq.Context, kind: int, *, bind: str | None = None, connect: str | None = None):
    """A socket that binds or connects, closes without lingering, and says why it cannot bind."""
    sock = ctx.socket(kind)
    sock.setsockopt(zmq.LINGER, 0)
    if kind in (zmq.PUB, zmq.XPUB):
        sock.setsockopt(zmq.SNDHWM, PUB_HWM)
    if kind == zmq.XPUB:
        # Every display's subscription is passed on, not only the first to a topic:
        # wait_subscribers counts them.
        sock.setsockopt(zmq.XPUB_VERBOSE, 1)
    try:
        if bind:
            sock.bind(bind)
        if connect:
            sock.connect(connect)
    except zmq.ZMQError as e:
        sock.close()
        where = bind or connect
        if e.errno == errno.EADDRINUSE:
            raise JunoError(f"cannot listen on {where}: address already in use") from None
        verb = "listen on" if bind else "connect to"
        raise JunoError(f"cannot {verb} {where}: {e.strerror}") from None
    return sock


def send(sock: zmq.Socket, msg: Message, timeout_ms: int | None = None) -> bool:
    """Send ``msg``; with a timeout, False if the peer did not take it in time."""
    frames = pack(msg)
    if timeout_ms is None:
        sock.send_multipart(frames, copy=False)
        return True
    if not sock.poll(timeout_ms, zmq.POLLOUT):
        return False
    sock.send_multipart(frames, copy=False)
    return True


def receive(sock: zmq.Socket, channel: str) -> Message | None:
    """The next message (the caller polled); a frame that is none is logged and dropped."""
    frames = sock.recv_multipart(copy=False)
    return receive_frames([f.buffer for f in frames], channel)


def receive_waiting(sock: zmq.Socket, channel: str, limit: int = 10_000) -> list[Message]:
    """Every message already waiting on ``sock`` (none if none), without blocking.

    A stage that fell behind takes all that is queued at once and catches up
    in one step instead of working through the backlog one message at a time.
    """
    out: list[Message] = []
    while len(out) < limit:
        try:
            frames = sock.recv_multipart(zmq.NOBLOCK, copy=False)
        except zmq.Again:
            break
        msg = receive_frames([f.buffer for f in frames], channel)
        if msg is not None:
            out.append(msg)
    return out


def receive_frames(frames: list, channel: str) -> Message | None:
    """The message in received frames, or None (logged) if they hold none."""
    try:
        return unpack(frames)
    except MessageError as e:
        log.warning("dropped a bad frame on %s: %s", channel, e)
        return None


def wait_subscribers(xpub: zmq.Socket, count: int, timeout_s: float, channel: str) -> None:
    """Block until ``count`` subscriptions reached the XPUB socket (the displays listen)."""
    seen = 0
    deadline = time.monotonic() + timeout_s
    while seen < count:
        left_ms = int(1000 * (deadline - time.monotonic()))
        if left_ms <= 0 or not xpub.poll(left_ms):
            raise JunoError(f"no display subscribed to {channel} within {timeout_s:.0f} s")
        frame = xpub.recv()
        if frame[:1] == b"\x01":
            seen += 1
