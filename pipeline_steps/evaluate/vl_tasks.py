"""Evaluation of a CLIP-TD student on its split's evaluation ids: VQA accuracy, SNLI-VE accuracy,
VCR Q->A / QA->R / Q->AR, each with a bootstrap CI over examples, and per-group breakdowns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..data.shards import PreparedDataset
from ..data.snli_ve import LABELS as SNLI_LABELS
from ..train.clip_td import VCR_CHOICES, load_clip_td, predict
from ..train.vl_tasks import load_examples, read_split
from .metrics import group_accuracies, vcr_accuracies, vqa_accuracy, with_ci


def evaluate_clip_td(model_folder: str | Path, prepared: str | Path, split_file: str | Path,
                     eval_cfg: dict, device: torch.device) -> dict:
    model, meta = load_clip_td(model_folder, device)
    task = meta["task"]
    split = read_split(split_file)
    examples = load_examples(task, prepared, split["eval"])
    with PreparedDataset(prepared) as data:
        logits = predict(model, examples, data, int(eval_cfg["batch_size"]), int(meta["max_words"]))
    boot = eval_cfg["bootstrap"]
    ci = lambda values: with_ci(values, boot["n"], boot["seed"], boot["alpha"])  # noqa: E731
    report: dict = {"task": task, "split": Path(split_file).stem, "examples": len(examples)}
    if task == "vqa":
        answers = [meta["outputs"][i] for i in logits.argmax(1).tolist()]
        scores = [vqa_accuracy(a, e.answers) for a, e in zip(answers, examples)]
        report["vqa_accuracy"] = ci(scores)
        report["per_answer_type"] = {
            t: float(np.mean([s for s, e in zip(scores, examples) if e.answer_type == t]))
            for t in sorted({e.answer_type for e in examples})}
        report["headline"] = {"vqa_accuracy": report["vqa_accuracy"]["value"]}
    elif task == "snli_ve":
        pred = logits.argmax(1).numpy()
        label = np.array([e.label for e in examples])
        report["accuracy"] = ci(pred == label)
        report["per_label"] = group_accuracies(pred == label, [SNLI_LABELS[y] for y in label])
        report["headline"] = {"accuracy": report["accuracy"]["value"]}
    else:
        a_pred = logits[:, :VCR_CHOICES].argmax(1).numpy()
        r_pred = logits[:, VCR_CHOICES:].argmax(1).numpy()
        a_label = np.array([e.label for e in examples])
        r_label = np.array([e.rationale_label for e in examples])
        report.update({k: v for k, v in vcr_accuracies(a_pred, a_label, r_pred, r_label).items()})
        report["q2ar_ci"] = ci((a_pred == a_label) & (r_pred == r_label))
        report["headline"] = {k: report[k] for k in ("q2a", "qa2r", "q2ar")}
    return report
