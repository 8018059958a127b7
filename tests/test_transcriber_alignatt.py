"""AlignAtt on scripted hypotheses and attention, and the stepper around it: no MLX."""

from dataclasses import replace

import numpy as np
import pytest
from test_transcriber_stepper import SCRIPT, ScriptedWindow, speech_audio
from test_transcriber_stepper import make as make_agreement

from juno.transcriber.alignatt import AlignAtt, attended_frame, reached_end, stop_s
from juno.transcriber.replay import replay
from juno.transcriber.whisper_window import Continuation
from juno.transcriber.words import Word

RATE = 16000


def attention(peaks: list[int], frames: int = 100, heads: int = 3, seed: int = 0) -> np.ndarray:
    """Alignment-head attention (heads, tokens, frames): token i peaks at ``peaks[i]``,
    a few frames wide, as Whisper's alignment heads do."""
    rng = np.random.default_rng(seed)
    w = rng.uniform(0.0, 0.01, (heads, len(peaks), frames))
    for i, p in enumerate(peaks):
        w[:, i, max(0, p - 4) : p + 5] += 1.0
    return w / w.sum(axis=-1, keepdims=True)


def test_attended_frame_follows_the_newest_token():
    tokens = [2, 8, 14, 20, 26, 32, 40]
    assert abs(attended_frame(attention(tokens)) - 40) <= 1
    assert abs(attended_frame(attention([*tokens, 63])) - 63) <= 1
    # One head pointing elsewhere is outvoted by the others.
    w = attention([*tokens, 50], heads=5)
    w[0, -1] = np.roll(w[0, -1], 30)
    assert abs(attended_frame(w) - 50) <= 1


def test_decoding_stops_a_threshold_before_the_end_or_at_the_speech_end_when_complete():
    assert stop_s(10.0, 0.5, 9.9, complete=False) == 9.5
    assert stop_s(10.0, 0.5, None, complete=True) == pytest.approx(10.0 - 0.08)
    # After the last speech (6 s), nothing but a margin of 0.3 s is heard.
    assert stop_s(10.0, 0.5, 6.0, complete=True) == pytest.approx(6.3)
    assert not reached_end(74, 75) and reached_end(75, 75) and reached_end(99, 75)


def words(text: str, start_s: float = 0.0, first_token: int = 0) -> list[Word]:
    """Words every 0.5 s from ``start_s``, each with one token."""
    return [
        Word(t, start_s + 0.5 * i, start_s + 0.5 * i + 0.4, tokens=(first_token + i,))
        for i, t in enumerate(text.split())
    ]


def test_commits_all_but_the_last_word_until_the_utterance_is_complete():
    policy = AlignAtt(pause_s=0.8)
    out = policy.insert(words("and so my fel"))
    assert [w.text for w in out] == ["and", "so", "my"]
    assert [w.text for w in policy.pending] == ["fel"]
    assert policy.forced_tokens() == [0, 1, 2]
    out = policy.insert(words("fellow Americans", 1.5, 3), complete=True)
    assert [w.text for w in out] == ["fellow", "Americans"]
    assert [w.sentence_end for w in out] == [False, True] and policy.pending == []
    assert policy.forced_tokens() == [0, 1, 2, 3, 4]


def test_the_last_word_goes_at_once_when_whisper_says_it_is_whole():
    policy = AlignAtt(pause_s=0.8, min_probability=0.5)
    out = policy.insert(words("and so my fellow"), whole=True)
    assert [w.text for w in out] == ["and", "so", "my", "fellow"] and policy.pending == []
    assert not out[-1].sentence_end  # whole is not the utterance's end
    # A whole last word Whisper is not sure of waits for the next step.
    unsure = [
        replace(w, probability=0.7 if w.text == "ask" else 0.9)
        for w in words("Americans ask", 2.0, 4)
    ]
    assert [w.text for w in policy.insert(unsure, heard_s=5.0, whole=True)] == ["Americans"]
    # A doubtful word still waits, whole or not.
    policy = AlignAtt(pause_s=0.8, min_probability=0.5)
    said = [replace(w, probability=0.2 if w.text == "so" else 0.9) for w in words("and so my")]
    assert [w.text for w in policy.insert(said, heard_s=1.0, whole=True)] == ["and"]


