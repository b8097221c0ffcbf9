"""The task registry: every CLIP-TD task answers the same interface, and a new task is one module
plus a registry entry (here a toy task, trained, distilled from the cached teacher and evaluated)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from pipeline_steps import tasks
from pipeline_steps.clip_teacher import cache_clip_features
from pipeline_steps.data.registry import TASKS as TASK_DATASETS
from pipeline_steps.evaluate.vl_tasks import evaluate_clip_td
from pipeline_steps.metrics import accuracy, vqa_accuracy
from pipeline_steps.tasks import Example, Task
from pipeline_steps.tasks.examples import load_examples
from pipeline_steps.tasks.vqa import answer_vocabulary, vqa_targets
from pipeline_steps.train.clip_td import train_clip_td


def test_every_registered_task_has_a_prepared_dataset_and_the_whole_interface():
    assert list(tasks.TASKS) == list(TASK_DATASETS)
    for name, task in tasks.TASKS.items():
        assert task.name == name and task.title and task.figure_metric in task.headline
        assert task.figure_label.endswith("(%)") and "_" not in task.figure_label
        for method in ("example", "outputs", "loss", "teacher_confidence", "report"):
            assert getattr(type(task), method) is not getattr(Task, method), (name, method)
    with pytest.raises(ValueError, match="known: vqa, snli_ve, vcr"):
        tasks.get_task("gqa")


class Entailed(Task):
    """Toy task on SNLI-VE's records: does the image entail the hypothesis (yes / no)?"""

    name = "entailed"
    title = "Entailed?"
    headline = ("accuracy",)
    figure_metric = "accuracy"

    def example(self, record: dict) -> Example:
        return Example(record["id"], record["image"], [record["hypothesis"]], 0,
                       label=int(record["label"] == "entailment"))

    def outputs(self, examples, cfg, source):
        return ["no", "yes"]

    def loss(self, logits, examples, labels, rationale_labels, outputs):
        return torch.nn.functional.cross_entropy(logits, labels)

    def teacher_confidence(self, choice_logits, choice_target, labels, rationale_labels, snli_temperature):
        p = torch.sigmoid(snli_temperature * choice_logits[:, 0] / 100)
        return torch.where(labels == 1, p, 1 - p)

    def report(self, logits, examples, outputs, ci):
        correct = logits.argmax(1) == np.array([e.label for e in examples])
        return {"accuracy": ci(correct), "headline": {"accuracy": accuracy(logits.argmax(1), [e.label for e in examples])}}


def test_a_new_task_is_one_module_and_a_registry_entry(world, tmp_path, monkeypatch):  # noqa: F811
    params, root = world
    monkeypatch.setitem(tasks.TASKS, "entailed", Entailed())
    examples = load_examples("entailed", root / "snli_ve")
    assert {e.label for e in examples} == {0, 1}
    ids = [e.id for e in examples]
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": ids[:24], "eval": ids[24:]}))
    cfg = params["clip_td"]
    cfg["train"] = {**cfg["train"], "steps": 3}
    cache_clip_features("entailed", root / "clip", root / "snli_ve", tmp_path / "cache", cfg["teacher"],
                        torch.device("cpu"))
    summary = train_clip_td("entailed", "targeted", cfg, 0, root / "student", root / "snli_ve", split, None,
                            tmp_path / "cache", tmp_path / "run", tmp_path / "work")
    assert summary["outputs"] == 2 and np.isfinite(summary["final"]["loss_distill"])
    report = evaluate_clip_td(tmp_path / "run", root / "snli_ve", split, params["evaluate"])
    assert report["task"] == "entailed" and report["examples"] == len(ids) - 24
    assert 0 <= report["headline"]["accuracy"] <= 1


def test_vqa_targets_are_the_official_soft_scores(world):
    _, root = world
    examples = load_examples("vqa", root / "vqa")[:20]
    vocab = answer_vocabulary(examples, 1)
    targets = vqa_targets(examples, vocab)
    for e, row in zip(examples, targets):
        best = vocab[int(row.argmax())]
        assert row.max().item() == pytest.approx(vqa_accuracy(best, e.answers))


def test_split_with_unknown_ids_names_them(world, tmp_path):
    _, root = world
    with pytest.raises(ValueError, match="not-an-id"):
        load_examples("vqa", root / "vqa", ["not-an-id"])
