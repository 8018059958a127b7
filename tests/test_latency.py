"""The latency report against hand-computed numbers."""

from __future__ import annotations

import json

import pytest

from juno.display.latency import (
    format_report,
    load_events,
    pair_of,
    report,
    source_lags,
    translation_lags,
    translation_lags_by_language,
)

ORIGIN = 1000.0


def src(sentence: int, end: float, shown: float, text: str = "w") -> dict:
    return {
        "type": "source_word",
        "shown_wall_s": ORIGIN + shown,
        "origin_wall_s": ORIGIN,
        "sentence": sentence,
        "text": text,
        "start_s": end - 0.3,
        "end_s": end,
    }


def tgt(sentence: int, read: int, shown: float) -> dict:
    return {
        "type": "target_word",
        "shown_wall_s": ORIGIN + shown,
        "origin_wall_s": ORIGIN,
        "sentence": sentence,
        "text": "m",
        "source_words_read": read,
    }


def end(sentence: int, shown: float) -> dict:
    return {
        "type": "sentence_end",
        "shown_wall_s": ORIGIN + shown,
        "origin_wall_s": ORIGIN,
        "sentence": sentence,
    }


def test_source_lag_is_shown_minus_audio_end():
    events = [src(0, 1.0, 1.5), src(0, 2.0, 3.0)]
    assert source_lags(events) == pytest.approx([0.5, 1.0])
    rep = report(events)
    assert rep["source_lag"] == {
        "count": 2,
        "median_s": pytest.approx(0.75),
        "p90_s": pytest.approx(0.95),
    }


def test_translation_lag_takes_the_first_target_word_after_reading():
    events = [
        src(0, 1.0, 1.2),
        src(0, 2.0, 2.2),
        src(0, 3.0, 3.2),
        # Wait-2: nothing is written before the 2nd word is read.
        tgt(0, 2, 2.5),
        tgt(0, 2, 2.7),
        tgt(0, 3, 3.6),
        end(0, 4.0),
    ]
    # Word 1 and 2 -> first word with read >= 2 (2.5); word 3 -> read 3 at 3.6.
    assert translation_lags(events) == pytest.approx([1.5, 0.5, 0.6])


def test_translation_lag_falls_back_to_sentence_end():
    events = [
        src(0, 1.0, 1.2),
        src(0, 2.0, 2.2),
        src(0, 3.0, 3.2),
        tgt(0, 1, 1.5),
        # The translation ended after 1 read; the rest was read at the sentence end.
        end(0, 4.5),
    ]
    assert translation_lags(events) == pytest.approx([0.5, 2.5, 1.5])


def test_translation_lag_is_left_out_without_target_or_end():
    events = [
        src(0, 1.0, 1.2),
        src(0, 2.0, 2.2),
        tgt(0, 1, 1.8),
        src(1, 3.0, 3.2),  # sentence 1: still untranslated
    ]
    assert translation_lags(events) == pytest.approx([0.8])
    rep = report(events)
    assert rep["translation_lag"]["count"] == 1
    assert rep["source_lag"]["count"] == 3


def test_translation_lag_is_per_sentence_and_skips_empty_words():
    events = [
        src(0, 1.0, 1.1),
        src(1, 2.0, 2.1),
        src(1, 2.1, 2.2, text=" "),  # not a word the translator reads
        src(1, 3.0, 3.1),
        tgt(1, 1, 2.5),
        tgt(0, 1, 2.6),
        tgt(1, 2, 3.5),
    ]
    assert translation_lags(events) == pytest.approx([1.6, 0.5, 0.5])


def test_empty_report_has_no_statistics():
    rep = report([])
    assert rep["source_lag"] == {"count": 0, "median_s": None, "p90_s": None}
    assert rep["processes"] == {}
    assert "Latency" in format_report(rep)


def beat(process: str, wall: float, cpu: float, rss_mib: int, mlx: int = 0) -> dict:
    return {
        "process": process,
        "cpu_s": cpu,
        "rss_bytes": rss_mib * 2**20,
        "mlx_peak_bytes": mlx,
        "wall_s": ORIGIN + wall,
    }


