"""The room's web server: the page, a WebSocket of live events, the session's files, /stats.

A Starlette app on uvicorn, run by the display process in a thread with its own
asyncio loop (:class:`RoomServer`). The display's loop only adds messages to a
:class:`~juno.display.room.RoomFeed` and never waits on a viewer: each viewer has a
task that sends it the events after its cursor in the shared history, so its queue
is its place in that history plus at most one frame in flight. A slow viewer is
sent larger batches and catches up; one that falls behind the history kept starts
over from it; one that takes nothing for ``send_timeout_s`` is dropped (its page
reconnects by itself and asks for what it missed).

Routes: ``/`` (the page, ``/app.js``, ``/style.css``), ``/ws`` (the events; the
client sends ``session`` and ``since``, the last event it has), ``/stats`` (JSON),
``/transcript.txt``, ``/translation.txt`` (into the first target language),
``/translation.{lang}.txt`` (into any), ``/subtitles/{lang}.srt|vtt`` (``lang``: the
source or a target language), all of the session so far: the display's session
files, which it rewrites whole after each batch of words. In a two-way conversation,
``/conversation.{lang}.txt`` is every turn in a language of the pair, and its
subtitles are those of every turn in it.

Security: on a loopback host, requests must name a loopback host (no DNS
rebinding); on any other host every request needs the session's token (``?token=``
or ``Authorization: Bearer``), else 401, the WebSocket included. A WebSocket from
another site's page (its Origin is not this host) is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import json
import logging
import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TextIO
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.datastructures import Headers, QueryParams
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from juno.display.room import RoomFeed
from juno.display.session import conversation_file, translation_file
from juno.errors import JunoError

log = logging.getLogger(__name__)

# The token a supervised display takes from `juno run` (or a user gives a lone display).
TOKEN_ENV = "JUNO_ROOM_TOKEN"
# Shortest token accepted from the environment.
MIN_TOKEN_CHARS = 16
# Host headers a loopback room answers (a name that resolves elsewhere is DNS rebinding).
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
# Most events in one WebSocket frame (a viewer catching up gets several).
BATCH_EVENTS = 256
# A stalled peer's connection is closed by the kernel after this long without progress.
TCP_USER_TIMEOUT_MS = 30_000
# How long the server may take to start, and at a normal end to send the last events.
START_TIMEOUT_S = 10.0
FLUSH_S = 2.0
# The page's files, served as they are (no build step, nothing from elsewhere).
PAGE_FILES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/style.css": ("style.css", "text/css; charset=utf-8"),
}
HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
}


@dataclass(frozen=True)
class RoomOptions:
    """Where the room listens and how it treats its viewers."""

    host: str = "127.0.0.1"
    # 0: any free port (see RoomServer.port).
    port: int = 8765
    # Needed by every request when set; None only on a loopback host.
    token: str | None = None
    # A viewer that takes nothing for this long is dropped.
    send_timeout_s: float = 10.0


def is_loopback(host: str) -> bool:
    """Whether ``host`` is this machine only (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port``, or a one-line JunoError saying why not."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror:
        raise JunoError(f"--host {host}: not an address or a known host name") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if hasattr(socket, "TCP_USER_TIMEOUT"):  # Linux; accepted connections inherit it
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, TCP_USER_TIMEOUT_MS)
    try:
        sock.bind(address)
        sock.listen(128)
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise JunoError(
                f"port {port} is in use on {host}: choose another with --port (display.web_port)"
            ) from None
        if e.errno == errno.EADDRNOTAVAIL:
            raise JunoError(f"--host {host}: not an address of this machine") from None
        if e.errno == errno.EACCES:
            raise JunoError(f"port {port}: not allowed (ports below 1024 need root)") from None
        raise JunoError(f"cannot listen on {host}:{port}: {e.strerror}") from None
    return sock


def check_port(host: str, port: int) -> None:
    """Fail now, with a one-line error, if the room could not listen on ``host:port``."""
    if not 0 < port < 65536:
        raise JunoError(f"--port {port}: not a port number (1-65535)")
    listen(host, port).close()


