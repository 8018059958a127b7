"""AL and LAAL against hand-computed examples."""

import math

import pytest

from juno.eval.metrics import average_lagging, corpus_mean, length_adaptive_average_lagging


def test_wait_k_ideal_schedule_lags_by_k():
    # |X| = |Y| = 5, wait-2: d = 2, 3, 4, 5, 5. tau = 4 (d_4 = 5 = |X|).
    # AL = ((2-0) + (3-1) + (4-2) + (5-3)) / 4 = 2.
    assert average_lagging([2, 3, 4, 5, 5], 5) == pytest.approx(2.0)


def test_al_uses_the_reference_length_when_given():
    # |X| = 4, hypothesis of 2 words, reference of 4: rate = 1.
    # d = 2, 4: tau = 2, AL = ((2-0) + (4-1)) / 2 = 2.5.
    assert average_lagging([2, 4], 4, reference_length=4) == pytest.approx(2.5)
    # Without the reference, |Y| = 2: rate = 0.5, AL = ((2-0) + (4-2)) / 2 = 2.
    assert average_lagging([2, 4], 4) == pytest.approx(2.0)


def test_laal_takes_the_longer_of_hypothesis_and_reference():
    # |X| = 4, hypothesis of 8 words (over-generation), reference of 4.
    d = [1, 2, 3, 4, 4, 4, 4, 4]
    # AL with |Y| = 4: rate 1 -> ((1-0) + (2-1) + (3-2) + (4-3)) / 4 = 1.
    assert average_lagging(d, 4, reference_length=4) == pytest.approx(1.0)
    # LAAL with |Y| = 8: rate 2 -> ((1-0) + (2-0.5) + (3-1) + (4-1.5)) / 4 = 1.75.
    assert length_adaptive_average_lagging(d, 4, reference_length=4) == pytest.approx(1.75)


def test_offline_translation_lags_by_the_whole_source():
    assert average_lagging([6, 6, 6], 6) == pytest.approx(6.0)
    assert length_adaptive_average_lagging([6, 6], 6, reference_length=3) == pytest.approx(6.0)


def test_empty_hypothesis_is_nan_and_skipped_in_the_mean():
    assert math.isnan(average_lagging([], 5))
    assert corpus_mean([1.0, math.nan, 3.0]) == pytest.approx(2.0)
