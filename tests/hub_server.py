"""A local stand-in for the Hugging Face Hub (datasets) plus a plain web server, for tests.

The real `huggingface_hub` client (`snapshot_download`, `hf_hub_download`) runs against it when
`HF_ENDPOINT` points here. Endpoints (read from huggingface_hub 2.x `hf_api.py` /
`file_download.py` and checked by running the client):

- `GET /api/datasets/<repo>[/revision/<rev>]`       -> repo info (`sha`, `siblings`)
- `GET /api/datasets/<repo>/tree/<rev>[/<path>]`    -> recursive file listing (one page)
- `HEAD|GET /datasets/<repo>/resolve/<rev>/<path>`  -> file (+ `X-Repo-Commit`, `ETag`)

Plain web files (image URLs of PixMo rows) live under `/web/<path>`; `/html/<anything>` answers
200 with an HTML page (a dead image host's landing page), anything unknown answers 404.
Every request is logged in `requests` as (method, path) so tests can assert what was fetched.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import socket
import threading
import urllib.parse

COMMIT = "0123456789abcdef0123456789abcdef01234567"
HTML_PAGE = b"<!DOCTYPE html><html><body>This domain is for sale</body></html>"


def git_blob_id(data: bytes) -> str:
    """The git blob sha1 the Hub reports as a non-LFS file's oid/etag."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class StandInHub:
    """Serves `datasets[repo][path] = bytes` the way the Hub does, and `web[path] = bytes`."""

    def __init__(self) -> None:
        self.datasets: dict[str, dict[str, bytes]] = {}
        self.web: dict[str, bytes] = {}
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def do_HEAD(self) -> None:
                hub._handle(self, head=True)

            def do_GET(self) -> None:
                hub._handle(self, head=False)

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> "StandInHub":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def web_url(self, path: str) -> str:
        return f"{self.url}/web/{path}"

    def html_url(self, name: str) -> str:
        return f"{self.url}/html/{name}"

    def fetched(self, prefix: str) -> list[str]:
        """Paths of GET requests starting with `prefix` (in order)."""
        with self._lock:
            return [p for m, p in self.requests if m == "GET" and p.startswith(prefix)]

    # --- request handling ---
    def _handle(self, h: http.server.BaseHTTPRequestHandler, head: bool) -> None:
        parsed = urllib.parse.urlparse(h.path)
        path = urllib.parse.unquote(parsed.path)
        with self._lock:
            self.requests.append(("HEAD" if head else "GET", path))
        if path.startswith("/api/datasets/"):
            return self._api(h, path[len("/api/datasets/"):], head)
        if path.startswith("/datasets/") and "/resolve/" in path:
            repo, rest = path[len("/datasets/"):].split("/resolve/", 1)
            files = self.datasets.get(repo)
            fname = rest.split("/", 1)[1] if "/" in rest else ""
            if files is None or fname not in files:
                return self._send(h, 404, b'{"error": "Entry not found"}', head,
                                  {"X-Error-Code": "EntryNotFound"})
            data = files[fname]
            return self._send(h, 200, data, head, {"X-Repo-Commit": COMMIT,
                                                   "ETag": f'"{git_blob_id(data)}"'},
                              ctype="application/octet-stream", rng=h.headers.get("Range"))
        if path.startswith("/web/") and path[5:] in self.web:
            return self._send(h, 200, self.web[path[5:]], head, ctype="image/jpeg",
                              rng=h.headers.get("Range"))
        if path.startswith("/html/"):
            return self._send(h, 200, HTML_PAGE, head, ctype="text/html")
        return self._send(h, 404, b"not found", head)

    def _api(self, h, rest: str, head: bool) -> None:
        repo = next((r for r in sorted(self.datasets, key=len, reverse=True)
                     if rest == r or rest.startswith(r + "/")), None)
        if repo is None:
            return self._send(h, 404, b'{"error": "Repository not found"}', head,
                              {"X-Error-Code": "RepoNotFound"}, ctype="application/json")
        files, tail = self.datasets[repo], rest[len(repo):].strip("/")
        if tail == "" or tail.startswith("revision/"):
            info = {"id": repo, "_id": repo, "sha": COMMIT, "private": False, "gated": False,
                    "disabled": False, "downloads": 0, "likes": 0, "tags": [],
                    "lastModified": "2026-01-01T00:00:00.000Z",
                    "siblings": [{"rfilename": p} for p in sorted(files)]}
            return self._send(h, 200, json.dumps(info).encode(), head, ctype="application/json")
        if tail.startswith("tree/"):
            parts = tail.split("/", 2)
            under = parts[2] if len(parts) > 2 else ""
            entries = [{"type": "file", "oid": git_blob_id(d), "size": len(d), "path": p}
                       for p, d in sorted(files.items())
                       if not under or p.startswith(under.rstrip("/") + "/")]
            return self._send(h, 200, json.dumps(entries).encode(), head,
                              ctype="application/json")
        return self._send(h, 404, b'{"error": "unknown api route"}', head, ctype="application/json")

    @staticmethod
    def _send(h, code: int, body: bytes, head: bool, headers: dict | None = None,
              ctype: str = "text/plain", rng: str | None = None) -> None:
        start = 0
        if rng and code == 200 and rng.startswith("bytes="):
            start = int(rng[6:].split("-")[0] or 0)
            if start >= len(body):
                h.send_response(416)
                h.send_header("Content-Length", "0")
                h.end_headers()
                return
            code = 206
        h.send_response(code)
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(body) - start))
        if code == 206:
            h.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        h.end_headers()
        if not head:
            h.wfile.write(body[start:])


def refused_url(path: str = "x.jpg") -> str:
    """A URL on a local port nothing listens on (connection refused at once)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}/{path}"
