"""The streaming transcriber on Whisper base (real weights): JFK, silence, noise, alignment."""

import numpy as np
import pytest

from juno.config import Config
from juno.transcriber.build import make_transcriber
from juno.transcriber.replay import replay
from juno.transcriber.words import normalize

pytestmark = pytest.mark.real_weights

RATE = 16000
QUOTE = (
    "And so my fellow Americans, ask not what your country can do for you, "
    "ask what you can do for your country."
)


@pytest.fixture(scope="module")
def model(whisper_base_path):
    from juno.models.loading import load_whisper

    model, _ = load_whisper(str(whisper_base_path), Config())
    return model


@pytest.fixture(scope="module")
def jfk(data_dir):
    from juno.audio import load_audio

    return load_audio(data_dir / "audio" / "jfk.flac")


def _word_errors(ref: str, hyp: str) -> int:
    import jiwer

    norm = lambda s: " ".join(normalize(w) for w in s.split())  # noqa: E731
    out = jiwer.process_words(norm(ref), norm(hyp))
    return out.substitutions + out.deletions + out.insertions


def _with_policy(policy: str) -> Config:
    from dataclasses import replace

    cfg = Config()
    return replace(cfg, transcribe=replace(cfg.transcribe, policy=policy))


@pytest.mark.parametrize("policy", ["alignatt", "local-agreement"])
def test_jfk_streams_the_quote_with_sane_times(model, jfk, policy):
    out = list(replay(make_transcriber(model, _with_policy(policy)), jfk, chunk_s=0.1))
    text = " ".join(e.word.text for e in out)
    # The default policy gets every word; the other may miss one.
    assert _word_errors(QUOTE, text) <= (0 if policy == Config().transcribe.policy else 1), text
    words = [e.word for e in out]
    duration = len(jfk) / RATE
    assert all(0 <= w.start_s <= w.end_s <= duration for w in words)
    assert all(a.start_s <= b.start_s for a, b in zip(words, words[1:], strict=False))
    assert all(e.emitted_s >= e.word.end_s for e in out)  # never before it was heard
    assert words[-1].sentence_end and words[-1].text.startswith("country")


@pytest.mark.parametrize("policy", ["alignatt", "local-agreement"])
@pytest.mark.parametrize("signal", ["digital silence", "white noise at -30 dBFS"])
def test_silence_and_noise_give_no_words(model, signal, policy):
    n = 30 * RATE
    if signal == "digital silence":
        audio = np.zeros(n, np.float32)
    else:
        noise = np.random.default_rng(1).standard_normal(n)
        audio = (noise / noise.std() * 10 ** (-30 / 20)).astype(np.float32)
    stepper = make_transcriber(model, _with_policy(policy))
    assert list(replay(stepper, audio, chunk_s=0.5)) == []
    assert stepper.buffer_s <= 1.0  # the silence is dropped, not kept


def test_fitted_context_keeps_the_words_and_their_times(model, jfk):
    from juno.transcriber.whisper_window import WhisperWindow

    clip = jfk
    fitted = WhisperWindow(model, fit_context=True).transcribe(clip, "en")
    full = WhisperWindow(model, fit_context=False).transcribe(clip, "en")
    assert fitted.encoder_positions < full.encoder_positions == 1500
    assert [normalize(w.text) for w in fitted.words] == [normalize(w.text) for w in full.words]
    gaps = [abs(a.end_s - b.end_s) for a, b in zip(fitted.words, full.words, strict=True)]
    assert np.median(gaps) <= 0.1, gaps


def test_alignatt_decoding_equals_whole_window_decoding(model, jfk):
    """With the audio all there (the end-of-utterance threshold), one AlignAtt
    decoding says what mlx-whisper's own decoding says, and its word times (from
    the decoding's attention) match mlx-whisper's alignment pass."""
    from juno.transcriber.whisper_window import WhisperWindow

    window = WhisperWindow(model, fit_context=True, context_pad_s=2.0)
    reference = window.transcribe(jfk, "en")
    ours = window.continue_decoding(jfk, "en", "", [], stop_s=len(jfk) / RATE, max_new_tokens=100)
    assert [normalize(w.text) for w in ours.words] == [normalize(w.text) for w in reference.words]
    gaps = [abs(a.end_s - b.end_s) for a, b in zip(ours.words, reference.words, strict=True)]
    assert np.median(gaps) <= 0.1, gaps
    assert ours.no_speech_prob < 0.1 and ours.avg_logprob > -0.5


