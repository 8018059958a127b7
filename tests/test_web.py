"""The room page: its feed, its server (token, files, viewers), a real browser, and load.

The server tests run a RoomServer in this process on a free loopback port (real
sockets, real WebSocket clients); the page tests run Debian's chromium headless,
driven through the DevTools protocol, against a display process fed scripted words
(and, marked ``real_weights``, against ``juno run --web`` replaying JFK).
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import http.client
import itertools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from pipeline import JUNO, model_args, session_folder, stage_pid, start, tiny_args, wait_for
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from juno.bench import web as bench
from juno.display import latency
from juno.display.room import RoomFeed
from juno.display.server import RoomOptions, RoomServer, page_url
from juno.display.session import SessionRecorder
from juno.pipeline.messages import EndOfStream, SentenceEnd, SourceWord, TargetWord

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "a-test-token-of-22chars"
ROUTES = [
    "/", "/app.js", "/style.css", "/stats", "/transcript.txt", "/translation.txt",
    "/subtitles/en.srt", "/subtitles/en.vtt", "/subtitles/fr.srt", "/subtitles/fr.vtt",
]  # fmt: skip
JFK = "And so, my fellow Americans, ask not what your country can do for you, ask what you can do for your country."  # noqa: E501
JFK_FR = "Et donc, mes chers compatriotes, ne demandez pas ce que votre pays peut faire pour vous, demandez ce que vous pouvez faire pour votre pays."  # noqa: E501
JFK_DE = "Und so, meine amerikanischen Mitbürger, fragt nicht, was euer Land für euch tun kann, fragt, was ihr für euer Land tun könnt."  # noqa: E501


def _sentence(index: int, source: str, target: str, origin: float, t0: float = 0.0):
    """The messages of one spoken sentence and its translation (written wait-3), in order:
    (channel, message). "9:" "30" is written in two parts, as the translator does; a
    source word "-..." continues the one before it, as the transcriber sends "-hearted"."""
    words = source.split()
    out, t = [], t0
    for i, word in enumerate(words):
        t += 0.4
        msg = SourceWord(
            0, t, origin, word, t - 0.4, t, 0.9, i == len(words) - 1, index, origin + t,
            attached=i > 0 and word.startswith("-"),
        )  # fmt: skip
        out.append(("source", msg))
    parts = re.findall(r"\S+?:(?=\d)|\S+", target)
    for j, word in enumerate(parts):
        attached = j > 0 and parts[j - 1].endswith(":")
        read = min(3 + j, len(words))
        msg = TargetWord(0, t, origin, word, index, read, origin + t, attached)
        out.append(("target", msg))
    out.append(("target", SentenceEnd(0, t, origin, index, source, target)))
    return out, t


def _translated(index: int, source: str, targets: dict[str, str], origin: float, t0: float = 0.0):
    """As :func:`_sentence`, translated into each of ``targets`` (language: translation):
    the source words, then each language's words and sentence end, tagged with it."""
    out = []
    for language, target in targets.items():
        items, t = _sentence(index, source, target, origin, t0)
        if not out:
            out = [(channel, msg) for channel, msg in items if channel == "source"]
        out += [(c, dataclasses.replace(m, language=language)) for c, m in items if c == "target"]
    return out, t


def _turn(index: int, spoken: str, source: str, target: str, origin: float, t0: float = 0.0):
    """As :func:`_sentence`, a turn of a conversation between English and French: its
    words tagged with the language ``spoken``, its translation with the other."""
    other = {"en": "fr", "fr": "en"}[spoken]
    items, t = _sentence(index, source, target, origin, t0)
    tagged = [
        (c, dataclasses.replace(m, language=spoken if c == "source" else other)) for c, m in items
    ]
    return tagged, t


def _conversation(origin: float) -> tuple[list, float]:
    """English, French, English: each turn translated into the other language."""
    first, t = _turn(0, "en", JFK, JFK_FR, origin)
    second, t = _turn(1, "fr", "On se voit à 9:30.", "We meet at 9:30.", origin, t)
    third, t = _turn(2, "en", "Bring your ticket.", "Apportez votre billet.", origin, t)
    return first + second + third, t


def _numbered(items):
    """Sequence numbers per channel, as each publisher counts."""
    seq = {"source": 0, "target": 0}
    out = []
    for channel, msg in items:
        out.append((channel, dataclasses.replace(msg, seq=seq[channel])))
        seq[channel] += 1
    return out, seq


# -- the feed ---------------------------------------------------------------------------


def test_feed_numbers_events_joins_nothing_and_hands_out_what_came_after():
    feed = RoomFeed("en", "fr", 1000.0)
    items, _ = _sentence(
        0, "We meet at 9:30 today.", "Nous nous voyons à 9:30 aujourd'hui.", 1000.0
    )
    for n, (_, msg) in enumerate(items):
        feed.add(msg, 1001.0 + n)
    events = [json.loads(e) for e in feed.after(0, 1000).events]
    assert [e["seq"] for e in events] == list(range(1, len(items) + 1))
    targets = [e for e in events if e["type"] == "target"]
    pairs = [(e["text"], e["attached"]) for e in targets]
    assert pairs[4:6] == [("9:", False), ("30", True)]
    assert all(e["lang"] == "fr" for e in targets)
    assert events[-1]["type"] == "sentence" and events[-1]["target"].endswith("aujourd'hui.")
    later = feed.after(5, 3)
    assert [json.loads(e)["seq"] for e in later.events] == [6, 7, 8] and later.last_seq == 8
    assert not later.reset
    assert feed.after(feed.last_seq, 10).events == []
    feed.set_state("done")
    assert json.loads(feed.after(feed.last_seq - 1, 10).events[0]) == {
        "seq": feed.last_seq,
        "type": "status",
        "state": "done",
    }


