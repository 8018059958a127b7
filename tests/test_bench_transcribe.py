"""`juno bench transcribe --step-shape`: AlignAtt step times on a random-weight Whisper."""

from __future__ import annotations

import mlx.core as mx
import pytest

from juno.bench import transcribe as bench
from juno.errors import JunoError


def test_an_unknown_whisper_shape_is_a_one_line_error():
    with pytest.raises(JunoError, match="--step-shape: unknown huge"):
        bench.random_whisper("huge", mx.float32)


def test_step_times_cover_every_buffer_and_decode_the_set_token_count(monkeypatch):
    from juno.transcriber.whisper_window import WhisperWindow

    model = bench.random_whisper("tiny", mx.float32)
    assert model.dims.n_audio_layer == 4 and model.is_multilingual
    written = []
    decode = WhisperWindow.continue_decoding

    def counting(self, *args, **kwargs):
        before = self.generated_tokens
        result = decode(self, *args, **kwargs)
        written.append(self.generated_tokens - before)
        return result

    monkeypatch.setattr(WhisperWindow, "continue_decoding", counting)
    monkeypatch.setattr(bench, "STEP_BUFFERS_S", (2, 5))
    lines = bench.alignatt_steps(model, pad_s=2.0, reps=2)
    rows = [line.split() for line in lines[2:]]
    assert [row[0] for row in rows] == ["2", "5"]
    for row in rows:
        encoder, decoder, step = map(float, row[1:4])
        assert encoder > 0 and decoder > 0 and step == pytest.approx(encoder + decoder, abs=0.2)
    assert written == [bench.STEP_NEW_TOKENS] * 6  # (1 untimed + 2) steps per buffer


def test_a_random_whisper_reads_the_real_models_alignment_heads():
    heads = {
        shape: len(bench.random_whisper(shape, mx.float32).alignment_heads)
        for shape in ("tiny", "base")
    }
    assert heads == {"tiny": 6, "base": 8}  # whisper-base's own: 8 (see its weights)


def test_vary_reads_each_value_as_set_does_and_names_the_replays():
    from juno.config import Config

    varied = bench._varied("commit_at_word_boundary=false,true", Config())
    assert varied == [("commit_at_word_boundary", False), ("commit_at_word_boundary", True)]
    assert bench._varied("transcribe.frame_threshold=20,40", Config()) == [
        ("frame_threshold", 20),
        ("frame_threshold", 40),
    ]
    variant = bench.Variant("alignatt", "aware", (("beam_size", 5), varied[1]))
    assert str(variant) == "alignatt b5 commit_at_word_boundary=true aware"
    for bad, message in [
        ("commit_at_word_boundary", "--vary: expected KEY=V1,V2"),
        ("no_such_key=1,2", "no_such_key"),
        ("beam_size=5,zero", "beam_size"),
        ("beam_size=0", "beam_size must be 1"),
    ]:
        with pytest.raises(JunoError, match=message):
            bench._varied(bad, Config())
