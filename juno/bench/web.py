"""``juno bench web``: many viewers of the room page while a display replays words fast.

The display process (``juno process display`` with ``display.web`` on) is fed over its
ZeroMQ sockets with scripted messages: FLORES-200 dev sentences, spoken at 2.5 words a
second with half a second between sentences, and their French reference written wait-3
(each target word 0.15 s after the source word that allows it, the rest of the sentence
0.1 s apart after its end), replayed ``--speed`` times faster than spoken. Viewers are
WebSocket clients on loopback that read every event; a stalled viewer opens a WebSocket
with a small receive buffer and never reads. The replay runs three times, in a fresh
display each time: without the room (the baseline of the display's memory), with the
room and its viewers, and with ``--stalled`` stalled viewers besides.

Measured: whether every reading viewer received every word, in order; the delay from
publishing a word to its arrival at a viewer (median, p90 and max over all the reading
viewers' words; this process's own scheduling included); the display process's RSS after
the first minute of speech and at the end; its /stats just before the end of stream
(viewers still connected, viewers dropped).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import dataclasses
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import zmq

from juno.config import Config
from juno.errors import JunoError
from juno.pipeline import bus
from juno.pipeline.messages import EndOfStream, Message, SentenceEnd, SourceWord, TargetWord

WORDS_PER_S = 2.5
SENTENCE_GAP_S = 0.5
WAIT_K = 3
# A target word's delay after the source word that allows it, and between the words
# written after the source ends.
TRANSLATE_S = 0.15
TAIL_WORD_S = 0.1
# RSS "after the first minute" is read at this much speech.
WARMUP_SPEECH_S = 60.0
RSS_EVERY_S = 0.25
START_TIMEOUT_S = 60.0
# Room for the last frames to arrive once the replay has ended.
END_TIMEOUT_S = 60.0
# A stalled viewer's receive buffer: the server's sends to it block soon.
STALLED_RCVBUF = 4096


@dataclass(frozen=True)
class Timed:
    """A scripted message and when it is published (seconds of replay)."""

    at_s: float
    channel: str  # "source" or "target"
    msg: Message


def script(seconds: float, sources: list[str], targets: list[str], speed: float) -> list[Timed]:
    """``seconds`` of speech (whole sentences) as timed messages, ``speed`` times as fast.

    Stream times are of the replay (scaled too), so the display's own lags stay real.
    """
    out: list[Timed] = []
    seq = {"source": 0, "target": 0}
    last = {"source": 0.0, "target": 0.0}

    def add(at_s: float, channel: str, msg: Message) -> None:
        # A channel's messages go out in their order (a long translation's tail may
        # reach into the next sentence's words).
        last[channel] = max(at_s, last[channel])
        out.append(Timed(last[channel] / speed, channel, msg))
        seq[channel] += 1

    t, n = 0.0, 0
    while t < seconds:
        src, tgt = sources[n % len(sources)].split(), targets[n % len(targets)].split()
        ends = []
        for i, word in enumerate(src):
            start, t = t, t + 1 / WORDS_PER_S
            ends.append(t)
            msg = SourceWord(
                seq["source"], t / speed, 0.0, word, start / speed, t / speed, 1.0,
                i == len(src) - 1, n, 0.0,
            )  # fmt: skip
            add(t, "source", msg)
        at = 0.0
        for j, word in enumerate(tgt):
            read = min(WAIT_K + j, len(src))
            at = max(ends[read - 1] + TRANSLATE_S, at + TAIL_WORD_S if read == len(src) else at)
            msg = TargetWord(seq["target"], ends[read - 1] / speed, 0.0, word, n, read, 0.0)
            add(at, "target", msg)
        end = SentenceEnd(seq["target"], ends[-1] / speed, 0.0, n, " ".join(src), " ".join(tgt))
        add(at + TAIL_WORD_S, "target", end)
        t, n = ends[-1] + SENTENCE_GAP_S, n + 1
    return sorted(out, key=lambda item: item.at_s)


@dataclass
class Viewer:
    """What one reading viewer received: (kind, text, arrival wall time) per word."""

    words: list[tuple[str, str, float]] = field(default_factory=list)
    done: bool = False


@dataclass
class Phase:
    """One replay's figures."""

    viewers: int
    stalled: int
    seconds: float
    speed: float
    source_words: int
    target_words: int
    # Reading viewers that received every word in order.
    complete: int
    lags_s: list[float]
    rss: list[tuple[float, int]]  # (seconds of speech, bytes)
    stats: dict[str, Any]

    def lag(self) -> dict[str, float | None]:
        if not self.lags_s:
            return {"median_ms": None, "p90_ms": None, "max_ms": None}
        median, p90 = np.percentile(self.lags_s, [50, 90])
        return {
            "median_ms": round(1000 * median, 1),
            "p90_ms": round(1000 * p90, 1),
            "max_ms": round(1000 * max(self.lags_s), 1),
        }

    def rss_mib(self) -> dict[str, float | None]:
        def mib(value: int | None) -> float | None:
            return None if value is None else round(value / 2**20, 1)

        after = next((b for s, b in self.rss if s >= WARMUP_SPEECH_S), None)
        return {
            "after_first_minute": mib(after),
            "end": mib(self.rss[-1][1] if self.rss else None),
            "max": mib(max((b for _, b in self.rss), default=None)),
        }

    def summary(self) -> dict[str, Any]:
        viewers = self.stats.get("viewers", {})
        return {
            "room": bool(self.stats),
            "viewers": self.viewers,
            "stalled": self.stalled,
            "speech_s": self.seconds,
            "speed": self.speed,
            "words": {"source": self.source_words, "target": self.target_words},
            "every_word_in_order": f"{self.complete}/{self.viewers}",
            "delivery_lag": self.lag(),
            "display_rss_mib": self.rss_mib(),
            "viewers_connected_at_end": viewers.get("now"),
            "viewers_dropped": viewers.get("dropped"),
        }


