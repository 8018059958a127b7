"""ZeroMQ helpers over real inproc and ipc sockets: typed round trips, subscriptions,
errors a user can cause, draining what is waiting.

Every receive polls with a timeout first (and sockets carry RCVTIMEO), so a lost
message fails the test instead of hanging it.
"""

from __future__ import annotations

import itertools
import logging

import numpy as np
import pytest
import zmq

from juno.errors import JunoError
from juno.pipeline import bus
from juno.pipeline.messages import (
    AudioChunk,
    Done,
    EndOfStream,
    Error,
    Heartbeat,
    Ready,
    SentenceEnd,
    Shutdown,
    SourceWord,
    Start,
    TargetWord,
)

TIMEOUT_MS = 2000
TRANSPORTS = ("inproc", "ipc")
_names = itertools.count()

MESSAGES = [
    AudioChunk(0, 0.0, 1.7e9, 16000, np.linspace(-1, 1, 1600, dtype=np.float32)),
    SourceWord(1, 1.2, 1.7e9, "pays", 0.9, 1.2, 0.87, True, 0, 1.7e9 + 1.5),
    TargetWord(2, 1.2, 1.7e9, "country", 0, 3, 1.7e9 + 2.0),
    SentenceEnd(3, 1.2, 1.7e9, 0, "Mon pays.", "My country."),
    EndOfStream(4, 11.0, "drain"),
    Ready("translate", {"llm": "tiny", "wait_k": 3}),
    Heartbeat("transcribe", 1.5, 300 << 20, 20 << 20),
    Error("capture", "no microphone"),
    Done("display"),
    Start(),
    Shutdown("stop"),
]


@pytest.fixture
def ctx():
    context = zmq.Context()
    yield context
    context.destroy(linger=0)


@pytest.fixture
def endpoint(request, tmp_path_factory):
    """A fresh endpoint of the requested transport."""

    def make() -> str:
        n = next(_names)
        if request.param == "inproc":
            return f"inproc://test-bus-{n}"
        return f"ipc://{tmp_path_factory.mktemp('ipc')}/{n}.sock"

    return make


def receiving(sock: zmq.Socket) -> zmq.Socket:
    sock.setsockopt(zmq.RCVTIMEO, TIMEOUT_MS)
    return sock


def take(sock: zmq.Socket, channel: str = "test"):
    assert sock.poll(TIMEOUT_MS), "nothing arrived"
    return bus.receive(sock, channel)


def assert_same(got, sent) -> None:
    assert type(got) is type(sent)
    assert got == sent
    if isinstance(sent, AudioChunk):  # samples are left out of ==
        assert got.samples.dtype == np.float32
        np.testing.assert_array_equal(got.samples, sent.samples)


@pytest.mark.parametrize("endpoint", TRANSPORTS, indirect=True)
def test_every_message_type_survives_push_pull(ctx, endpoint):
    where = endpoint()
    pull = receiving(bus.socket(ctx, zmq.PULL, bind=where))
    push = bus.socket(ctx, zmq.PUSH, connect=where)
    for msg in MESSAGES:
        assert bus.send(push, msg, timeout_ms=TIMEOUT_MS)
    for msg in MESSAGES:
        assert_same(take(pull), msg)
    assert not pull.poll(50)


@pytest.mark.parametrize("endpoint", TRANSPORTS, indirect=True)
def test_control_round_trip_names_the_stage(ctx, endpoint):
    """The supervisor's ROUTER learns who spoke from the DEALER's identity, and answers it."""
    where = endpoint()
    router = receiving(bus.socket(ctx, zmq.ROUTER, bind=where))
    dealers = {}
    for name in ("capture", "display"):
        dealer = ctx.socket(zmq.DEALER)
        dealer.setsockopt(zmq.LINGER, 0)
        dealer.setsockopt_string(zmq.IDENTITY, name)
        dealer.connect(where)
        dealers[name] = receiving(dealer)
    bus.send(dealers["display"], Ready("display", {"session": "s1"}), timeout_ms=TIMEOUT_MS)
    assert router.poll(TIMEOUT_MS)
    identity, *frames = router.recv_multipart()
    assert identity == b"display"
    assert bus.receive_frames(frames, "control") == Ready("display", {"session": "s1"})
    router.send_multipart([b"capture", *bus.pack(Shutdown("drain"))])
    assert take(dealers["capture"]) == Shutdown("drain")
    assert not dealers["display"].poll(50)


def _displays(ctx: zmq.Context, where: str, n: int) -> list[zmq.Socket]:
    subs = []
    for _ in range(n):
        sub = receiving(bus.socket(ctx, zmq.SUB, connect=where))
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        subs.append(sub)
    return subs


