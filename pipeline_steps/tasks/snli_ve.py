"""SNLI-VE: one text, the hypothesis (the image is the premise); the label is one of three classes.

The teacher has no classes to judge: it scores the hypothesis against the image, and its
confidence follows from ``p = sigmoid(T * z)``, ``z`` the similarity standardised in the batch:
``p`` for entailment, ``1 - p`` for contradiction, ``1 - |2p - 1|`` for neutral (the teacher is
right to be undecided).
"""

from __future__ import annotations

import numpy as np

from ..data.snli_ve import LABELS
from ..metrics import group_accuracies
from .base import Example, Task


class SnliVe(Task):
    name = "snli_ve"
    title = "SNLI-VE"
    headline = ("accuracy",)
    figure_metric = "accuracy"
    figure_label = "accuracy (%)"

    def example(self, record: dict) -> Example:
        return Example(record["id"], record["image"], [record["hypothesis"]], 0, label=LABELS.index(record["label"]))

    def outputs(self, examples, cfg, source):
        return list(LABELS)

    def loss(self, logits, examples, labels, rationale_labels, outputs):
        import torch.nn.functional as F

        return F.cross_entropy(logits, labels)

    def teacher_confidence(self, choice_logits, choice_target, labels, rationale_labels, snli_temperature):
        import torch

        s = choice_logits[:, 0]
        z = (s - s.mean()) / (s.std(unbiased=False) + 1e-6) if len(s) > 1 else torch.zeros_like(s)
        p = torch.sigmoid(snli_temperature * z)
        by_label = torch.stack([p, 1 - (2 * p - 1).abs(), 1 - p], dim=1)  # LABELS order
        return by_label.gather(1, labels.view(-1, 1)).squeeze(1)

    def report(self, logits, examples, outputs, ci):
        pred = logits.argmax(1)
        label = np.array([e.label for e in examples])
        report = {"accuracy": ci(pred == label),
                  "per_label": group_accuracies(pred == label, [LABELS[y] for y in label])}
        report["headline"] = {"accuracy": report["accuracy"]["value"]}
        return report
