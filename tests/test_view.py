import dataclasses
import io

import pytest
from rich.console import Console

from juno.display.view import LiveView, PlainPrinter, Transcript
from juno.pipeline.messages import EndOfStream, Heartbeat, SentenceEnd, SourceWord, TargetWord

ORIGIN_S = 1000.0
STATUS = {
    "whisper": "base",
    "llm": "qwen",
    "source_language": "en",
    "target_language": "fr",
    "wait_k": 3,
}


def source(sentence: int, text: str, end_s: float, last: bool = False) -> SourceWord:
    return SourceWord(
        seq=0,
        stream_s=end_s,
        origin_wall_s=ORIGIN_S,
        text=text,
        start_s=end_s - 0.25,
        end_s=end_s,
        probability=0.9,
        sentence_end=last,
        sentence=sentence,
        committed_wall_s=ORIGIN_S + end_s,
    )


def target(sentence: int, text: str, stream_s: float, read: int = 3) -> TargetWord:
    return TargetWord(
        seq=0,
        stream_s=stream_s,
        origin_wall_s=ORIGIN_S,
        text=text,
        sentence=sentence,
        source_words_read=read,
        committed_wall_s=ORIGIN_S + stream_s,
    )


def sentence_end(sentence: int, src: str, tgt: str) -> SentenceEnd:
    return SentenceEnd(
        seq=0, stream_s=0.0, origin_wall_s=ORIGIN_S, sentence=sentence, source=src, target=tgt
    )


def feed_sentence(view: LiveView, i: int, src: str, tgt: str, done: bool = True) -> None:
    words = src.split()
    for j, word in enumerate(words):
        end_s = i + 0.1 * j
        view.add(source(i, word, end_s, last=done and j == len(words) - 1), ORIGIN_S + end_s + 1)
    for word in tgt.split():
        view.add(target(i, word, i + 0.5), ORIGIN_S + i + 2)
    if done:
        view.add(sentence_end(i, src, tgt), ORIGIN_S + i + 2)


def render(view: LiveView, height: int = 30) -> str:
    console = Console(record=True, width=100, height=height, file=io.StringIO())
    console.print(view)
    return console.export_text()


def test_sentences_fill_out_of_step():
    transcript = Transcript()
    transcript.add(source(0, "Hello", 0.5), ORIGIN_S + 1)
    transcript.add(source(0, "there.", 1.0, last=True), ORIGIN_S + 1.5)
    transcript.add(target(0, "Bonjour", 1.0), ORIGIN_S + 2)
    transcript.add(source(1, "How", 1.5), ORIGIN_S + 2)
    transcript.add(target(0, "à", 1.0), ORIGIN_S + 2.5)

    first, second = transcript.sentences
    assert (first.source, first.target) == ("Hello there.", "Bonjour à")
    assert first.source_done and not first.done
    assert (second.source, second.target) == ("How", "")
    assert not second.source_done

    transcript.add(sentence_end(0, "Hello there.", "Bonjour à tous."), ORIGIN_S + 3)
    assert first.done and first.target == "Bonjour à tous."
    assert (transcript.source_word_count, transcript.target_word_count) == (3, 2)


def test_a_source_word_that_continues_the_one_before_is_shown_joined():
    transcript = Transcript()
    transcript.add(source(0, "cold", 0.5), ORIGIN_S + 1)
    transcript.add(dataclasses.replace(source(0, "-hearted", 0.9), attached=True), ORIGIN_S + 1)
    transcript.add(source(0, "man.", 1.2, last=True), ORIGIN_S + 2)
    assert transcript.sentences[0].source == "cold-hearted man."


def test_sentences_are_ordered_by_index():
    transcript = Transcript()
    transcript.add(target(2, "deux", 2.0), ORIGIN_S)
    transcript.add(source(0, "zero", 0.5), ORIGIN_S)
    assert [s.index for s in transcript.sentences] == [0, 2]


