"""The session folder: events.jsonl, texts and subtitles, written from shown messages."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path

import pytest

from juno.display.session import TEXT_FILES, SessionRecorder, new_session_folder, text_files
from juno.display.subtitles import MAX_LINE_CHARS, source_cues_of, target_cues_of, to_srt
from juno.pipeline.messages import EndOfStream, Heartbeat, SentenceEnd, SourceWord, TargetWord

ORIGIN = 1000.0


class Feed:
    """Builds messages with running sequence numbers."""

    def __init__(self) -> None:
        self.seq = 0

    def _next(self) -> int:
        self.seq += 1
        return self.seq - 1

    def source(
        self,
        text: str,
        start: float,
        end: float,
        sentence: int,
        language: str = "",
        attached: bool = False,
    ) -> SourceWord:
        return SourceWord(
            self._next(), end, ORIGIN, text, start, end, 0.9, False, sentence, ORIGIN + end,
            language=language, attached=attached,
        )  # fmt: skip

    def target(self, text: str, sentence: int, read: int, language: str = "") -> TargetWord:
        return TargetWord(
            self._next(), 0.0, ORIGIN, text, sentence, read, ORIGIN, language=language
        )

    def end(self, sentence: int, source: str, target: str, language: str = "") -> SentenceEnd:
        return SentenceEnd(self._next(), 0.0, ORIGIN, sentence, source, target, language)


def clock() -> float:
    return 1_700_000_000.0


@pytest.fixture
def rec(tmp_path: Path):
    r = SessionRecorder(tmp_path / "s", {"models": {"llm": "qwen"}}, clock=clock)
    yield r
    r.close()


CUE = re.compile(r"(\d\d):(\d\d):(\d\d)([,.])(\d\d\d) --> (\d\d):(\d\d):(\d\d)[,.](\d\d\d)")


def parse(text: str, vtt: bool) -> list[tuple[float, float, str]]:
    """(start_s, end_s, text with lines joined by spaces) of each cue; checks the format."""
    if vtt:
        assert text.startswith("WEBVTT\n\n")
        text = text[len("WEBVTT\n\n") :]
    cues = []
    blocks = [b for b in text.split("\n\n") if b]
    assert text.endswith("\n\n") or not blocks
    for n, block in enumerate(blocks, start=1):
        lines = block.split("\n")
        if not vtt:
            assert lines.pop(0) == str(n)
        m = CUE.fullmatch(lines[0])
        assert m, lines[0]
        assert m.group(4) == ("." if vtt else ",")
        g = [int(x) for x in m.groups()[:3] + m.groups()[4:]]
        start = g[0] * 3600 + g[1] * 60 + g[2] + g[3] / 1000
        end = g[4] * 3600 + g[5] * 60 + g[6] + g[7] / 1000
        assert 1 <= len(lines[1:]) <= 2
        assert all(0 < len(line) <= MAX_LINE_CHARS for line in lines[1:])
        cues.append((start, end, " ".join(lines[1:])))
    for (a, b, _), (c, _, _) in zip(cues, cues[1:], strict=False):
        assert a < b <= c
    if cues:
        assert cues[-1][0] < cues[-1][1]
    return cues


def read(rec: SessionRecorder, name: str) -> str:
    return (rec.folder / name).read_text(encoding="utf-8")


def test_events_are_one_flushed_json_line_per_message_in_order(rec):
    f = Feed()
    msgs = [
        f.source("Hello", 0.5, 1.0, 0),
        f.target("Bonjour", 0, 1),
        f.end(0, "Hello", "Bonjour"),
        EndOfStream(9, 1.0, "capture"),
    ]
    for n, m in enumerate(msgs):
        rec.record(m, 2000.0 + n)
        # Readable before close: a crash later keeps it.
        assert len(read(rec, "events.jsonl").splitlines()) == n + 1
    rec.record(Heartbeat("display", 1.0, 10), 2010.0)  # not an event of the session
    lines = [json.loads(x) for x in read(rec, "events.jsonl").splitlines()]
    assert [x["type"] for x in lines] == [
        "source_word",
        "target_word",
        "sentence_end",
        "end_of_stream",
    ]
    assert [x["shown_wall_s"] for x in lines] == [2000.0, 2001.0, 2002.0, 2003.0]
    assert lines[0] == {
        "type": "source_word",
        "shown_wall_s": 2000.0,
        "seq": 0,
        "stream_s": 1.0,
        "origin_wall_s": ORIGIN,
        "text": "Hello",
        "start_s": 0.5,
        "end_s": 1.0,
        "probability": 0.9,
        "sentence_end": False,
        "sentence": 0,
        "committed_wall_s": ORIGIN + 1.0,
        "stage_tokens": 0,
        "stage_compute_s": 0.0,
        "language": "",
        "attached": False,
    }
    assert lines[3]["reason"] == "capture"


def test_session_json_gets_start_then_end(tmp_path):
    times = iter([100.0, 160.5])
    rec = SessionRecorder(tmp_path / "s", {"config": {"k": 3}}, clock=lambda: next(times))
    info = json.loads(read(rec, "session.json"))
    assert info["config"] == {"k": 3} and info["start_wall_s"] == 100.0
    assert "started_at" in info and "end_wall_s" not in info
    rec.close()
    rec.close()  # idempotent
    info = json.loads(read(rec, "session.json"))
    assert info["end_wall_s"] == 160.5 and info["duration_s"] == 60.5 and "ended_at" in info
    with pytest.raises(ValueError):
        rec.record(Feed().source("late", 0, 1, 0), 0.0)


def test_events_of_an_earlier_session_are_never_overwritten(tmp_path):
    SessionRecorder(tmp_path / "s", {}).close()
    with pytest.raises(FileExistsError):
        SessionRecorder(tmp_path / "s", {})


def test_texts_and_subtitles_pair_sentences(rec):
    f = Feed()
    for m in [
        f.source("Hello", 1.0, 1.4, 0),
        f.source("world.", 1.5, 2.0, 0),
        f.target("Bonjour", 0, 1),
        f.target("le", 0, 2),
        f.target("monde.", 0, 2),
        f.end(0, "Hello world.", "Bonjour le monde."),
        f.source("How", 3.0, 3.2, 1),
        f.source("are", 3.3, 3.5, 1),
        f.source("you?", 3.6, 4.0, 1),
        f.target("Comment", 1, 2),
        f.target("allez-vous ?", 1, 3),
        f.end(1, "How are you?", "Comment allez-vous ?"),
    ]:
        rec.record(m, 0.0)
    rec.write_texts()
    assert read(rec, "transcript.txt") == "Hello world.\nHow are you?\n"
    assert read(rec, "translation.txt") == "Bonjour le monde.\nComment allez-vous ?\n"
    for vtt, ext in ((False, "srt"), (True, "vtt")):
        src = parse(read(rec, f"transcript.{ext}"), vtt)
        assert src == [(1.0, 2.0, "Hello world."), (3.0, 4.0, "How are you?")]
        # A translation cue spans its source sentence.
        tgt = parse(read(rec, f"translation.{ext}"), vtt)
        assert tgt == [(1.0, 2.0, "Bonjour le monde."), (3.0, 4.0, "Comment allez-vous ?")]
    assert read(rec, "transcript.srt").startswith(
        "1\n00:00:01,000 --> 00:00:02,000\nHello world.\n\n2\n"
    )
    assert read(rec, "transcript.vtt").startswith("WEBVTT\n\n00:00:01.000 --> 00:00:02.000\n")


def test_sentence_in_progress_is_written_with_what_it_has(rec):
    f = Feed()
    for m in [
        f.source("One", 0.0, 0.5, 0),
        f.source("two.", 0.6, 1.0, 0),
        f.target("Un", 0, 1),
        f.target("deux.", 0, 2),
        f.end(0, "One two.", "Un deux."),
        f.source("Three", 2.0, 2.5, 1),
        f.source("four", 2.6, 3.0, 1),
        f.target("Trois", 1, 2),
        f.source("Five", 4.0, 4.5, 2),  # no translation yet
    ]:
        rec.record(m, 0.0)
    rec.write_texts()
    assert read(rec, "transcript.txt") == "One two.\nThree four\nFive\n"
    # Line i of the translation pairs with line i of the transcript.
    assert read(rec, "translation.txt") == "Un deux.\nTrois\n\n"
    assert [c[2] for c in parse(read(rec, "translation.srt"), False)] == ["Un deux.", "Trois"]
    assert parse(read(rec, "transcript.vtt"), True)[1:] == [
        (2.0, 3.0, "Three four"),
        (4.0, 4.5, "Five"),
    ]


def test_a_source_word_that_continues_the_one_before_joins_it(rec):
    # The transcriber committed "cold", then Whisper went on with "-hearted".
    f = Feed()
    for m in [
        f.source("A", 0.0, 0.2, 0),
        f.source("cold", 0.2, 0.5, 0),
        f.source("-hearted", 0.5, 0.9, 0, attached=True),
        f.source("man.", 1.0, 1.4, 0),
    ]:
        rec.record(m, 0.0)
    rec.write_texts()
    assert read(rec, "transcript.txt") == "A cold-hearted man.\n"
    assert parse(read(rec, "transcript.srt"), False) == [(0.0, 1.4, "A cold-hearted man.")]


def test_rewrites_are_atomic_and_leave_no_temp_files(rec):
    f = Feed()
    for n in range(5):
        rec.record(f.source(f"w{n}", n, n + 0.5, 0), 0.0)
        rec.write_texts()
        assert read(rec, "transcript.txt") == " ".join(f"w{i}" for i in range(n + 1)) + "\n"
    rec.close()
    names = sorted(p.name for p in rec.folder.iterdir())
    assert names == sorted(["events.jsonl", "session.json", *TEXT_FILES])


def test_empty_session_writes_empty_files(rec):
    rec.close()
    assert read(rec, "transcript.txt") == ""
    assert read(rec, "transcript.srt") == ""
    assert read(rec, "translation.vtt") == "WEBVTT\n\n"


def test_long_sentence_is_split_into_cues_by_word_timing(rec):
    f = Feed()
    words = [f"word{n:02d}" for n in range(30)]  # 6 chars each, 7 words (48 chars) too many a line
    for n, w in enumerate(words):
        rec.record(f.source(w, n * 1.0, n * 1.0 + 0.8, 0), 0.0)
    rec.record(f.end(0, " ".join(words), " ".join(words)), 0.0)
    rec.write_texts()
    src = parse(read(rec, "transcript.srt"), False)
    assert len(src) == 3
    assert " ".join(c[2] for c in src) == " ".join(words)
    # Each cue spans its own words: the first ends where its last word ends.
    first_words = src[0][2].split()
    assert src[0][:2] == (0.0, len(first_words) - 1 + 0.8)
    assert src[1][0] == len(first_words)
    # The translation is divided proportionally over the sentence's span.
    tgt = parse(read(rec, "translation.vtt"), True)
    assert " ".join(c[2] for c in tgt) == " ".join(words)
    assert tgt[0][0] == 0.0 and tgt[-1][1] == pytest.approx(29.8)


def test_two_line_cue_is_balanced():
    tokens = "the quick brown fox jumps over the lazy dog and runs far away".split()
    words = [(w, float(n), n + 0.5) for n, w in enumerate(tokens)]
    (cue,) = source_cues_of(words)
    assert len(cue.lines) == 2
    assert abs(len(cue.lines[0]) - len(cue.lines[1])) <= 6


def test_unspaced_translation_is_cut_into_lines():
    text = "这" * 100
    cues = target_cues_of([text], 0.0, 10.0)
    assert "".join("".join(c.lines) for c in cues) == text
    assert all(len(line) <= MAX_LINE_CHARS for c in cues for line in c.lines)
    assert cues[-1].end_s == pytest.approx(10.0)


def test_cue_times_never_collapse_or_overlap():
    # Zero-length words and overlapping spans (word timestamps are not always sane).
    words = [("a", 1.0, 1.0)]
    later = [("b", 1.2, 1.1)]
    same = [("c", 1.2, 1.2)]
    srt = to_srt(source_cues_of(words) + source_cues_of(later) + source_cues_of(same))
    cues = parse(srt, False)
    assert cues[0] == (1.0, 1.2, "a")  # min duration clipped to the next cue's start
    assert cues[1][0] == 1.2 and cues[1][1] == 1.7  # minimum duration
    assert cues[2][0] == 1.7 and cues[2][1] == 2.2  # pushed after the one before


def test_empty_sentences_have_no_cue_or_line(rec):
    f = Feed()
    rec.record(f.source("  ", 0.0, 0.5, 0), 0.0)
    rec.record(f.end(0, "", ""), 0.0)
    rec.record(f.source("Hi.", 1.0, 1.5, 1), 0.0)
    rec.write_texts()
    assert read(rec, "transcript.txt") == "Hi.\n"
    assert [c[2] for c in parse(read(rec, "transcript.srt"), False)] == ["Hi."]


def test_new_session_folder_is_stamped_and_unique(tmp_path):
    now = datetime(2025, 3, 4, 5, 6, 7)
    a = new_session_folder(tmp_path / "sessions", now)
    b = new_session_folder(tmp_path / "sessions", now)
    c = new_session_folder(tmp_path / "sessions", now)
    assert [a.name, b.name, c.name] == ["20250304-050607", "20250304-050607-2", "20250304-050607-3"]
    assert a.is_dir() and c.is_dir()
    SessionRecorder(a, {}).close()  # the recorder takes the reserved folder


def written_every_time_and_once(
    tmp_path: Path, msgs: list, languages: tuple[str, ...] = (), pair: tuple[str, ...] = ()
) -> tuple[SessionRecorder, ...]:
    every = SessionRecorder(tmp_path / "every", {}, target_languages=languages, pair=pair)
    once = SessionRecorder(tmp_path / "once", {}, target_languages=languages, pair=pair)
    for m in msgs:
        every.record(m, 0.0)
        every.write_texts()
        once.record(m, 0.0)
    every.close()
    once.close()
    for name in text_files(languages, pair):
        assert read(every, name) == read(once, name), name
    return every, once


@pytest.mark.parametrize("late_end", [False, True])
def test_rewriting_at_every_message_gives_the_same_files_as_writing_once(tmp_path, late_end):
    # Cached blocks must match a fresh layout: cues clipped by the next sentence,
    # renumbered after an earlier sentence grows.
    f = Feed()
    msgs = []
    for s in range(6):
        t = s * 1.5  # sentences overlap: each is clipped by the next
        msgs += [
            f.source(f"s{s}w{w}" * (1 + w % 4), t + w * 0.2, t + w * 0.2 + 0.1, s) for w in range(9)
        ]
        msgs += [f.target(f"t{s}w{w}", s, w + 1) for w in range(7)]
        if s % 2 == 0:
            msgs.append(f.end(s, "", f"a whole sentence {s} " * (1 + 4 * (s == 0))))
    if late_end:
        # Sentence 0 ends last: its translation grows to 2 cues, renumbering all after it.
        first_end = next(n for n, m in enumerate(msgs) if isinstance(m, SentenceEnd))
        msgs.append(msgs.pop(first_end))
    _, once = written_every_time_and_once(tmp_path, msgs)
    assert len(parse(read(once, "transcript.srt"), False)) == 12
    assert len(parse(read(once, "translation.srt"), False)) == 7


def test_an_earlier_sentence_growing_pushes_the_next_cue(tmp_path):
    # Odd timestamps: sentence 1 starts before sentence 0, so it is pushed after it.
    f = Feed()
    msgs = [f.source("a", 1.0, 1.0, 0), f.source("b", 0.8, 2.0, 1), f.source("c", 1.1, 3.0, 0)]
    _, once = written_every_time_and_once(tmp_path, msgs)
    assert parse(read(once, "transcript.srt"), False) == [(1.0, 3.0, "a c"), (3.0, 3.5, "b")]


def two_languages(f: Feed) -> list:
    """Two sentences translated into French and German; the untagged ones are French."""
    return [
        f.source("Hello", 1.0, 1.4, 0),
        f.source("world.", 1.5, 2.0, 0),
        f.target("Bonjour", 0, 1),
        f.target("Hallo", 0, 1, "de"),
        f.target("le monde.", 0, 2, "fr"),
        f.end(0, "Hello world.", "Bonjour le monde.", "fr"),
        f.target("Welt.", 0, 2, "de"),
        f.end(0, "Hello world.", "Hallo Welt.", "de"),
        f.source("How", 3.0, 3.2, 1),
        f.source("are", 3.3, 3.5, 1),
        f.target("Wie", 1, 2, "de"),
        f.source("you?", 3.6, 4.0, 1),
        f.target("Comment", 1, 2, "fr"),
    ]


def test_several_languages_have_translation_files_each(tmp_path):
    with SessionRecorder(tmp_path / "s", {}, target_languages=["fr", "de"]) as rec:
        for m in two_languages(Feed()):
            rec.record(m, 0.0)
    names = sorted(p.name for p in rec.folder.iterdir())
    assert names == sorted(["events.jsonl", "session.json", *text_files(["fr", "de"])])
    assert "translation.txt" not in names and "translation.de.vtt" in names
    assert read(rec, "transcript.txt") == "Hello world.\nHow are you?\n"
    assert read(rec, "translation.fr.txt") == "Bonjour le monde.\nComment\n"
    assert read(rec, "translation.de.txt") == "Hallo Welt.\nWie\n"
    for vtt, ext in ((False, "srt"), (True, "vtt")):
        fr = parse(read(rec, f"translation.fr.{ext}"), vtt)
        assert fr == [(1.0, 2.0, "Bonjour le monde."), (3.0, 4.0, "Comment")]
        de = parse(read(rec, f"translation.de.{ext}"), vtt)
        assert de == [(1.0, 2.0, "Hallo Welt."), (3.0, 4.0, "Wie")]
    # The log names each translation's language, the untagged one's too.
    events = [json.loads(x) for x in read(rec, "events.jsonl").splitlines()]
    languages = [(e["text"], e["language"]) for e in events if e["type"] == "target_word"]
    assert languages[:3] == [("Bonjour", "fr"), ("Hallo", "de"), ("le monde.", "fr")]
    ends = [(e["target"], e["language"]) for e in events if e["type"] == "sentence_end"]
    assert ends == [("Bonjour le monde.", "fr"), ("Hallo Welt.", "de")]
    assert json.loads(read(rec, "session.json"))["target_languages"] == ["fr", "de"]


def test_one_language_keeps_the_file_names_tagged_or_not(tmp_path):
    f = Feed()
    msgs = [f.source("Hi.", 1.0, 1.5, 0), f.target("Salut.", 0, 1, "fr"), f.end(0, "Hi.", "Salut.")]
    with SessionRecorder(tmp_path / "s", {}, target_languages=["fr"]) as rec:
        for m in msgs:
            rec.record(m, 0.0)
    assert sorted(p.name for p in rec.folder.iterdir()) == sorted(
        ["events.jsonl", "session.json", *TEXT_FILES]
    )
    assert read(rec, "translation.txt") == "Salut.\n"
    events = [json.loads(x) for x in read(rec, "events.jsonl").splitlines()]
    assert [e["language"] for e in events if e["type"] != "source_word"] == ["fr", "fr"]


@pytest.mark.parametrize("session_json", [True, False])
def test_replay_writes_each_languages_files_as_recorded(tmp_path, session_json):
    """After a crash the run rewrites the texts from events.jsonl: the same files, named
    by session.json's languages, else by those the events name."""
    with SessionRecorder(tmp_path / "s", {}, target_languages=["fr", "de"]) as rec:
        for m in two_languages(Feed()):
            rec.record(m, 0.0)
    written = {name: read(rec, name) for name in text_files(["fr", "de"])}
    for name in written:
        (rec.folder / name).unlink()
    if not session_json:
        (rec.folder / "session.json").unlink()
    SessionRecorder.replay(rec.folder).write_texts()
    assert {name: read(rec, name) for name in written} == written


