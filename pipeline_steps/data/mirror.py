"""A mirror of the real download files, packed from the synthetic world's raw sources.

``build_mirror(raw_root, out)`` writes every file of ``registry.REMOTE`` at its mirror path
(``<out>/<host>/<path>``) in the publisher's packaging (COCO's ``train2017.zip`` holding
``train2017/*.jpg``, VQA's zips holding the JSON files, CIFAR's binary batches, ...) and returns the
checksums of what it wrote, keyed like ``data.checksums``.  Served over HTTP and named in
``data.mirror``, it runs the paper-mode data stage end to end without the internet.
"""

from __future__ import annotations

import shutil
import tarfile
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import MissingInput
from ..io import atomic_write_json
from . import cifar, imagefolder
from .download import file_hashes
from .registry import REMOTE

# archive -> the raw-source paths (files or folders) it holds, at the same relative paths
PACKED: dict[tuple[str, str], tuple[str, ...]] = {
    ("coco", "annotations_trainval2017.zip"): ("annotations",),
    **{("coco", f"{s}.zip"): (s,) for s in ("train2017", "val2017", "train2014", "val2014")},
    ("flickr30k", "flickr30k-images.tar.gz"): ("flickr30k-images",),
    ("winoground", "images.zip"): ("images",),
    ("aro", "vgr_vga_images.zip"): ("images",),
    ("vqa", "v2_Questions_Train_mscoco.zip"): ("v2_OpenEnded_mscoco_train2014_questions.json",),
    ("vqa", "v2_Questions_Val_mscoco.zip"): ("v2_OpenEnded_mscoco_val2014_questions.json",),
    ("vqa", "v2_Annotations_Train_mscoco.zip"): ("v2_mscoco_train2014_annotations.json",),
    ("vqa", "v2_Annotations_Val_mscoco.zip"): ("v2_mscoco_val2014_annotations.json",),
    ("vcr", "vcr1annots.zip"): ("train.jsonl", "val.jsonl", "test.jsonl"),
    ("vcr", "vcr1images.zip"): ("vcr1images",),
}
# CIFAR stand-ins: the synthetic class-folder sets written in CIFAR's binary layout
CIFAR_FROM = {"cifar-10-binary.tar.gz": ("shapes", "cifar10"), "cifar-100-binary.tar.gz": ("colors", "cifar100")}


def _files(root: Path, rel_paths: tuple[str, ...]) -> list[tuple[Path, str]]:
    out = []
    for rel in rel_paths:
        path = root / rel
        if not path.exists():
            raise MissingInput(f"{path}: not in the synthetic raw source")
        found = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        out += [(p, p.relative_to(root).as_posix()) for p in found]
    return out


def _pack(members: list[tuple[Path, str]], archive: Path) -> None:
    archive.parent.mkdir(parents=True, exist_ok=True)
    if archive.name.endswith(".zip"):
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
            for path, arcname in members:
                info = zipfile.ZipInfo(arcname, date_time=(2020, 1, 1, 0, 0, 0))
                zf.writestr(info, path.read_bytes())
    else:
        with tarfile.open(archive, "w:gz") as tf:
            for path, arcname in members:
                info = tf.gettarinfo(path, arcname)
                info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
                with open(path, "rb") as f:
                    tf.addfile(info, f)


def _cifar_archive(class_root: Path, name: str, archive: Path, work: Path) -> None:
    folder, test_file, names_file, label_bytes, _ = cifar.LAYOUTS[name]
    classes, images = imagefolder.load(class_root)
    labels = [classes.index(it.label) for it in images]
    pixels = [np.asarray(Image.open(it.image).convert("RGB").resize((cifar.SIDE, cifar.SIDE))) for it in images]
    root = work / folder
    cifar.write_binary(root / test_file, labels, pixels, label_bytes)
    (root / names_file).write_text("\n".join(c.replace(" ", "_") for c in classes) + "\n")
    if name == "cifar100":
        (root / "coarse_label_names.txt").write_text("all\n")
    _pack(_files(work, (folder,)), archive)


def build_mirror(raw_root: str | Path, out: str | Path) -> dict[str, dict]:
    """Write every registered file under ``out``; returns {"<source>/<file>": {size, sha256}}."""
    raw_root, out = Path(raw_root), Path(out)
    checksums = {}
    for source, spec in REMOTE.items():
        for f in spec.files:
            target = out / f.mirror_path
            target.parent.mkdir(parents=True, exist_ok=True)
            if (source, f.name) in PACKED:
                _pack(_files(raw_root / source, PACKED[(source, f.name)]), target)
            elif f.name in CIFAR_FROM:
                folder, name = CIFAR_FROM[f.name]
                _cifar_archive(raw_root / source / folder, name, target, out / ".work" / name)
            else:
                target.write_bytes((raw_root / source / (f.place or f.name)).read_bytes())
            size, sha, _ = file_hashes(target)
            checksums[f"{source}/{f.name}"] = {"size": size, "sha256": sha}
    shutil.rmtree(out / ".work", ignore_errors=True)
    atomic_write_json(out / "checksums.json", checksums)
    return checksums
