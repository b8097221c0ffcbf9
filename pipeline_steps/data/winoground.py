"""Winoground (``facebook/winoground``): ``examples.jsonl`` plus ``images/<stem>.png``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .records import Rec, read_jsonl, require_file

COLLAPSED_TAGS = ("Object", "Relation", "Both")


@dataclass(frozen=True)
class WinogroundExample:
    id: int
    caption_0: str
    caption_1: str
    image_0: Path
    image_1: Path
    tag: str
    secondary_tag: str
    num_main_preds: int
    collapsed_tag: str


def load(root: str | Path) -> list[WinogroundExample]:
    """Read ``root/examples.jsonl``; image stems resolve to ``root/images/<stem>.png``."""
    root = Path(root)
    path = root / "examples.jsonl"
    examples = []
    for where, obj in read_jsonl(path):
        r = Rec(obj, path, where)
        images = [require_file(r, f"image_{k}", root / "images" / f"{r.get(f'image_{k}', str)}.png")
                  for k in (0, 1)]
        preds = r.get("num_main_preds", int)
        if preds not in (1, 2):
            r.fail(f"expected 1 or 2, got {preds}", "num_main_preds")
        examples.append(WinogroundExample(
            id=r.get("id", int), caption_0=r.get("caption_0", str), caption_1=r.get("caption_1", str),
            image_0=images[0], image_1=images[1], tag=r.get("tag", str),
            secondary_tag=r.get("secondary_tag", str), num_main_preds=preds,
            collapsed_tag=r.choice("collapsed_tag", COLLAPSED_TAGS)))
    return examples
