"""``juno eval`` figures against hand-computed cases (no model).

Speech latency follows SimulEval: a target word's delay is the audio consumed
(ms) when it was written; the source length is the clip's duration in ms.
"""

import math
from types import SimpleNamespace

import pytest

from juno.eval.score import corpus_quality, corpus_wer, lagging, normalize_text, speech_delays_ms
from juno.eval.timeline import Arrival, TimelineStats, translate_timeline


class EchoWaitK:
    """Wait-k without a model: target word i is source word i upper-cased, written once
    k + i source words are in (or the sentence ended); one event per target word."""

    def __init__(self, k: int, cost_s: float = 0.0, clock: list[float] | None = None) -> None:
        self.k, self.cost_s, self.clock = k, cost_s, clock
        self.sentences: list[list[str]] = [[]]
        self.ended = [False]
        self.written = 0

    def feed(self, words: str) -> None:
        if self.ended[-1]:
            self.sentences.append([])
            self.ended.append(False)
        self.sentences[-1] += words.split()

    def end_sentence(self) -> None:
        if self.sentences[-1] and not self.ended[-1]:
            self.ended[-1] = True

    def events(self):
        while True:
            words, ended, i = self.sentences[0], self.ended[0], self.written
            if i < len(words) and (ended or len(words) >= self.k + i):
                if self.clock is not None:
                    self.clock[0] += self.cost_s  # this token's compute
                self.written += 1
                word = SimpleNamespace(
                    text=words[i].upper(), delay=min(self.k + i, len(words)), attached=False
                )
                yield SimpleNamespace(word=word)
            elif ended and i == len(words) and len(self.sentences) > 1:
                self.sentences.pop(0)
                self.ended.pop(0)
                self.written = 0
            else:
                return


# -- AL and LAAL ----------------------------------------------------------------


def test_speech_delays_are_the_audio_consumed_in_ms():
    assert speech_delays_ms([0.5, 2.0, 11.0]) == [500.0, 2000.0, 11000.0]


def test_speech_lagging_hand_computed():
    # 4 s of audio, words written at 2, 2, 3, 3 s; reference of 4 words.
    # gamma = 4 / 4000 ms: terms 2000-0, 2000-1000, 3000-2000, 3000-3000; tau = 4.
    lag = lagging([2000, 2000, 3000, 3000], 4000, "un deux trois quatre")
    assert lag.al == pytest.approx(1000.0)
    assert lag.laal == pytest.approx(1000.0)


def test_over_long_output_cannot_lower_its_laal():
    # 3 s of audio, 6 words for a 4-word reference.
    # AL, |Y| = 4: 1000-0, 2000-750, 3000-1500 (tau = 3: d >= 3000) -> 3750 / 3 = 1250.
    # LAAL, |Y| = 6: 1000-0, 2000-500, 3000-1000 -> 4500 / 3 = 1500.
    lag = lagging([1000, 2000, 3000, 3000, 3000, 3000], 3000, "a b c d")
    assert lag.al == pytest.approx(1250.0)
    assert lag.laal == pytest.approx(1500.0)


def test_short_output_uses_the_reference_length():
    # 4 source words, 2 target words for a 4-word reference: rate 1.
    # (2-0) + (4-1) over tau = 2 -> 2.5 for both (max(2, 4) = 4).
    lag = lagging([2, 4], 4, "a b c d")
    assert (lag.al, lag.laal) == (pytest.approx(2.5), pytest.approx(2.5))


def test_without_reference_the_hypothesis_length_is_used():
    assert lagging([2, 4], 4, None).al == pytest.approx(2.0)


def test_empty_output_has_no_latency():
    lag = lagging([], 3000, "a b")
    assert math.isnan(lag.al) and math.isnan(lag.laal)


def test_a_first_word_after_the_whole_source_lags_by_its_delay():
    # Computation-aware delays can pass the source length: AL is then d_1 (SimulEval).
    assert lagging([5000, 6000], 4000, "a b").al == pytest.approx(5000.0)


# -- the cascade on the simulated clock ------------------------------------------


ARRIVALS = [
    Arrival(1.0, "a"),
    Arrival(2.0, "b"),
    Arrival(2.0, "c"),
    Arrival(3.0, "d", sentence_end=True),
]