@pytest.mark.parametrize("endpoint", TRANSPORTS, indirect=True)
def test_a_publisher_waits_for_its_display_before_sending(ctx, endpoint):
    where = endpoint()
    xpub = bus.socket(ctx, zmq.XPUB, bind=where)
    [sub] = _displays(ctx, where, 1)
    bus.wait_subscribers(xpub, 1, TIMEOUT_MS / 1000, "source words")
    # Sent at once after the wait: a publisher that had not waited would lose it.
    bus.send(xpub, MESSAGES[1])
    bus.send(xpub, EndOfStream(1, 2.0))
    assert take(sub) == MESSAGES[1]
    assert take(sub) == EndOfStream(1, 2.0)


def test_a_publisher_sees_each_of_two_displays(ctx):
    xpub = bus.socket(ctx, zmq.XPUB, bind="inproc://two-displays")
    _displays(ctx, "inproc://two-displays", 2)
    bus.wait_subscribers(xpub, 2, 1.0, "source words")


def test_waiting_for_displays_that_never_come_says_which_channel(ctx):
    xpub = bus.socket(ctx, zmq.XPUB, bind="inproc://lonely")
    with pytest.raises(JunoError, match="no display subscribed to target words within 0 s"):
        bus.wait_subscribers(xpub, 1, 0.2, "target words")


@pytest.mark.parametrize("endpoint", TRANSPORTS, indirect=True)
def test_send_with_a_timeout_reports_a_missing_peer(ctx, endpoint):
    where = endpoint()
    push = bus.socket(ctx, zmq.PUSH, bind=where)  # nobody connected: nowhere to queue
    assert bus.send(push, Start(), timeout_ms=100) is False
    pull = receiving(bus.socket(ctx, zmq.PULL, connect=where))
    assert bus.send(push, Start(), timeout_ms=TIMEOUT_MS) is True
    assert take(pull) == Start()


def test_a_taken_address_is_one_clear_error(ctx):
    first = bus.socket(ctx, zmq.PULL, bind="inproc://taken")  # held: a collected socket unbinds
    with pytest.raises(JunoError) as e:
        bus.socket(ctx, zmq.PULL, bind="inproc://taken")
    assert str(e.value) == "cannot listen on inproc://taken: address already in use"
    first.close()


def test_a_bad_endpoint_is_one_clear_error(ctx):
    with pytest.raises(JunoError, match=r"^cannot connect to nowhere://x: "):
        bus.socket(ctx, zmq.PUSH, connect="nowhere://x")


@pytest.mark.parametrize("endpoint", TRANSPORTS, indirect=True)
def test_a_bad_frame_is_logged_and_dropped(ctx, endpoint, caplog):
    where = endpoint()
    pull = receiving(bus.socket(ctx, zmq.PULL, bind=where))
    push = bus.socket(ctx, zmq.PUSH, connect=where)
    push.send_multipart([b"\xc1 not msgpack"])
    bus.send(push, Done("capture"))
    with caplog.at_level(logging.WARNING, logger="juno.pipeline.bus"):
        assert take(pull, "audio") is None
    assert "dropped a bad frame on audio" in caplog.text
    assert take(pull) == Done("capture")


def test_endpoints_name_every_channel(tmp_path):
    ipc = bus.Endpoints.ipc(tmp_path)
    assert ipc.control == f"ipc://{tmp_path}/control.sock"
    tcp = bus.Endpoints.tcp("127.0.0.1", 5550)
    assert [tcp.audio, tcp.control] == ["tcp://127.0.0.1:5550", "tcp://127.0.0.1:5554"]
    args = tcp.as_args()
    assert args[::2] == [f"--{name}" for name in bus.CHANNELS]
    assert args[1::2] == [f"tcp://127.0.0.1:{5550 + i}" for i in range(5)]


@pytest.mark.parametrize("endpoint", TRANSPORTS, indirect=True)
def test_receive_waiting_takes_what_is_queued_without_blocking(ctx, endpoint):
    where = endpoint()
    pull = bus.socket(ctx, zmq.PULL, bind=where)
    push = bus.socket(ctx, zmq.PUSH, connect=where)
    assert bus.receive_waiting(pull, "audio") == []  # nothing yet: no wait
    for i in range(5):
        bus.send(push, EndOfStream(i, float(i)))
    push.send_multipart([b"not a message"])  # a bad frame is dropped, not raised
    bus.send(push, Done("capture"))  # the last one: once it is here, all are
    got, sizes = [], []
    while not got or not isinstance(got[-1], Done):
        assert pull.poll(TIMEOUT_MS), got
        batch = bus.receive_waiting(pull, "audio", limit=2)
        sizes.append(len(batch))
        got += batch
    assert [m.seq for m in got[:-1]] == [0, 1, 2, 3, 4]
    # More than one at a time when more are waiting, never more than the limit.
    assert max(sizes) == 2
    assert bus.receive_waiting(pull, "audio") == []