class Display:
    """A ``juno process display`` with the room on, fed by this process's PUB sockets."""

    def __init__(self, folder: Path, web: bool = True, settings: Sequence[str] = ()) -> None:
        """``settings``: more ``--set KEY=VALUE`` for the display (e.g. its languages)."""
        self.ctx = zmq.Context()
        endpoints = {name: f"ipc://{folder / name}.sock" for name in ("source", "target")}
        self.pubs = {
            name: bus.socket(self.ctx, zmq.XPUB, bind=endpoint)
            for name, endpoint in endpoints.items()
        }
        cmd = [
            sys.executable, "-m", "juno", "process", "display",
            "--source", endpoints["source"], "--target", endpoints["target"],
            "--session", str(folder / "session"),
            "--set", f"display.web={str(web).lower()}", "--set", "display.web_port=0",
            "--set", "display.mode=plain",
        ]  # fmt: skip
        for setting in settings:
            cmd += ["--set", setting]
        env = {k: v for k, v in os.environ.items() if k != "JUNO_SUPERVISED"}
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env
        )
        self.log: list[str] = []
        self._url = threading.Event()
        self.url = ""
        threading.Thread(target=self._read_log, daemon=True).start()
        if web and (not self._url.wait(START_TIMEOUT_S) or not self.url):
            self.close()
            raise JunoError("the display's room did not start:\n" + "".join(self.log[-20:]))
        for name, pub in self.pubs.items():
            bus.wait_subscribers(pub, 1, START_TIMEOUT_S, name)

    def _read_log(self) -> None:
        for line in self.proc.stderr:
            self.log.append(line)
            if found := re.match(r"room: (http://\S+)", line):
                self.url = found.group(1)
                self._url.set()
        self._url.set()

    def publish(self, channel: str, msg: Message) -> None:
        self.pubs[channel].send_multipart(bus.pack(msg))

    def rss_bytes(self) -> int | None:
        try:
            status = Path(f"/proc/{self.proc.pid}/status").read_text()
        except OSError:
            return None
        found = re.search(r"VmRSS:\s+(\d+) kB", status)
        return int(found.group(1)) * 1024 if found else None

    def close(self) -> None:
        try:
            self.proc.wait(timeout=END_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.ctx.destroy(linger=0)


def stalled_viewer(url: str) -> socket.socket:
    """A WebSocket opened with a small receive buffer and then never read."""
    host, port = re.match(r"http://([^/:]+):(\d+)/", url).groups()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, STALLED_RCVBUF)
    sock.connect((host, int(port)))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        .encode()
    )  # fmt: skip
    return sock


async def read_viewer(url: str, viewer: Viewer) -> None:
    """Read every event until the display says it is done (or the connection ends)."""
    from websockets.asyncio.client import connect

    ws_url = url.replace("http://", "ws://", 1).split("?")[0] + "ws"
    async with connect(ws_url, max_size=None, compression=None, ping_interval=None) as ws:
        json.loads(await ws.recv())  # hello
        async for frame in ws:
            now = time.time()
            data = json.loads(frame)
            for event in data if isinstance(data, list) else []:
                if event["type"] in ("source", "target"):
                    viewer.words.append((event["type"], event["text"], now))
                elif event["type"] == "status" and event["state"] == "done":
                    viewer.done = True
                    return


