"""VCR: eight texts per question, Q->A (question + each answer) and QA->R (question + correct answer
+ each rationale), trained jointly in one model as UNITER does; the head gives each text one score.

Object tags (index lists) are written as the objects' names, ``[2, 3]`` as "circle and square".
The distilled text is question + correct answer. The teacher scores the same eight texts; its
confidence is the mean of its probabilities of the right answer and the right rationale.
"""

from __future__ import annotations

import numpy as np

from ..metrics import vcr_accuracies
from .base import Example, Task

CHOICES = 4  # answers, and rationales, per question


def render(tokens: list, objects: list[str]) -> str:
    words = []
    for tok in tokens:
        if isinstance(tok, list):
            words.append(" and ".join(objects[i] for i in tok))
        else:
            words.append(tok)
    return " ".join(words)


class Vcr(Task):
    name = "vcr"
    title = "VCR"
    headline = ("q2a", "qa2r", "q2ar")
    figure_metric = "q2ar"
    figure_label = "Q→AR accuracy (%)"

    def example(self, record: dict) -> Example:
        objects = record["objects"]
        question = render(record["question"], objects)
        answers = [render(a, objects) for a in record["answer_choices"]]
        rationales = [render(r, objects) for r in record["rationale_choices"]]
        a = int(record["answer_label"])
        texts = [f"{question} {x}" for x in answers] + [f"{question} {answers[a]} {r}" for r in rationales]
        return Example(record["id"], record["image"], texts, a, label=a,
                       rationale_label=int(record["rationale_label"]), choice_texts=texts)

    def labelled(self, record: dict) -> bool:
        return record.get("answer_label") is not None

    def outputs(self, examples, cfg, source):
        return ["score"]

    def loss(self, logits, examples, labels, rationale_labels, outputs):
        import torch.nn.functional as F

        scores = logits.view(len(examples), 2, CHOICES)
        return (F.cross_entropy(scores[:, 0], labels) + F.cross_entropy(scores[:, 1], rationale_labels)) / 2

    def teacher_choices(self, examples, candidates):
        return [e.choice_texts for e in examples], [-1] * len(examples)

    def teacher_confidence(self, choice_logits, choice_target, labels, rationale_labels, snli_temperature):
        p_answer = choice_logits[:, :CHOICES].softmax(-1).gather(1, labels.view(-1, 1)).squeeze(1)
        p_rationale = choice_logits[:, CHOICES:2 * CHOICES].softmax(-1).gather(1, rationale_labels.view(-1, 1)).squeeze(1)
        return (p_answer + p_rationale) / 2

    def report(self, logits, examples, outputs, ci):
        a_pred = logits[:, :CHOICES].argmax(1)
        r_pred = logits[:, CHOICES:].argmax(1)
        a_label = np.array([e.label for e in examples])
        r_label = np.array([e.rationale_label for e in examples])
        report = dict(vcr_accuracies(a_pred, a_label, r_pred, r_label))
        report["q2ar_ci"] = ci((a_pred == a_label) & (r_pred == r_label))
        report["headline"] = {k: report[k] for k in self.headline}
        return report
