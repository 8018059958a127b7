"""``juno translate`` input handling (no model)."""

from juno.simul.sentences import sentences


def test_lines_and_sentence_punctuation_split_sentences():
    text = ["Hello there. How are you?\n", "fine thanks\n", "\n", "Go! now\n"]
    assert list(sentences(iter(text))) == [
        ["Hello", "there."],
        ["How", "are", "you?"],
        ["fine", "thanks"],
        ["Go!"],
        ["now"],
    ]