def test_rewriting_each_language_at_every_message_gives_the_same_files(tmp_path):
    f = Feed()
    msgs = []
    for s in range(4):
        t = s * 1.5  # sentences overlap: each is clipped by the next
        msgs += [f.source(f"s{s}w{w}", t + w * 0.2, t + w * 0.2 + 0.1, s) for w in range(6)]
        for language in ("fr", "de"):
            msgs += [f.target(f"{language}{s}w{w}" * (1 + w), s, w + 1, language) for w in range(5)]
        # German ends each sentence (sentence 0 with two cues); French ends none.
        msgs.append(f.end(s, "", f"a whole sentence {s} " * (1 + 4 * (s == 0)), "de"))
    _, once = written_every_time_and_once(tmp_path, msgs, ("fr", "de"))
    assert len(parse(read(once, "translation.fr.srt"), False)) > 4
    german = [cue[2] for cue in parse(read(once, "translation.de.srt"), False)]
    assert len(german) == 5 and german[-1] == "a whole sentence 3"


# -- a two-way conversation ----------------------------------------------------------

PAIR = ["en", "fr"]


def conversation(f: Feed) -> list:
    """Turns in English, French, English: each translated into the other language, the
    last one's translation begun."""
    return [
        f.source("Hello", 1.0, 1.4, 0, "en"),
        f.source("world.", 1.5, 2.0, 0, "en"),
        f.target("Bonjour", 0, 1, "fr"),
        f.target("le monde.", 0, 2, "fr"),
        f.end(0, "Hello world.", "Bonjour le monde.", "fr"),
        f.source("Ça", 3.0, 3.2, 1, "fr"),
        f.target("How", 1, 1, "en"),
        f.source("va ?", 3.3, 3.8, 1, "fr"),
        f.target("are you?", 1, 2, "en"),
        f.end(1, "Ça va ?", "How are you?", "en"),
        f.source("Good.", 5.0, 5.5, 2, "en"),
        f.target("Bien", 2, 1, "fr"),
    ]