def test_words_are_written_when_the_word_allowing_them_arrives():
    written = translate_timeline(EchoWaitK(2), ARRIVALS, end_s=4.0)
    assert [w.text for w in written] == ["A", "B", "C", "D"]
    assert [w.time_s for w in written] == [2.0, 2.0, 3.0, 3.0]
    assert [w.source_words for w in written] == [2, 3, 4, 4]
    lag = lagging(speech_delays_ms([w.time_s for w in written]), 4000, "w x y z")
    assert lag.al == pytest.approx(1000.0)


def test_the_last_sentence_closes_at_the_end_of_the_stream():
    open_ended = [*ARRIVALS[:3], Arrival(3.0, "d")]
    written = translate_timeline(EchoWaitK(2), open_ended, end_s=4.0)
    assert [w.time_s for w in written] == [2.0, 2.0, 3.0, 4.0]


def test_computation_aware_clock_counts_each_tokens_compute():
    clock = [0.0]
    stats = TimelineStats()
    translator = EchoWaitK(2, cost_s=0.5, clock=clock)
    written = translate_timeline(
        translator, ARRIVALS, end_s=4.0, compute_aware=True, stats=stats, clock=lambda: clock[0]
    )
    # A at 2.5 s, B at 3.0 s (d arrives then, between two tokens), C at 3.5 s, D at 4.0 s.
    assert [w.time_s for w in written] == [2.5, 3.0, 3.5, 4.0]
    assert stats.compute_s == pytest.approx(2.0)
    # 2500-0 + 3000-1000 + 3500-2000 + 4000-3000 over tau = 4.
    lag = lagging(speech_delays_ms([w.time_s for w in written]), 4000, "w x y z")
    assert lag.al == pytest.approx(1750.0)


def test_sentences_follow_one_another():
    arrivals = [
        Arrival(1.0, "a"),
        Arrival(2.0, "b.", sentence_end=True),
        Arrival(3.0, "c"),
        Arrival(4.0, "d"),
    ]
    written = translate_timeline(EchoWaitK(1), arrivals, end_s=5.0)
    assert [(w.text, w.time_s, w.source_words) for w in written] == [
        ("A", 1.0, 1),
        ("B.", 2.0, 2),
        ("C", 3.0, 1),
        ("D", 4.0, 2),
    ]


def test_text_words_one_per_tick_give_wait_k_delays():
    words = "a b c d".split()
    arrivals = [Arrival(i + 1.0, w, i == len(words) - 1) for i, w in enumerate(words)]
    written = translate_timeline(EchoWaitK(2), arrivals, end_s=4.0)
    delays = [w.source_words for w in written]
    assert delays == [2, 3, 4, 4]
    # (2-0) + (3-1) + (4-2), tau = 3.
    assert lagging(delays, 4, "w x y z").al == pytest.approx(2.0)


# -- WER and quality ------------------------------------------------------------


def test_wer_normalizes_case_punctuation_and_spacing():
    assert normalize_text("  And so, my fellow   Americans! ") == "and so my fellow americans"
    assert normalize_text("Don’t") == "don't"
    assert corpus_wer(["And so, my fellow Americans."], ["and so my fellow americans"]) == 0.0
    # One substitution in five words.
    assert corpus_wer(["and so my fellow americans"], ["and so my dear americans"]) == 20.0
    # Two items: 1 error over 5 + 2 reference words.
    assert corpus_wer(["a b c d e", "f g"], ["a b c d e", "f"]) == pytest.approx(100 / 7)


def test_wer_of_an_empty_transcript_counts_every_reference_word():
    assert corpus_wer(["ask not"], [""]) == 100.0


def test_bleu_and_chrf_come_with_their_signatures():
    q = corpus_quality(["le chat est là ."], ["le chat est là ."], "fr")
    assert q.bleu == pytest.approx(100.0) and q.chrf == pytest.approx(100.0)
    assert "nrefs:1" in q.bleu_signature and "tok:13a" in q.bleu_signature
    assert q.chrf_signature.startswith("nrefs:1")
    assert corpus_quality(["x"], ["le chat"], "fr").bleu == pytest.approx(0.0)
