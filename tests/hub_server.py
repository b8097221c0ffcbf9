"""A Hugging Face Hub on 127.0.0.1 for the fetch tests, speaking what ``huggingface_hub`` asks:

- ``GET /api/models/<repo>/revision/<rev>``: the repository at a revision (``sha`` = its commit);
- ``GET /api/models/<repo>/tree/<rev>?recursive=true``: every file with its size and blob id;
- ``HEAD`` and ``GET /<repo>/resolve/<rev>/<path>``: the file, with ``X-Repo-Commit``, ``ETag`` and
  ``Content-Length``;
- errors as the Hub gives them: 404 with ``X-Error-Code: RepoNotFound`` / ``RevisionNotFound`` /
  ``EntryNotFound``, and for a gated repository 401 without a token and 403 with a wrong one
  (``X-Error-Code: GatedRepo``).

Repositories are dictionaries of files ({path: bytes}); each ``publish`` makes a new commit that
``main`` points to, so a test can move ``main`` under a pinned fetch. Every request is recorded
(path and Authorization header) for the tests' assertions.
"""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit


class Refusal(Exception):
    """An error answer: (HTTP status, X-Error-Code)."""

    def __init__(self, status: int, code: str):
        super().__init__(code)
        self.status, self.code = status, code


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class HubServer:
    def __init__(self, token: str = "hf_test_token"):
        self.token = token
        self.repos: dict[str, dict] = {}  # repo -> {"commits": {sha: files}, "refs": {name: sha}, "gated": bool}
        self.requests: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_HEAD(self):
                self._answer(head=True)

            def do_GET(self):
                self._answer(head=False)

            def _error(self, status: int, code: str, head: bool):
                body = json.dumps({"error": code}).encode()
                self.send_response(status)
                self.send_header("X-Error-Code", code)
                self.send_header("X-Error-Message", code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if not head:
                    self.wfile.write(body)

            def _json(self, value, head: bool, commit: str | None = None):
                body = json.dumps(value).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                if commit:
                    self.send_header("X-Repo-Commit", commit)
                self.end_headers()
                if not head:
                    self.wfile.write(body)

            def _answer(self, head: bool):
                path = unquote(urlsplit(self.path).path).lstrip("/")
                auth = self.headers.get("Authorization")
                server.requests.append({"method": "HEAD" if head else "GET", "path": path, "authorization": auth})
                if path.startswith("api/models/"):
                    rest = path.removeprefix("api/models/")
                    for kind in ("revision", "tree"):
                        if f"/{kind}/" in rest:
                            repo, rev = rest.split(f"/{kind}/", 1)
                            break
                    else:
                        return self._error(404, "EntryNotFound", head)
                    try:
                        commit, files = server._resolve(repo, rev, auth)
                    except Refusal as refusal:
                        return self._error(refusal.status, refusal.code, head)
                    if kind == "revision":
                        return self._json({"id": repo, "modelId": repo, "sha": commit, "private": False,
                                           "gated": server.repos[repo]["gated"] and "manual",
                                           "siblings": [{"rfilename": p} for p in sorted(files)]}, head)
                    return self._json([{"type": "file", "path": p, "size": len(d), "oid": git_blob_id(d)}
                                       for p, d in sorted(files.items())], head)
                if "/resolve/" in path:
                    repo, rest = path.split("/resolve/", 1)
                    rev, _, file = rest.partition("/")
                    try:
                        commit, files = server._resolve(repo, rev, auth)
                    except Refusal as refusal:
                        return self._error(refusal.status, refusal.code, head)
                    if file not in files:
                        return self._error(404, "EntryNotFound", head)
                    data = files[file]
                    self.send_response(200)
                    self.send_header("X-Repo-Commit", commit)
                    self.send_header("ETag", f'"{git_blob_id(data)}"')
                    self.send_header("Content-Length", str(len(data)))
                    self.send_header("Accept-Ranges", "bytes")
                    self.end_headers()
                    if not head:
                        self.wfile.write(data)
                    return
                self._error(404, "RepoNotFound", head)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    # --- repositories ------------------------------------------------------------------------------
    def publish(self, repo: str, files: dict[str, bytes], gated: bool = False) -> str:
        """A new commit of ``repo`` holding ``files``; ``main`` points to it. Returns the commit."""
        entry = self.repos.setdefault(repo, {"commits": {}, "refs": {}, "gated": gated})
        commit = hashlib.sha1(repr((repo, len(entry["commits"]), sorted(files.items()))).encode()).hexdigest()
        entry["commits"][commit] = dict(files)
        entry["refs"]["main"] = commit
        return commit

    def _resolve(self, repo: str, rev: str, auth: str | None) -> tuple[str, dict[str, bytes]]:
        """(commit, files) of ``repo`` at ``rev``; raises the Hub's refusal."""
        if repo not in self.repos:
            raise Refusal(404, "RepoNotFound")
        entry = self.repos[repo]
        if entry["gated"]:
            if auth is None:
                raise Refusal(401, "GatedRepo")
            if auth != f"Bearer {self.token}":
                raise Refusal(403, "GatedRepo")
        commit = entry["refs"].get(rev, rev)
        if commit not in entry["commits"]:
            raise Refusal(404, "RevisionNotFound")
        return commit, entry["commits"][commit]

    # --- serving -------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def environment(self, home) -> dict[str, str]:
        """What a process needs to use this hub alone: the endpoint, its own cache, no telemetry."""
        return {"HF_ENDPOINT": self.url, "HF_HOME": str(home), "HF_HUB_CACHE": str(home / "hub"),
                "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_XET": "1", "NO_PROXY": "127.0.0.1,localhost"}

    def __enter__(self) -> "HubServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
