"""ZeroMQ helpers over real inproc sockets: draining what is waiting."""

import zmq

from juno.pipeline import bus
from juno.pipeline.messages import EndOfStream


def test_receive_waiting_takes_what_is_queued_without_blocking():
    ctx = zmq.Context()
    try:
        pull = bus.socket(ctx, zmq.PULL, bind="inproc://audio")
        push = bus.socket(ctx, zmq.PUSH, connect="inproc://audio")
        assert bus.receive_waiting(pull, "audio") == []  # nothing yet: no wait
        for i in range(5):
            bus.send(push, EndOfStream(i, float(i)))
        assert pull.poll(2000)
        push.send_multipart([b"not a message"])  # a bad frame is dropped, not raised
        first = bus.receive_waiting(pull, "audio", limit=2)
        rest = bus.receive_waiting(pull, "audio")
        assert [m.seq for m in first] == [0, 1] and [m.seq for m in rest] == [2, 3, 4]
        assert bus.receive_waiting(pull, "audio") == []
    finally:
        ctx.destroy(linger=0)