def test_alignatt_continues_exactly_after_forced_tokens(model, jfk):
    """Forcing the first words' tokens and decoding on gives the rest of the same
    greedy transcript: the forced prefix is a cache of what was said, not a nudge."""
    from juno.transcriber.whisper_window import WhisperWindow

    window = WhisperWindow(model, fit_context=True, context_pad_s=2.0)
    whole = window.continue_decoding(jfk, "en", "", [], stop_s=len(jfk) / RATE, max_new_tokens=100)
    head = whole.words[:6]
    forced = [t for w in head for t in w.tokens]
    rest = window.continue_decoding(
        jfk, "en", "", forced, stop_s=len(jfk) / RATE, max_new_tokens=100
    )
    assert [w.text for w in rest.words] == [w.text for w in whole.words[6:]]
    assert [w.tokens for w in rest.words] == [w.tokens for w in whole.words[6:]]
    # Mid-word, at the usual threshold (0.5 s), the decoding stops before the
    # audio's end: "what your country can do" runs from 5.5 s to 8 s.
    early = window.continue_decoding(
        jfk[: 7 * RATE], "en", "", forced, stop_s=6.5, max_new_tokens=100
    )
    assert early.reached_end and early.words, early
    assert all(w.start_s < 7.0 - 0.5 + 0.1 for w in early.words), early.words


@pytest.mark.parametrize("beams", [1, 4])
def test_jfk_streams_the_quote_at_any_beam_width(model, jfk, beams):
    from dataclasses import replace

    cfg = Config()
    cfg = replace(cfg, transcribe=replace(cfg.transcribe, beam_size=beams))
    out = list(replay(make_transcriber(model, cfg), jfk, chunk_s=0.1))
    assert _word_errors(QUOTE, " ".join(e.word.text for e in out)) == 0


def test_the_bench_replays_beam_widths_side_by_side(tmp_path, whisper_base_path):
    import json
    import subprocess
    import sys

    jsonl = tmp_path / "clips.jsonl"
    args = ["bench", "transcribe", "--sets", "jfk", "--modes", "unaware", "--policies",
            "alignatt", "--beams", "1,3", "--no-steps", "--jsonl", str(jsonl),
            "--set", f"transcribe.model={whisper_base_path}"]  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "juno", *args], capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stderr
    table = [line.split() for line in done.stdout.splitlines() if line.startswith("all ")]
    # all, clips, audio s, WER whole, whole b1, whole b3, then per stream | WER lag p90 cmp/s.
    assert table and table[0][3:6] == ["0.0%", "0.0%", "0.0%"], done.stdout
    assert "alignatt b1 unaware" in done.stdout and "alignatt b3 unaware" in done.stdout
    record = json.loads(jsonl.read_text())
    for key in ("whole b1", "whole b3"):
        assert _word_errors(QUOTE, record[key]) == 0, record[key]
    for key in ("alignatt b1 unaware", "alignatt b3 unaware"):
        assert _word_errors(QUOTE, record[key]["text"]) == 0, record[key]
        assert record[key]["compute_s"] > 0


@pytest.fixture(scope="module")
def two_turns(jfk, data_dir):
    """JFK (-17 dBFS), 1.5 s of silence, a French FLEURS clip 45 dB quieter (-62 dBFS),
    and a pause: the French turn starts 14.1 s in."""
    from juno.audio import load_audio

    french = load_audio(data_dir / "audio" / "fleurs" / "fleurs-fr-000.ogg")
    pause = np.zeros(24000, np.float32)
    return np.concatenate([jfk, pause, french, pause]), len(jfk) / RATE + 1.5


def test_a_quiet_speaker_after_a_loud_one_is_heard(two_turns):
    """Silero's state, carried over from JFK, missed the quiet French for 5 s; reset after
    a second without speech, it hears it as it does alone (2.3 s into the clip)."""
    from juno.transcriber.vad import FRAME_S, SileroDetector, SpeechTrack

    audio, french_s = two_turns
    track = SpeechTrack(SileroDetector())
    for i in range(0, len(audio), RATE // 10):
        track.feed(audio[i : i + RATE // 10])
    assert track.speech_s(french_s, french_s + 3.0) > 10 * FRAME_S


@pytest.mark.parametrize("chunk_s", [30.0, 1.0])
def test_a_conversations_turns_come_out_whole_in_their_languages(model, two_turns, chunk_s):
    """``--pair en,fr`` on JFK and the quiet French turn, fed as spoken (1 s chunks) and as
    a backlog (30 s at once: a step ends at the pause, so the French is identified alone):
    every word in its own language, the French as whole-clip Whisper hears it."""
    from dataclasses import replace

    audio, french_s = two_turns
    cfg = replace(Config(), conversation=replace(Config().conversation, pair=["en", "fr"]))
    stepper = make_transcriber(model, cfg)
    out = [e.word for e in replay(stepper, audio, chunk_s=chunk_s)]
    english = [w for w in out if w.start_s < french_s]
    french = [w for w in out if w.start_s >= french_s]
    assert {w.language for w in english} == {"en"} and {w.language for w in french} == {"fr"}
    assert _word_errors(QUOTE, " ".join(w.text for w in english)) <= 1
    said = "l'accident a eu lieu en terrain montagneux et il sembleraient que cela"
    assert _word_errors(said, " ".join(w.text for w in french[:12])) <= 1
