"""The WhisperLiveKit peer's parts that need no peer environment: its replay, its
JSON lines, its errors. No models, no whisperlivekit."""

import importlib.util
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from juno.bench import peer
from juno.errors import JunoError
from juno.transcriber.replay import replay as juno_replay
from juno.transcriber.words import Word

RATE = peer.SAMPLE_RATE_HZ


@dataclass(frozen=True)
class Token:
    """What WhisperLiveKit's processors return (ASRToken): start, end, text."""

    start: float
    end: float
    text: str


class FakeClock:
    """Time that moves only when a step spends it."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class ScriptedPeer:
    """WhisperLiveKit's per-stream interface: commits each scripted word once its
    end is in the received audio, and spends ``cost_s`` of the clock per step."""

    def __init__(self, clock: FakeClock, cost_s: float, script: list[Token]) -> None:
        self.clock, self.cost_s, self.pending = clock, cost_s, list(script)
        self.received = 0  # samples
        self.chunks: list[int] = []

    @property
    def received_s(self) -> float:
        return self.received / RATE

    def insert_audio_chunk(self, audio: np.ndarray, audio_stream_end_time: float) -> None:
        self.chunks.append(len(audio))
        self.received += len(audio)
        assert audio_stream_end_time == pytest.approx(self.received_s)

    def process_iter(self):
        self.clock.now += self.cost_s
        done = [t for t in self.pending if t.end <= self.received_s]
        self.pending = self.pending[len(done) :]
        return done, self.received_s

    def finish(self):
        done, self.pending = self.pending, []
        return done, self.received_s


class AsJunoStepper:
    """The same scripted peer behind Juno's stepper interface, for Juno's own replay."""

    def __init__(self, inner: ScriptedPeer) -> None:
        self.inner = inner

    def insert_audio(self, audio: np.ndarray, now: float) -> None:
        self.inner.insert_audio_chunk(audio, self.inner.received_s + len(audio) / RATE)

    def process(self, now: float) -> list[Word]:
        return [Word(t.text.strip(), t.start, t.end) for t in self.inner.process_iter()[0]]

    def finish(self) -> list[Word]:
        return [Word(t.text.strip(), t.start, t.end) for t in self.inner.finish()[0]]


SCRIPT = [
    Token(0.2, 0.5, " And"),
    Token(0.5, 0.8, " so"),
    Token(1.1, 1.6, " fellow"),
    Token(1.6, 1.62, "."),
    Token(2.0, 2.45, " Ask"),
]


@pytest.mark.parametrize("aware", [False, True])
@pytest.mark.parametrize("cost_s", [0.03, 0.25])
def test_the_peer_is_replayed_on_junos_clock(aware, cost_s):
    audio = np.zeros(int(2.45 * RATE), np.float32)
    clock = FakeClock()
    theirs = ScriptedPeer(clock, cost_s, SCRIPT)
    words, compute_s = peer.replay(theirs, audio, 0.1, aware, clock)

    ours_clock = FakeClock()
    ours = ScriptedPeer(ours_clock, cost_s, SCRIPT)
    emitted = list(juno_replay(AsJunoStepper(ours), audio, 0.1, aware, clock=ours_clock))

    assert [(w.emitted_s, w.start_s, w.end_s, w.word) for w in words] == [
        (e.emitted_s, e.word.start_s, e.word.end_s, e.word.text) for e in emitted
    ]
    assert theirs.chunks == ours.chunks
    assert compute_s == pytest.approx(cost_s * len(theirs.chunks))
    if not aware:
        # Compute is free: a word comes out with the chunk that completes it.
        assert [w.emitted_s for w in words] == pytest.approx([0.5, 0.8, 1.6, 1.7, 2.45])
    elif cost_s > 0.1:
        # Slower than real time: later steps take all the audio arrived meanwhile.
        assert max(theirs.chunks) > round(0.1 * RATE)


def test_the_text_joins_tokens_as_whisperlivekit_shows_them():
    clock = FakeClock()
    words, _ = peer.replay(ScriptedPeer(clock, 0.0, SCRIPT), np.zeros(RATE * 3), 0.1, False)
    assert [w.word for w in words] == ["And", "so", "fellow", ".", "Ask"]
    assert " ".join("".join(w.text for w in words).split()) == "And so fellow. Ask"


def _line(**over) -> str:
    record = {"file": "a.flac", "text": "And so", "compute_s": 0.5, "audio_s": 1.0}
    record["words"] = [[0.6, 0.2, 0.5, "And"], [0.9, 0.5, 0.8, "so"]]
    return json.dumps(record | over)


def test_parse_lines_reads_one_record_per_line():
    records = peer.parse_lines(_line() + "\n\n" + _line(file="b.flac") + "\n")
    assert [r["file"] for r in records] == ["a.flac", "b.flac"]
    assert records[0]["words"][1] == [0.9, 0.5, 0.8, "so"]


@pytest.mark.parametrize(
    ("stdout", "message"),
    [
        ("Loading model...\n", "line 1 is not JSON"),
        (_line() + "\n" + json.dumps({"file": "b.flac", "text": ""}), "line 2 lacks words"),
        ("[1, 2]", "line 1 lacks file"),
        (_line(words=[[0.6, "And"]]), "malformed word"),
    ],
)
def test_parse_lines_names_a_bad_line(stdout, message):
    with pytest.raises(JunoError, match=message):
        peer.parse_lines(stdout)


def test_a_missing_peer_environment_is_one_line(tmp_path):
    with pytest.raises(JunoError) as e:
        peer.run_peer(
            tmp_path / "no-venv" / "bin" / "python",
            "localagreement",
            "aware",
            [tmp_path / "a.flac"],
            "en",
            100,
        )
    assert str(e.value) == "WhisperLiveKit is not installed: run scripts/setup-peer.sh"


@pytest.mark.skipif(
    importlib.util.find_spec("whisperlivekit") is not None,
    reason="WhisperLiveKit is installed in Juno's environment",
)
def test_an_interpreter_without_whisperlivekit_says_so(tmp_path):
    with pytest.raises(JunoError) as e:
        peer.run_peer(
            Path(sys.executable), "simulstreaming", "unaware", [tmp_path / "a.flac"], "en", 100
        )
    assert str(e.value) == "WhisperLiveKit is not installed: run scripts/setup-peer.sh"


def test_a_failing_peer_reports_its_last_line():
    assert peer._failure(1, "Traceback...\nValueError: boom\n") == (
        "WhisperLiveKit peer failed (exit 1): ValueError: boom"
    )
    assert peer._failure(2, "noise\npeer: error: a.flac: cannot read audio\n") == (
        "a.flac: cannot read audio"
    )


def _e(emitted_s, start_s, end_s, text):
    return peer.Emission(emitted_s, start_s, end_s, text)


def test_whole_words_joins_pieces_and_attaches_punctuation():
    tokens = [
        _e(1.0, 0.5, 0.6, " he"),
        _e(1.1, 0.7, 0.8, " p"),
        _e(1.4, 0.8, 1.0, "aced"),  # the rest of "paced", a step later
        _e(2.0, 1.0, 1.1, ","),  # punctuation committed later than its word
        _e(2.0, 1.2, 1.5, " down"),
        _e(2.6, 1.6, 1.7, "."),
    ]
    words = peer.whole_words(tokens)
    assert [(w.emitted_s, w.start_s, w.end_s, w.word) for w in words] == [
        (1.0, 0.5, 0.6, "he"),
        (1.4, 0.7, 1.0, "paced,"),
        (2.0, 1.2, 1.5, "down."),
    ]
    assert peer.whole_words([_e(0.5, 0.0, 0.4, "Hi")])[0].word == "Hi"


@pytest.mark.parametrize("aware", [False, True])
def test_audio_waits_for_the_min_chunk_as_in_whisperlivekits_server(aware):
    audio = np.zeros(int(2.45 * RATE), np.float32)
    clock = FakeClock()
    scripted = ScriptedPeer(clock, 0.05, SCRIPT)
    words, _ = peer.replay(scripted, audio, 0.1, aware, clock, min_chunk_s=1.0)
    # Steps at 1.0 s and 2.0 s of audio, the rest at the end of the stream.
    assert scripted.chunks == [RATE, RATE, len(audio) - 2 * RATE]
    # Each step finishes its compute before the next min chunk is in.
    late = 0.05 if aware else 0.0
    assert [w.emitted_s for w in words] == pytest.approx(
        [1.0 + late, 1.0 + late, 2.0 + late, 2.0 + late, 2.45 + late]
    )