def test_feed_keeps_a_bounded_history_and_resets_who_fell_behind_it():
    feed = RoomFeed("en", "fr", 0.0, history_events=20)
    for i in range(100):
        feed.add(SourceWord(i, 1.0, 0.0, f"w{i}", 0.0, 1.0, 1.0, False, 0, 1.0), 2.0)
    kept = feed.after(0, 1000)
    assert kept.reset and 20 <= len(kept.events) <= 22
    assert json.loads(kept.events[-1])["text"] == "w99"
    assert not feed.after(95, 1000).reset


def test_feed_lags_are_the_latency_reports():
    """The live figures equal juno.display.latency's, computed from the same events."""
    origin = 1000.0
    items = []
    t = 0.0
    for index, (src, tgt) in enumerate([(JFK, JFK_FR), ("We meet at 9:30.", "On se voit à 9:30.")]):
        sentence, t = _sentence(index, src, tgt, origin, t)
        items += sentence
    feed = RoomFeed("en", "fr", origin)
    events = []
    for n, (_, msg) in enumerate(items):
        shown = origin + 0.5 + 0.37 * n
        feed.add(msg, shown)
        fields = {f.name: getattr(msg, f.name) for f in dataclasses.fields(msg)}
        events.append({"type": msg.TAG, "shown_wall_s": shown, **fields})
    report = latency.report(events)
    stats = feed.stats(origin + 60, {"now": 0})
    assert stats["words"] == {"in": report["source_words"], "out": report["target_words"]}
    assert stats["sentences"] == report["sentences"] == 2
    for ours, theirs in (("source", "source_lag"), ("translation", "translation_lag")):
        assert stats["lag_s"][ours]["median"] == pytest.approx(report[theirs]["median_s"], abs=1e-3)
        assert stats["lag_s"][ours]["p90"] == pytest.approx(report[theirs]["p90_s"], abs=1e-3)


def test_stats_give_each_stages_tokens_per_second_of_compute():
    """The stages' messages say how much their models generated and the compute it took;
    /stats gives the latest ratio, and a late message saying less does not undo it."""
    origin = 1000.0
    (_, first), (_, second) = _sentence(0, "Hello there.", "Bonjour.", origin)[0][:2]
    feed = RoomFeed("en", "fr", origin)
    stages = feed.stats(origin, {"now": 0})["stages"]
    assert stages["transcribe"]["tokens_per_s"] is None  # nothing yet
    feed.add(dataclasses.replace(first, stage_tokens=12, stage_compute_s=3.0), origin + 1)
    word = TargetWord(0, 1.0, origin, "Bonjour", 0, 2, origin + 1, stage_tokens=9)
    feed.add(dataclasses.replace(word, stage_compute_s=0.5), origin + 1.5)
    end = SentenceEnd(
        0, 1.0, origin, 0, "Hello there.", "Bonjour.", stage_tokens=10, stage_compute_s=1.0
    )
    feed.add(end, origin + 2)
    feed.add(dataclasses.replace(second, stage_tokens=20, stage_compute_s=2.0), origin + 3)
    stages = feed.stats(origin + 4, {"now": 0})["stages"]
    assert stages["transcribe"]["tokens_per_s"] == 4.0  # 12 / 3: the late 20 / 2 ignored
    assert stages["translate"]["tokens_per_s"] == 10.0  # 10 tokens in 1 s, at the sentence end
    assert stages["translate"]["tokens"] == 10 and stages["translate"]["compute_s"] == 1.0


def test_feed_tags_each_event_with_its_language_and_lags_each_language_apart():
    """Events say the language of their message (an untagged one is the first); each
    language's lag is latency.report's for it, the lag over all languages its pooled one."""
    origin = 1000.0
    items, t = _translated(0, JFK, {"fr": JFK_FR, "de": JFK_DE}, origin)
    second, _ = _translated(
        1, "We meet at 9:30.", {"": "On se voit à 9:30.", "de": "Um 9:30."}, origin, t
    )
    feed = RoomFeed("en", ["fr", "de"], origin)
    events = []
    for n, (_, msg) in enumerate(items + second):
        shown = origin + 0.5 + 0.37 * n
        feed.add(msg, shown)
        fields = {f.name: getattr(msg, f.name) for f in dataclasses.fields(msg)}
        events.append({"type": msg.TAG, "shown_wall_s": shown, **fields})
    sent = [json.loads(e) for e in feed.after(0, 1000).events]
    targets = [e for e in sent if e["type"] == "target"]
    french = [e["text"] for e in targets if e["lang"] == "fr"]
    german = [e["text"] for e in targets if e["lang"] == "de"]
    assert " ".join(french) == JFK_FR + " On se voit à 9: 30."  # the untagged one is French
    assert " ".join(german) == JFK_DE + " Um 9: 30."
    ends = [(e["sentence"], e["lang"]) for e in sent if e["type"] == "sentence"]
    assert ends == [(0, "fr"), (0, "de"), (1, "fr"), (1, "de")]
    hello = feed.hello()
    assert hello["targets"] == [{"code": "fr", "name": "French"}, {"code": "de", "name": "German"}]

    report = latency.report(events)
    stats = feed.stats(origin + 60, {"now": 0})
    assert stats["sentences"] == report["sentences"] == 2
    assert stats["languages"] == {"source": "en", "targets": ["fr", "de"]}
    lags = stats["lag_s"]
    by_language = report["translation_lag_by_language"]
    pairs = [(lags["translation"], report["translation_lag"])]
    pairs += [(lags["translation_by_language"][lang], by_language[lang]) for lang in ("fr", "de")]
    for ours, theirs in pairs:
        assert ours["median"] == pytest.approx(theirs["median_s"], abs=1e-3)
        assert ours["p90"] == pytest.approx(theirs["p90_s"], abs=1e-3)
    fr, de = (lags["translation_by_language"][lang]["median"] for lang in ("fr", "de"))
    assert de > fr  # German is written after French
    assert "translation_by_language" not in RoomFeed("en", "fr", origin).stats(origin, {})["lag_s"]