def test_a_conversation_has_every_turn_in_each_language(tmp_path):
    with SessionRecorder(tmp_path / "s", {}, target_languages=PAIR, pair=PAIR) as rec:
        for m in conversation(Feed()):
            rec.record(m, 0.0)
    names = sorted(p.name for p in rec.folder.iterdir())
    assert names == sorted(["events.jsonl", "session.json", *text_files(PAIR, PAIR)])
    assert "conversation.en.srt" in names and "conversation.fr.vtt" in names
    # Every turn as spoken, and each language's translations (line i pairs with line i).
    assert read(rec, "transcript.txt") == "Hello world.\nÇa va ?\nGood.\n"
    assert read(rec, "translation.fr.txt") == "Bonjour le monde.\n\nBien\n"
    assert read(rec, "translation.en.txt") == "\nHow are you?\n\n"
    # Every turn in each language: as spoken in it, else translated into it.
    assert read(rec, "conversation.en.txt") == "Hello world.\nHow are you?\nGood.\n"
    assert read(rec, "conversation.fr.txt") == "Bonjour le monde.\nÇa va ?\nBien\n"
    for vtt, ext in ((False, "srt"), (True, "vtt")):
        assert parse(read(rec, f"conversation.en.{ext}"), vtt) == [
            (1.0, 2.0, "Hello world."), (3.0, 3.8, "How are you?"), (5.0, 5.5, "Good.")
        ]  # fmt: skip
        assert parse(read(rec, f"conversation.fr.{ext}"), vtt) == [
            (1.0, 2.0, "Bonjour le monde."), (3.0, 3.8, "Ça va ?"), (5.0, 5.5, "Bien")
        ]  # fmt: skip
        assert parse(read(rec, f"translation.en.{ext}"), vtt) == [(3.0, 3.8, "How are you?")]
    events = [json.loads(x) for x in read(rec, "events.jsonl").splitlines()]
    spoken = [(e["text"], e["language"]) for e in events if e["type"] == "source_word"]
    assert spoken[:3] == [("Hello", "en"), ("world.", "en"), ("Ça", "fr")]
    info = json.loads(read(rec, "session.json"))
    assert info["pair"] == PAIR and info["target_languages"] == PAIR


