"""SugarCrepe (``RAIVNLab/sugar-crepe``): seven JSON dicts ``data/<category>.json``.

Each maps a string index to ``{"filename", "caption", "negative_caption"}``; images are COCO val2017.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .records import FormatError, Rec, read_json, require_file

CATEGORIES = ("add_att", "add_obj", "replace_att", "replace_obj", "replace_rel", "swap_att",
              "swap_obj")


@dataclass(frozen=True)
class SugarCrepeItem:
    category: str
    key: str
    image: Path
    filename: str
    caption: str
    negative_caption: str


def load(root: str | Path, image_dir: str | Path) -> list[SugarCrepeItem]:
    root, image_dir = Path(root), Path(image_dir)
    items = []
    for category in CATEGORIES:
        path = root / "data" / f"{category}.json"
        data = read_json(path)
        if not isinstance(data, dict):
            raise FormatError(path, "", f"expected a JSON object keyed by index, got {type(data).__name__}")
        for key, obj in data.items():
            r = Rec(obj, path, f"[{key!r}]")
            filename = r.get("filename", str)
            items.append(SugarCrepeItem(category, key, require_file(r, "filename", image_dir / filename),
                                        filename, r.get("caption", str), r.get("negative_caption", str)))
    return items