def test_a_conversations_feed_tags_each_turn_with_its_language_and_lags_each_direction():
    origin = 1000.0
    items, _ = _conversation(origin)
    feed = RoomFeed("en", ["en", "fr"], origin, pair=["en", "fr"])
    events = []
    for n, (_, msg) in enumerate(items):
        shown = origin + 0.5 + 0.37 * n
        feed.add(msg, shown)
        fields = {f.name: getattr(msg, f.name) for f in dataclasses.fields(msg)}
        events.append({"type": msg.TAG, "shown_wall_s": shown, **fields})
    sent = [json.loads(e) for e in feed.after(0, 1000).events]
    spoken = {(e["sentence"], e["lang"]) for e in sent if e["type"] == "source"}
    assert spoken == {(0, "en"), (1, "fr"), (2, "en")}
    translated = {(e["sentence"], e["lang"]) for e in sent if e["type"] in ("target", "sentence")}
    assert translated == {(0, "fr"), (1, "en"), (2, "fr")}
    hello = feed.hello()
    assert hello["pair"] == [{"code": "en", "name": "English"}, {"code": "fr", "name": "French"}]
    assert [t["code"] for t in hello["targets"]] == ["en", "fr"]
    assert RoomFeed("en", "fr", origin).hello()["pair"] == []

    report = latency.report(events)
    stats = feed.stats(origin + 60, {"now": 0})
    assert stats["sentences"] == report["sentences"] == 3  # each turn once, either language
    assert stats["languages"]["pair"] == ["en", "fr"]
    # Into French: the English turns' translation lag, as the report's en→fr.
    lags = stats["lag_s"]["translation_by_language"]
    for direction, lang in (("en→fr", "fr"), ("fr→en", "en")):
        theirs = report["directions"][direction]["translation_lag"]
        assert lags[lang]["median"] == pytest.approx(theirs["median_s"], abs=1e-3)
        assert lags[lang]["p90"] == pytest.approx(theirs["p90_s"], abs=1e-3)


# -- the server -----------------------------------------------------------------------


@pytest.fixture
def room(tmp_path):
    """A loopback room serving a session folder with one sentence recorded."""
    with _room(tmp_path, RoomOptions(port=0)) as server:
        yield server


@pytest.fixture
def open_room(tmp_path):
    """A room listening beyond loopback: every request needs TOKEN."""
    with _room(tmp_path, RoomOptions(host="0.0.0.0", port=0, token=TOKEN)) as server:
        yield server


class _room:
    def __init__(self, folder: Path, options: RoomOptions) -> None:
        self.feed = RoomFeed("en", "fr", time.time())
        self.recorder = SessionRecorder(folder, {})
        items, _ = _sentence(0, JFK, JFK_FR, time.time())
        for _, msg in _numbered(items)[0]:
            self.recorder.record(msg, time.time())
            self.feed.add(msg, time.time())
        self.recorder.write_texts()
        self.server = RoomServer(self.feed, folder, options)

    def __enter__(self) -> RoomServer:
        return self.server.start()

    def __exit__(self, *exc) -> None:
        self.server.close(flush=False)
        self.recorder.close()