def session_token(host: str) -> str | None:
    """The token the room on ``host`` needs: $JUNO_ROOM_TOKEN, else a new random one;
    None on a loopback host."""
    if is_loopback(host):
        return None
    token = os.environ.get(TOKEN_ENV) or secrets.token_urlsafe(16)
    if len(token) < MIN_TOKEN_CHARS:
        raise JunoError(f"${TOKEN_ENV} is too short: at least {MIN_TOKEN_CHARS} characters")
    return token


def _lan_address() -> str:
    """This machine's address on its network, else its name."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            # Connecting UDP sends nothing: it picks the default route's source address.
            probe.connect(("1.1.1.1", 9))
            return probe.getsockname()[0]
    except OSError:
        return socket.gethostname()


def page_url(host: str, port: int, token: str | None = None) -> str:
    """The page's address as viewers type it (a wildcard host becomes this machine's)."""
    if host in ("", "0.0.0.0", "::"):
        host = _lan_address()
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/" + (f"?token={token}" if token else "")


def announce(url: str, token_required: bool, out: TextIO) -> None:
    """Print the page's address (and, when it takes a token, a QR code of it) to ``out``."""
    if not token_required:
        print(f"room: {url}", file=out, flush=True)
        return
    import segno

    print(f"room (other devices too; the token is in the address): {url}", file=out)
    segno.make(url, error="m").terminal(out=out, compact=True)
    out.flush()