def test_lag_is_the_median_of_the_recent_words():
    transcript = Transcript(lag_window_words=3)
    assert transcript.source_lag_s is None and transcript.target_lag_s is None
    # Source lags 10, 1, 2, 3: the window keeps the last three.
    for lag_s, end_s in [(10, 0.5), (1, 1.0), (2, 1.5), (3, 2.0)]:
        transcript.add(source(0, "w", end_s), ORIGIN_S + end_s + lag_s)
    assert transcript.source_lag_s == pytest.approx(2.0)
    transcript.add(target(0, "m", 4.0), ORIGIN_S + 5.5)
    assert transcript.target_lag_s == pytest.approx(1.5)


def test_other_messages_are_ignored_and_end_of_stream_is_kept():
    transcript = Transcript()
    transcript.add(Heartbeat(process="translate", cpu_s=1.0, rss_bytes=1), ORIGIN_S)
    assert transcript.sentences == [] and not transcript.ended
    transcript.add(EndOfStream(seq=0, stream_s=3.0), ORIGIN_S)
    assert transcript.ended


def test_columns_show_source_translation_progress_and_status():
    view = LiveView(STATUS)
    feed_sentence(view, 0, "Hello there.", "Bonjour.")
    feed_sentence(view, 1, "How are", "Comment", done=False)

    text = render(view)
    assert "Source (English)" in text and "Translation (French)" in text
    assert "Hello there." in text and "Bonjour." in text
    assert "How are …" in text and "Comment …" in text
    assert "Bonjour. …" not in text
    status = text.strip().splitlines()[-1]
    for part in ("listening", "en → fr", "whisper base", "llm qwen", "wait-k 3", "words 4 → 2"):
        assert part in status
    assert "lag src 1.0 s, tgt 1.5 s" in status


def test_untranslated_sentence_shows_a_cursor_for_its_translation():
    view = LiveView(STATUS)
    view.add(source(0, "Hi.", 0.5, last=True), ORIGIN_S + 1)
    row = next(line for line in render(view).splitlines() if "Hi." in line)
    assert row.split("│")[1].strip() == "…"


def test_only_the_last_rows_that_fit_are_shown_newest_at_the_bottom():
    view = LiveView(STATUS)
    for i in range(60):
        feed_sentence(view, i, f"source{i}.", f"cible{i}.")
    feed_sentence(view, 60, "and then", "et", done=False)

    lines = render(view, height=20).splitlines()
    assert len(lines) == 20
    # Header and its rule, 17 rows, the status line.
    assert "Source (English)" in lines[0]
    assert "and then …" in lines[-2] and "et …" in lines[-2]
    assert "source59." in lines[-3] and "cible59." in lines[-3]
    assert "source44." in lines[2]
    assert not any("source43." in line for line in lines)


def test_a_row_taller_than_the_console_keeps_its_end():
    view = LiveView(STATUS)
    feed_sentence(view, 0, "word " * 400 + "last", "mot", done=False)
    lines = render(view, height=10).splitlines()
    assert len(lines) == 10
    assert "last …" in lines[-2]


def test_state_and_missing_status_keys():
    view = LiveView()
    view.state = "draining…"
    text = render(view)
    assert "Source" in text and "Translation" in text and "draining…" in text
    view.add(EndOfStream(seq=0, stream_s=0.0), ORIGIN_S)
    assert render(view).strip().splitlines()[-1].startswith("done")


def test_the_status_line_keeps_the_rooms_address():
    view = LiveView({**STATUS, "room": "http://192.168.1.20:8765/"})
    assert "room http://192.168.1.20:8765/" in view.status_line().plain


def test_room_layout_shows_the_translation_only():
    view = LiveView(STATUS, layout="room")
    feed_sentence(view, 0, "Hello there.", "Bonjour.")
    feed_sentence(view, 1, "How are", "Comment", done=False)
    text = render(view)
    assert "Bonjour." in text and "Comment …" in text
    assert "Hello" not in text and "listening" not in text


def test_unknown_layout_is_refused():
    with pytest.raises(ValueError, match="layout"):
        LiveView(layout="big")


def test_plain_printer_lines():
    out = io.StringIO()
    printer = PlainPrinter(out)
    printer.add(source(2, "Hello", 1.5))
    printer.add(target(2, "Bonjour", 1.5, read=3), ORIGIN_S)
    printer.add(sentence_end(2, "Hello\tthere.", "Bonjour\tà tous."))
    printer.add(EndOfStream(seq=0, stream_s=0.0))
    assert out.getvalue() == (
        "source\t2\t1.25\t1.50\tHello\ntarget\t2\t3\tBonjour\nsentence\t2\tBonjour à tous.\n"
    )


