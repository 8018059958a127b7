"""LocalAgreement-2 on scripted hypotheses: no MLX, no clock."""

from juno.transcriber.agreement import LocalAgreement, common_boundaries
from juno.transcriber.words import Word, ends_sentence, normalize


def hyp(text: str, start_s: float = 0.0, step_s: float = 0.5) -> list[Word]:
    """Words of ``text`` laid out every ``step_s`` seconds from ``start_s``."""
    return [
        Word(t, start_s + i * step_s, start_s + (i + 1) * step_s - 0.05)
        for i, t in enumerate(text.split())
    ]


def texts(words: list[Word]) -> list[str]:
    return [w.text for w in words]


def test_normalize_and_sentence_end():
    assert normalize("Ask,") == normalize("ask") == "ask"
    assert normalize("1,000") == "1000"
    assert normalize("don't") == "dont"
    assert ends_sentence("country.") and ends_sentence('done?"') and ends_sentence("¡Hola!")
    assert not ends_sentence("you,") and not ends_sentence("well...")


def test_first_hypothesis_commits_nothing_second_commits_agreed_prefix():
    la = LocalAgreement()
    assert la.insert(hyp("and so my")) == []
    out = la.insert(hyp("and so my fellow"))
    assert texts(out) == ["and", "so", "my"]
    assert texts(la.pending) == ["fellow"]


def test_commits_only_up_to_the_first_disagreement():
    la = LocalAgreement()
    la.insert(hyp("ask not what your country"))
    out = la.insert(hyp("ask not what you're country can"))
    assert texts(out) == ["ask", "not", "what"]
    out = la.insert(hyp("ask not what your country can do"))
    assert out == []  # "your" vs "you're": still no agreement past "what"
    out = la.insert(hyp("ask not what your country can do for"))
    assert texts(out) == ["your", "country", "can", "do"]


def test_never_retracts_when_a_later_hypothesis_changes_committed_words():
    la = LocalAgreement()
    la.insert(hyp("the cat sat"))
    committed = la.insert(hyp("the cat sat on"))
    assert texts(committed) == ["the", "cat", "sat"]
    # Whisper now hears the start differently; the committed words stay, and the
    # re-worded region is skipped by time rather than emitted twice.
    out = la.insert(hyp("a hat sat on the"))
    out += la.insert(hyp("a hat sat on the mat"))
    assert texts(out) == ["on", "the"]
    assert all(w.start_s >= committed[-1].end_s for w in out)


def test_case_and_punctuation_do_not_break_agreement():
    la = LocalAgreement()
    la.insert(hyp("Ask not what"))
    out = la.insert(hyp("ask, not, what your"))
    assert texts(out) == ["ask,", "not,", "what"]  # the newest spelling is emitted


def test_re_segmented_words_agree_on_common_boundaries_only():
    assert common_boundaries(["new", "york", "is"], ["newyork", "is", "big"]) == [(1, 2), (2, 3)]
    assert common_boundaries(["not"], ["nothing"]) == []
    la = LocalAgreement()
    la.insert([Word("New", 0, 0.3), Word("York", 0.3, 0.6), Word("is", 0.7, 0.8)])
    out = la.insert([Word("NewYork", 0, 0.6), Word("is", 0.7, 0.8), Word("big", 0.9, 1.0)])
    assert texts(out) == ["NewYork", "is"]
    la = LocalAgreement()
    la.insert(hyp("it is not"))
    assert texts(la.insert(hyp("it is nothing more"))) == ["it", "is"]


def test_committed_words_are_stripped_from_later_hypotheses_even_if_re_segmented():
    la = LocalAgreement()
    la.insert(hyp("well known facts"))
    assert texts(la.insert(hyp("well known facts are"))) == ["well", "known", "facts"]
    out = la.insert([Word("well-known", 0, 1.0), *hyp("facts are hard", 1.0)])
    assert texts(out) == ["are"]
    out = la.insert([Word("wellknown", 0, 1.0), *hyp("facts are hard to", 1.0)])
    assert texts(out) == ["hard"]


