"""Verified, resumable HTTP downloads.

``download(url, dest, ...)`` streams into ``<dest>.part`` next to ``dest``, resumes a partial file
with an HTTP ``Range`` request, retries transient failures (connection errors, timeouts, 5xx, 429)
with exponential back-off, checks the size and the hashes it was given, and only then renames the
file to ``dest``.  A checksum mismatch removes the partial file: ``dest`` never holds bytes that
were not verified.

Secrets: request headers (an ``Authorization`` token) are never written into messages, and are
dropped when a redirect leaves the host they were meant for (the Hugging Face Hub redirects file
downloads to a CDN).
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from ..errors import AccessDenied, ChecksumMismatch, DownloadError

log = logging.getLogger(__name__)
CHUNK = 1 << 20


@dataclass(frozen=True)
class Expected:
    """What a file must be; any of the fields may be unknown (None)."""
    size: int | None = None
    sha256: str | None = None
    md5: str | None = None


@dataclass(frozen=True)
class Retry:
    attempts: int = 5
    backoff_s: float = 1.0
    timeout_s: float = 60.0


class _SameHostAuthRedirect(urllib.request.HTTPRedirectHandler):
    """Follow redirects, but never carry the Authorization header to another host."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and urllib.parse.urlsplit(newurl).netloc != urllib.parse.urlsplit(req.full_url).netloc:
            for name in list(new.headers):
                if name.lower() == "authorization":
                    del new.headers[name]
            new.unredirected_hdrs.pop("Authorization", None)
        return new


_OPENER = urllib.request.build_opener(_SameHostAuthRedirect())


def file_hashes(path: Path) -> tuple[int, str, str]:
    """(size, sha256, md5) of a file, read in chunks."""
    sha, md5, size = hashlib.sha256(), hashlib.md5(usedforsecurity=False), 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            sha.update(chunk)
            md5.update(chunk)
            size += len(chunk)
    return size, sha.hexdigest(), md5.hexdigest()


def verify(path: Path, expected: Expected, what: str) -> tuple[int, str]:
    """Check ``path`` against ``expected``; returns (size, sha256).  ``what`` names the file in errors."""
    size, sha, md5 = file_hashes(path)
    for field, want, got in (("size", expected.size, size), ("sha256", expected.sha256, sha),
                             ("md5", expected.md5, md5)):
        if want is not None and str(want).lower() != str(got).lower():
            raise ChecksumMismatch(f"{what}: {field} mismatch: expected {want}, got {got}")
    return size, sha


def _attempt(url: str, part: Path, headers: dict[str, str], timeout: float, name: str,
             total: int | None) -> None:
    offset = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={**headers, "User-Agent": "pipeline-steps"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = _OPENER.open(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset:  # the partial file is already complete
            return
        raise
    with response:
        if offset and response.status != 206:  # the server ignored the range: start over
            log.info("%s: server does not resume; downloading from the start", name)
            offset = 0
        # progress on stderr (the job's log under Snakemake), starting at the resumed offset
        with open(part, "ab" if offset else "wb") as f, \
                tqdm(total=total, initial=offset, unit="B", unit_scale=True, desc=name, mininterval=5) as bar:
            while chunk := response.read(CHUNK):
                f.write(chunk)
                bar.update(len(chunk))
        length = response.headers.get("Content-Length")
        if length is not None and part.stat().st_size < offset + int(length):
            raise http.client.IncompleteRead(b"", part.stat().st_size - offset)


def download(url: str, dest: str | Path, expected: Expected = Expected(), *,
             headers: dict[str, str] | None = None, retry: Retry = Retry(), name: str | None = None,
             safe_url: str | None = None) -> tuple[int, str]:
    """Download ``url`` to ``dest`` (verified); returns (size, sha256).

    ``safe_url`` is what messages show instead of ``url`` (for URLs that carry a secret).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    name = name or dest.name
    shown = safe_url or url
    last_error = ""
    for attempt in range(1, retry.attempts + 1):
        try:
            _attempt(url, part, headers or {}, retry.timeout_s, name, expected.size)
            break
        except urllib.error.HTTPError as e:
            if e.code in (401, 403):
                raise AccessDenied(f"{shown}: the server refused access (HTTP {e.code})") from None
            if e.code < 500 and e.code != 429:
                raise DownloadError(f"{shown}: HTTP {e.code} {e.reason}") from None
            last_error = f"HTTP {e.code} {e.reason}"
        except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
            last_error = f"{type(e).__name__}: {getattr(e, 'reason', e)}"
        if attempt < retry.attempts:
            wait = retry.backoff_s * 2 ** (attempt - 1)
            log.warning("%s: attempt %d/%d failed (%s); retrying in %.1f s", name, attempt,
                        retry.attempts, last_error, wait)
            time.sleep(wait)
    else:
        raise DownloadError(f"{shown}: failed after {retry.attempts} attempts (last: {last_error}); "
                            f"the partial file {part} is kept and the next run resumes it")
    try:
        result = verify(part, expected, shown)
    except ChecksumMismatch:
        part.unlink(missing_ok=True)
        raise
    os.replace(part, dest)
    return result