class _Gate:
    """ASGI middleware: the token on every request, and no foreign page's WebSocket."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = Headers(scope=scope)
        if self.token is not None and not self._has_token(scope, headers):
            denial = PlainTextResponse(
                "401: this room needs its token (the address printed with its QR code)\n",
                401,
                headers={"WWW-Authenticate": 'Bearer realm="juno room"', **HEADERS},
            )
            return await self._deny(scope, receive, send, denial)
        if scope["type"] == "websocket" and not _same_origin(headers):
            return await self._deny(scope, receive, send, PlainTextResponse("403\n", 403))
        return await self.app(scope, receive, send)

    def _has_token(self, scope: Scope, headers: Headers) -> bool:
        given = QueryParams(scope.get("query_string", b"")).get("token", "")
        bearer = headers.get("authorization", "")
        if bearer.lower().startswith("bearer "):
            given = given or bearer[7:].strip()
        return secrets.compare_digest(given.encode(), self.token.encode())

    @staticmethod
    async def _deny(scope: Scope, receive: Receive, send: Send, response: Response) -> None:
        if scope["type"] == "http":
            return await response(scope, receive, send)
        websocket = WebSocket(scope, receive, send)
        if "websocket.http.response" in scope.get("extensions", {}):
            return await websocket.send_denial_response(response)
        await websocket.close(1008)  # the server answers 403


def _same_origin(headers: Headers) -> bool:
    origin = headers.get("origin")
    # Browsers always send Origin; other clients (no page to borrow) need not.
    return origin is None or urlsplit(origin).netloc == headers.get("host")


@dataclass(eq=False)  # each viewer is itself, in a set
class _Viewer:
    cursor: int
    wake: asyncio.Event


class RoomServer:
    """The room's HTTP and WebSocket server, in a thread of its own (see the module docstring).

    ``folder`` is the session folder whose text and subtitle files it serves.
    """

    def __init__(self, feed: RoomFeed, folder: Path, options: RoomOptions) -> None:
        if options.token is None and not is_loopback(options.host):
            raise ValueError("a room beyond loopback needs a token")
        self.feed = feed
        self.folder = Path(folder)
        self.options = options
        self.dropped = 0
        self._viewers: set[_Viewer] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake_pending = False
        self._progress: asyncio.Event | None = None
        self._started = threading.Event()
        self._server = None
        self._thread: threading.Thread | None = None
        self._page = {
            path: (resources.files("juno.display").joinpath("web", name).read_bytes(), kind)
            for path, (name, kind) in PAGE_FILES.items()
        }
        self.port = options.port
        # (host, port) it listens on, once started.
        self.address: tuple[str, int] | None = None
        feed.subscribe(self._wake_viewers)

    # -- lifecycle (the display's thread) -------------------------------------

    def start(self) -> RoomServer:
        """Listen and serve; a one-line JunoError if it cannot listen."""
        import uvicorn

        sock = listen(self.options.host, self.options.port)
        self.address = sock.getsockname()[:2]
        self.port = self.address[1]
        config = uvicorn.Config(
            self.app(),
            ws="websockets-sansio",
            # Frames are small and many viewers read each: compressing costs more than it saves.
            ws_per_message_deflate=False,
            lifespan="on",
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
        self._thread = threading.Thread(
            target=self._serve, args=(sock,), name="room-server", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._started.wait(0.1):
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise JunoError(f"the room server did not start on port {self.port}")
        return self

    def _serve(self, sock: socket.socket) -> None:
        try:
            asyncio.run(self._server.serve(sockets=[sock]))
        except BaseException:  # SystemExit too: uvicorn exits on a failed startup
            log.exception("the room server stopped")
        finally:
            sock.close()

    @property
    def url(self) -> str:
        """The page's address, with the token when one is needed."""
        return page_url(self.options.host, self.port, self.options.token)

    def close(self, state: str = "done", flush: bool = True) -> None:
        """Tell the viewers ``state``; with ``flush``, let them take the last events
        (at most FLUSH_S); then stop serving."""
        self.feed.set_state(state)
        if self._thread is None:
            return
        loop = self._loop
        if flush and loop is not None and self._thread.is_alive():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self._flushed(FLUSH_S), loop).result(FLUSH_S + 1)
        self._server.should_exit = True
        # A stopping display does not wait: the thread is a daemon and dies with it.
        self._thread.join(timeout=FLUSH_S + 2 if flush else 0.5)

    def __enter__(self) -> RoomServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the app (the server's thread) ----------------------------------------

    def app(self) -> Starlette:
        """The ASGI app (token gate, routes)."""
        routes = [Route(path, self._page_file) for path in PAGE_FILES]
        routes += [
            Route("/stats", self._stats),
            Route("/transcript.txt", self._session_file),
            Route("/translation.txt", self._translation),
            Route("/translation.{lang}.txt", self._translation),
            Route("/conversation.{lang}.txt", self._conversation),
            Route("/subtitles/{name}", self._subtitles),
            WebSocketRoute("/ws", self._viewer),
        ]
        middleware = [Middleware(_Gate, token=self.options.token)]
        if is_loopback(self.options.host):
            hosts = [*LOOPBACK_NAMES, self.options.host]
            middleware.insert(0, Middleware(TrustedHostMiddleware, allowed_hosts=hosts))
        return Starlette(routes=routes, middleware=middleware, lifespan=self._lifespan)

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette):
        self._loop = asyncio.get_running_loop()
        self._progress = asyncio.Event()
        self._started.set()
        yield

    async def _page_file(self, request: Request) -> Response:
        body, kind = self._page[request.url.path]
        return Response(body, media_type=kind, headers=HEADERS)

    async def _stats(self, request: Request) -> Response:
        viewers = {"now": len(self._viewers), "dropped": self.dropped}
        return JSONResponse(self.feed.stats(time.time(), viewers), headers=HEADERS)

    async def _session_file(self, request: Request) -> Response:
        return self._file(request.url.path.lstrip("/"))

    async def _translation(self, request: Request) -> Response:
        languages = self.feed.target_languages
        lang = request.path_params.get("lang", languages[0])
        if lang not in languages:
            return PlainTextResponse("404: no such translation\n", 404, headers=HEADERS)
        return self._file(translation_file(languages, lang, "txt"))

    async def _conversation(self, request: Request) -> Response:
        lang = request.path_params["lang"]
        if lang not in self.feed.pair:
            return PlainTextResponse("404: no such conversation\n", 404, headers=HEADERS)
        return self._file(conversation_file(lang, "txt"))

    async def _subtitles(self, request: Request) -> Response:
        lang, _, ext = request.path_params["name"].partition(".")
        languages = self.feed.target_languages
        if ext not in ("srt", "vtt") or lang not in (self.feed.source_language, *languages):
            return PlainTextResponse("404: no such subtitles\n", 404, headers=HEADERS)
        if lang in self.feed.pair:  # a conversation's: every turn in that language
            return self._file(conversation_file(lang, ext))
        if lang in languages:  # (a target language wins over the same source language)
            return self._file(translation_file(languages, lang, ext))
        return self._file(f"transcript.{ext}")

    def _file(self, name: str) -> Response:
        # Only names built above reach here: nothing outside the session folder.
        try:
            text = (self.folder / name).read_text(encoding="utf-8")
        except FileNotFoundError:  # no word yet
            text = "WEBVTT\n\n" if name.endswith(".vtt") else ""
        kind = "text/vtt" if name.endswith(".vtt") else "text/plain"
        return PlainTextResponse(text, media_type=kind, headers=HEADERS)

    async def _viewer(self, websocket: WebSocket) -> None:
        await websocket.accept()
        params = websocket.query_params
        since = params.get("since", "")
        resume = params.get("session") == self.feed.session and since.isdigit()
        viewer = _Viewer(int(since) if resume else 0, asyncio.Event())
        self._viewers.add(viewer)
        try:
            hello = {**self.feed.hello(), "reset": not resume}
            await websocket.send_text(json.dumps(hello, ensure_ascii=False))
            tasks = {
                asyncio.create_task(self._send_events(websocket, viewer)),
                asyncio.create_task(_until_closed(websocket)),
            }
            done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
            for task in done:
                if isinstance(task.exception(), TimeoutError):
                    self.dropped += 1
                    timeout_s = self.options.send_timeout_s
                    log.info("dropped a viewer: it took nothing for %.0f s", timeout_s)
        except WebSocketDisconnect:
            pass
        finally:
            self._viewers.discard(viewer)

    async def _send_events(self, websocket: WebSocket, viewer: _Viewer) -> None:
        timeout_s = self.options.send_timeout_s
        while True:
            batch = self.feed.after(viewer.cursor, BATCH_EVENTS)
            if batch.reset:
                await asyncio.wait_for(websocket.send_text('{"type":"reset"}'), timeout_s)
            if not batch.events:
                viewer.wake.clear()
                if self.feed.last_seq <= viewer.cursor:
                    await viewer.wake.wait()
                continue
            frame = "[" + ",".join(batch.events) + "]"
            await asyncio.wait_for(websocket.send_text(frame), timeout_s)
            viewer.cursor = batch.last_seq
            self._progress.set()

    async def _flushed(self, timeout_s: float) -> None:
        """Until every viewer has the last event, or ``timeout_s``."""
        deadline = self._loop.time() + timeout_s
        while any(v.cursor < self.feed.last_seq for v in self._viewers):
            self._progress.clear()
            left = deadline - self._loop.time()
            if left <= 0:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._progress.wait(), left)

    def _wake_viewers(self) -> None:
        # From the display's thread: one wake-up call at a time, however many events.
        loop = self._loop
        if loop is None or self._wake_pending:
            return
        self._wake_pending = True
        with contextlib.suppress(RuntimeError):  # the loop has closed
            loop.call_soon_threadsafe(self._wake_all)

    def _wake_all(self) -> None:
        self._wake_pending = False
        for viewer in self._viewers:
            viewer.wake.set()


async def _until_closed(websocket: WebSocket) -> None:
    while (await websocket.receive())["type"] != "websocket.disconnect":
        pass


def open_room(
    feed: RoomFeed, folder: Path, host: str, port: int, announce_to: TextIO | None
) -> RoomServer:
    """Start the room of a display: its token (see :func:`session_token`), its server;
    the address goes to the log, and with its token to ``announce_to`` when given."""
    token = session_token(host)
    room = RoomServer(feed, folder, RoomOptions(host, port, token)).start()
    log.info("room page at %s%s", page_url(host, room.port), " (token required)" if token else "")
    if announce_to is not None:
        announce(room.url, token is not None, announce_to)
    return room
