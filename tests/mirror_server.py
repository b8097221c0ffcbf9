"""A dataset mirror on 127.0.0.1 for the download tests: serves a folder over HTTP with Range
requests, a bearer token on the Hugging Face paths (as the Hub does for gated repositories),
redirects (as the Hub's to its CDN) and faults injected per path (a 5xx answer, a connection
dropped half-way)."""

from __future__ import annotations

import threading
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

GATED_PREFIX = "huggingface.co/"


class MirrorServer:
    def __init__(self, root: Path, token: str):
        self.root = root.resolve()
        self.token = token
        self.faults: dict[str, list[str]] = defaultdict(list)  # path -> ["500" | "drop", ...]
        self.redirects: dict[str, str] = {}  # path -> URL answered with a 302 (after the token check)
        self.requests: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_GET(self):
                path = self.path.lstrip("/").split("?")[0]
                server.requests.append({"path": path, "range": self.headers.get("Range"),
                                        "authorization": self.headers.get("Authorization")})
                if path.startswith(GATED_PREFIX):
                    auth = self.headers.get("Authorization")
                    if auth is None:
                        return self.send_error(401, "Unauthorized")
                    if auth != f"Bearer {server.token}":
                        return self.send_error(403, "Forbidden")
                if path in server.redirects:
                    self.send_response(302)
                    self.send_header("Location", server.redirects[path])
                    self.send_header("Content-Length", "0")
                    return self.end_headers()
                file = (server.root / path).resolve()
                if server.root not in file.parents or not file.is_file():
                    return self.send_error(404, "Not Found")
                fault = server.faults[path].pop(0) if server.faults[path] else None
                if fault == "500":
                    return self.send_error(500, "Internal Server Error")
                data = file.read_bytes()
                start = 0
                ranged = self.headers.get("Range")
                if ranged:
                    start = int(ranged.removeprefix("bytes=").split("-")[0])
                    if start >= len(data):
                        return self.send_error(416, "Range Not Satisfiable")
                body = data[start:]
                self.send_response(206 if ranged else 200)
                if ranged:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Accept-Ranges", "bytes")
                self.end_headers()
                if fault == "drop":  # half the body, then the connection goes away
                    self.wfile.write(body[:len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def requests_for(self, path: str) -> list[dict]:
        return [r for r in self.requests if r["path"] == path]

    def __enter__(self) -> "MirrorServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