def test_a_turn_known_only_by_its_translation_is_in_the_other_language(tmp_path):
    f = Feed()
    # The translation of a French turn arrives before its words (another socket).
    with SessionRecorder(tmp_path / "s", {}, pair=PAIR) as rec:
        rec.record(f.target("Yes.", 0, 1, "en"), 0.0)
        rec.record(f.source("Non.", 1.0, 1.5, 1, "fr"), 0.0)
    assert read(rec, "conversation.en.txt") == "Yes.\n\n"
    assert read(rec, "conversation.fr.txt") == "\nNon.\n"
    # One way: no conversation files, no pair.
    with SessionRecorder(tmp_path / "one", {}) as one:
        assert "pair" not in json.loads(read(one, "session.json"))
    assert not any(name.startswith("conversation") for name in TEXT_FILES)


@pytest.mark.parametrize("session_json", [True, False])
def test_replay_writes_a_conversations_files_as_recorded(tmp_path, session_json):
    with SessionRecorder(tmp_path / "s", {}, target_languages=PAIR, pair=PAIR) as rec:
        for m in conversation(Feed()):
            rec.record(m, 0.0)
    written = {name: read(rec, name) for name in text_files(PAIR, PAIR)}
    for name in written:
        (rec.folder / name).unlink()
    if not session_json:
        (rec.folder / "session.json").unlink()
    SessionRecorder.replay(rec.folder).write_texts()
    assert {name: read(rec, name) for name in written} == written


