"""The transcribe process's emitter: how committed words become numbered source words."""

from juno.pipeline import bus
from juno.transcriber.words import Word
from processes.transcribe import _Emitter


def test_a_change_of_speaker_starts_a_sentence_even_without_a_full_stop(monkeypatch):
    """A turn's last word can go before its full stop is heard: the next speaker's words,
    in the other language, still start a sentence of their own (as the translator's
    conversation ends one), and within a language sentences are numbered as they end."""
    sent = []
    monkeypatch.setattr(bus, "send", lambda socket, msg: sent.append((socket, msg)))
    out = _Emitter("words", "source")
    out.emit([Word("Guten", 0.5, 0.9, language="de"), Word("Tag", 1.0, 1.6, language="de")])
    out.emit(
        [
            Word("Hello", 4.0, 4.4, language="en"),
            Word("there.", 4.5, 5.0, sentence_end=True, language="en"),
        ]
    )
    out.emit([Word("Hi", 6.0, 6.4, language="en")], final=True)
    words = [msg for socket, msg in sent if socket == "words"]
    assert [(m.text, m.sentence, m.sentence_end) for m in words] == [
        ("Guten", 0, False),
        ("Tag", 0, False),
        ("Hello", 1, False),
        ("there.", 1, True),
        ("Hi", 2, True),
    ]
    assert [m for socket, m in sent if socket == "source"] == words
