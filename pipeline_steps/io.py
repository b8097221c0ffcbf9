"""File helpers: every output is written under a temporary name and renamed when complete.

A crash or a kill therefore leaves either the previous output or none, never a half-written one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any


def digest(obj) -> str:
    """A short stable hash of JSON-able data, for run identities that would be large written out."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def _tmp_sibling(path: Path, kind: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "dir":
        return Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    return Path(name)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    path = Path(path)
    tmp = _tmp_sibling(path, "file")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def dumps_json(obj: Any) -> str:
    """Stable JSON text: sorted keys, two-space indent, trailing newline."""
    return json.dumps(obj, indent=2, sort_keys=True) + "\n"


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, dumps_json(obj))


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> None:
    """Write one JSON object per line (plain write: use inside :func:`atomic_dir`)."""
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, sort_keys=True) + "\n")


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary directory that replaces ``path`` only if the block finishes.

    On an exception the temporary directory is removed and an existing ``path`` stays untouched.
    """
    path = Path(path)
    tmp = _tmp_sibling(path, "dir")
    try:
        yield tmp
        os.chmod(tmp, 0o755)
        if path.exists():
            old = _tmp_sibling(path, "dir")
            old.rmdir()
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def read_json_object(path: str | os.PathLike) -> dict:
    """A JSON object from ``path``; {} when the file does not exist."""
    path = Path(path)
    return json.loads(path.read_text()) if path.is_file() else {}


def update_json_locked(path: str | os.PathLike, key: str, value) -> None:
    """Set ``key`` in the JSON object at ``path`` (keys kept sorted), holding an exclusive lock on a
    sibling file: jobs side by side may record into one lock file at once."""
    import fcntl

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lck"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        entries = read_json_object(path)
        entries[key] = value
        atomic_write_json(path, dict(sorted(entries.items())))


class CacheRows:
    """A cache folder's arrays (``<name>.npy``, memory-mapped) and the row of each record id
    (``ids.json``): the one reader of the SD text-state and CLIP teacher caches."""

    def __init__(self, folder: str | os.PathLike, arrays: Iterable[str], what: str):
        import numpy as np

        folder = Path(folder)
        self.what = what
        self.arrays = {name: np.load(folder / f"{name}.npy", mmap_mode="r") for name in arrays}
        self.row = {i: n for n, i in enumerate(json.loads((folder / "ids.json").read_text()))}

    def rows(self, ids: list[str]):
        """The rows of ``ids``, failing on any id the cache does not hold."""
        import numpy as np

        missing = [i for i in ids if i not in self.row]
        if missing:
            raise KeyError(f"{missing[:5]} are not in the {self.what}; rebuild it")
        return np.asarray([self.row[i] for i in ids])


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def tree_digest(root: str | os.PathLike) -> str:
    """sha256 over every file's relative path and content, in sorted order."""
    root = Path(root)
    h = hashlib.sha256()
    for p in sorted(q for q in root.rglob("*") if q.is_file()):
        h.update(p.relative_to(root).as_posix().encode() + b"\0")
        h.update(sha256_file(p).encode())
    return h.hexdigest()
