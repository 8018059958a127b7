"""``juno bench conversation``: the recording of turns and how words are given to turns."""

import numpy as np
import pytest

from juno.bench.conversation import Turn, _turn_of, join, pairs_of, turns_by_text, turns_for
from juno.errors import JunoError


def test_turns_alternate_and_are_laid_out_with_their_pauses(data_dir):
    turns = turns_for("fr", 4, data_dir / "audio")
    assert [t.language for t in turns] == ["en", "fr", "en", "fr"]
    assert all(t.reference for t in turns)
    audio = join(turns, 1.5)
    assert len(audio) == sum(len(t.audio) for t in turns) + 4 * 24000
    for a, b in zip(turns, turns[1:], strict=False):
        assert b.start_s == pytest.approx(a.end_s + 1.5)


def test_a_word_belongs_to_the_turn_nearest_the_end_of_its_audio():
    turns = [Turn("en", np.zeros(16000), "a"), Turn("fr", np.zeros(32000), "b")]
    join(turns, 2.0)  # en 0-1 s, pause, fr 3-5 s
    assert _turn_of(turns, 0.9) == 0 and _turn_of(turns, 1.4) == 0  # (its last word, late)
    assert _turn_of(turns, 1.9) == 0  # in the pause's first half: the first turn
    assert _turn_of(turns, 2.1) == 1  # in its second half: the next turn's (a first word, early)
    assert _turn_of(turns, 3.2) == 1 and _turn_of(turns, 9.0) == 1


def test_a_word_belongs_to_the_turn_whose_reference_word_it_matches():
    turns = [
        Turn("en", np.zeros(1), "Hello world, for all."),
        Turn("fr", np.zeros(1), "Bonjour le monde"),
        Turn("en", np.zeros(1), "For all"),
    ]
    words = ["Hello", "world,", "four", "all.", "Uh", "Bonjour", "le", "mond.", "For", "all", "um"]
    assert turns_by_text(turns, words) == [0, 0, None, 0, None, 1, 1, None, 2, 2, None]


def test_only_english_pairs_with_clips_are_offered():
    assert pairs_of("en-fr, en-es") == ["fr", "es"]
    with pytest.raises(JunoError, match="en-pt not available"):
        pairs_of("en-pt")
    with pytest.raises(JunoError, match="no language pair"):
        pairs_of(" , ")