def test_a_pause_or_a_full_stop_ends_a_sentence_and_the_cut_moves_words_to_the_prompt():
    policy = AlignAtt(pause_s=0.8)
    hyp = words("We landed. Then")
    hyp += [Word("silence", 3.0, 3.4, tokens=(9,)), Word("after", 3.5, 3.9, tokens=(10,))]
    out = policy.insert(hyp)
    assert [(w.text, w.sentence_end) for w in out] == [
        ("We", False), ("landed.", True), ("Then", True), ("silence", False)
    ]  # fmt: skip
    assert policy.sentence_cut_s() == pytest.approx(1.4)
    policy.trim(1.4)
    assert policy.prompt() == "We landed. Then"
    assert policy.forced_tokens() == [9]
    assert policy.last_end_s == pytest.approx(3.4)


def test_empty_and_punctuation_only_words_are_not_committed():
    policy = AlignAtt()
    assert policy.insert([]) == [] and policy.pending == []
    assert policy.insert([Word("...", 0.0, 0.2)], complete=True) == []


class AttendingWindow(ScriptedWindow):
    """Stands in for Whisper under AlignAtt: it says the scripted words after the
    forced ones, up to where its attention would reach the audio's end (a word
    whose end lies within the threshold of the buffer's end stops it)."""

    def __init__(self, script=SCRIPT, step_cost_s: float = 0.0, clock=None):
        super().__init__(script)
        self.forced = []
        self.stops = []  # seconds before the buffer's end
        self.step_cost_s = step_cost_s
        self.clock = clock
        self.says_whole = lambda whole: whole
        # Words this Whisper is unsure of on a fitted context: {word: what it says on the
        # full context, sure of it}.
        self.unsure: dict[str, str] = {}

    fit_context = True

    def continue_decoding(
        self, audio, language, prompt, forced, stop_at_s, max_new, full_context=False
    ):
        self.full_context.append(full_context)
        if self.clock is not None:
            self.clock.now += self.step_cost_s
        end = self.stepper.buffer_end_s
        start = end - len(audio) / RATE
        self.calls.append((start, end, prompt))
        self.forced.append(list(forced))
        self.stops.append(end - start - stop_at_s)
        heard = start + stop_at_s
        out = []
        for i, (t, s, e) in enumerate(self.script):
            if s < start or i in forced:
                continue
            if s >= heard:  # the first token of this word already looks past the end
                break
            # A word that started in time may still be cut off by the buffer's end.
            p = 0.9
            if t in self.unsure:
                t, p = (self.unsure[t], 0.9) if full_context else (t, 0.6)
            out.append(Word(t, s - start, min(e, end) - start, p, tokens=(i,)))
        # The token that stopped it starts a new word when the last word said was heard
        # in full (``says_whole``: what this Whisper claims about it).
        whole = bool(out) and self.script[out[-1].tokens[0]][2] <= heard
        return Continuation(out, 0.01, -0.2, True, next_starts_word=self.says_whole(whole))


def make(script=SCRIPT, **options):
    window = AttendingWindow(script, **options.pop("window", {}))
    return make_agreement(script, window, policy="alignatt", **options)


def test_stepper_streams_the_script_once_in_order_with_the_committed_tokens_forced():
    stepper, window = make()
    out = list(replay(stepper, speech_audio(12.0), chunk_s=0.1))
    assert [e.word.text for e in out] == [t for t, _, _ in SCRIPT]
    assert all(e.emitted_s >= e.word.end_s for e in out)
    assert [e.word.sentence_end for e in out] == [
        False, False, False, True, False, False, False, True, False, True
    ]  # fmt: skip
    # Each step forces exactly the committed words whose audio is still buffered.
    for forced in window.forced:
        assert forced == sorted(forced)
    assert any(len(f) >= 2 for f in window.forced)
    # Mid-utterance the decoding stops half a second (25 frames) before the
    # buffer's end; the window that ends an utterance decodes up to the speech's end.
    assert 0.5 in [round(s, 2) for s in window.stops]
    assert any(s > 0.5 for s in window.stops)


def test_alignatt_commits_sooner_than_local_agreement():
    # Words every 0.5 s for 20 s. AlignAtt commits a word once the next one has
    # started half a second (its threshold) before the buffer's end: at most a
    # step (1 s) + the threshold + the next word (0.5 s) after it ends.
    # LocalAgreement commits once two windows that hold it whole agree (this
    # scripted Whisper never changes its mind, the best case for it).
    script = [(f"w{i}", 0.5 * i, 0.5 * i + 0.4) for i in range(40)]

    def lags(policy: str) -> list[float]:
        if policy == "alignatt":
            stepper, _ = make(script)
        else:
            stepper, _ = make_agreement(script)
        out = list(replay(stepper, speech_audio(21.0, script), chunk_s=0.1))
        assert [e.word.text for e in out] == [t for t, _, _ in script]
        return [e.emitted_s - e.word.end_s for e in out[:-1]]

    fast, slow = lags("alignatt"), lags("local-agreement")
    assert np.median(fast) <= np.median(slow), (fast, slow)
    assert max(fast) <= 1.0 + 0.5 + 0.5 + 1e-6


