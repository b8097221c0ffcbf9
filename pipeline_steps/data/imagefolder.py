"""Class-folder image datasets (``<root>/<class>/<image>``), the layout of ImageNet and of CIFAR
exported to folders: what zero-shot classification reads.  Class names are folder names with
underscores read as spaces."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .records import FormatError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".JPEG", ".bmp", ".webp")


@dataclass(frozen=True)
class LabelledImage:
    image: Path
    rel_path: str
    label: str


def load(root: str | Path) -> tuple[list[str], list[LabelledImage]]:
    """(class names, images) sorted by class folder then file name."""
    root = Path(root)
    if not root.is_dir():
        raise FormatError(root, "", "class-folder dataset not found")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    if len(classes) < 2:
        raise FormatError(root, "", f"expected at least 2 class folders, found {len(classes)}")
    items = []
    for cls in classes:
        files = sorted(p for p in (root / cls).iterdir() if p.suffix in IMAGE_SUFFIXES)
        if not files:
            raise FormatError(root / cls, "", "class folder holds no images")
        items += [LabelledImage(f, f"{cls}/{f.name}", cls.replace("_", " ")) for f in files]
    return [c.replace("_", " ") for c in classes], items
