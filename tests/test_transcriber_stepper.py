"""The stepper with a scripted window (no weights): pacing, gating, trimming, input checks."""

import numpy as np
import pytest

from juno.errors import JunoError
from juno.transcriber.replay import replay
from juno.transcriber.streaming import StreamingTranscriber, StreamOptions
from juno.transcriber.vad import SpeechTrack
from juno.transcriber.whisper_window import WindowResult
from juno.transcriber.words import Word

RATE = 16000
# (text, start, end) in stream seconds: two sentences, a long silence, one more.
SCRIPT = [
    ("Hello", 0.5, 0.9),
    ("there,", 1.0, 1.4),
    ("my", 1.5, 1.7),
    ("friend.", 1.8, 2.3),
    ("How", 2.6, 2.8),
    ("are", 2.9, 3.1),
    ("you", 3.2, 3.5),
    ("today?", 3.6, 4.1),
    ("Fine", 9.0, 9.4),
    ("thanks", 9.5, 10.0),
]


class LoudFrames:
    """A detector for the synthetic audio: loud frames are speech."""

    def __call__(self, frame: np.ndarray) -> float:
        return float(np.abs(frame).max() > 0.05)


class ScriptedWindow:
    """Stands in for Whisper: returns the scripted words that are fully in the buffer."""

    def __init__(self, script=SCRIPT):
        self.script = script
        self.stepper = None
        self.calls = []
        self.languages = []
        self.full_context = []

    def detect_language(self, audio):
        return "de"

    def transcribe(self, audio, language, prompt="", full_context=False):
        self.languages.append(language)
        self.full_context.append(full_context)
        end = self.stepper.buffer_end_s
        start = end - len(audio) / RATE
        self.calls.append((start, end, prompt))
        words = [
            Word(t, s - start, e - start, 0.9) for t, s, e in self.script if s >= start and e <= end
        ]
        return WindowResult(words, " ".join(w.text for w in words), language, 0.01, -0.2, 1.2, 0)


def speech_audio(seconds: float, script=SCRIPT) -> np.ndarray:
    """Silence with a loud tone under each scripted word."""
    audio = np.zeros(int(seconds * RATE), np.float32)
    for _, s, e in script:
        t = np.arange(int(s * RATE), int(e * RATE))
        audio[t] = 0.3 * np.sin(2 * np.pi * 200 * t / RATE)
    return audio


def make(script=SCRIPT, window=None, **options) -> tuple[StreamingTranscriber, ScriptedWindow]:
    """A stepper (LocalAgreement unless ``policy`` says otherwise) on a scripted window."""
    window = window or ScriptedWindow(script)
    options = {"policy": "local-agreement", **options}
    stepper = StreamingTranscriber(window, SpeechTrack(LoudFrames()), StreamOptions(**options))
    window.stepper = stepper
    return stepper, window


def test_streams_the_script_once_in_order_and_after_the_audio():
    stepper, _ = make()
    out = list(replay(stepper, speech_audio(12.0), chunk_s=0.1))
    assert [e.word.text for e in out] == [t for t, _, _ in SCRIPT]
    assert all(e.emitted_s >= e.word.end_s for e in out)
    assert [e.word.sentence_end for e in out] == [
        False, False, False, True, False, False, False, True, False, True
    ]  # fmt: skip
    assert out[-1].emitted_s < 12.0  # the pause, not the end of the file, commits it


def test_silence_is_never_transcribed():
    stepper, window = make()
    stepper.insert_audio(np.zeros(30 * RATE, np.float32), 30.0)
    assert stepper.process(30.0) == [] and stepper.finish() == []
    assert window.calls == []
    assert stepper.buffer_s <= 0.5 + 1e-9  # only a lead-in is kept


def test_buffer_is_cut_at_sentence_ends_and_prompts_with_the_text_before():
    stepper, window = make()
    list(replay(stepper, speech_audio(12.0), chunk_s=0.1))
    starts = [s for s, _, _ in window.calls]
    assert starts == sorted(starts) and starts[-1] > 2.0
    assert any(p.endswith("friend.") for _, _, p in window.calls)


def test_buffer_stays_under_its_limit_without_sentence_ends():
    script = [(f"w{i}", 0.5 + 0.5 * i, 0.9 + 0.5 * i) for i in range(60)]
    stepper, window = make(script, buffer_max_s=6.0)
    out = list(replay(stepper, speech_audio(31.0, script), chunk_s=0.25))
    assert max(e - s for s, e, _ in window.calls) <= 6.0 + 1e-6
    assert [e.word.text for e in out] == [t for t, _, _ in script]