async def _stats(url: str) -> dict[str, Any]:
    def get() -> dict[str, Any]:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return json.load(answer)

    return await asyncio.to_thread(get)


async def _replay(
    display: Display, timed: list[Timed], viewers: int, stalled: int, speed: float
) -> tuple[list[Viewer], dict[str, list], list[tuple[float, int]], dict]:
    reading = [Viewer() for _ in range(viewers)]
    tasks = [asyncio.create_task(read_viewer(display.url, v)) for v in reading]
    stalls = [stalled_viewer(display.url) for _ in range(stalled)]
    stats_url = display.url.split("?")[0] + "stats"
    while display.url and (await _stats(stats_url))["viewers"]["now"] < viewers + stalled:
        await asyncio.sleep(0.05)
    published: dict[str, list] = {"source": [], "target": []}
    rss: list[tuple[float, int]] = []
    origin = time.time()
    next_rss = 0.0
    for item in timed:
        while (delay := origin + item.at_s - time.time()) > 0:
            if time.time() >= next_rss:
                rss.append(((time.time() - origin) * speed, display.rss_bytes() or 0))
                next_rss = time.time() + RSS_EVERY_S
            await asyncio.sleep(min(delay, RSS_EVERY_S))
        msg = dataclasses.replace(item.msg, origin_wall_s=origin)
        if not isinstance(msg, SentenceEnd):
            msg = dataclasses.replace(msg, committed_wall_s=time.time())
            kind = "source" if isinstance(msg, SourceWord) else "target"
            published[kind].append((msg.text, time.time()))
        display.publish(item.channel, msg)
    rss.append(((time.time() - origin) * speed, display.rss_bytes() or 0))
    await asyncio.sleep(0.5)  # the last words reach the display before its figures are read
    stats = await _stats(stats_url) if display.url else {}
    ends = {"source": len(published["source"]), "target": sum(t.channel == "target" for t in timed)}
    for channel, count in ends.items():
        display.publish(channel, EndOfStream(count, timed[-1].msg.stream_s, "bench"))
    await asyncio.wait_for(asyncio.gather(*tasks), END_TIMEOUT_S)
    for sock in stalls:
        sock.close()
    return reading, published, rss, stats


def run_phase(
    seconds: float,
    viewers: int,
    stalled: int,
    speed: float,
    sentences: tuple[list, list],
    web: bool = True,
) -> Phase:
    """One replay of ``seconds`` of scripted speech to ``viewers`` (+ ``stalled``);
    without ``web``, to the display alone."""
    timed = script(seconds, *sentences, speed)
    with tempfile.TemporaryDirectory(prefix="juno-bench-web-") as tmp:
        display = Display(Path(tmp), web)
        try:
            reading, published, rss, stats = asyncio.run(
                _replay(display, timed, viewers, stalled, speed)
            )
        finally:
            display.close()
    complete, lags = 0, []
    for viewer in reading:
        ok = True
        for kind in ("source", "target"):
            got = [(text, at) for k, text, at in viewer.words if k == kind]
            ok &= [text for text, _ in got] == [text for text, _ in published[kind]]
            lags += [at - sent for (_, at), (_, sent) in zip(got, published[kind], strict=False)]
        complete += ok and viewer.done
    return Phase(
        viewers, stalled, seconds, speed, len(published["source"]), len(published["target"]),
        complete, lags, rss, stats,
    )  # fmt: skip


def sentences(n: int = 200) -> tuple[list[str], list[str]]:
    """FLORES-200 dev sentences, English and their French reference."""
    from juno.paths import flores_dev

    return flores_dev("en", n), flores_dev("fr", n)


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--viewers", type=int, default=50, help="reading viewers (50)")
    p.add_argument("--stalled", type=int, default=1, help="stalled viewers in the second run (1)")
    p.add_argument("--minutes", type=float, default=10.0, help="minutes of speech replayed (10)")
    p.add_argument("--speed", type=float, default=10.0, help="times faster than spoken (10)")
    p.add_argument("--json", type=Path, help="also write the figures to this file")


def run(args: argparse.Namespace, cfg: Config) -> int:
    if args.viewers < 1 or args.stalled < 0 or args.minutes <= 0 or args.speed <= 0:
        raise JunoError("--viewers must be 1 or more, --minutes and --speed above 0")
    text, seconds = sentences(), 60 * args.minutes
    phases = [run_phase(seconds, 0, 0, args.speed, text, web=False)]
    for stalled in (0, args.stalled):
        phases.append(run_phase(seconds, args.viewers, stalled, args.speed, text))
    figures = [phase.summary() for phase in phases]
    for summary in figures:
        print(json.dumps(summary))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0 if all(p.complete == p.viewers for p in phases) else 1
