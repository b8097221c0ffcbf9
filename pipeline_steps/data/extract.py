"""Safe extraction of zip and tar archives.

Every member is checked before anything is written: absolute paths, ``..`` components, links whose
target leaves the destination, hard links, device files and FIFOs are refused with an error that
names the archive and the member.  Only regular files are written (datasets need no links).  Callers extract into a temporary directory that replaces the
destination only when the whole source is assembled (``io.atomic_dir``), so a refused or broken
archive leaves nothing behind.
"""

from __future__ import annotations

import fnmatch
import posixpath
import shutil
import stat
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

from ..errors import UnsafeArchive


def _member_target(archive: Path, name: str, dest: Path) -> Path:
    """Where a member goes under ``dest``; raises for unsafe names."""
    if name.startswith(("/", "\\")) or PurePosixPath(name).is_absolute() or (len(name) > 1 and name[1] == ":"):
        raise UnsafeArchive(f"{archive}: member {name!r} has an absolute path")
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if ".." in parts:
        raise UnsafeArchive(f"{archive}: member {name!r} climbs out of the destination ('..')")
    rel = "/".join(p for p in parts if p != ".")
    return dest / rel if rel else dest


def _check_link(archive: Path, name: str, link_target: str) -> None:
    """A symbolic link may only point inside the archive's own tree."""
    if link_target.startswith("/") or posixpath.normpath(
            posixpath.join(posixpath.dirname(name), link_target)).startswith(".."):
        raise UnsafeArchive(f"{archive}: member {name!r} is a link pointing outside ({link_target!r})")


def _wanted(rel: str, include: tuple[str, ...]) -> bool:
    return not include or any(fnmatch.fnmatchcase(rel, pattern) for pattern in include)


def extract(archive: str | Path, dest: str | Path, include: tuple[str, ...] = ()) -> int:
    """Extract the members of ``archive`` (zip, tar, tar.gz) under ``dest``; returns the file count.

    ``include``: glob patterns on the member path; all members when empty.
    """
    archive, dest = Path(archive), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            return _write(_zip_plan(zf, archive, dest, include), zf.open)
    if tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tf:
            return _write(_tar_plan(tf, archive, dest, include), tf.extractfile)
    raise UnsafeArchive(f"{archive}: neither a zip nor a tar archive")


def _zip_plan(zf: zipfile.ZipFile, archive: Path, dest: Path, include: tuple[str, ...]) -> list:
    """(member, target) of every regular file to write; raises on the first unsafe member."""
    plan = []
    for info in zf.infolist():
        target = _member_target(archive, info.filename, dest)
        if stat.S_ISLNK(info.external_attr >> 16):  # checked like tar links, never written
            _check_link(archive, info.filename, zf.read(info).decode("utf-8", "replace"))
            continue
        if not info.is_dir() and _wanted(target.relative_to(dest).as_posix(), include):
            plan.append((info, target))
    return plan


def _tar_plan(tf: tarfile.TarFile, archive: Path, dest: Path, include: tuple[str, ...]) -> list:
    """(member, target) of every regular file to write; raises on the first unsafe member.  Links
    are checked (an outward one fails the archive) but only regular files are written."""
    plan = []
    for member in tf.getmembers():
        target = _member_target(archive, member.name, dest)
        if member.issym():
            _check_link(archive, member.name, member.linkname)
        elif member.islnk():
            raise UnsafeArchive(f"{archive}: member {member.name!r} is a hard link (refused)")
        elif not (member.isfile() or member.isdir()):
            raise UnsafeArchive(f"{archive}: member {member.name!r} is a device or FIFO (refused)")
        if member.isfile() and _wanted(target.relative_to(dest).as_posix(), include):
            plan.append((member, target))
    return plan


def _write(plan: list, open_member) -> int:
    """Write the planned members (only after every member was checked); returns the count."""
    for member, target in plan:
        target.parent.mkdir(parents=True, exist_ok=True)
        with open_member(member) as src, open(target, "wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
    return len(plan)
