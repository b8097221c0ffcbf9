"""CLIP-TD evaluation (evaluate/vl_tasks.py): scores a run's saved predictions and its blank- and
shuffled-image baselines, refuses other ids."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline_steps.data.shards import PreparedDataset
from pipeline_steps.evaluate.vl_tasks import evaluate_clip_td
from pipeline_steps.tasks.examples import load_examples
from pipeline_steps.train.clip_td import save_predictions, shuffled_images


def test_evaluation_scores_the_saved_predictions_and_refuses_other_ids(world, tmp_path):
    params, root = world
    every = load_examples("snli_ve", root / "snli_ve")
    with PreparedDataset(root / "snli_ve") as data:
        by_domain = {d: [e for e in every if data.domain(e.image) == d] for d in ("plain", "textured")}
    examples = by_domain["plain"][:3] + by_domain["textured"][:3]
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
    # with shuffled images, right on the first three
    shuffled = logits.copy()
    shuffled[3] = blank[3]
    save_predictions(run / "predictions.npz", ids, logits, blank, shuffled)
    report = evaluate_clip_td(run, root / "snli_ve", split, params["evaluate"])
    assert report["accuracy"]["value"] == pytest.approx(4 / 6) and report["examples"] == 6
    assert report["blank_image"]["headline"] == {"accuracy": pytest.approx(1 / 6)}
    assert report["blank_image"]["accuracy"]["ci_low"] <= 1 / 6 <= report["blank_image"]["accuracy"]["ci_high"]
    assert report["shuffled_image"]["headline"] == {"accuracy": pytest.approx(3 / 6)}
    assert set(report["shuffled_image"]["per_label"]) == set(report["per_label"])
    # by the visual domain of each evaluation image: the accuracy on that domain's examples alone
    assert report["per_domain"] == {"plain": {"examples": 3, "accuracy": 1.0},
                                    "textured": {"examples": 3, "accuracy": pytest.approx(1 / 3)}}
    assert set(report["blank_image"]["per_domain"]) == set(report["per_domain"])
    save_predictions(run / "predictions.npz", ids[::-1], logits, blank, shuffled)
    with pytest.raises(ValueError, match=f"other ids than the evaluation ids of {split}"):
        evaluate_clip_td(run, root / "snli_ve", split, params["evaluate"])


def test_shuffled_images_give_every_text_another_image_of_the_set(world):
    _, root = world
    examples = load_examples("vqa", root / "vqa")[:30]
    swapped = shuffled_images(examples)
    own = [e.image for e in examples]
    assert len({*own}) > 1
    assert all(s != o for s, o in zip(swapped, own))
    assert set(swapped) == set(own)  # in distribution: the same images, each used in place of another
    # the texts of one image all get the same other image
    assert len({(o, s) for o, s in zip(own, swapped)}) == len(set(own))
