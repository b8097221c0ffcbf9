"""A task's examples from its prepared dataset (the split files that choose them are read by
``pipeline_steps.splits.load_split``).

Each labelled prepared record becomes an :class:`~pipeline_steps.tasks.base.Example` through its
task's ``example`` (``vqa.py``, ``snli_ve.py``, ``vcr.py``).
"""

from __future__ import annotations

from pathlib import Path

from ..data.shards import PreparedDataset
from ..errors import InputError
from . import get_task
from .base import Example

# a trained run's outputs on its split's evaluation ids (ids and logits), in the run's folder
PREDICTIONS = "predictions.npz"
# the image-ablated baselines saved beside the logits (as ``<name>_logits``) and reported by name: every
# image blanked (what the text alone gives) and every image swapped for another evaluation image (what a
# wrong, in-distribution image gives)
BLANK_IMAGE = "blank_image"
SHUFFLED_IMAGE = "shuffled_image"
IMAGE_ABLATIONS = (BLANK_IMAGE, SHUFFLED_IMAGE)


def load_examples(task: str, prepared: str | Path, ids: list[str] | None = None) -> list[Example]:
    """Examples of the labelled records of a prepared task dataset, in ``ids`` order when given."""
    spec = get_task(task)
    with PreparedDataset(prepared) as data:
        records = {r["id"]: r for r in data.records() if spec.labelled(r)}
    if ids is None:
        return [spec.example(r) for r in records.values()]
    unknown = [i for i in ids if i not in records]
    if unknown:
        raise InputError(f"{len(unknown)} ids of the split are not labelled records of {prepared}: "
                         f"{unknown[:5]}")
    return [spec.example(records[i]) for i in ids]