def in_language(msg, language: str):
    return dataclasses.replace(msg, language=language)


def test_several_languages_each_get_their_own_column():
    view = LiveView({**STATUS, "target_language": "fr, de"}, Transcript(["fr", "de"]))
    view.add(source(0, "Hello", 0.5), ORIGIN_S + 1)
    view.add(source(0, "there.", 1.0, last=True), ORIGIN_S + 1.5)
    view.add(in_language(target(0, "Bonjour.", 1.0), "fr"), ORIGIN_S + 2)
    view.add(in_language(target(0, "Hallo", 1.0), "de"), ORIGIN_S + 2)
    view.add(in_language(sentence_end(0, "Hello there.", "Bonjour."), "fr"), ORIGIN_S + 2)
    # An untagged word is in the first language.
    view.add(target(1, "Comment", 2.0), ORIGIN_S + 3)
    view.add(in_language(target(1, "Wie", 2.0), "de"), ORIGIN_S + 3)

    first, second = view.transcript.sentences
    assert first.translations["fr"].done and not first.translations["de"].done
    assert not first.done and first.target == "Bonjour."
    assert (second.translations["fr"].target, second.translations["de"].target) == (
        "Comment",
        "Wie",
    )
    lines = render(view).splitlines()
    header = [cell.strip() for cell in lines[0].split("│")]
    assert header == ["Source (English)", "French", "German"]
    row = next(line for line in lines if "Hello" in line)
    assert [cell.strip() for cell in row.split("│")] == ["Hello there.", "Bonjour.", "Hallo …"]
    row = next(line for line in lines if "Comment" in line)
    assert [cell.strip() for cell in row.split("│")] == ["…", "Comment …", "Wie …"]
    status = view.status_line().plain
    assert "en → fr, de" in status and "words 2 → 2, 2" in status


def test_one_language_tagged_or_not_looks_as_before():
    tagged, untagged = LiveView(STATUS, Transcript(["fr"])), LiveView(STATUS)
    for view, language in ((tagged, "fr"), (untagged, "")):
        view.add(source(0, "Hi.", 0.5, last=True), ORIGIN_S + 1)
        view.add(in_language(target(0, "Salut.", 0.5), language), ORIGIN_S + 2)
        view.add(in_language(sentence_end(0, "Hi.", "Salut."), language), ORIGIN_S + 2)
    assert render(tagged) == render(untagged)
    assert "Translation (French)" in render(tagged)
    assert "words 1 → 1" in tagged.status_line().plain


def test_room_layout_shows_each_languages_translation():
    view = LiveView(STATUS, Transcript(["fr", "de"]), layout="room")
    view.add(source(0, "Hello.", 0.5, last=True), ORIGIN_S + 1)
    view.add(in_language(sentence_end(0, "Hello.", "Bonjour."), "fr"), ORIGIN_S + 2)
    view.add(in_language(target(0, "Hallo", 0.5), "de"), ORIGIN_S + 2)
    lines = [line.strip() for line in render(view).splitlines() if line.strip()]
    assert lines == ["Bonjour.", "Hallo …"]


def test_plain_printer_names_the_language_when_there_are_several():
    out = io.StringIO()
    printer = PlainPrinter(out, ["fr", "de"])
    printer.add(target(2, "Bonjour", 1.5, read=3))
    printer.add(in_language(target(2, "Hallo", 1.5, read=3), "de"))
    printer.add(in_language(sentence_end(2, "Hello", "Hallo."), "de"))
    assert out.getvalue().splitlines() == [
        "target\tfr\t2\t3\tBonjour",
        "target\tde\t2\t3\tHallo",
        "sentence\tde\t2\tHallo.",
    ]


# -- a two-way conversation ----------------------------------------------------------


