"""Hallucination guards on scripted words (no MLX)."""

from juno.transcriber import guards
from juno.transcriber.words import Word


def w(text, start, end, p=0.9):
    return Word(text, start, end, p)


def speech_between(lo, hi):
    """A speech detector that heard speech only between lo and hi seconds."""
    return lambda a, b: max(0.0, min(b, hi) - max(a, lo))


def texts(words):
    return [x.text for x in words]


def test_silence_needs_both_no_speech_and_low_confidence():
    assert guards.is_silence(0.9, -1.5)
    assert not guards.is_silence(0.9, -0.3)  # confident text despite the no-speech token
    assert not guards.is_silence(0.1, -1.5)


def test_words_outside_the_audio_are_dropped_and_ends_clamped():
    words = [w("early", 0.0, 0.4), w("in", 1.0, 1.5), w("over", 4.8, 5.6), w("after", 5.2, 5.5)]
    out = guards.inside(words, 0.9, 5.0)
    assert texts(out) == ["in", "over"]
    assert out[1].end_s == 5.0


def test_loops_are_cut_after_the_first_copy():
    words = [
        w(t, i, i + 0.5) for i, t in enumerate("so my fellow so my fellow so my fellow".split())
    ]
    assert texts(guards.cut_loops(words)) == ["so", "my", "fellow"]
    no = [w(t, i, i + 0.5) for i, t in enumerate("no, no, no".split())]
    assert texts(guards.cut_loops(no)) == ["no,", "no,", "no"]  # three times is speech
    four = [w("the", i, i + 0.5) for i in range(4)]
    assert texts(guards.cut_loops(four)) == ["the"]


def test_doubtful_words_at_the_end_are_dropped():
    words = [w("fahren.", 13.0, 13.6), w("Und", 13.6, 13.86, p=0.03), w("dann,", 13.86, 13.86)]
    assert texts(guards.drop_doubtful_tail(words)) == ["fahren."]
    inner = [w("a", 0.0, 0.05), w("cat", 0.1, 0.5)]
    assert texts(guards.drop_doubtful_tail(inner)) == ["a", "cat"]  # only the tail


def test_words_without_speech_under_them_are_dropped():
    words = [w("hello", 1.0, 1.5), w("Thanks", 6.0, 6.5)]
    assert texts(guards.on_speech(words, speech_between(0.9, 2.0))) == ["hello"]


def test_stock_phrases_need_real_speech_under_them():
    words = [w("Hi.", 0.0, 0.4), w("Thank", 3.0, 3.3), w("you.", 3.3, 3.6)]
    assert texts(guards.drop_stock_phrases(words, speech_between(0.0, 0.5))) == ["Hi."]
    spoken = guards.drop_stock_phrases(words, speech_between(0.0, 4.0))
    assert texts(spoken) == ["Hi.", "Thank", "you."]


def test_clean_drops_a_squeezed_tail_once_the_words_over_silence_are_gone():
    # Whisper past the end of speech (8.7 s): three words squeezed into the last
    # speech frames, then more over the silence after.
    words = [
        w("nicht", 8.0, 8.12),
        w("gewachsen.", 8.12, 8.68),
        w("Das", 8.68, 8.68),
        w("ist", 8.68, 8.74),
        w("ein", 8.74, 8.82),
        w("bisschen", 8.82, 8.82),
        w("Wasser.", 9.6, 10.4),
    ]
    speech = speech_between(7.5, 8.7)
    assert texts(guards.clean(words, 0.0, 11.0, speech)) == ["nicht", "gewachsen."]
    # The old order (tail first, then speech) kept the squeezed words.
    kept = guards.on_speech(guards.drop_doubtful_tail(words), speech)
    assert texts(kept)[-1] == "bisschen"


def test_a_squeezed_copy_of_the_committed_words_is_cut():
    # The 3:19 address at a pause: "Captain David Brown" committed and forced, then
    # Whisper's decoding (times from the trace) said it again with no audio under it.
    before = [w("Captain", 38.12, 39.74), w("David", 39.74, 40.02), w("Brown", 40.02, 40.32)]
    said = [("Commander", 40.32, 42.02), ("William", 42.02, 42.44), ("McCool", 42.44, 42.64)]
    again = [(t, 42.64, 42.64) for t in ("Captain", "David", "Brown", "Commander", "William")]
    words = [w(*x) for x in [*said, *again, ("McCool", 42.64, 42.98)]]
    out = guards.cut_squeezed_repeat(words, before)
    assert texts(out) == ["Commander", "William", "McCool"]
    assert texts(guards.clean(words, 30.0, 44.0, speech_between(30.0, 43.4), before)) == texts(out)
    # Without the committed words before them, the new words hold no copy of a copy.
    assert texts(guards.cut_squeezed_repeat(words)) == texts(words)


def test_a_phrase_said_twice_in_its_own_time_stays():
    before = [w("never", 1.0, 1.3)]
    words = [w("again,", 1.3, 1.8), w("never", 2.0, 2.3), w("again.", 2.3, 2.8)]
    assert texts(guards.cut_squeezed_repeat(words, before)) == texts(words)
    squeezed = [w("again,", 1.3, 1.8), w("never", 1.8, 1.8), w("again.", 1.8, 1.85)]
    assert texts(guards.cut_squeezed_repeat(squeezed, before)) == ["again,"]
