"""One scoring path: ``juno bench translate`` and ``juno eval`` give the same hypotheses the
same text, delays, BLEU and chrF (a word written in parts, "9:" "30", is one word)."""

from __future__ import annotations

from types import SimpleNamespace

from juno.bench.translate import _score, _stream_sentences
from juno.eval.score import corpus_quality, whole_words
from juno.eval.timeline import Arrival, translate_timeline

SOURCES = ["The train leaves at 9:30 from platform 4:12 .", "See you at 10:05 then ."]
REFS = ["Le train part à 9:30 du quai 4:12 .", "À 10:05 alors ."]


class EchoInParts:
    """Wait-2 without a model: echoes each source word, a word with ':' in two parts
    ("9:" then "30", attached), written once two more source words are in."""

    def __init__(self) -> None:
        self.queued: list[tuple[list[str], bool]] = [([], False)]
        self.written = 0

    def feed(self, words) -> None:
        words = words.split() if isinstance(words, str) else list(words)
        if self.queued[-1][1]:
            self.queued.append(([], False))
        self.queued[-1][0].extend(words)

    def end_sentence(self) -> None:
        words, _ = self.queued[-1]
        if words:
            self.queued[-1] = (words, True)

    def events(self):
        while True:
            words, ended = self.queued[0]
            i = self.written
            if i < len(words) and (ended or len(words) >= i + 3):
                self.written += 1
                delay = min(i + 3, len(words))
                head, colon, tail = words[i].partition(":")
                parts = (
                    [(head + colon, False), (tail, True)] if colon and tail else [(words[i], False)]
                )
                for text, attached in parts:
                    word = SimpleNamespace(text=text, delay=delay, attached=attached)
                    yield SimpleNamespace(word=word)
            elif ended and i == len(words) and len(self.queued) > 1:
                self.queued.pop(0)
                self.written = 0
            else:
                return

    def finish(self):
        self.end_sentence()
        return [e.word for e in self.events()]


def test_whole_words_join_parts_that_attach():
    groups = whole_words(["9:", "30", "from", "4:", "12"], [False, True, False, False, True])
    assert groups == [["9:", "30"], ["from"], ["4:", "12"]]
    assert whole_words(["30"], [True]) == [["30"]]  # nothing before it to attach to


def test_bench_and_eval_give_the_same_text_delays_and_scores():
    hyps, delays = _stream_sentences(EchoInParts(), SOURCES)
    assert hyps == [s for s in SOURCES]  # "9:30" whole, not "9: 30"

    for source, hyp, sentence_delays in zip(SOURCES, hyps, delays, strict=True):
        arrivals = [
            Arrival(0.0, w, i == len(source.split()) - 1) for i, w in enumerate(source.split())
        ]
        written = translate_timeline(EchoInParts(), arrivals, end_s=0.0)
        assert " ".join(w.text for w in written) == hyp
        assert [w.source_words for w in written] == sentence_delays

    cells, signature = _score(hyps, delays, SOURCES, REFS, "fr")
    quality = corpus_quality(hyps, REFS, "fr")
    assert cells[:2] == [f"{quality.bleu:.1f}", f"{quality.chrf:.1f}"]
    assert signature == quality.bleu_signature
    assert 0 < quality.bleu < 100
