"""The supervisor (``juno.pipeline.supervisor``) with stand-in stages over ipc.

The supervisor starts its four stages exactly as in ``juno run`` (its own
command line, log files and control channel); only the program behind
``sys.executable`` is replaced by ``fake_stage.py``, whose ``--part`` says how
each stage behaves. Stand-ins give up after 30 s and threads are joined with a
timeout, so a supervisor that missed something fails the test instead of
hanging it.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest

from juno.pipeline import bus, supervisor
from juno.pipeline.supervisor import STAGES, StageFailed, Supervisor

FAKE_STAGE = Path(__file__).resolve().parent / "fake_stage.py"
JOIN_S = 40.0


@pytest.fixture
def start(tmp_path, monkeypatch):
    """``start(parts)`` -> a Supervisor whose stages play ``parts[name]`` (default "wait")."""
    python = tmp_path / "python"
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE_STAGE}" "$@"\n')
    python.chmod(0o755)
    monkeypatch.setattr(supervisor.sys, "executable", str(python))
    (tmp_path / "ipc").mkdir()

    def make(parts: dict[str, str], on_state=lambda state: None) -> Supervisor:
        stage_args = {name: ["--part", parts.get(name, "wait")] for name in STAGES}
        return Supervisor(
            bus.Endpoints.ipc(tmp_path / "ipc"),
            tmp_path / "config.yaml",
            tmp_path / "session",
            stage_args,
            on_state,
        )

    return make


def log_of(sup: Supervisor, name: str) -> str:
    return sup.children[name].log_path.read_text()


def assert_left_when_told(sup: Supervisor, names) -> None:
    """Each of ``names`` has left on the supervisor's stop: exit 0, neither killed
    (-9) nor given up waiting (2)."""
    for name in names:
        assert sup.children[name].popen.returncode == 0, (name, log_of(sup, name))


def test_stages_that_finish_end_the_run(start):
    states: list[str] = []
    sup = start(dict.fromkeys(STAGES, "finish"), states.append)
    sup.run()
    assert states == ["running"]
    for name in STAGES:
        child = sup.children[name]
        assert child.ready and child.done and child.popen.returncode == 0
        assert child.info == {"part": "finish"}
        assert sup.summaries[name] == {"part": "finish", "steps": 3}  # what its Done said
        assert sup.heartbeats[name], f"{name} sent no heartbeat"
        assert "started" in log_of(sup, name)


@pytest.mark.parametrize("dying", ["capture", "translate"])
def test_a_stage_that_dies_is_named_and_the_others_are_stopped(start, dying):
    running_at = []
    sup = start({dying: "die"}, lambda state: running_at.append(time.monotonic()))
    with pytest.raises(StageFailed) as e:
        sup.run()
    noticed_s = time.monotonic() - running_at[0]
    log = sup.children[dying].log_path
    assert str(e.value).startswith(f"stage '{dying}' died (killed by SIGKILL): ")
    assert "about to die" in str(e.value) and str(e.value).endswith(f"[log: {log}]")
    assert noticed_s < 5.0, f"took {noticed_s:.1f} s"
    assert_left_when_told(sup, [n for n in STAGES if n != dying])


def test_a_stage_error_stops_the_others_with_its_message(start):
    sup = start({"capture": "fail"})
    with pytest.raises(StageFailed) as e:
        sup.run()
    assert str(e.value) == "capture: no microphone"
    assert sup.children["capture"].popen.wait(5) == 2
    assert_left_when_told(sup, ["transcribe", "translate", "display"])


def test_a_stage_never_ready_is_named(start, monkeypatch):
    monkeypatch.setattr(supervisor, "READY_TIMEOUT_S", 3.0)
    sup = start({"transcribe": "never-ready"})
    with pytest.raises(StageFailed) as e:
        sup.run()
    assert str(e.value) == "stages not ready after 3 s: transcribe"
    assert not any(c.done for c in sup.children.values())
    assert_left_when_told(sup, STAGES)


class Running(threading.Thread):
    """``sup.run()`` in a thread, as ``juno run`` calls it; what it raised in ``error``."""

    def __init__(self, sup: Supervisor) -> None:
        super().__init__(daemon=True)
        self.sup = sup
        self.error: BaseException | None = None
        self.states: dict[str, threading.Event] = {
            s: threading.Event() for s in ("running", "draining")
        }
        sup.on_state = lambda state: self.states[state].set()

    def run(self) -> None:
        try:
            self.sup.run()
        except BaseException as e:  # noqa: BLE001  (the test looks at it)
            self.error = e


def test_ctrl_c_drains_capture_and_the_run_ends_when_it_is_done(start):
    parts = dict.fromkeys(STAGES, "finish") | {"capture": "drain"}
    sup = start(parts)
    run = Running(sup)
    run.start()
    assert run.states["running"].wait(JOIN_S)
    assert run.is_alive(), "the run ended before capture was drained"
    sup.interrupts = 1  # what the caller's SIGINT handler does
    assert run.states["draining"].wait(JOIN_S)
    run.join(JOIN_S)
    assert not run.is_alive() and run.error is None
    assert "shutdown (drain) requested" in log_of(sup, "capture")
    assert all(c.done and c.popen.returncode == 0 for c in sup.children.values())


def test_a_second_ctrl_c_stops_at_once(start):
    sup = start({"capture": "wait"})  # capture does not finish its drain
    run = Running(sup)
    run.start()
    assert run.states["running"].wait(JOIN_S)
    sup.interrupts = 1
    assert run.states["draining"].wait(JOIN_S)
    sup.interrupts = 2
    run.join(JOIN_S)
    assert not run.is_alive()
    assert isinstance(run.error, KeyboardInterrupt)
    assert "shutdown (drain) requested" in log_of(sup, "capture")
    assert "shutdown (stop) requested" in log_of(sup, "capture")
    assert_left_when_told(sup, STAGES)