def test_language_is_detected_once_from_the_first_speech():
    stepper, window = make(language=None)
    list(replay(stepper, speech_audio(12.0), chunk_s=0.1))
    assert stepper.language == "de" and set(window.languages) == {"de"}


def test_bad_input_is_a_one_line_error():
    stepper, _ = make()
    with pytest.raises(JunoError, match="16000 Hz"):
        stepper.insert_audio(np.zeros(100, np.float32), 0.0, sample_rate_hz=44100)
    with pytest.raises(JunoError, match="float32.*int16"):
        stepper.insert_audio(np.zeros(100, np.int16), 0.0)
    with pytest.raises(JunoError, match=r"shape \(100, 2\)"):
        stepper.insert_audio(np.zeros((100, 2), np.float32), 0.0)
    with pytest.raises(JunoError, match="NaN"):
        stepper.insert_audio(np.full(100, np.nan, np.float32), 0.0)
    with pytest.raises(JunoError, match="list"):
        stepper.insert_audio([0.0] * 100, 0.0)
    with pytest.raises(JunoError, match="buffer_max_s"):
        make(buffer_max_s=40.0)
    stepper.insert_audio(np.zeros(0, np.float32), 0.0)  # an empty chunk is fine
    assert stepper.received_s == 0.0


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "no such file"), (b"not audio at all", "not a readable audio file"), (b"", "")],
)
def test_juno_transcribe_bad_files_are_one_line_errors(tmp_path, capsys, content, message):
    import soundfile as sf

    from juno.cli import main

    path = tmp_path / "clip.wav"
    if content == b"":
        sf.write(path, np.zeros(0, np.float32), RATE)
        message = "contains no audio"
    elif content is not None:
        path.write_bytes(content)
    assert main(["transcribe", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err


@pytest.mark.parametrize("on", [False, True])
def test_windows_that_end_an_utterance_can_use_the_full_context(on):
    stepper, window = make(full_context_at_pause=on)
    out = list(replay(stepper, speech_audio(12.0), chunk_s=0.1))
    assert [e.word.text for e in out] == [t for t, _, _ in SCRIPT]
    full = [end for (_, end, _), f in zip(window.calls, window.full_context, strict=True) if f]
    # With it on: the first window at least 0.8 s after "today?" (4.1 s) and
    # after "thanks" (10.0 s); steps come every second of audio.
    assert full == (pytest.approx([5.0, 11.0]) if on else [])


# A conversation: an English utterance, a pause, a French one.
TURNS = [(t, s, e, "en") for t, s, e in SCRIPT[:8]]
TURNS += [("Merci", 9.0, 9.6, "fr"), ("beaucoup", 9.7, 10.6, "fr")]


class ConversationWindow(ScriptedWindow):
    """Identifies the language of the scripted words in the audio given; ``wrong_first``:
    the first identification names the other language of the pair."""

    def __init__(self, turns=TURNS, wrong_first=False, sure_from_s=None):
        super().__init__([(t, s, e) for t, s, e, _ in turns])
        self.turns = turns
        self.wrong_first = wrong_first
        self.sure_from_s = sure_from_s  # {language: speech (s) it takes to be sure of it}
        self.identified = []  # (audio start, end, language named)

    def identify(self, audio, among):
        language = self.detect_language(audio, among)
        end = self.stepper.buffer_end_s
        heard_s = self.stepper.track.speech_s(end - len(audio) / RATE, end)
        needs_s = (self.sure_from_s or {}).get(language, 0.0)
        return language, 1.0 if heard_s >= needs_s else 0.6

    def detect_language(self, audio, among=()):
        end = self.stepper.buffer_end_s
        start = end - len(audio) / RATE
        heard = [lang for _, s, e, lang in self.turns if e > start and s < end]
        language = heard[0] if heard else among[0]
        if self.wrong_first and not self.identified:
            language = next(code for code in among if code != language)
        self.identified.append((start, end, language))
        return language


def test_a_conversation_identifies_each_utterances_language():
    window = ConversationWindow()
    stepper, _ = make(window=window, languages=("en", "fr"), language=None)
    out = [e.word for e in replay(stepper, speech_audio(12.0, window.script), chunk_s=0.1)]
    assert [(w.text, w.language) for w in out] == [(t, lang) for t, _, _, lang in TURNS]
    assert {lang for *_, lang in window.identified} == {"en", "fr"}
    assert stepper.identifications == len(window.identified) >= 2
    # Each window is decoded in its utterance's language; the English text before the
    # buffer prompts no French window.
    french = [p for (s, _, p), lang in zip(window.calls, window.languages, strict=True) if s > 8]
    assert french and all(p == "" for p in french)
    assert window.languages[0] == "en" and window.languages[-1] == "fr"


def test_a_wrong_first_guess_is_corrected_before_a_word_is_committed():
    window = ConversationWindow(wrong_first=True)
    stepper, _ = make(window=window, languages=("en", "fr"), language=None)
    out = [e.word for e in replay(stepper, speech_audio(12.0, window.script), chunk_s=0.1)]
    assert [w.language for w in out] == [lang for *_, lang in TURNS]
    assert window.identified[0][2] == "fr"  # the wrong guess, then corrected
    assert window.languages[0] == "fr" and "en" in window.languages


def test_a_sentence_that_follows_without_a_pause_keeps_the_speakers_language():
    """A turn changes at a pause. Whisper may name a sentence that the same speaker goes
    on with (a name, a citation) in the other language: it is not asked."""
    turns = [("Guten", 0.5, 0.9, "de"), ("Tag.", 1.0, 1.6, "de"), ("Oravec,", 1.9, 2.6, "de")]
    turns += [("zweitausendzwei.", 2.7, 3.8, "de"), ("Hello", 6.0, 6.6, "en")]
    turns += [("there.", 6.7, 7.5, "en")]
    window = ConversationWindow(turns)
    named = {"Oravec,": "en", "zweitausendzwei.": "en"}
    detect = window.detect_language

    def detect_language(audio, among=()):
        end = window.stepper.buffer_end_s
        start = end - len(audio) / RATE
        heard = [named.get(t) for t, s, e, _ in turns if e > start and s < end]
        if heard and heard[0]:
            window.identified.append((start, end, heard[0]))
            return heard[0]
        return detect(audio, among)

    window.detect_language = detect_language
    stepper, _ = make(window=window, languages=("en", "de"), language=None)
    out = [e.word for e in replay(stepper, speech_audio(9.0, window.script), chunk_s=0.1)]
    assert [(w.text, w.language) for w in out] == [(t, lang) for t, _, _, lang in turns]
    assert [w.text for w in out if w.sentence_end] == ["Tag.", "zweitausendzwei.", "there."]
    assert all(start < 1.6 or start > 4.0 for start, _, _ in window.identified)


def test_an_utterance_is_not_decoded_before_its_language_can_be_told():
    window = ConversationWindow()
    stepper, _ = make(window=window, languages=("en", "fr"), language=None, identify_speech_s=1.0)
    stepper.insert_audio(speech_audio(12.0, window.script)[: int(1.2 * RATE)], 1.2)
    assert stepper.process(1.2) == [] and window.calls == []  # 0.6 s of speech so far
    assert window.identified == []


def test_an_unsure_identification_waits_for_more_speech():
    """A quiet voice: Whisper is unsure of its language from its first second. Nothing of
    it is decoded until the identification is sure, or identify_max_speech_s is heard."""
    turns = TURNS[:8] + [("Merci", 9.0, 9.6, "fr"), ("beaucoup", 9.7, 10.6, "fr")]
    turns += [("pour", 10.7, 11.0, "fr"), ("tout.", 11.1, 11.8, "fr")]
    first_decoded = {}
    for label, options in (
        ("no gate", {"identify_confidence": 0.0}),
        ("gate", {"identify_max_speech_s": 3.0}),
        ("gate up to 1 s", {"identify_max_speech_s": 1.0}),
    ):
        window = ConversationWindow(turns, sure_from_s={"fr": 2.0})  # sure from 2 s of speech
        stepper, _ = make(window=window, languages=("en", "fr"), language=None, **options)
        out = [e.word for e in replay(stepper, speech_audio(14.0, window.script), chunk_s=0.1)]
        assert [(w.text, w.language) for w in out] == [(t, lang) for t, _, _, lang in turns]
        first_decoded[label] = min(end for _, end, _ in window.calls if end > 9.0)
        asked = [end for _, end, _ in window.identified if end > 9.0]
        assert asked[0] == pytest.approx(11.0)  # 1.5 s of its speech heard: asked first
    # Unsure at 11.0 s (1.5 s of speech), sure at the next step (2.5 s).
    assert first_decoded == pytest.approx({"no gate": 11.0, "gate": 12.0, "gate up to 1 s": 11.0})


def test_a_sound_after_a_sentence_end_does_not_carry_its_language_to_the_next_turn():
    """The speaker's last word ends before its sound does (Whisper's word ends run early):
    the tail, heard after the sentence end, makes a step with nothing said. The language
    guessed for it (the speaker's) is not the next speaker's: a long pause is going on."""
    turns = [("Guten", 0.5, 0.9, "de"), ("Tag.", 1.0, 1.6, "de")]
    # Said slowly: its first word is final before 1 s of its speech is heard.
    turns += [("Hello", 4.0, 4.3, "en"), ("there", 4.8, 5.1, "en"), ("friend.", 5.6, 6.0, "en")]
    window = ConversationWindow(turns)
    audio = speech_audio(8.0, window.script)
    tail = np.arange(int(1.6 * RATE), int(1.9 * RATE))
    audio[tail] = 0.3 * np.sin(2 * np.pi * 200 * tail / RATE)
    stepper, _ = make(window=window, languages=("en", "de"), language=None)
    out = [e.word for e in replay(stepper, audio, chunk_s=0.1)]
    assert [(w.text, w.language) for w in out] == [(t, lang) for t, _, _, lang in turns]


def test_an_utterance_over_before_its_language_is_sure_keeps_the_speakers():
    """A citation after a pause ("Oravec, 2002" closing a German turn): Whisper names it
    English, unsure, and it ends before it is sure. It is the same speaker's."""
    turns = [("Guten", 0.5, 0.9, "de"), ("Tag.", 1.0, 1.6, "de")]
    turns += [("Oravec,", 3.0, 3.7, "en"), ("zweitausendzwei.", 3.8, 4.6, "en")]
    expected = [(t, "de") for t, *_ in turns]
    for sure_from_s, want in (
        ({"en": 5.0}, expected),
        ({}, expected[:2] + [(t, "en") for t, *_ in turns[2:]]),
    ):
        window = ConversationWindow(turns, sure_from_s=sure_from_s)
        stepper, _ = make(window=window, languages=("en", "de"), language=None)
        out = [e.word for e in replay(stepper, speech_audio(7.0, window.script), chunk_s=0.1)]
        assert [(w.text, w.language) for w in out] == want  # (sure: it is taken as named)


def test_the_rest_of_a_last_words_sound_is_not_transcribed_again():
    """Whisper ends a word early; the rest of its sound after a sentence end is no new
    speech. (Decoded alone with the sentence as prompt, Whisper said its first word again:
    "Experience proves this." then "Experience".)"""
    script = [("Guten", 0.5, 0.9), ("Tag.", 1.0, 1.6)]
    audio = speech_audio(5.0, script)
    for end_s, decoded_after in ((1.9, False), (2.4, True)):  # a tail, then a new sound
        window = ScriptedWindow(script)
        sound = np.arange(int(1.6 * RATE), int(end_s * RATE))
        audio[sound] = 0.3 * np.sin(2 * np.pi * 200 * sound / RATE)
        stepper, _ = make(window=window)
        out = [e.word.text for e in replay(stepper, audio, chunk_s=0.1)]
        assert out == ["Guten", "Tag."]
        assert any(start >= 1.6 for start, _, _ in window.calls) == decoded_after


def test_a_short_tail_after_a_pause_keeps_the_speakers_language():
    """Too little speech to tell (Whisper names English for most of it): a short
    fragment after a sentence end is taken as the same speaker's."""
    turns = [("Bonjour", 0.5, 0.9, "fr"), ("madame.", 1.0, 1.7, "fr"), ("Oui.", 3.0, 3.4, "en")]
    window = ConversationWindow(turns)
    stepper, _ = make(window=window, languages=("en", "fr"), language=None)
    out = [e.word for e in replay(stepper, speech_audio(6.0, window.script), chunk_s=0.1)]
    assert [(w.text, w.language) for w in out] == [
        ("Bonjour", "fr"),
        ("madame.", "fr"),
        ("Oui.", "fr"),
    ]
    assert all(start < 1.7 for start, _, _ in window.identified)  # the tail was not identified


def test_a_backlog_step_ends_at_a_pause_so_each_turn_is_identified_alone():
    """Audio that arrives all at once (a stepper behind, a file sent fast): a step ends
    where an utterance does, so the next speaker's turn is not identified together with
    the words before it."""
    window = ConversationWindow()
    stepper, _ = make(window=window, languages=("en", "fr"), language=None)
    stepper.insert_audio(speech_audio(12.0, window.script), 12.0)
    out = stepper.process(12.0) + stepper.finish()
    assert [(w.text, w.language) for w in out] == [(t, lang) for t, _, _, lang in TURNS]
    # The first step heard the English turn and the pause after it, nothing of the French.
    first_end = window.identified[0][1]
    assert 4.1 + 0.8 <= first_end < 9.0