def test_process_use_from_heartbeats():
    beats = {
        "translate": [
            beat("translate", 0.0, 10.0, 100),
            beat("translate", 30.0, 25.0, 300, mlx=5 * 2**20),
            beat("translate", 61.0, 40.0, 310),
            beat("translate", 120.0, 70.0, 305),
        ],
        "display": [beat("display", 5.0, 1.0, 50)],
    }
    rep = report([src(0, 1.0, 1.5)], beats)
    t = rep["processes"]["translate"]
    assert t["cpu_s"] == pytest.approx(60.0)
    assert t["cpu_percent"] == pytest.approx(50.0)
    assert t["peak_rss_bytes"] == 310 * 2**20
    assert t["rss_after_warmup_bytes"] == 310 * 2**20
    assert t["rss_end_bytes"] == 305 * 2**20
    assert t["mlx_peak_bytes"] == 5 * 2**20
    d = rep["processes"]["display"]
    assert d["cpu_percent"] is None and d["rss_after_warmup_bytes"] is None
    text = format_report(rep)
    assert "translate" in text and "50" in text and "310 MiB" in text
    assert len(text.splitlines()) < 25


def test_the_writers_drafts_are_reported_when_it_drafted():
    drafts = {"draft_rounds": 4, "drafted": 10, "accepted": 6, "acceptance": 0.6}
    drafts |= {"mean_accepted": 1.5, "draft_s": 0.2, "verify_s": 1.25}
    rep = report([src(0, 1.0, 1.5)], {}, {"translate": {"drafts": drafts}, "capture": {"x": 1}})
    assert rep["drafts"] == drafts
    assert "drafts: 6 of 10 tokens accepted (60%), 1.50 per round" in format_report(rep)
    plain = report([src(0, 1.0, 1.5)], {}, {"capture": {"x": 1}})
    assert "drafts" not in plain and "drafts" not in format_report(plain)


def test_load_events_skips_a_torn_last_line(tmp_path):
    path = tmp_path / "events.jsonl"
    lines = [json.dumps(src(0, 1.0, 1.5)), json.dumps(tgt(0, 1, 2.0))]
    path.write_text("\n".join(lines) + '\n{"type": "sour', encoding="utf-8")
    assert [e["type"] for e in load_events(path)] == ["source_word", "target_word"]
    path.write_text('{"bad\n' + lines[0] + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=":1:"):
        load_events(path)


def test_report_from_a_recorded_session(tmp_path):
    from juno.display.session import SessionRecorder
    from juno.pipeline.messages import SentenceEnd, SourceWord, TargetWord

    with SessionRecorder(tmp_path / "s", {}) as rec:
        rec.record(
            SourceWord(0, 1.0, ORIGIN, "Hi", 0.5, 1.0, 0.9, True, 0, ORIGIN + 1.1), ORIGIN + 1.2
        )
        rec.record(TargetWord(0, 1.0, ORIGIN, "Salut", 0, 1, ORIGIN + 1.5), ORIGIN + 1.6)
        rec.record(SentenceEnd(1, 1.0, ORIGIN, 0, "Hi", "Salut"), ORIGIN + 1.7)
    rep = report(load_events(tmp_path / "s" / "events.jsonl"))
    assert rep["source_lag"]["median_s"] == pytest.approx(0.2)
    assert rep["translation_lag"]["median_s"] == pytest.approx(0.6)
    assert rep["sentences"] == 1


def in_language(event: dict, language: str) -> dict:
    return {**event, "language": language}