def test_at_a_word_boundary_the_last_word_goes_a_step_sooner():
    script = [(f"w{i}", 0.5 * i, 0.5 * i + 0.4) for i in range(40)]

    def lags(boundary: bool, says_whole=None):
        stepper, window = make(script, commit_at_word_boundary=boundary)
        if says_whole:
            window.says_whole = says_whole
        out = list(replay(stepper, speech_audio(21.0, script), chunk_s=0.1))
        assert [e.word.text for e in out] == [t for t, _, _ in script]
        return [e.emitted_s - e.word.end_s for e in out[:-1]]

    waiting, at_boundary = lags(False), lags(True)
    assert np.median(at_boundary) < np.median(waiting) - 0.3, (waiting, at_boundary)
    # Each word goes once the next has started the threshold before the buffer's end.
    assert max(at_boundary) <= 1.0 + 0.5 + 0.1 + 1e-6
    # A Whisper that never says the last word is whole changes nothing.
    assert lags(True, says_whole=lambda whole: False) == waiting
    # Off, what Whisper says about the boundary is not heard.
    assert lags(False, says_whole=lambda whole: True) == waiting


def test_an_utterance_end_unsure_of_a_word_is_decoded_again_on_the_full_context():
    # "you" comes out at 0.6 on the fitted context, "ewe" at 0.9 on the full one;
    # mid-utterance, the doubtful word waits for the utterance's end.
    def run(below: float):
        stepper, window = make(
            recheck_full_ctx_below=below, min_word_probability=0.7, doubtful_wait_s=5.0
        )
        window.unsure = {"you": "ewe"}
        out = list(replay(stepper, speech_audio(12.0), chunk_s=0.1))
        return [e.word.text for e in out], window

    texts, window = run(0.8)
    assert texts == ["Hello", "there,", "my", "friend.", "How", "are", "ewe", "today?"] + [
        "Fine",
        "thanks",
    ]
    # Only the decodings that end an utterance, and only those unsure of a word, go
    # again on the full context: each right after the same one on the fitted context.
    again = [i for i, full in enumerate(window.full_context) if full]
    assert again and all(not window.full_context[i - 1] for i in again)
    assert all(window.calls[i][:2] == window.calls[i - 1][:2] for i in again)
    assert len(again) < len(window.full_context) / 3
    # Off: the fitted context's word stands, and nothing is decoded twice.
    texts, window = run(0.0)
    assert "you" in texts and not any(window.full_context)


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_slow_model_catches_up_in_one_step_instead_of_queueing():
    # Words every 0.5 s for 60 s, no pauses; each step costs 2.5 s of compute.
    script = [(f"w{i}", 0.5 * i, 0.5 * i + 0.4) for i in range(120)]
    clock = Clock()
    stepper, window = make(script, window={"step_cost_s": 2.5, "clock": clock})
    out = list(
        replay(stepper, speech_audio(61.0, script), chunk_s=0.1, compute_aware=True, clock=clock)
    )
    assert [e.word.text for e in out] == [t for t, _, _ in script]
    # About one step per 2.5 s of audio, each over everything that arrived meanwhile.
    assert len(window.calls) <= 61.0 / 2.5 + 2
    # Lag stays bounded: the last words are no later than the first ones.
    lag = [e.emitted_s - e.word.end_s for e in out]
    first, last = np.median(lag[:20]), np.median(lag[-30:-1])
    assert last <= 1.2 * first + 0.5, (first, last)
    assert max(lag) < 2 * 2.5 + 1.0 + 2.0


def test_a_doubtful_word_waits_for_more_audio_but_not_for_long():
    policy = AlignAtt(pause_s=0.8, min_probability=0.5, settle_s=1.0)
    probs = {"bee": 0.3}
    said = [replace(w, probability=probs.get(w.text, 0.9)) for w in words("ay bee sea dee")]
    # "bee" (ends 0.9 s) was heard with 0.7 s after it: it and what follows wait.
    assert [w.text for w in policy.insert(said, heard_s=1.6)] == ["ay"]
    assert [w.text for w in policy.pending] == ["bee", "sea", "dee"]
    # A step later 1.6 s after it is heard: it goes, doubtful or not.
    said = [replace(w, probability=probs.get(w.text, 0.9)) for w in words("bee sea dee ee", 0.5, 1)]
    assert [w.text for w in policy.insert(said, heard_s=2.5)] == ["bee", "sea", "dee"]
    # The end of the utterance commits everything at once.
    said = [replace(w, probability=0.1) for w in words("ee eff", 2.0, 4)]
    assert [w.text for w in policy.insert(said, complete=True)] == ["ee", "eff"]