def conversation(view) -> None:
    """Turns 0 (English) and 1 (French) translated; turn 2 (English) half spoken, its
    translation begun; turn 3 (French) heard, not yet translated."""
    turns = [("en", "Hello there.", "Bonjour."), ("fr", "Ça va bien ?", "Are you well?")]
    for i, (language, src, tgt) in enumerate(turns):
        other = "fr" if language == "en" else "en"
        words = src.split()
        for j, word in enumerate(words):
            msg = source(i, word, i + 0.1 * j, last=j == len(words) - 1)
            view.add(in_language(msg, language), ORIGIN_S + i + 1)
        for word in tgt.split():
            view.add(in_language(target(i, word, i + 0.5), other), ORIGIN_S + i + 2)
        view.add(in_language(sentence_end(i, src, tgt), other), ORIGIN_S + i + 2)
    view.add(in_language(source(2, "See", 2.0), "en"), ORIGIN_S + 3)
    view.add(in_language(target(2, "À", 2.0), "fr"), ORIGIN_S + 4)
    view.add(in_language(source(3, "Oui.", 3.0, last=True), "fr"), ORIGIN_S + 4)


def cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.split("│")]


def test_a_conversation_shows_each_turn_in_its_languages_column_and_the_other():
    view = LiveView(STATUS, Transcript(pair=["en", "fr"]))
    conversation(view)
    lines = render(view).splitlines()
    assert cells(lines[0]) == ["English", "French"]
    rows = [cells(line) for line in lines[2:-1] if line.strip()]
    assert rows == [
        ["en ▸ Hello there.", "Bonjour."],
        ["Are you well?", "fr ▸ Ça va bien ?"],
        ["en ▸ See …", "À …"],
        ["…", "fr ▸ Oui."],
    ]
    turns = view.transcript.sentences
    assert [view.transcript.spoken(s) for s in turns] == ["en", "fr", "en", "fr"]
    # Each turn awaits its translation into the other language only.
    assert [list(s.translations) for s in turns] == [["fr"], ["en"], ["fr"], ["en"]]
    assert [s.done for s in turns] == [True, True, False, False]
    status = view.status_line().plain
    assert "en ⇄ fr" in status and "→ fr" not in status
    assert "words 8 → 3, 2" in status  # written into en, fr: the pair's order


def test_a_conversation_styles_spoken_words_apart_from_translations():
    view = LiveView(STATUS, Transcript(pair=["en", "fr"]))
    conversation(view)
    english, french = (
        next(column.cells) for column in view._row(view.transcript.sentences[1]).columns
    )
    assert english.plain == "Are you well?" and english.style == "italic"
    assert french.plain == "fr ▸ Ça va bien ?" and french.spans[0].style == "bold cyan"


def test_a_turn_whose_translation_arrives_first_is_placed_by_it():
    view = LiveView(STATUS, Transcript(pair=["en", "fr"]))
    view.add(in_language(target(0, "Salut", 0.5), "en"), ORIGIN_S + 1)
    turn = view.transcript.sentences[0]
    assert view.transcript.spoken(turn) == "fr" and not turn.done
    row = next(line for line in render(view).splitlines() if "Salut" in line)
    assert cells(row) == ["Salut …", "fr ▸ …"]


def test_a_conversations_room_layout_tags_each_translation_with_who_spoke():
    view = LiveView(STATUS, Transcript(pair=["en", "fr"]), layout="room")
    conversation(view)
    lines = [line.strip() for line in render(view).splitlines() if line.strip()]
    assert lines == ["en ▸ Bonjour.", "fr ▸ Are you well?", "en ▸ À …"]


def test_plain_printer_names_the_language_of_each_turn_and_translation():
    out = io.StringIO()
    printer = PlainPrinter(out, pair=["en", "fr"])
    conversation(printer)
    lines = out.getvalue().splitlines()
    assert lines[0] == "source\ten\t0\t-0.25\t0.00\tHello"
    assert lines[2:5] == ["target\tfr\t0\t3\tBonjour.", "sentence\tfr\t0\tBonjour.", lines[4]]
    assert lines[4].startswith("source\tfr\t1\t") and lines[4].endswith("\tÇa")
    assert lines[-1] == "source\tfr\t3\t2.75\t3.00\tOui."
    assert "target\ten\t1\t3\tAre" in lines
