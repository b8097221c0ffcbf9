"""MS-COCO captions (``annotations/captions_<set>.json``) and the BLIP/LAVIS Karpathy-split files.

The Karpathy files (``coco_karpathy_test.json``, ``flickr30k_test.json``) are a JSON list of
``{"image": "<dir>/<file>", "caption": [5 strings]}``; ARO's COCO-Order and Flickr30k-Order read them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .records import FormatError, json_list, read_json, require_file


@dataclass(frozen=True)
class CocoCaption:
    id: int
    image_id: int
    file_name: str
    image: Path
    caption: str


@dataclass(frozen=True)
class KarpathyImage:
    image: Path
    image_name: str  # as written in the file, e.g. "val2014/COCO_val2014_000000391895.jpg"
    captions: list[str]


def load_captions(path: str | Path, image_dir: str | Path) -> list[CocoCaption]:
    """Caption annotations of one image set; ``image_dir`` holds that set's JPEGs."""
    path, image_dir = Path(path), Path(image_dir)
    data = read_json(path)
    files = {}
    for r in json_list(path, data, "images"):
        image_id = r.get("id", int)
        files[image_id] = (r.get("file_name", str), r)
    captions = []
    for r in json_list(path, data, "annotations"):
        image_id = r.get("image_id", int)
        if image_id not in files:
            r.fail(f"image {image_id} is not listed under 'images'", "image_id")
        file_name, image_rec = files[image_id]
        captions.append(CocoCaption(id=r.get("id", int), image_id=image_id, file_name=file_name,
                                    image=require_file(image_rec, "file_name", image_dir / file_name),
                                    caption=r.get("caption", str)))
    return captions


def load_karpathy_blip(path: str | Path, image_root: str | Path) -> list[KarpathyImage]:
    """BLIP-style Karpathy val/test file; ``image`` paths are relative to ``image_root``."""
    path, image_root = Path(path), Path(image_root)
    items = []
    for r in json_list(path, read_json(path)):
        name = r.get("image", str)
        captions = r.get("caption", (list, str))
        if isinstance(captions, str):  # train-style rows carry one caption
            captions = [captions]
        if not captions or not all(isinstance(c, str) for c in captions):
            r.fail("expected a non-empty list of strings", "caption")
        items.append(KarpathyImage(require_file(r, "image", image_root / name), name, captions))
    return items


def load_flickr_tokens(path: str | Path) -> dict[str, list[str]]:
    """Flickr30k ``results_20130124.token``: ``<file>#<k><TAB><caption>`` per line."""
    path = Path(path)
    if not path.is_file():
        raise FormatError(path, "", "file not found")
    captions: dict[str, list[str]] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        key, sep, caption = line.partition("\t")
        name, hash_, k = key.partition("#")
        if not sep or not hash_ or not k.isdigit():
            raise FormatError(path, f"line {n}", "expected '<image>.jpg#<k><TAB><caption>'")
        captions.setdefault(name, []).append(caption)
    return captions
