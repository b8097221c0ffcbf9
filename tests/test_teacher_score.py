"""The diffusion teacher's Winoground protocol: the empty-caption normalisation, noise draws and the
diagnostics beside the three scores."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers import smoke_params
from pipeline_steps import metrics
from pipeline_steps.data.prepare import prepare
from pipeline_steps.evaluate.teacher_score import scores_from_errors, teacher_winoground, winoground_diffusion_errors
from pipeline_steps.models.diffusion import build_tiny_teacher, save_teacher


@pytest.fixture(scope="module")
def scored(small_world, tmp_path_factory):
    """(errors with one and with three noise draws, records) of a random tiny teacher on Winoground."""
    _, raw = small_world
    root = tmp_path_factory.mktemp("teacher_score")
    prepare("winoground", raw, root / "winoground", {"shard_size_mb": 1, "texture_threshold": 8.0})
    cfg = smoke_params()["models"]["diffusion"]["tiny"]
    save_teacher(build_tiny_teacher(cfg, root / "tok", seed=0), root / "teacher")
    run = lambda draws: winoground_diffusion_errors(root / "teacher", root / "winoground", [250, 750], draws, "mse",  # noqa: E731
                                                    0, torch.device("cpu"), batch_size=7)
    (one, records), (three, _) = run(1), run(3)
    return one, three, records, root


def test_normalisation_keeps_every_text_comparison_and_changes_image_ones(scored):
    errors, _, _, _ = scored
    raw, normalized = scores_from_errors(errors, "none"), scores_from_errors(errors, "empty_caption")
    # which caption wins on an image: the same for every example and both images
    assert np.array_equal(raw[:, 0] > raw[:, 1], normalized[:, 0] > normalized[:, 1])
    assert np.array_equal(metrics.winoground_correct(raw)["text"], metrics.winoground_correct(normalized)["text"])
    # which image wins for a caption: the image's own error no longer decides it
    assert (raw[:, :, 0] > raw[:, :, 1]).tolist() != (normalized[:, :, 0] > normalized[:, :, 1]).tolist()
    # the empty caption is what the normalisation subtracts
    assert np.allclose(normalized, -(errors[:, :2] - errors[:, 2:3]))


def test_noise_draws_are_averaged(scored):
    one, three, _, _ = scored
    assert one.shape == three.shape == (len(one), 3, 2)
    assert np.isfinite(three).all() and (three > 0).all()
    # three draws per timestep give another estimate of the same errors, not the one-draw one
    assert not np.allclose(one, three)
    assert np.corrcoef(one.ravel(), three.ravel())[0, 1] > 0.5


def test_diagnostics_name_caption_and_image_offsets():
    # caption 0 wins on both images (an offset), image 1 wins for both captions
    offset = np.array([[[0.9, 0.95], [0.1, 0.2]]])
    d = metrics.winoground_diagnostics(offset)
    assert d["same_caption_wins"].tolist() == [True] and d["same_image_wins"].tolist() == [True]
    assert d["pairwise_text"].tolist() == [0.5] and d["pairwise_image"].tolist() == [0.5]
    # a binding model: each caption wins on its own image and each image for its own caption
    bound = np.array([[[0.9, 0.1], [0.2, 0.8]]])
    d = metrics.winoground_diagnostics(bound)
    assert not d["same_caption_wins"][0] and not d["same_image_wins"][0]
    assert d["pairwise_text"].tolist() == [1.0] and d["pairwise_image"].tolist() == [1.0]


def test_report_records_the_protocol_and_both_scorings(scored):
    _, _, records, root = scored
    cfg = smoke_params()["evaluate"]
    cfg["teacher_score"].update(draws=1, normalize="empty_caption", error="l2")
    report = teacher_winoground(root / "teacher", root / "winoground", cfg, torch.device("cpu"))
    assert report["protocol"] == {"timesteps": [250, 750], "draws": 1, "seed": 0, "error": "l2",
                                  "normalize": "empty_caption", "noise": "1 draw(s) per timestep, shared by all pairs",
                                  "space": "pixel"}
    assert report["n"] == len(records)
    both = report["by_normalization"]
    assert report["overall"] == both["empty_caption"]["overall"]
    assert both["none"]["overall"]["text"] == both["empty_caption"]["overall"]["text"]
    assert set(report["diagnostics"]) == {"pairwise_text", "pairwise_image", "same_caption_wins", "same_image_wins"}