def test_rewriting_a_conversation_at_every_message_gives_the_same_files(tmp_path):
    f = Feed()
    msgs = []
    for s in range(6):
        t = s * 1.5  # turns overlap: each is clipped by the next
        spoken, other = ("en", "fr") if s % 3 else ("fr", "en")
        msgs += [
            f.source(f"s{s}w{w}" * (1 + w % 4), t + w * 0.2, t + w * 0.2 + 0.1, s, spoken)
            for w in range(9)
        ]
        msgs += [f.target(f"t{s}w{w}", s, w + 1, other) for w in range(7)]
        if s % 2 == 0:
            msgs.append(f.end(s, "", f"a whole turn {s} " * (1 + 4 * (s == 0)), other))
    # Turn 0 ends last: its translation grows to 2 cues, renumbering all after it.
    first_end = next(n for n, m in enumerate(msgs) if isinstance(m, SentenceEnd))
    msgs.append(msgs.pop(first_end))
    _, once = written_every_time_and_once(tmp_path, msgs, tuple(PAIR), tuple(PAIR))
    # Turns 0 and 3 were spoken in French, the others in English.
    french = [cue[2].split()[0] for cue in parse(read(once, "conversation.fr.srt"), False)]
    english = [cue[2].split()[0] for cue in parse(read(once, "conversation.en.srt"), False)]
    # (each turn's first cue; turns 2 and 4 ended, as "a whole turn ...")
    assert [w for w in french if w in ("s0w0", "t1w0", "a", "s3w0", "t5w0")] == [
        "s0w0", "t1w0", "a", "s3w0", "a", "t5w0"
    ]  # fmt: skip
    assert [w for w in english if w in ("a", "s1w0", "s2w0", "t3w0", "s4w0", "s5w0")] == [
        "a", "s1w0", "s2w0", "t3w0", "s4w0", "s5w0"
    ]  # fmt: skip
