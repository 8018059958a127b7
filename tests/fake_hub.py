"""A local stand-in for the Hugging Face Hub's file API, enough for snapshot_download.

It serves a folder as one repo at one commit over plain HTTP on 127.0.0.1, so the
real download code path (huggingface_hub, progress bar, cache layout) runs in
tests without a network.
"""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _oid(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class FakeHub:
    def __init__(self, repo_id: str, folder: Path):
        self.repo_id = repo_id
        self.files = {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}
        self.requests: list[str] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def _send(self, code: int, body: bytes, headers: dict | None = None, head=False):
                self.send_response(code)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if not head:
                    self.wfile.write(body)

            def _route(self, head: bool):
                hub.requests.append(f"{self.command} {self.path}")
                path = self.path.split("?")[0]
                api = f"/api/models/{hub.repo_id}"
                if path in (api, f"{api}/revision/main"):
                    info = {
                        "id": hub.repo_id,
                        "sha": COMMIT,
                        "siblings": [{"rfilename": n} for n in hub.files],
                    }
                    body = json.dumps(info).encode()
                    return self._send(200, body, {"Content-Type": "application/json"}, head)
                if path in (f"{api}/tree/main", f"{api}/tree/{COMMIT}"):
                    tree = [
                        {"type": "file", "path": n, "size": len(d), "oid": _oid(d)}
                        for n, d in hub.files.items()
                    ]
                    body = json.dumps(tree).encode()
                    return self._send(200, body, {"Content-Type": "application/json"}, head)
                for rev in ("main", COMMIT):
                    prefix = f"/{hub.repo_id}/resolve/{rev}/"
                    if path.startswith(prefix) and path[len(prefix) :] in hub.files:
                        data = hub.files[path[len(prefix) :]]
                        headers = {
                            "X-Repo-Commit": COMMIT,
                            "ETag": f'"{_oid(data)}"',
                            "Content-Type": "application/octet-stream",
                        }
                        return self._send(200, data, headers, head)
                return self._send(404, b"{}", {"X-Error-Code": "RepoNotFound"}, head)

            def do_GET(self):
                self._route(head=False)

            def do_HEAD(self):
                self._route(head=True)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeHub:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
