"""VQA v2: one text, the question; the head scores every answer of the answer vocabulary.

The target of an answer is its soft score, 0 / 0.3 / 0.6 / 0.9 / 1 by matching annotators (the
official accuracy's closed form), trained with binary cross-entropy scaled by the number of answers
(UNITER/ViLT). The teacher judges "question + answer" prompts of candidate answers (the most
frequent majority answers of each answer type in the training examples) and its confidence is the
softmax probability of the majority answer among them.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from ..errors import InputError
from ..metrics import normalize_vqa_answer, vqa_accuracy, vqa_soft_score
from .base import Example, Task


def answer_vocabulary(examples: list[Example], min_count: int) -> list[str]:
    """Normalised human answers given at least ``min_count`` times in ``examples``, most frequent first."""
    counts = Counter(normalize_vqa_answer(a) for e in examples for a in e.answers)
    return [a for a, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if n >= min_count]


def majority_answer(e: Example) -> str:
    counts = Counter(normalize_vqa_answer(a) for a in e.answers)
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]


def vqa_candidates(examples: list[Example], per_type: int) -> dict[str, list[str]]:
    """The ``per_type`` most frequent majority answers of each answer type."""
    counts: dict[str, Counter] = {}
    for e in examples:
        counts.setdefault(e.answer_type, Counter())[majority_answer(e)] += 1
    return {t: [a for a, _ in sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))[:per_type]]
            for t, c in sorted(counts.items())}


def vqa_targets(examples: list[Example], vocabulary: list[str]):
    """(B, |vocabulary|) soft scores of every answer (answers outside the vocabulary are dropped)."""
    import torch

    index = {a: i for i, a in enumerate(vocabulary)}
    targets = torch.zeros(len(examples), len(vocabulary))
    for b, e in enumerate(examples):
        for answer, n in Counter(normalize_vqa_answer(a) for a in e.answers).items():
            if answer in index:
                targets[b, index[answer]] = vqa_soft_score(n)
    return targets


class VQA(Task):
    name = "vqa"
    title = "VQA v2"
    headline = ("vqa_accuracy",)
    figure_metric = "vqa_accuracy"
    figure_label = "VQA accuracy (%)"

    def example(self, record: dict) -> Example:
        return Example(record["id"], record["image"], [record["question"]], 0,
                       answers=list(record["answers"]), answer_type=record["answer_type"])

    def outputs(self, examples: list[Example], cfg: dict, source: str) -> list[str]:
        min_count = int(cfg["vqa"]["min_answer_count"])
        vocabulary = answer_vocabulary(examples, min_count)
        if not vocabulary:
            raise InputError(f"{source}: no answer is given {min_count} times (clip_td.vqa.min_answer_count)")
        return vocabulary

    def loss(self, logits, examples, labels, rationale_labels, outputs):
        import torch.nn.functional as F

        targets = vqa_targets(examples, outputs).to(logits.device)
        return F.binary_cross_entropy_with_logits(logits, targets) * targets.shape[1]

    def teacher_candidates(self, examples, teacher_cfg):
        return vqa_candidates(examples, teacher_cfg["vqa_candidates"])

    def teacher_choices(self, examples, candidates):
        texts, targets = [], []
        for e in examples:
            answers = list((candidates or {}).get(e.answer_type, []))
            gt = majority_answer(e)
            if gt not in answers:
                answers = answers[:-1] + [gt] if answers else [gt]
            texts.append([f"{e.texts[0]} {a}" for a in answers])
            targets.append(answers.index(gt))
        return texts, targets

    def teacher_confidence(self, choice_logits, choice_target, labels, rationale_labels, snli_temperature):
        return choice_logits.softmax(-1).gather(1, choice_target.view(-1, 1)).squeeze(1)

    def report(self, logits, examples, outputs, ci):
        answers = [outputs[i] for i in logits.argmax(1).tolist()]
        scores = [vqa_accuracy(a, e.answers) for a, e in zip(answers, examples)]
        report = {"vqa_accuracy": ci(scores)}
        report["per_answer_type"] = {
            t: float(np.mean([s for s, e in zip(scores, examples) if e.answer_type == t]))
            for t in sorted({e.answer_type for e in examples})}
        report["headline"] = {"vqa_accuracy": report["vqa_accuracy"]["value"]}
        return report
