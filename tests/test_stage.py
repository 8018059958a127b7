"""A stage's side of the pipeline (``juno.pipeline.stage``) over real ipc sockets.

The stage runs in a thread with its own ZeroMQ context, as in its own process
(so ipc, not inproc, links it to the test); the test plays the supervisor (a
ROUTER on the control channel) and the next stage (a PULL). Every receive
polls with a timeout and every join has one, so nothing here can hang.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
import zmq

from juno.errors import JunoError
from juno.pipeline import bus, stage
from juno.pipeline.messages import (
    Done,
    EndOfStream,
    Error,
    Heartbeat,
    Ready,
    Shutdown,
    SourceWord,
    Start,
)

TIMEOUT_MS = 5000
QUEUED = 300  # words the stage sends before it is told to leave


class StageThread(threading.Thread):
    """``stage.run(name, control, body)`` in a thread; its exit code in ``code``."""

    def __init__(self, name: str, control: str | None, body: Callable) -> None:
        super().__init__(daemon=True)  # a stuck stage must not keep pytest alive
        self.args = (name, control, body)
        self.code: int | None = None

    def run(self) -> None:
        self.code = stage.run(*self.args)


@pytest.fixture
def ctx():
    context = zmq.Context()
    yield context
    context.destroy(linger=0)


@pytest.fixture
def eps(tmp_path) -> dict[str, str]:
    return {name: f"ipc://{tmp_path}/{name}.sock" for name in ("control", "words")}


def supervisor(ctx: zmq.Context, endpoint: str) -> zmq.Socket:
    router = bus.socket(ctx, zmq.ROUTER, bind=endpoint)
    router.setsockopt(zmq.RCVTIMEO, TIMEOUT_MS)
    return router


def status(router: zmq.Socket, skip_heartbeats: bool = True) -> tuple[str, object]:
    """The next status message and who sent it."""
    while True:
        assert router.poll(TIMEOUT_MS), "the stage said nothing"
        identity, *frames = router.recv_multipart()
        msg = bus.receive_frames(frames, "control")
        if not (skip_heartbeats and isinstance(msg, Heartbeat)):
            return identity.decode(), msg


def tell(router: zmq.Socket, name: str, msg) -> None:
    router.send_multipart([name.encode(), *bus.pack(msg)])


def word(i: int) -> SourceWord:
    return SourceWord(i, i * 0.3, 0.0, f"w{i}", i * 0.3, i * 0.3 + 0.2, 0.9, False, 0, 0.0)


def worker(words_ep: str, finished: threading.Event):
    """A stage body as the real ones are written: say Ready, wait for Start, send
    its words to the next stage, then answer control until told to leave; on a
    drain it ends its stream and says Done, on a stop it leaves at once."""

    def body(ctx: zmq.Context, control: stage.Control) -> None:
        out = bus.socket(ctx, zmq.PUSH, connect=words_ep)
        control.ready(model="none")
        control.wait_start()
        for i in range(QUEUED):
            bus.send(out, word(i))
        deadline = time.monotonic() + TIMEOUT_MS / 1000
        while not control.drain_requested:
            assert time.monotonic() < deadline, "never told to leave"
            control.sock.poll(50)
            control.handle()
        finished.set()
        if control.stop_requested:
            return
        bus.send(out, EndOfStream(QUEUED, QUEUED * 0.3, "drain"))
        control.done()

    return body


def test_ready_start_heartbeat_done(ctx, eps, tmp_path):
    router = supervisor(ctx, eps["control"])
    pull = bus.socket(ctx, zmq.PULL, bind=eps["words"])
    finished = threading.Event()
    thread = StageThread("transcribe", eps["control"], worker(eps["words"], finished))
    thread.start()
    assert status(router) == ("transcribe", Ready("transcribe", {"model": "none"}))
    assert not pull.poll(100), "a stage sends nothing before Start"
    tell(router, "transcribe", Start())
    assert pull.poll(TIMEOUT_MS) and bus.receive(pull, "words") == word(0)
    tell(router, "transcribe", Shutdown("drain"))
    name, beat = status(router, skip_heartbeats=False)
    assert name == "transcribe" and isinstance(beat, Heartbeat)
    assert beat.cpu_s > 0 and beat.rss_bytes > 1 << 20
    assert status(router) == ("transcribe", Done("transcribe"))
    thread.join(TIMEOUT_MS / 1000)
    assert thread.code == 0


def _started(ctx, eps, name: str) -> tuple[zmq.Socket, StageThread, threading.Event]:
    router = supervisor(ctx, eps["control"])
    finished = threading.Event()
    thread = StageThread(name, eps["control"], worker(eps["words"], finished))
    thread.start()
    assert status(router)[1] == Ready(name, {"model": "none"})
    tell(router, name, Start())
    return router, thread, finished


def test_a_drained_stage_delivers_all_it_queued_even_to_a_late_reader(ctx, eps):
    # Nobody reads the words yet: they wait in the stage's socket.
    router, thread, finished = _started(ctx, eps, "translate")
    tell(router, "translate", Shutdown("drain"))
    assert status(router) == ("translate", Done("translate"))
    assert finished.is_set()
    thread.join(0.5)
    assert thread.is_alive(), "the stage left with its words undelivered"
    pull = bus.socket(ctx, zmq.PULL, bind=eps["words"])
    pull.setsockopt(zmq.RCVTIMEO, TIMEOUT_MS)
    got = [bus.receive(pull, "words") for _ in range(QUEUED + 1)]
    assert got == [word(i) for i in range(QUEUED)] + [EndOfStream(QUEUED, QUEUED * 0.3, "drain")]
    thread.join(TIMEOUT_MS / 1000)
    assert not thread.is_alive() and thread.code == 0


def test_a_stopped_stage_leaves_at_once_dropping_what_it_queued(ctx, eps):
    router, thread, finished = _started(ctx, eps, "translate")
    tell(router, "translate", Shutdown("stop"))
    assert finished.wait(TIMEOUT_MS / 1000)
    thread.join(1.0)  # no waiting for a reader: its sockets do not linger
    assert not thread.is_alive() and thread.code == 0
    pull = bus.socket(ctx, zmq.PULL, bind=eps["words"])
    assert not pull.poll(300), "a stopped stage's words arrived"
    said = []
    while router.poll(0):
        said.append(bus.receive_frames(router.recv_multipart()[1:], "control"))
    assert not any(isinstance(m, Done) for m in said), "a stopped stage is not done"


@pytest.mark.parametrize(
    "raised, code, reported",
    [
        (JunoError("no microphone"), 2, "no microphone"),
        (ValueError("boom"), 1, "ValueError: boom"),
    ],
)
def test_a_failing_body_reports_its_error(ctx, eps, raised, code, reported, capsys, caplog):
    router = supervisor(ctx, eps["control"])

    def body(ctx, control):
        control.ready()
        raise raised

    thread = StageThread("capture", eps["control"], body)
    thread.start()
    assert status(router) == ("capture", Ready("capture", {}))
    assert status(router) == ("capture", Error("capture", reported))
    thread.join(TIMEOUT_MS / 1000)
    assert thread.code == code
    # A user's error is one line on stderr; a bug is logged with its traceback.
    err = capsys.readouterr().err
    assert ("juno capture: error: no microphone" in err) == (code == 2)
    assert ("Traceback" in caplog.text) == (code == 1)


def test_a_stop_while_waiting_for_start_returns_without_starting(ctx, eps):
    router = supervisor(ctx, eps["control"])
    seen = {}

    def body(ctx, control):
        control.ready()
        control.wait_start()
        seen["stop"] = control.stop_requested

    thread = StageThread("display", eps["control"], body)
    thread.start()
    assert status(router)[1] == Ready("display", {})
    tell(router, "display", Shutdown("stop"))
    thread.join(TIMEOUT_MS / 1000)
    assert seen == {"stop": True} and thread.code == 0


def test_a_stage_alone_starts_at_once_and_reports_to_nobody():
    seen = {}

    def body(ctx, control):
        control.ready(model="none")
        control.wait_start()  # no supervisor: no Start to wait for
        control.handle()
        control.done()
        seen["link"] = control.sock

    thread = StageThread("display", None, body)
    thread.start()
    thread.join(TIMEOUT_MS / 1000)
    assert not thread.is_alive() and thread.code == 0
    assert seen == {"link": None}
