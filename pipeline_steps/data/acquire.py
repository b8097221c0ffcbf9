"""Paper mode's data stage: obtain every file of a raw source, verify it, assemble ``data/raw/<source>``.

For each file of ``registry.REMOTE[source]``:

1. a verified copy already in ``<downloads>/<source>/`` (an earlier run, or placed there by hand) is
   used as is;
2. ``manual`` files (licence forms) are taken from ``data.manual.<source>`` or the downloads folder,
   or from the mirror when one is set; when absent, the error says exactly what to download;
3. otherwise the file is downloaded: a Hugging Face Hub file (Winoground) from ``HF_ENDPOINT`` when
   that is set, as the model fetches are; any file from ``data.mirror`` (``<mirror>/<host>/<path>``,
   Drive files as ``<mirror>/drive.google.com/<id>/<name>``); or from its publisher (Google Drive
   through gdown);
   gated files send ``HF_TOKEN`` as a bearer token, which never appears in any message or file.

Every file is checked against its size and hashes: the registry's published values, a
``data.checksums`` file that replaces them (a mirror serving repackaged files), or the sha256 the
lock file (``data.lock``) recorded at the first download.  The raw source is then assembled in a
temporary directory (safe extraction, placement, conversions) that replaces ``data/raw/<source>``
only when complete, with ``ACQUIRED.json`` listing what went into it.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

from ..errors import DownloadError, SourceUnavailable, StepError
from ..io import atomic_dir, atomic_write_json, read_json_object, update_json_locked
from . import cifar
from .download import Expected, Retry, download, verify
from .extract import extract
from .registry import GDRIVE, HUB_URL, MANUAL, REMOTE, TOKEN, RemoteFile

log = logging.getLogger(__name__)
TOKEN_ENV = "HF_TOKEN"


# --- pins: what each file must be ------------------------------------------------------------------------

def file_key(source: str, f: RemoteFile) -> str:
    return f"{source}/{f.name}"


def load_checksums(path: str | Path | None) -> dict[str, dict]:
    """``data.checksums``: {"<source>/<file>": {"size": ..., "sha256": ...}} replacing the registry's."""
    if not path:
        return {}
    try:
        pins = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise StepError(f"data.checksums: cannot read {path}: {e}") from None
    if not isinstance(pins, dict):
        raise StepError(f"data.checksums: {path} must hold a JSON object keyed by '<source>/<file>'")
    return pins