@pytest.mark.parametrize("policy", ["alignatt", "local-agreement"])
def test_a_backlog_longer_than_a_window_goes_in_window_sized_steps_losing_nothing(policy):
    # A minute of speech inserted at once (a file sent as fast as it reads).
    script = [(f"w{i}", 0.5 * i, 0.5 * i + 0.4) for i in range(120)]
    if policy == "alignatt":
        stepper, window = make(script)
    else:
        stepper, window = make_agreement(script)
    stepper.insert_audio(speech_audio(61.0, script), 61.0)
    said = stepper.process(61.0) + stepper.finish()
    assert [w.text for w in said] == [t for t, _, _ in script]
    assert max(end - start for start, end, _ in window.calls) <= 15.0 + 1e-6


@pytest.mark.parametrize("shape", [(8, 40, 700), (2, 3, 9), (1, 5, 4), (2, 3, 3), (1, 2, 4)])
def test_the_median_filter_equals_mlx_whispers(shape):
    from mlx_whisper.timing import median_filter

    from juno.transcriber.whisper_window import median_filter7

    x = np.random.default_rng(len(shape)).standard_normal(shape).astype(np.float32)
    x[..., ::5] = 0.5  # ties
    assert np.array_equal(median_filter7(x), median_filter(x, 7))


def test_an_utterances_first_words_wait_for_its_onset_speech():
    # Words every 0.5 s (0.4 s of speech each), sentences of 8 words, 1.5 s apart.
    script = []
    for sentence in range(3):
        at = sentence * 5.5
        script += [(f"s{sentence}w{i}", at + 0.5 * i, at + 0.5 * i + 0.4) for i in range(8)]
        script[-1] = (script[-1][0] + ".", *script[-1][1:])
    emitted = {}
    for onset in (0.0, 2.0):
        stepper, window = make(script, onset_speech_s=onset)
        out = list(replay(stepper, speech_audio(17.0, script), chunk_s=0.1))
        assert [e.word.text for e in out] == [t for t, _, _ in script]
        emitted[onset] = {e.word.text: e.emitted_s for e in out}
    for sentence in range(3):
        first = f"s{sentence}w0"
        # 2 s of speech: five words (0.4 s each) are heard before anything is committed.
        assert emitted[2.0][first] >= sentence * 5.5 + 2.0 + 0.4
        assert emitted[0.0][first] < emitted[2.0][first]
        # Later in the sentence the commits come as without the rule.
        assert emitted[2.0][f"s{sentence}w6"] == emitted[0.0][f"s{sentence}w6"]


def test_an_utterances_last_word_waits_for_the_pause_that_ends_its_sentence():
    """Whisper may say an utterance's last word is whole before the pause is heard (its
    next token starts a made-up word): committed then, it would go without its sentence
    end, and downstream the sentence would stay open until the speaker went on. A last
    word goes at once only while speech follows it."""
    script = [(f"w{i}", 0.5 * i, 0.5 * i + 0.4) for i in range(6)]
    script += [(f"v{i}", 6.0 + 0.5 * i, 6.4 + 0.5 * i) for i in range(3)]
    stepper, window = make(script)
    window.says_whole = lambda whole: True
    out = [e.word for e in replay(stepper, speech_audio(9.0, script), chunk_s=0.1)]
    assert [w.text for w in out] == [t for t, _, _ in script]
    assert [w.text for w in out if w.sentence_end] == ["w5", "v2"]


def test_a_first_new_piece_without_a_space_continues_the_last_forced_word():
    """Whisper's pieces (mlx-whisper's word timings): "ill" "-disposed" in one decoding are
    one word; a first piece without a space after forced words continues the last of
    them, which is committed already: it comes out attached."""
    from juno.transcriber.whisper_window import _join_continuations

    def piece(text, start, end):
        return {"word": text, "start": start, "end": end, "probability": 0.9}

    same = _join_continuations([piece(" ill", 0, 0.2), piece("-disposed", 0.2, 0.6)], True)
    assert [(w.text, w.attached) for w in same] == [("ill-disposed", False)]
    later = [piece("-hearted", 0.5, 0.9), piece(" man", 1.0, 1.2)]
    words = _join_continuations(later, True, continues=True)
    assert [(w.text, w.attached) for w in words] == [("-hearted", True), ("man", False)]
    assert not _join_continuations(later, True)[0].attached  # nothing forced before it
    assert not _join_continuations(later, False, continues=True)[0].attached  # unspaced script
    assert not _join_continuations(later[1:], True, continues=True)[0].attached
