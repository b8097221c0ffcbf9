"""Reading native annotation files with errors that say exactly where a record is wrong.

Every loader goes through these helpers, so a malformed record fails with the file, the line
(JSON lines) or index path (JSON), and the field: ``vqa/v2_mscoco_train2014_annotations.json:
annotations[3]: field 'answers': expected 10 answers, got 9``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import FormatError


def read_json(path: str | Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise FormatError(path, "", "file not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise FormatError(path, "", f"not UTF-8 text ({e.reason} at byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise FormatError(path, f"line {e.lineno} column {e.colno}", f"invalid JSON: {e.msg}") from None


def read_jsonl(path: str | Path) -> Iterator[tuple[str, dict]]:
    """Yield ``("line N", object)`` for each non-empty line."""
    path = Path(path)
    if not path.is_file():
        raise FormatError(path, "", "file not found")
    with open(path, "rb") as f:
        for n, raw in enumerate(f, start=1):
            where = f"line {n}"
            try:
                line = raw.decode("utf-8").strip()
            except UnicodeDecodeError as e:
                raise FormatError(path, where, f"not UTF-8 text ({e.reason})") from None
            if not line:
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise FormatError(path, where, f"invalid JSON at column {e.colno}: {e.msg}") from None
            if not isinstance(obj, dict):
                raise FormatError(path, where, f"expected a JSON object, got {type(obj).__name__}")
            yield where, obj


_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", list: "a list",
               dict: "an object", bool: "a boolean"}


def _type_ok(value: Any, kind: type | tuple[type, ...]) -> bool:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:
        return False  # JSON true/false is not a number here
    if float in kinds and isinstance(value, int):
        return True
    return isinstance(value, kinds)


class Rec:
    """A JSON object at a known place: typed field access that raises :class:`FormatError`."""

    def __init__(self, obj: Any, path: str | Path, where: str):
        self.path, self.where = path, where
        if not isinstance(obj, dict):
            self.fail(f"expected a JSON object, got {type(obj).__name__}")
        self.obj = obj

    def fail(self, message: str, field: str | None = None):
        prefix = f"field '{field}': " if field else ""
        raise FormatError(self.path, self.where, prefix + message)

    def get(self, field: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
        if field not in self.obj:
            if default is not ...:
                return default
            self.fail("missing", field)
        value = self.obj[field]
        if not _type_ok(value, kind):
            kinds = kind if isinstance(kind, tuple) else (kind,)
            expected = " or ".join(_TYPE_NAMES.get(k, k.__name__) for k in kinds)
            self.fail(f"expected {expected}, got {type(value).__name__} {value!r:.60}", field)
        return value

    def choice(self, field: str, allowed: tuple[str, ...] | set[str]) -> str:
        value = self.get(field, str)
        if value not in allowed:
            self.fail(f"{value!r} is not one of {sorted(allowed)}", field)
        return value

    def str_list(self, field: str, length: int | None = None) -> list[str]:
        value = self.get(field, list)
        if not all(isinstance(v, str) for v in value):
            self.fail("expected a list of strings", field)
        if length is not None and len(value) != length:
            self.fail(f"expected {length} entries, got {len(value)}", field)
        return value


def json_list(path: str | Path, data: Any, name: str = "") -> list[Rec]:
    """Wrap the elements of a JSON list (``data`` or ``data[name]``) as :class:`Rec`."""
    if name:
        if not isinstance(data, dict) or name not in data:
            raise FormatError(path, "", f"missing top-level key '{name}'")
        data = data[name]
    if not isinstance(data, list):
        raise FormatError(path, name, f"expected a JSON list, got {type(data).__name__}")
    label = name or ""
    return [Rec(obj, path, f"{label}[{i}]") for i, obj in enumerate(data)]


def require_file(rec: Rec, field: str, path: Path) -> Path:
    """The image (or other file) a record points to must exist."""
    if not path.is_file():
        rec.fail(f"file {path} not found", field)
    return path