def _get(server: RoomServer, path: str, headers: dict | None = None) -> tuple[int, bytes, Any]:
    """GET ``path`` as it is written (http.client does not tidy '..' away)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        answer = conn.getresponse()
        return answer.status, answer.read(), answer.headers
    finally:
        conn.close()


def _ws_url(server: RoomServer, query: str = "") -> str:
    return f"ws://127.0.0.1:{server.port}/ws" + (f"?{query}" if query else "")


def _frames(ws, until_seq: int) -> list[dict]:
    """Events received until the one numbered ``until_seq``."""
    events: list[dict] = []
    while not events or events[-1]["seq"] < until_seq:
        data = json.loads(ws.recv(timeout=10))
        if isinstance(data, list):
            events += data
    return events


def test_default_bind_is_loopback_only(room):
    from juno.config import DisplayConfig

    assert DisplayConfig().web_host == RoomOptions().host == "127.0.0.1"
    assert room.address[0] == "127.0.0.1"
    lan = page_url("0.0.0.0", room.port).split("//")[1].rsplit(":", 1)[0]
    if not lan.startswith("127."):
        with pytest.raises(OSError):
            socket.create_connection((lan, room.port), timeout=2).close()
    # A name that resolves elsewhere (DNS rebinding) gets nothing.
    status, _, _ = _get(room, "/stats", {"Host": f"evil.example:{room.port}"})
    assert status == 400


def test_every_route_serves_on_loopback_without_a_token(room, tmp_path):
    for path in ROUTES:
        status, body, headers = _get(room, path)
        assert status == 200, path
        assert headers["Cache-Control"] == "no-store"
    assert _get(room, "/transcript.txt")[1].decode() == (tmp_path / "transcript.txt").read_text()
    assert _get(room, "/translation.txt")[1].decode() == JFK_FR + "\n"
    assert _get(room, "/subtitles/en.srt")[1].decode() == (tmp_path / "transcript.srt").read_text()
    vtt = _get(room, "/subtitles/fr.vtt")
    assert vtt[1].decode() == (tmp_path / "translation.vtt").read_text()
    assert vtt[2]["content-type"].startswith("text/vtt")
    stats = json.loads(_get(room, "/stats")[1])
    assert stats["words"] == {"in": len(JFK.split()), "out": len(JFK_FR.split())}
    assert stats["sentences"] == 1 and stats["viewers"] == {"now": 0, "dropped": 0}
    assert set(stats["stages"]) == {"transcribe", "translate"}
    with connect(_ws_url(room)) as ws:
        hello = json.loads(ws.recv(timeout=10))
        assert hello["type"] == "hello" and hello["reset"]
        assert hello["targets"] == [{"code": "fr", "name": "French"}]
        events = _frames(ws, hello["last_seq"])
    assert " ".join(e["text"] for e in events if e["type"] == "source") == JFK


OUTSIDE = [
    "/subtitles/../../etc/passwd",
    "/subtitles/..%2F..%2Fetc%2Fpasswd",
    "/subtitles/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "/../etc/passwd",
    "/subtitles/de.srt",
    "/subtitles/en.txt",
]


@pytest.mark.parametrize("path", OUTSIDE)
def test_no_file_route_reaches_outside_the_session(open_room, path):
    status, body, _ = _get(open_room, path, {"Authorization": f"Bearer {TOKEN}"})
    assert status == 404, (path, body)
    assert b"root:" not in body


def test_each_languages_files_are_served(tmp_path):
    feed = RoomFeed("en", ["fr", "de"], time.time())
    items, _ = _translated(0, JFK, {"fr": JFK_FR, "de": JFK_DE}, time.time())
    with SessionRecorder(tmp_path, {}, target_languages=["fr", "de"]) as recorder:
        for _, msg in _numbered(items)[0]:
            recorder.record(msg, time.time())
            feed.add(msg, time.time())
    with RoomServer(feed, tmp_path, RoomOptions(port=0)).start() as server:
        assert _get(server, "/translation.de.txt")[1].decode() == JFK_DE + "\n"
        assert _get(server, "/translation.fr.txt")[1].decode() == JFK_FR + "\n"
        assert _get(server, "/translation.txt")[1].decode() == JFK_FR + "\n"  # the first
        for lang, name in (
            ("de", "translation.de"),
            ("fr", "translation.fr"),
            ("en", "transcript"),
        ):
            for ext in ("srt", "vtt"):
                expected = (tmp_path / f"{name}.{ext}").read_text()
                assert _get(server, f"/subtitles/{lang}.{ext}")[1].decode() == expected
        assert _get(server, "/subtitles/de.srt")[1].decode().count("Mitbürger") == 1
        for path in ("/translation.es.txt", "/subtitles/es.srt", "/translation.de.srt"):
            assert _get(server, path)[0] == 404, path


def test_a_conversations_files_are_served_in_each_language(tmp_path):
    pair = ["en", "fr"]
    feed = RoomFeed("en", pair, time.time(), pair=pair)
    items, _ = _conversation(time.time())
    with SessionRecorder(tmp_path, {}, target_languages=pair, pair=pair) as recorder:
        for _, msg in _numbered(items)[0]:
            recorder.record(msg, time.time())
            feed.add(msg, time.time())
    with RoomServer(feed, tmp_path, RoomOptions(port=0)).start() as server:
        english = _get(server, "/conversation.en.txt")[1].decode()
        assert english == f"{JFK}\nWe meet at 9:30.\nBring your ticket.\n"
        french = _get(server, "/conversation.fr.txt")[1].decode()
        assert french == f"{JFK_FR}\nOn se voit à 9:30.\nApportez votre billet.\n"
        for lang in pair:
            for ext in ("srt", "vtt"):
                expected = (tmp_path / f"conversation.{lang}.{ext}").read_text()
                assert _get(server, f"/subtitles/{lang}.{ext}")[1].decode() == expected
        assert _get(server, "/translation.en.txt")[1].decode() == "\nWe meet at 9:30.\n\n"
        for path in ("/conversation.de.txt", "/subtitles/de.srt"):
            assert _get(server, path)[0] == 404, path
    with RoomServer(
        RoomFeed("en", "fr", time.time()), tmp_path, RoomOptions(port=0)
    ).start() as one_way:
        assert _get(one_way, "/conversation.en.txt")[0] == 404


def test_beyond_loopback_every_request_needs_the_token(open_room):
    assert open_room.address[0] == "0.0.0.0"
    for path in ROUTES:
        assert _get(open_room, path)[0] == 401, path
        assert _get(open_room, f"{path}?token=not-the-token")[0] == 401, path
        assert _get(open_room, path, {"Authorization": "Bearer nope"})[0] == 401, path
        assert _get(open_room, f"{path}?token={TOKEN}")[0] == 200, path
        assert _get(open_room, path, {"Authorization": f"Bearer {TOKEN}"})[0] == 200, path
    for query in ("", "token=not-the-token"):
        with pytest.raises(InvalidStatus) as refused:
            connect(_ws_url(open_room, query))
        assert refused.value.response.status_code == 401
    with connect(_ws_url(open_room, f"token={TOKEN}")) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "hello"
    # Another site's page may not open the WebSocket, token or not.
    with pytest.raises(InvalidStatus) as refused:
        connect(_ws_url(open_room, f"token={TOKEN}"), origin="http://evil.example")
    assert refused.value.response.status_code == 403
    assert open_room.url == page_url("0.0.0.0", open_room.port, TOKEN)


def test_a_viewer_that_reconnects_gets_what_it_missed_once(room):
    feed = room.feed
    with connect(_ws_url(room)) as ws:
        hello = json.loads(ws.recv(timeout=10))
        first = _frames(ws, hello["last_seq"])
    items, _ = _sentence(1, "We meet at 9:30.", "On se voit à 9:30.", time.time(), 30.0)
    for _, msg in _numbered(items)[0]:
        feed.add(msg, time.time())
    since = first[-1]["seq"]
    with connect(_ws_url(room, f"session={hello['session']}&since={since}")) as ws:
        again = json.loads(ws.recv(timeout=10))
        assert not again["reset"]
        missed = _frames(ws, feed.last_seq)
    assert [e["seq"] for e in missed] == list(range(since + 1, feed.last_seq + 1))
    assert [e["text"] for e in missed if e["type"] == "target"][4:6] == ["9:", "30."]
    # Another session's viewer starts over.
    with connect(_ws_url(room, f"session=0123456789abcdef&since={since}")) as ws:
        assert json.loads(ws.recv(timeout=10))["reset"]
        assert _frames(ws, feed.last_seq)[0]["seq"] == 1


def _viewers(server: RoomServer) -> int:
    return json.loads(_get(server, "/stats")[1])["viewers"]["now"]


def test_a_stalled_viewer_is_dropped_and_holds_up_no_one(tmp_path):
    """A viewer that stops reading fills its buffers; the feed (the display's loop)
    and the other viewer go on, and the stalled one is dropped."""
    feed = RoomFeed("en", "fr", time.time())
    with RoomServer(feed, tmp_path, RoomOptions(port=0, send_timeout_s=1.0)).start() as server:
        stalled = bench.stalled_viewer(server.url)
        with connect(_ws_url(server), max_size=None) as reader:
            wait_for(lambda: _viewers(server) == 2, 10, "two viewers")
            json.loads(reader.recv(timeout=10))
            word = "x" * 20_000  # a few of these fill any socket buffer
            slowest = 0.0
            received: list[dict] = []
            for i in range(200):
                began = time.monotonic()
                msg = SourceWord(i, 1.0, 0.0, f"{i}{word}", 0, 1, 1, False, 0, 1.0)
                feed.add(msg, time.time())
                slowest = max(slowest, time.monotonic() - began)
                if i % 20 == 19:  # the reading viewer reads as it goes
                    received += _frames(reader, feed.last_seq)
            wait_for(lambda: _viewers(server) == 1, 15, "the stalled viewer to be dropped")
            assert json.loads(_get(server, "/stats")[1])["viewers"]["dropped"] == 1
        stalled.close()
    assert slowest < 0.05, f"adding an event took {slowest:.3f} s"
    texts = [e["text"] for e in received if e["type"] == "source"]
    assert [t[: t.index("x")] for t in texts] == [str(i) for i in range(200)]


def test_many_viewers_get_every_word_in_order_with_one_stalled():
    """The CI size of `juno bench web`: 10 viewers, 20 s of words at 4x, one stalled."""
    phase = bench.run_phase(20.0, 10, 1, 4.0, bench.sentences(20))
    assert phase.complete == 10
    assert phase.source_words >= 40 and phase.target_words >= 40
    lag = phase.lag()
    assert lag["p90_ms"] < 500, lag
    assert phase.stats["viewers"]["now"] == 11


# -- the page in a browser -----------------------------------------------------------------


class Chromium:
    """Headless chromium driven through the DevTools protocol (one page)."""

    def __init__(self, profile: Path) -> None:
        exe = shutil.which("chromium")
        if exe is None:
            pytest.fail("chromium not found: `apt-get install chromium` (scripts/setup.sh does)")
        self.proc = subprocess.Popen(
            [exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--remote-debugging-port=0", f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        for line in self.proc.stderr:
            if found := re.search(r"DevTools listening on (ws://\S+)", line):
                break
        else:
            pytest.fail("chromium did not start its DevTools endpoint")
        threading.Thread(target=self.proc.stderr.read, daemon=True).start()
        port = found.group(1).split(":")[2].split("/")[0]
        conn = http.client.HTTPConnection("127.0.0.1", int(port), timeout=30)
        conn.request("PUT", "/json/new?about:blank")
        page = json.loads(conn.getresponse().read())
        self._stack = contextlib.ExitStack()
        self.ws = self._stack.enter_context(connect(page["webSocketDebuggerUrl"], max_size=None))
        self.ids = itertools.count(1)

    def call(self, method: str, **params):
        n = next(self.ids)
        self.ws.send(json.dumps({"id": n, "method": method, "params": params}))
        while True:
            answer = json.loads(self.ws.recv(timeout=60))
            if answer.get("id") == n:
                assert "error" not in answer, answer
                return answer["result"]

    def js(self, expression: str):
        result = self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")

    def wait(self, condition: str, timeout_s: float = 30) -> object:
        """Until the page's ``condition`` (a JS expression) is truthy; its value."""
        return self.js(
            f"""new Promise((done, fail) => {{
              const start = Date.now();
              (function check() {{
                let value;
                try {{ value = ({condition}); }} catch (e) {{}}
                if (value) done(value);
                else if (Date.now() - start > {1000 * timeout_s}) fail(new Error("timed out: " + {json.dumps(condition)}));
                else setTimeout(check, 50);
              }})();
            }})"""  # noqa: E501
        )

    def open(self, url: str, width: int = 1280, height: int = 720, mobile: bool = False) -> None:
        self.call(
            "Emulation.setDeviceMetricsOverride",
            width=width, height=height, deviceScaleFactor=2 if mobile else 1, mobile=mobile,
        )  # fmt: skip
        self.call("Page.navigate", url=url)
        self.wait("document.readyState === 'complete' && document.getElementById('conn')")

    def screenshot(self, path: Path) -> bytes:
        png = base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"])
        path.write_bytes(png)
        return png

    def choose(self, select: str, value: str) -> None:
        self.js(
            f"(() => {{ const s = document.getElementById({json.dumps(select)}); "
            f"s.value = {json.dumps(value)}; s.dispatchEvent(new Event('change')); }})()"
        )

    def close(self) -> None:
        self._stack.close()
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def chromium(tmp_path):
    browser = Chromium(tmp_path / "chromium-profile")
    yield browser
    browser.close()


PAGE_TEXT = "document.getElementById('transcript').innerText"


def _is_png(png: bytes) -> bool:
    return png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000


class _Proxy:
    """A TCP relay in front of the room whose connections can be cut, as a flaky network."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.up = threading.Event()
        self.up.set()
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.up.is_set():
                client.close()
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target))
            self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self) -> None:
        self.up.clear()
        for s in self.conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.conns = []

    def close(self) -> None:
        self.cut()
        self.listener.close()


def test_the_page_shows_the_room_live_and_catches_up_after_a_cut(tmp_path, chromium):
    """Scripted words through a real display process: the page shows them in each view,
    joins "9:" "30", fits a phone, and after its connection is cut gets what it missed."""
    display = bench.Display(tmp_path)
    proxy = _Proxy(int(display.url.rsplit(":", 1)[1].strip("/")))
    try:
        origin = time.time()
        first, t = _sentence(0, JFK, JFK_FR, origin)
        second, t = _sentence(1, "We meet at 9:30.", "On se voit à 9:30.", origin, t)
        third, t = _sentence(2, "Bring your ticket.", "Apportez votre billet.", origin, t)
        # Still being said: its source words only, one continuing the one before it.
        said, _ = _sentence(3, "A cold -hearted", "", origin, t)
        live = [(channel, msg) for channel, msg in said if channel == "source"]
        items, counts = _numbered(first + second + third + live)
        for channel, msg in items[: len(first) + len(second)]:
            display.publish(channel, msg)
        chromium.open(f"http://127.0.0.1:{proxy.port}/")
        chromium.wait(f"{PAGE_TEXT}.includes('On se voit à 9:30.')")
        assert chromium.js("document.getElementById('conn-text').textContent") == "live"
        assert chromium.js(f"{PAGE_TEXT}").split("\n\n") == [JFK_FR, "On se voit à 9:30."]
        assert chromium.js("document.querySelectorAll('.sentence.tgt-live').length") == 0
        assert chromium.js("document.getElementById('lang').disabled")
        chromium.choose("view", "both")
        chromium.wait(f"{PAGE_TEXT}.includes('ask not what your country')")
        chromium.choose("view", "source")
        assert JFK_FR not in chromium.js(PAGE_TEXT)

        proxy.cut()
        chromium.wait("document.getElementById('conn').dataset.state === 'reconnecting'")
        # Published while the page is away: its reconnection asks for them.
        for channel, msg in items[len(first) + len(second) :]:
            display.publish(channel, msg)
        proxy.up.set()
        chromium.choose("view", "target")
        chromium.wait(f"{PAGE_TEXT}.includes('Apportez votre billet.')", timeout_s=30)
        assert chromium.js(f"{PAGE_TEXT}").split("\n\n")[:3] == [
            JFK_FR, "On se voit à 9:30.", "Apportez votre billet."
        ]  # fmt: skip
        chromium.choose("view", "source")
        chromium.wait(f"{PAGE_TEXT}.includes('Bring your ticket.')")
        assert chromium.js(f"{PAGE_TEXT}").split("\n\n")[-1] == "A cold-hearted"
        chromium.choose("view", "target")  # (the page keeps the choice for the next visit)
        png = chromium.screenshot(tmp_path / "room.png")
        assert _is_png(png)

        # On a phone: nothing wider than the screen, the controls at hand.
        chromium.open(f"http://127.0.0.1:{proxy.port}/", 390, 844, mobile=True)
        chromium.wait(f"{PAGE_TEXT}.includes('Apportez votre billet.')")
        assert chromium.js("document.documentElement.scrollWidth <= window.innerWidth")
        assert chromium.js("document.getElementById('view').getBoundingClientRect().right") <= 390
        assert _is_png(chromium.screenshot(tmp_path / "phone.png"))
        for channel, count in counts.items():
            display.publish(channel, EndOfStream(count, t, "test"))
        chromium.wait("document.getElementById('conn-text').textContent === 'ended'")
    finally:
        proxy.close()
        display.close()
    assert display.proc.returncode == 0, "".join(display.log)


def test_the_page_offers_each_language_and_keeps_the_choice(tmp_path, chromium):
    """`target_language: fr,de`: a display process tags each language's words; the page
    offers both, shows the one in its address (?lang=de), keeps the one chosen, and each
    language has its session files."""
    display = bench.Display(tmp_path, settings=["target_language=fr,de"])
    try:
        origin = time.time()
        first, t = _translated(0, JFK, {"fr": JFK_FR, "de": JFK_DE}, origin)
        second, t = _translated(
            1, "We meet at 9:30.", {"fr": "On se voit à 9:30.", "de": "Um 9:30."}, origin, t
        )
        items, counts = _numbered(first + second)
        for channel, msg in items:
            display.publish(channel, msg)
        chromium.open(f"{display.url}?lang=de")
        chromium.wait(f"{PAGE_TEXT}.includes('Um 9:30.')")
        assert chromium.js(PAGE_TEXT).split("\n\n") == [JFK_DE, "Um 9:30."]
        picker = "document.getElementById('lang')"
        assert chromium.js(f"[...{picker}.options].map((o) => o.text)") == ["French", "German"]
        assert chromium.js(f"{picker}.value") == "de" and not chromium.js(f"{picker}.disabled")
        links = chromium.js("[...document.querySelectorAll('#files a')].map((a) => a.pathname)")
        assert "/translation.fr.txt" in links and "/translation.de.txt" in links

        chromium.choose("lang", "fr")
        chromium.wait(f"{PAGE_TEXT}.includes('On se voit à 9:30.')")
        assert chromium.js(PAGE_TEXT).split("\n\n") == [JFK_FR, "On se voit à 9:30."]
        assert chromium.js("location.search") == "?lang=fr"
        # Opened again without a language: the one chosen is kept.
        chromium.open(display.url)
        chromium.wait(f"{PAGE_TEXT}.includes('On se voit à 9:30.')")
        assert chromium.js(f"{picker}.value") == "fr"
        for channel, count in counts.items():
            display.publish(channel, EndOfStream(count, t, "test"))
        chromium.wait("document.getElementById('conn-text').textContent === 'ended'")
    finally:
        display.close()
    assert display.proc.returncode == 0, "".join(display.log)
    session = tmp_path / "session"
    assert (session / "translation.de.txt").read_text() == JFK_DE + "\nUm 9:30.\n"
    assert (session / "translation.fr.txt").read_text() == JFK_FR + "\nOn se voit à 9:30.\n"
    assert not (session / "translation.txt").exists()
    report = latency.report(latency.load_events(session / "events.jsonl"))
    assert list(report["translation_lag_by_language"]) == ["fr", "de"]


def test_the_page_shows_every_turn_of_a_conversation_in_the_chosen_language(tmp_path, chromium):
    """`conversation.pair: en,fr`: a viewer picks English or French and reads every turn
    in it, the turns spoken in it as spoken, the others as translated, as they arrive."""
    display = bench.Display(tmp_path, settings=["conversation.pair=en,fr"])
    try:
        origin = time.time()
        turns, t = _conversation(origin)
        fourth, t = _turn(3, "fr", "Merci beaucoup.", "Thank you very much.", origin, t)
        items, counts = _numbered(turns + fourth)
        heard = len(turns) + sum(channel == "source" for channel, _ in fourth)
        for channel, msg in items[:heard]:  # the last turn not yet translated
            display.publish(channel, msg)
        chromium.open(f"{display.url}?lang=fr")
        chromium.wait(f"{PAGE_TEXT}.includes('Merci beaucoup.')")
        french = [JFK_FR, "On se voit à 9:30.", "Apportez votre billet.", "Merci beaucoup."]
        assert chromium.js(PAGE_TEXT).split("\n\n") == french
        sentences = "[...document.querySelectorAll('.sentence')]"
        assert chromium.js(f"{sentences}.map((s) => s.dataset.spoken)") == ["en", "fr", "en", "fr"]
        assert chromium.js(f"{sentences}.map((s) => s.classList.contains('own'))") == [
            False, True, False, True
        ]  # fmt: skip
        picker = "document.getElementById('lang')"
        assert chromium.js(f"[...{picker}.options].map((o) => o.text)") == ["English", "French"]
        links = chromium.js("[...document.querySelectorAll('#files a')].map((a) => a.pathname)")
        assert "/conversation.en.txt" in links and "/conversation.fr.txt" in links

        chromium.choose("lang", "en")
        chromium.wait(f"{PAGE_TEXT}.includes('We meet at 9:30.')")
        english = [JFK, "We meet at 9:30.", "Bring your ticket."]
        assert chromium.js(PAGE_TEXT).split("\n\n")[:3] == english
        # The last French turn's translation, as it arrives.
        live = "document.querySelector('.sentence:last-child')"
        assert chromium.js(f"{live}.classList.contains('tgt-live')")
        for channel, msg in items[heard:]:
            display.publish(channel, msg)
        chromium.wait(f"{PAGE_TEXT}.includes('Thank you very much.')")
        assert chromium.js(PAGE_TEXT).split("\n\n") == [*english, "Thank you very much."]
        assert chromium.js("document.querySelectorAll('.sentence.tgt-live').length") == 0
        # Both: each translated turn under its words as spoken; one's own turns once.
        chromium.choose("view", "both")
        chromium.wait(f"{PAGE_TEXT}.includes('On se voit à 9:30.')")
        assert chromium.js(PAGE_TEXT).count(JFK) == 1
        for channel, count in counts.items():
            display.publish(channel, EndOfStream(count, t, "test"))
        chromium.wait("document.getElementById('conn-text').textContent === 'ended'")
    finally:
        display.close()
    assert display.proc.returncode == 0, "".join(display.log)
    session = tmp_path / "session"
    assert (session / "conversation.en.txt").read_text() == "\n".join(
        [*english, "Thank you very much.", ""]
    )
    assert (session / "conversation.fr.txt").read_text() == "\n".join([*french, ""])
    report = latency.report(latency.load_events(session / "events.jsonl"))
    assert report["pair"] == ["en", "fr"] and report["speaker_change"]["count"] == 3
    assert json.loads((session / "session.json").read_text())["pair"] == ["en", "fr"]


@pytest.mark.real_weights
def test_replay_jfk_with_web_in_chromium(tmp_path, data_dir, whisper_base_path, llm_05b_path,
                                         chromium):  # fmt: skip
    """`juno run --input jfk.flac --web`: the page shows the transcript and its translation.
    With JUNO_ROOM_SCREENSHOT=PATH the screenshot is also stored there (docs/room.png)."""
    sessions = tmp_path / "sessions"
    port = _free_port()
    args = ["run", "--input", str(data_dir / "audio" / "jfk.flac"), "--web", "--port", str(port)]
    proc = start(args + model_args(whisper_base_path, llm_05b_path, sessions), cwd=tmp_path)
    try:
        wait_for(lambda: _accepts(port), 300, "the room page")
        chromium.open(f"http://127.0.0.1:{port}/")
        chromium.choose("view", "both")
        # The moment to show: a translation well under way (or the run over).
        writing = "document.querySelector('.sentence.tgt-live .tgt')?.textContent.split(' ')"
        ended = "document.getElementById('conn').dataset.state === 'ended'"
        chromium.wait(f"{writing}.length >= 10 || {ended}", 600)
        png = chromium.screenshot(tmp_path / "room.png")
        stdout, stderr = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, stderr
    assert f"room: http://127.0.0.1:{port}/" in stderr
    assert _is_png(png)
    text = chromium.js("document.getElementById('transcript').innerText").lower()
    assert "what your country can do for you" in text
    french = {"vous", "votre", "pays", "pour", "que", "ne", "pas", "et"}
    assert len(french & set(re.findall(r"[a-zàâçéèêëîïôûù']+", text))) >= 3, text
    if target := os.environ.get("JUNO_ROOM_SCREENSHOT"):
        Path(target).write_bytes(png)


# -- juno run --web --------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def test_web_flags_are_config_keys():
    from juno.cli import build_parser, load_config

    args = build_parser().parse_args(["run", "--web", "--host", "0.0.0.0", "--port", "9000"])
    display = load_config(args).display
    assert (display.web, display.web_host, display.web_port) == (True, "0.0.0.0", 9000)
    display = load_config(build_parser().parse_args(["run"])).display
    assert (display.web, display.web_host, display.web_port) == (False, "127.0.0.1", 8765)


def test_bad_room_options_are_one_line_errors(tmp_path, data_dir):
    jfk = str(data_dir / "audio" / "jfk.flac")
    taken = socket.create_server(("127.0.0.1", 0))
    port = taken.getsockname()[1]
    cases = {
        f"port {port} is in use": ["--web", "--port", str(port)],
        "add --web": ["--port", "9000"],
        "not an address or a known host name": ["--web", "--host", "no-such-host.invalid"],
        "not a port number": ["--web", "--port", "70000"],
    }
    try:
        for expected, flags in cases.items():
            done = subprocess.run(
                JUNO + ["run", "--input", jfk, *flags], cwd=tmp_path, capture_output=True,
                text=True, timeout=120,
            )  # fmt: skip
            assert done.returncode == 2, done.stderr
            lines = done.stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("juno: error:"), done.stderr
            assert expected in lines[0]
    finally:
        taken.close()


def test_a_room_beyond_loopback_takes_the_printed_token_and_dies_with_its_display(
    tmp_path, data_dir, tiny_whisper, tiny_llm
):
    """`juno run --web --host 0.0.0.0`: the address with its token and a QR code go to
    stderr, the room wants that token; killing the display stops the run as
    tests/test_pipeline.py's killed stages do, naming it, and the room goes with it."""
    from pipeline import speech_wav

    sessions = tmp_path / "sessions"
    wav = speech_wav(data_dir, tmp_path / "speech.wav", seconds=30)
    port = _free_port()
    args = ["run", "--input", str(wav), "--web", "--host", "0.0.0.0", "--port", str(port)]
    proc = start(args + tiny_args(tiny_whisper, tiny_llm, sessions), cwd=tmp_path)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)
    reader.start()
    try:

        def capturing() -> bool:
            session = session_folder(sessions)
            log = session / "logs" / "capture.log" if session else None
            return log is not None and log.exists() and "capturing" in log.read_text()

        wait_for(capturing, 300, "capture to start")
        found = re.search(rf"http://\S+:{port}/\?token=(\S+)", "".join(lines))
        assert found, lines
        token = found.group(1)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        for path, status in (("/stats", 401), (f"/stats?token={token}", 200)):
            conn.request("GET", path)
            answer = conn.getresponse()
            answer.read()
            assert answer.status == status, path
        conn.close()
        os.kill(stage_pid(proc.pid, "display"), signal.SIGKILL)
        killed_at = time.monotonic()
        proc.wait(timeout=30)
        elapsed = time.monotonic() - killed_at
        reader.join(timeout=10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    stderr = "".join(lines)
    assert "▀" in stderr or "▄" in stderr, "a QR code of the address"
    assert proc.returncode != 0
    assert elapsed <= 3.0, f"the supervisor took {elapsed:.1f} s to stop"
    assert "'display'" in stderr and "SIGKILL" in stderr, stderr
    assert "Traceback" not in stderr
    for name in ("capture", "transcribe", "translate", "display"):
        assert stage_pid(proc.pid, name) is None
    assert not _accepts(port)
