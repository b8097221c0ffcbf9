"""ARO (``mertyg/vision-language-models-are-bows``): VG-Relation, VG-Attribution, and the Order sets.

VG files are a JSON list of records with ``image_path`` (relative to ``images/``), a crop box
``bbox_x/y/w/h`` and ``true_caption``/``false_caption``.  COCO-Order and Flickr30k-Order start from
the BLIP Karpathy test captions (see :mod:`pipeline_steps.data.coco`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .records import Rec, json_list, read_json, require_file


@dataclass(frozen=True)
class VgItem:
    index: int
    image: Path
    image_path: str
    bbox: tuple[float, float, float, float]  # x, y, w, h
    true_caption: str
    false_caption: str
    relation_name: str | None  # VG-Relation
    attributes: tuple[str, str] | None  # VG-Attribution


def _bbox(r: Rec) -> tuple[float, float, float, float]:
    box = tuple(float(r.get(f"bbox_{k}", (int, float))) for k in "xywh")
    if box[2] <= 0 or box[3] <= 0:
        r.fail(f"crop box has no area: w={box[2]}, h={box[3]}", "bbox_w")
    return box  # type: ignore[return-value]


def load_vg(root: str | Path, kind: str) -> list[VgItem]:
    """``kind`` is ``relation`` or ``attribution``."""
    root = Path(root)
    path = root / f"visual_genome_{kind}.json"
    items = []
    for i, r in enumerate(json_list(path, read_json(path))):
        image_path = r.get("image_path", str)
        relation = attributes = None
        if kind == "relation":
            relation = r.get("relation_name", str)
        else:
            attributes = tuple(r.str_list("attributes", length=2))
        items.append(VgItem(index=i, image=require_file(r, "image_path", root / "images" / image_path),
                            image_path=image_path, bbox=_bbox(r),
                            true_caption=r.get("true_caption", str),
                            false_caption=r.get("false_caption", str),
                            relation_name=relation, attributes=attributes))
    return items