def test_translation_lag_is_matched_within_each_language():
    events = [
        src(0, 1.0, 1.2),
        src(0, 2.0, 2.2),
        # French writes after one word read, German after two.
        in_language(tgt(0, 1, 1.5), "fr"),
        in_language(tgt(0, 2, 2.5), "de"),
        in_language(tgt(0, 2, 2.6), "fr"),
        in_language(end(0, 3.0), "de"),
        in_language(end(0, 3.5), "fr"),
    ]
    # Matched across languages, word 1 of German would take French's 1.5.
    rep = report(events)
    by_language = rep["translation_lag_by_language"]
    assert list(by_language) == ["fr", "de"]
    assert by_language["fr"]["count"] == 2
    assert by_language["fr"]["median_s"] == pytest.approx((0.5 + 0.6) / 2)
    assert by_language["de"]["median_s"] == pytest.approx((1.5 + 0.5) / 2)
    # Over all languages: each source word once per language.
    assert translation_lags(events) == pytest.approx([0.5, 0.6, 1.5, 0.5])
    assert rep["translation_lag"]["count"] == 4
    assert rep["sentences"] == 1 and rep["target_words"] == 3
    text = format_report(rep)
    rows = [[cell.strip() for cell in line.split("│")[1:3]] for line in text.splitlines()]
    assert ["into fr", "2"] in rows and ["into de", "2"] in rows
    assert "1 sentences translated into fr, de" in text


def test_an_untagged_translation_is_in_the_first_language():
    events = [src(0, 1.0, 1.2), tgt(0, 1, 1.5), in_language(tgt(0, 1, 2.0), "de"), end(0, 2.5)]
    events.insert(1, in_language(tgt(0, 1, 1.4), "fr"))
    assert translation_lags_by_language(events) == {
        "fr": pytest.approx([0.4]),
        "de": pytest.approx([1.0]),
    }


def test_one_language_has_no_lag_by_language():
    events = [src(0, 1.0, 1.2), in_language(tgt(0, 1, 1.5), "fr"), in_language(end(0, 2.0), "fr")]
    rep = report(events)
    assert "translation_lag_by_language" not in rep
    assert rep["translation_lag"]["median_s"] == pytest.approx(0.5)
    assert "into" not in format_report(rep)


# -- a two-way conversation ----------------------------------------------------------


def turns() -> list[dict]:
    """English, French, French again, English: each turn translated into the other."""
    en, fr = (lambda e: in_language(e, "en")), (lambda e: in_language(e, "fr"))
    return [
        en(src(0, 1.0, 1.2)),
        en(src(0, 2.0, 2.2)),
        fr(tgt(0, 1, 1.5)),
        fr(end(0, 2.5)),
        # A change of speaker: the first word waits for its language to be identified.
        fr(src(1, 3.0, 4.0)),
        fr(src(1, 3.5, 3.8)),
        en(tgt(1, 1, 4.2)),
        en(tgt(1, 2, 4.6)),
        en(end(1, 5.0)),
        fr(src(2, 6.0, 6.3)),
        en(tgt(2, 1, 6.5)),
        en(end(2, 7.0)),
        en(src(3, 8.0, 9.2)),
        fr(end(3, 9.5)),
    ]


def test_a_conversation_is_reported_by_direction():
    events = turns()
    assert pair_of(events) == ["en", "fr"]
    rep = report(events)
    assert rep["pair"] == ["en", "fr"]
    en_fr, fr_en = rep["directions"]["en→fr"], rep["directions"]["fr→en"]
    assert list(rep["directions"]) == ["en→fr", "fr→en"]
    assert en_fr["source_lag"]["count"] == 3 and fr_en["source_lag"]["count"] == 3
    assert en_fr["source_lag"]["median_s"] == pytest.approx(0.2)
    assert fr_en["source_lag"]["median_s"] == pytest.approx(0.3)
    # Each turn's words matched to its own translation only, whichever language.
    assert en_fr["translation_lag"]["count"] == 3 and fr_en["translation_lag"]["count"] == 3
    assert en_fr["translation_lag"]["median_s"] == pytest.approx(0.5)  # 0.5, 0.5, 1.5
    assert fr_en["translation_lag"]["median_s"] == pytest.approx(1.1)  # 1.2, 1.1, 0.5
    assert sorted(translation_lags(events)) == pytest.approx(sorted([0.5, 0.5, 1.5, 1.2, 1.1, 0.5]))
    assert rep["sentences"] == 4
    text = format_report(rep)
    rows = [[cell.strip() for cell in line.split("│")[1:3]] for line in text.splitlines()]
    assert ["en→fr shown", "3"] in rows and ["fr→en translated", "3"] in rows
    assert "into" not in text and "4 sentences translated, en ⇄ fr" in text


