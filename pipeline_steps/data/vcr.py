"""VCR (visualcommonsense.com): ``{train,val,test}.jsonl`` + ``vcr1images/<movie dir>/``.

Questions, answers and rationales are token lists in which a detection tag is a list of indices
into ``objects``; ``test.jsonl`` has no labels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .records import Rec, read_json, read_jsonl, require_file

SPLITS = ("train", "val", "test")
Tokens = list  # list[str | list[int]]


@dataclass(frozen=True)
class VcrItem:
    annot_id: str
    movie: str
    image: Path
    img_fn: str
    metadata_fn: str
    objects: list[str]
    boxes: list[list[float]]  # [x1, y1, x2, y2, score] per object, from the metadata file
    question: Tokens
    answer_choices: list[Tokens]
    answer_label: int | None
    rationale_choices: list[Tokens]
    rationale_label: int | None

    @property
    def source(self) -> str:
        """The video source, from the image folder prefix (``lsmdc`` or ``movieclips``)."""
        return self.img_fn.split("_", 1)[0]


def _tokens(r: Rec, field: str, value, n_objects: int) -> Tokens:
    if not isinstance(value, list) or not value:
        r.fail("expected a non-empty token list", field)
    for tok in value:
        if isinstance(tok, list):
            if not tok or not all(isinstance(i, int) and 0 <= i < n_objects for i in tok):
                r.fail(f"object tag {tok} does not index the {n_objects} objects", field)
        elif not isinstance(tok, str):
            r.fail(f"token {tok!r} is neither a word nor an object tag", field)
    return value


def _choices(r: Rec, field: str, n_objects: int) -> list[Tokens]:
    choices = r.get(field, list)
    if len(choices) != 4:
        r.fail(f"expected 4 choices, got {len(choices)}", field)
    return [_tokens(r, field, c, n_objects) for c in choices]


def _label(r: Rec, field: str, labelled: bool) -> int | None:
    if not labelled:
        return None
    value = r.get(field, int)
    if not 0 <= value <= 3:
        r.fail(f"expected 0..3, got {value}", field)
    return value


def load(root: str | Path, split: str) -> list[VcrItem]:
    root = Path(root)
    path = root / f"{split}.jsonl"
    image_root = root / "vcr1images"
    items = []
    for where, obj in read_jsonl(path):
        r = Rec(obj, path, where)
        objects = r.str_list("objects")
        img_fn, metadata_fn = r.get("img_fn", str), r.get("metadata_fn", str)
        meta_path = require_file(r, "metadata_fn", image_root / metadata_fn)
        meta = Rec(read_json(meta_path), meta_path, "")
        boxes = meta.get("boxes", list)
        if len(boxes) != len(objects):
            r.fail(f"{len(objects)} objects but {len(boxes)} boxes in {metadata_fn}", "objects")
        labelled = split != "test"
        items.append(VcrItem(
            annot_id=r.get("annot_id", str), movie=r.get("movie", str),
            image=require_file(r, "img_fn", image_root / img_fn), img_fn=img_fn,
            metadata_fn=metadata_fn, objects=objects, boxes=boxes,
            question=_tokens(r, "question", r.get("question", list), len(objects)),
            answer_choices=_choices(r, "answer_choices", len(objects)),
            answer_label=_label(r, "answer_label", labelled),
            rationale_choices=_choices(r, "rationale_choices", len(objects)),
            rationale_label=_label(r, "rationale_label", labelled)))
    return items
