"""What the pipeline reads: raw sources (what a download leaves on disk) and prepared datasets.

A *raw source* is one directory under ``data/raw/``; a *prepared dataset* is one directory under
``data/prepared/`` built from one or more raw sources (SugarCrepe needs COCO's val2017 images,
SNLI-VE needs Flickr30k, ...).
"""

from __future__ import annotations

RAW_SOURCES = ("coco", "flickr30k", "winoground", "aro", "sugarcrepe", "vqa", "snli_ve", "vcr",
               "zeroshot")

# prepared dataset -> raw sources it is built from
PREPARED_FROM: dict[str, tuple[str, ...]] = {
    "coco": ("coco",),
    "winoground": ("winoground",),
    "aro_vg_relation": ("aro",),
    "aro_vg_attribution": ("aro",),
    "aro_coco_order": ("coco",),
    "aro_flickr_order": ("flickr30k",),
    "sugarcrepe": ("sugarcrepe", "coco"),
    "vqa": ("vqa", "coco"),
    "snli_ve": ("snli_ve", "flickr30k"),
    "vcr": ("vcr",),
    "zeroshot_shapes": ("zeroshot",),
    "zeroshot_colors": ("zeroshot",),
}

PREPARED_DATASETS = tuple(PREPARED_FROM)

# The tasks that low-shot and domain-shift splits are built for, with the record field that
# stratifies low-shot sampling, the split holding training records and the one used for evaluation.
TASKS: dict[str, dict[str, str]] = {
    "vqa": {"label": "multiple_choice_answer", "train": "train", "eval": "val"},
    "snli_ve": {"label": "label", "train": "train", "eval": "test"},
    "vcr": {"label": "answer_label", "train": "train", "eval": "val"},
}
