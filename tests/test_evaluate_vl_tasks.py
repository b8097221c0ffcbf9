"""CLIP-TD evaluation (evaluate/vl_tasks.py): scores a run's saved predictions and its blank-image
baseline, refuses other ids."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline_steps.evaluate.vl_tasks import evaluate_clip_td
from pipeline_steps.tasks.examples import load_examples
from pipeline_steps.train.clip_td import save_predictions


def test_evaluation_scores_the_saved_predictions_and_refuses_other_ids(world, tmp_path):
    params, root = world
    examples = load_examples("snli_ve", root / "snli_ve")[:6]
    ids = [e.id for e in examples]
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": ids[:2], "eval": ids}))
    run = tmp_path / "run"
    run.mkdir()
    (run / "task.json").write_text(json.dumps({"task": "snli_ve", "outputs": ["entailment", "neutral",
                                                                              "contradiction"]}))
    # logits that are right on the first four examples and wrong on the last two
    logits = np.zeros((6, 3), dtype=np.float32)
    for i, e in enumerate(examples):
        logits[i, e.label if i < 4 else (e.label + 1) % 3] = 1
    # with blanked images, right on the first example only
    blank = np.roll(logits, 1, axis=1)
    blank[0] = logits[0]
    save_predictions(run / "predictions.npz", ids, logits, blank)
    report = evaluate_clip_td(run, root / "snli_ve", split, params["evaluate"])
    assert report["accuracy"]["value"] == pytest.approx(4 / 6) and report["examples"] == 6
    assert report["blank_image"]["headline"] == {"accuracy": pytest.approx(1 / 6)}
    assert report["blank_image"]["accuracy"]["ci_low"] <= 1 / 6 <= report["blank_image"]["accuracy"]["ci_high"]
    save_predictions(run / "predictions.npz", ids[::-1], logits, blank)
    with pytest.raises(ValueError, match=f"other ids than the evaluation ids of {split}"):
        evaluate_clip_td(run, root / "snli_ve", split, params["evaluate"])