class Lock:
    """The lock file of sha256 values recorded at first download (commit it with the params)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def read(self) -> dict[str, dict]:
        return read_json_object(self.path)

    def record(self, key: str, size: int, sha256: str) -> None:
        update_json_locked(self.path, key, {"size": size, "sha256": sha256})


def expected_for(source: str, f: RemoteFile, checksums: dict, lock: Lock) -> tuple[Expected, bool]:
    """(what the file must be, whether that includes a sha256 or md5 to hold it to)."""
    key = file_key(source, f)
    if key in checksums:
        pin = checksums[key]
        return Expected(pin.get("size"), pin.get("sha256"), pin.get("md5")), True
    if f.sha256 or f.md5:
        return Expected(f.size, f.sha256, f.md5), True
    recorded = lock.read().get(key)
    if recorded:
        return Expected(recorded["size"], recorded["sha256"]), True
    return Expected(f.size), False


# --- obtaining one file ---------------------------------------------------------------------------------

def _token() -> str | None:
    token = os.environ.get(TOKEN_ENV, "").strip()
    return token or None


def _manual_candidates(source: str, f: RemoteFile, cfg: dict, downloads: Path) -> list[Path]:
    where = (cfg.get("manual") or {}).get(source)
    return ([Path(where) / f.name] if where else []) + [downloads / f.name]


def _gdown(f: RemoteFile, dest: Path, expected: Expected) -> tuple[int, str]:
    """Google Drive through gdown (it handles Drive's confirmation pages); verified like the rest."""
    import gdown

    part = dest.with_name(dest.name + ".part")
    try:
        got = gdown.download(id=f.gdrive_id, output=str(part), quiet=False, resume=True)
    except Exception as e:  # noqa: BLE001 - gdown raises many types for Drive refusals
        got, reason = None, f"{type(e).__name__}: {e}"
    else:
        reason = "Drive refused the download"
    if not got or not part.is_file():
        raise DownloadError(f"{f.name}: Google Drive file {f.gdrive_id}: {reason}")
    try:
        result = verify(part, expected, f.name)
    except DownloadError:
        part.unlink(missing_ok=True)
        raise
    os.replace(part, dest)
    return result


def source_url(f: RemoteFile, mirror: str) -> str:
    """Where ``f`` is downloaded from: a file on the Hugging Face Hub from ``HF_ENDPOINT`` when it is
    set (the site's hub mirror, the one the model fetches use), else the data mirror, else its publisher."""
    endpoint = (os.environ.get("HF_ENDPOINT") or "").rstrip("/")
    if endpoint and f.url.startswith(HUB_URL):
        return f"{endpoint}/{f.url.removeprefix(HUB_URL)}"
    return f"{mirror}/{f.mirror_path}" if mirror else f.url


def obtain(source: str, f: RemoteFile, cfg: dict, downloads: Path, checksums: dict,
           lock: Lock) -> tuple[Path, int, str]:
    """A verified local copy of ``f`` with its size and sha256; downloads it when needed."""
    expected, pinned = expected_for(source, f, checksums, lock)
    dest = downloads / f.name
    mirror = (cfg.get("mirror") or "").rstrip("/")
    if f.access == MANUAL and not mirror:
        for candidate in _manual_candidates(source, f, cfg, downloads):
            if candidate.is_file():
                size, sha = verify(candidate, expected, str(candidate))
                if not pinned:
                    lock.record(file_key(source, f), size, sha)
                return candidate, size, sha
        info = REMOTE[source].how_to_get
        raise SourceUnavailable(
            f"{source}: {f.name} is not there. {info}, then place the files in {downloads}/ "
            f"(or set data.manual.{source} to the folder that holds them)")
    if dest.is_file():
        try:
            return (dest, *verify(dest, expected, str(dest)))
        except DownloadError:
            log.warning("%s does not verify; downloading it again", dest)
            dest.unlink()
    retry = Retry(int(cfg["retries"]), float(cfg["backoff_s"]), float(cfg["timeout_s"]))
    headers = {}
    if f.access == TOKEN:
        token = _token()
        if token is None:
            raise SourceUnavailable(f"{source}: {TOKEN_ENV} is not set. {REMOTE[source].how_to_get}")
        headers["Authorization"] = f"Bearer {token}"
    url = source_url(f, mirror)
    log.info("downloading %s from %s", f.name, url)
    try:
        if f.access == GDRIVE and not mirror:
            size, sha = _gdown(f, dest, expected)
        else:
            size, sha = download(url, dest, expected, headers=headers, retry=retry, name=f.name)
    except DownloadError as e:
        if f.access == TOKEN and "refused access" in str(e):
            raise SourceUnavailable(f"{source}: the server refused {TOKEN_ENV}: {e}. "
                                    f"{REMOTE[source].how_to_get}") from None
        if f.access == GDRIVE:
            raise DownloadError(f"{e}. {REMOTE[source].how_to_get} and place {f.name} in {downloads}/") from None
        raise
    if not pinned:
        lock.record(file_key(source, f), size, sha)
        log.info("%s: no published checksum; recorded sha256 %s in %s", f.name, sha, lock.path)
    return dest, size, sha


# --- assembling the raw source ---------------------------------------------------------------------------

def _convert_cifar(root: Path) -> None:
    """CIFAR binaries -> class folders of the test split (what zero-shot evaluation reads)."""
    for name in cifar.LAYOUTS:
        n = cifar.to_class_folders(root, name, root / name)
        shutil.rmtree(root / cifar.LAYOUTS[name][0])
        log.info("%s: %d test images in class folders", name, n)


CONVERSIONS = {"cifar": _convert_cifar}


def acquire(source: str, cfg: dict, downloads_root: str | Path, out: str | Path) -> dict:
    """Obtain, verify and assemble one raw source; returns the ``ACQUIRED.json`` summary."""
    if source not in REMOTE:
        raise StepError(f"no remote files are registered for source {source!r}")
    spec = REMOTE[source]
    downloads = Path(downloads_root) / source
    downloads.mkdir(parents=True, exist_ok=True)
    checksums = load_checksums(cfg.get("checksums"))
    lock = Lock(cfg["lock"])
    local = [(f, obtain(source, f, cfg, downloads, checksums, lock)) for f in spec.files]
    summary = {"source": source, "reader": spec.reader, "files": {}}
    with atomic_dir(out) as tmp:
        for f, (path, size, sha) in local:
            if f.extract:
                count = extract(path, tmp, f.include)
                log.info("%s: %d files extracted", f.name, count)
            else:
                target = tmp / (f.place or f.name)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target)
            summary["files"][f.name] = {"size": size, "sha256": sha, "url": f.url}
        if spec.convert:
            CONVERSIONS[spec.convert](tmp)
        atomic_write_json(tmp / "ACQUIRED.json", summary)
    return summary
