"""SNLI-VE (``necla-ml/SNLI-VE``): ``snli_ve_{train,dev,test}.jsonl``; images are Flickr30k.

The image key is ``Flickr30K_ID`` (newer generator, no extension) or ``Flikr30kID`` (original
release, sic, with ``.jpg``); both are accepted.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .records import Rec, read_jsonl, require_file

LABELS = ("entailment", "neutral", "contradiction")
SPLITS = ("train", "dev", "test")


@dataclass(frozen=True)
class SnliVeItem:
    pair_id: str
    image_id: str
    image: Path
    premise: str
    hypothesis: str
    label: str


def _image_id(r: Rec) -> str:
    for field in ("Flickr30K_ID", "Flikr30kID"):
        if field in r.obj:
            value = r.get(field, (str, int))
            return str(value).removesuffix(".jpg")
    r.fail("missing (neither 'Flickr30K_ID' nor 'Flikr30kID' is present)", "Flickr30K_ID")


def load(root: str | Path, split: str, image_dir: str | Path) -> list[SnliVeItem]:
    root, image_dir = Path(root), Path(image_dir)
    path = root / f"snli_ve_{split}.jsonl"
    items = []
    for where, obj in read_jsonl(path):
        r = Rec(obj, path, where)
        image_id = _image_id(r)
        items.append(SnliVeItem(r.get("pairID", str), image_id,
                                require_file(r, "Flickr30K_ID", image_dir / f"{image_id}.jpg"),
                                r.get("sentence1", str, ""), r.get("sentence2", str),
                                r.choice("gold_label", LABELS)))
    return items
