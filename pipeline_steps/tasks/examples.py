"""The three CLIP-TD tasks as model inputs: texts per example, labels, and the text that is distilled.

Each prepared record becomes an :class:`Example` with the image key, the student's input texts and
the labels:

- VQA v2: one text, the question; the target is the soft score of every answer of the answer
  vocabulary (0 / 0.3 / 0.6 / 0.9 / 1 by matching annotators, the official accuracy's closed form).
- SNLI-VE: one text, the hypothesis (the image is the premise); the label is one of three classes.
- VCR: eight texts, Q->A (question + each answer) and QA->R (question + correct answer + each
  rationale), trained jointly in one model as UNITER does; labels are the answer and rationale
  indices.  Object tags (index lists) are written as the objects' names, ``[2, 3]`` as
  "circle and square".

The distilled text of an example is the one whose tokens meet the teacher's: the question (VQA),
the hypothesis (SNLI-VE), question + correct answer (VCR).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError
from ..data.shards import PreparedDataset
from ..data.snli_ve import LABELS as SNLI_LABELS
from .vqa_answers import normalize_vqa_answer

TASK_NAMES = ("vqa", "snli_ve", "vcr")
VCR_CHOICES = 4  # answers, and rationales, per VCR question
# a trained run's outputs on its split's evaluation ids (ids and logits), in the run's folder
PREDICTIONS = "predictions.npz"


@dataclass
class Example:
    id: str
    image: str
    texts: list[str]
    distill_index: int  # which of ``texts`` is distilled
    label: int = -1  # SNLI-VE class; VCR answer index
    rationale_label: int = -1  # VCR
    answers: list[str] = field(default_factory=list)  # VQA: the ten human answers
    answer_type: str = ""  # VQA
    choice_texts: list[str] = field(default_factory=list)  # VQA/VCR: texts the teacher scores

    @property
    def distill_text(self) -> str:
        return self.texts[self.distill_index]


def render_vcr(tokens: list, objects: list[str]) -> str:
    words = []
    for tok in tokens:
        if isinstance(tok, list):
            words.append(" and ".join(objects[i] for i in tok))
        else:
            words.append(tok)
    return " ".join(words)


def example_of(task: str, record: dict) -> Example:
    if task == "vqa":
        return Example(record["id"], record["image"], [record["question"]], 0,
                       answers=list(record["answers"]), answer_type=record["answer_type"])
    if task == "snli_ve":
        return Example(record["id"], record["image"], [record["hypothesis"]], 0,
                       label=SNLI_LABELS.index(record["label"]))
    if task == "vcr":
        objects = record["objects"]
        question = render_vcr(record["question"], objects)
        answers = [render_vcr(a, objects) for a in record["answer_choices"]]
        rationales = [render_vcr(r, objects) for r in record["rationale_choices"]]
        a = int(record["answer_label"])
        texts = [f"{question} {x}" for x in answers] + \
                [f"{question} {answers[a]} {r}" for r in rationales]
        return Example(record["id"], record["image"], texts, a, label=a,
                       rationale_label=int(record["rationale_label"]), choice_texts=texts)
    raise ValueError(f"unknown CLIP-TD task {task!r}; known: {', '.join(TASK_NAMES)}")


def labelled(task: str, record: dict) -> bool:
    return task != "vcr" or record.get("answer_label") is not None


def load_examples(task: str, prepared: str | Path, ids: list[str] | None = None) -> list[Example]:
    """Examples of the labelled records of a prepared task dataset, in ``ids`` order when given."""
    with PreparedDataset(prepared) as data:
        records = {r["id"]: r for r in data.records() if labelled(task, r)}
    if ids is None:
        return [example_of(task, r) for r in records.values()]
    unknown = [i for i in ids if i not in records]
    if unknown:
        raise InputError(f"{len(unknown)} ids of the split are not labelled records of {prepared}: "
                         f"{unknown[:5]}")
    return [example_of(task, records[i]) for i in ids]


def read_split(path: str | Path) -> dict:
    split = json.loads(Path(path).read_text())
    for key in ("train", "eval"):
        if not isinstance(split.get(key), list) or not split[key]:
            raise InputError(f"{path}: '{key}' must be a non-empty list of record ids")
    return split


# --- VQA answers ---------------------------------------------------------------------------------------

def answer_vocabulary(examples: list[Example], min_count: int) -> list[str]:
    """Normalised human answers given at least ``min_count`` times in ``examples``, most frequent first."""
    counts = Counter(normalize_vqa_answer(a) for e in examples for a in e.answers)
    return [a for a, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if n >= min_count]


def majority_answer(e: Example) -> str:
    counts = Counter(normalize_vqa_answer(a) for a in e.answers)
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
