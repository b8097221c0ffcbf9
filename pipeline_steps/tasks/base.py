"""What every CLIP-TD task provides, and the example it turns a prepared record into.

A task (one module each: ``vqa.py``, ``snli_ve.py``, ``vcr.py``; registered in ``__init__.py``)
answers every task-specific question the training, the teacher, the evaluation and the tables ask:

- ``example(record)``: the student's input texts, the labels and the text that is distilled;
- ``outputs(examples, cfg, source)``: the names of the task head's outputs (VQA: the answer vocabulary);
- ``loss(logits, examples, labels, rationale_labels, outputs)``: the task loss;
- ``teacher_candidates`` / ``teacher_choices``: the texts the CLIP teacher judges per example, and
  ``teacher_confidence``: its confidence in the ground truth (CLIP-TD's instance weights);
- ``report(logits, examples, outputs, ci)``: the metrics of the evaluation ids, and ``headline``,
  the keys the tables and figures show (``figure_metric`` on the figures).

Training-side methods import torch when called: evaluation scores saved logits with numpy alone,
and a job that imports torch pays ~2 s for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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
    choice_texts: list[str] = field(default_factory=list)  # VCR: texts the teacher scores

    @property
    def distill_text(self) -> str:
        return self.texts[self.distill_index]


class Task:
    name: str  # the prepared dataset, run names and params
    title: str  # tables and figures
    headline: tuple[str, ...]  # report keys shown in the tables
    figure_metric: str  # the one the figures show
    figure_label: str  # its axis label, in words with the unit

    def example(self, record: dict) -> Example:
        raise NotImplementedError

    def labelled(self, record: dict) -> bool:
        """Whether a prepared record has the labels training and evaluation need."""
        return True

    def outputs(self, examples: list[Example], cfg: dict, source: str) -> list[str]:
        """Names of the task head's outputs (``cfg``: the clip_td params; ``source`` names the
        examples' split in errors)."""
        raise NotImplementedError

    def loss(self, logits, examples: list[Example], labels, rationale_labels, outputs: list[str]):
        raise NotImplementedError

    def teacher_candidates(self, examples: list[Example], teacher_cfg: dict) -> Any:
        """What ``teacher_choices`` needs beyond each example, drawn from training examples (VQA:
        candidate answers); None when the task needs nothing."""
        return None

    def teacher_choices(self, examples: list[Example], candidates: Any) -> tuple[list[list[str]], list[int]]:
        """The texts the teacher scores against each image, and the ground truth's index (or -1)."""
        return [[e.distill_text] for e in examples], [-1] * len(examples)

    def teacher_confidence(self, choice_logits, choice_target, labels, rationale_labels, snli_temperature: float):
        """(B,) the teacher's confidence in each example's ground truth, in [0, 1]."""
        raise NotImplementedError

    def report(self, logits, examples: list[Example], outputs: list[str], ci) -> dict:
        """Metrics of saved (N, outputs) logits; ``ci(values)`` adds a bootstrap CI."""
        raise NotImplementedError