def test_a_change_of_speaker_is_reported_with_the_lag_it_adds():
    change = report(turns())["speaker_change"]
    # Turns 1 (fr after en) and 3 (en after fr) changed speaker; turn 2 did not.
    assert change["count"] == 2
    assert change["first_word_median_s"] == pytest.approx(1.1)  # 1.0 and 1.2
    assert change["others_median_s"] == pytest.approx(0.25)  # 0.2, 0.2, 0.3, 0.3
    assert change["difference_s"] == pytest.approx(0.85)
    line = format_report(report(turns())).splitlines()[-1]
    assert line == (
        "speaker changes: 2, a new speaker's first word shown after 1.10 s (median), "
        "others 0.25 s (+0.85 s)"
    )


def test_one_way_has_no_conversation_figures():
    # Tagged with the language spoken, translated into two: not a conversation.
    events = [in_language(src(0, 1.0, 1.2), "en"), in_language(tgt(0, 1, 1.5), "fr")]
    events.append(in_language(tgt(0, 1, 1.6), "de"))
    assert pair_of(events) == [] and pair_of(turns()[:4]) == []
    rep = report(events)
    assert not {"pair", "directions", "speaker_change"} & set(rep)
    assert list(rep["translation_lag_by_language"]) == ["fr", "de"]
    assert "speaker" not in format_report(rep)


def minute_of(sentence: int, minute: int, source_lag: float, translation_lag: float) -> list:
    """Two words ending in ``minute`` (from 0), each shown ``source_lag`` after its end and
    translated by one target word ``translation_lag`` after the second's end."""
    a, b = 60.0 * minute + 10, 60.0 * minute + 20
    return [
        src(sentence, a, a + source_lag),
        src(sentence, b, b + source_lag),
        tgt(sentence, 2, b + translation_lag),
        end(sentence, b + translation_lag + 1),
    ]


def test_a_long_session_has_its_lag_by_minute():
    events = [
        *minute_of(0, 0, 1.0, 2.0),
        *minute_of(1, 1, 1.5, 4.0),
        *minute_of(2, 2, 1.2, 3.0),
        *minute_of(3, 3, 2.0, 9.0),  # the partial last minute, with the talk's end
    ]
    rep = report(events)
    minutes = rep["by_minute"]
    assert [m["minute"] for m in minutes] == [1, 2, 3, 4]
    assert [m["words"] for m in minutes] == [2, 2, 2, 2]
    assert [m["source_median_s"] for m in minutes] == pytest.approx([1.0, 1.5, 1.2, 2.0])
    # Per minute, the median of its two words' translation lags (the first waits 10 s more).
    assert [m["translation_median_s"] for m in minutes] == pytest.approx([7, 9, 8, 14])
    # The last full minute (the third) over the first; the partial one is left out.
    assert rep["last_over_first"] == {
        "source": pytest.approx(1.2),
        "translation": pytest.approx(8 / 7),
    }
    line = next(x for x in format_report(rep).splitlines() if x.startswith("lag by minute"))
    assert "slowest (minute 2) 1.50 s / 9.00 s" in line
    assert "last full (minute 3) 1.20 s / 8.00 s" in line
    assert "last (partial) 2.00 s / 14.00 s" in line
    assert "last full over first 1.20x / 1.14x" in line


def test_a_short_session_has_no_lag_by_minute():
    events = [*minute_of(0, 0, 1.0, 2.0), *minute_of(1, 1, 1.0, 2.0)]  # ends at 80 s
    rep = report(events)
    assert "by_minute" not in rep and "last_over_first" not in rep
    assert "lag by minute" not in format_report(rep)


def test_lag_by_minute_pools_the_target_languages():
    events = [
        *minute_of(0, 0, 1.0, 2.0),
        in_language(tgt(0, 2, 20 + 6.0), "de"),
        *minute_of(1, 1, 1.0, 2.0),
        *minute_of(2, 2, 1.0, 2.0),
    ]
    events[2], events[3] = in_language(events[2], "fr"), in_language(events[3], "fr")
    minutes = report(events)["by_minute"]
    # Minute 1: French lags 12 and 2, German 16 and 6: median 9.
    assert minutes[0]["translation_median_s"] == pytest.approx(9.0)