def test_a_final_period_waits_for_more_words_or_a_pause():
    la = LocalAgreement()
    la.insert(hyp("I came."))
    assert texts(la.insert(hyp("I came."))) == ["I"]  # "came." could be mid-sentence
    out = la.insert(hyp("I came here"))
    assert texts(out) == ["came"] and not out[0].sentence_end
    assert texts(la.pending) == ["here"]
    la = LocalAgreement()
    la.insert(hyp("I came. I saw"))
    out = la.insert(hyp("I came. I saw it"))
    assert [w.sentence_end for w in out] == [False, True, False, False]
    la = LocalAgreement()
    la.insert(hyp("I came."))
    out = la.insert(hyp("I came."), complete=True)
    assert [w.sentence_end for w in out] == [False, True]


def test_long_pause_marks_a_sentence_end():
    la = LocalAgreement(pause_s=1.0)
    words = [Word("yes", 0.0, 0.4), Word("then", 2.0, 2.3), Word("go", 2.4, 2.6)]
    la.insert(words)
    out = la.insert([*words, Word("now", 2.7, 3.0)])
    assert [w.sentence_end for w in out] == [True, False, False]


def test_flush_commits_pending_and_ends_the_sentence():
    la = LocalAgreement()
    la.insert(hyp("one two"))
    out = la.flush()
    assert texts(out) == ["one", "two"] and out[-1].sentence_end
    assert la.pending == [] and la.flush() == []


def test_trim_at_sentence_end_moves_words_into_the_prompt():
    la = LocalAgreement()
    la.insert(hyp("Ask not. what your"))
    la.insert(hyp("Ask not. what your country"))
    cut = la.sentence_cut_s()
    assert cut is not None and abs(cut - 0.95) < 1e-9
    assert la.trim(cut) == []
    assert la.prompt() == "Ask not."
    # The buffer now starts at the cut: hypotheses only hold the later words.
    out = la.insert(hyp("what your country can", start_s=1.0))
    assert texts(out) == ["country"]
    assert la.prompt(max_chars=4) == "not."


def test_trim_commits_pending_words_that_would_lose_their_audio():
    la = LocalAgreement()
    la.insert(hyp("lost words here"))
    rescued = la.trim(1.2)
    assert texts(rescued) == ["lost", "words"]
    assert texts(la.pending) == []  # "here" straddles the cut: its audio is cut in two


def test_punctuation_only_words_are_ignored():
    la = LocalAgreement()
    la.insert([*hyp("hello there"), Word("...", 1.0, 1.2)])
    out = la.insert([*hyp("hello there"), Word("...", 1.0, 1.2), Word("friend", 1.2, 1.5)])
    assert texts(out) == ["hello", "there"]


def test_a_complete_hypothesis_is_committed_whole_and_ends_a_sentence():
    la = LocalAgreement()
    la.insert(hyp("see you"))
    out = la.insert(hyp("see you later"), complete=True)
    assert texts(out) == ["see", "you", "later"]
    assert [w.sentence_end for w in out] == [False, False, True]
    assert la.pending == []


def test_abbreviations_and_initials_end_no_sentence_but_a_pause_does():
    for word in [
        "Dr.",
        "Mr.",
        "Mrs.",
        "U.S.",
        "a.m.",
        "p.m.",
        "e.g.",
        "J.",
        '"Dr.',
        "St.)",
        "z.B.",
    ]:
        assert not ends_sentence(word), word
    for word in ["country.", "Texas.", "No.", "I.", 'done?"', "U.S.?"]:
        assert ends_sentence(word), word
    la = LocalAgreement(pause_s=0.8)
    spoken = hyp("Dr. Kalpana Chawla. Mr. Smith arrived at 9 a.m. today")
    spoken.append(Word("U.S.", 5.4, 6.4))  # after a 0.45 s gap: no pause
    spoken.append(Word("Then", 7.5, 7.9))  # after a 1.1 s pause
    la.insert(spoken)
    out = la.insert(spoken, complete=True)
    ends = [w.text for w in out if w.sentence_end]
    assert ends == ["Chawla.", "U.S.", "Then"]
