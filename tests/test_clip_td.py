"""CLIP-TD: the task metrics, token selection, confidence weighting, the method special cases, the
teacher cache against the online teacher, and a short training run that resumes exactly."""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from safetensors.torch import load_file

from helpers import REPO, smoke_params
from pipeline_steps.cluster import launcher
from pipeline_steps.clip_teacher import ClipFeatureCache, ClipTeacher, TeacherBatch, cache_clip_features
from pipeline_steps.data.prepare import prepare
from pipeline_steps.data.shards import PreparedDataset
from pipeline_steps.evaluate.vl_tasks import evaluate_clip_td
from pipeline_steps.hardware import AVX2_ONLY_ENV
from pipeline_steps.metrics import accuracy, normalize_vqa_answer, vcr_accuracies, vqa_accuracy, vqa_soft_score
from pipeline_steps.models.clip import load_clip, model_config, save_clip
from pipeline_steps.models.clip_td import ClipTdModel, load_clip_td
from pipeline_steps.models.student import build_tiny_student, load_student, train_vocabulary
from pipeline_steps.tasks.examples import load_examples
from pipeline_steps.tasks.vqa import answer_vocabulary, vqa_targets
from pipeline_steps.train.clip_td import predict, save_predictions, train_clip_td
from pipeline_steps.train.distill import ClipTdBatchLoss, instance_weights, select_tokens, teacher_confidence
from pipeline_steps.train.loop import LoopConfig, Trainer

# --- metrics ---------------------------------------------------------------------------------------------


def test_vqa_accuracy_hand_computed_cases():
    # 2 of 10 annotators agree: leave-one-out mean = (2 * 1/3 + 8 * 2/3) / 10 = 0.6
    assert vqa_accuracy("yes", ["yes"] * 2 + ["no"] * 8) == pytest.approx(0.6)
    assert vqa_accuracy("no", ["yes"] * 2 + ["no"] * 8) == pytest.approx(1.0)
    assert vqa_accuracy("yes", ["yes"] + ["no"] * 9) == pytest.approx(0.3)
    assert vqa_accuracy("yes", ["yes"] * 3 + ["no"] * 7) == pytest.approx(0.9)
    assert vqa_accuracy("maybe", ["yes"] * 3 + ["no"] * 7) == 0.0
    # normalisation: number words, articles, punctuation, contractions
    answers = ["two"] * 3 + ["2"] + ["three"] * 6
    assert vqa_accuracy("A two!", answers) == pytest.approx(1.0)
    assert vqa_accuracy("dont", ["don't"] * 3 + ["no"] * 7) == pytest.approx(0.9)
    assert normalize_vqa_answer("The red, cube.") == "red cube"
    # as in the official code, identical answers are compared without normalisation
    assert vqa_accuracy("two", ["2"] * 10) == 0.0
    assert vqa_accuracy("2", ["2"] * 10) == 1.0
    with pytest.raises(ValueError, match="10 human answers"):
        vqa_accuracy("yes", ["yes"] * 9)
    # the closed form used for the training targets
    for matches in range(11):
        answers = ["a"] * matches + ["b"] * (10 - matches)
        assert vqa_accuracy("a", answers) == pytest.approx(vqa_soft_score(matches))


def test_vcr_joint_accuracy_is_per_example_not_a_product():
    scores = vcr_accuracies([0, 1, 2, 3], [0, 1, 0, 3], [1, 1, 1, 0], [1, 0, 1, 0])
    assert scores == {"q2a": 0.75, "qa2r": 0.75, "q2ar": 0.5}  # the product would be 0.5625
    assert accuracy([0, 1, 2, 2], [0, 1, 1, 2]) == 0.75


# --- the ingredients ---------------------------------------------------------------------------------------


def test_token_selection_keeps_the_most_relevant_valid_tokens():
    relevance = torch.tensor([[0.1, 0.9, 0.5, 0.3], [0.4, 0.3, 0.2, 0.1]])
    valid = torch.ones(2, 4, dtype=torch.bool)
    keep = select_tokens(relevance, valid, 0.5)
    assert keep.tolist() == [[False, True, True, False], [True, True, False, False]]
    # invalid tokens are never kept and k counts valid tokens only: ceil(0.5 * 3) = 2
    valid[0, 1] = False
    keep = select_tokens(relevance, valid, 0.5)
    assert keep[0].tolist() == [False, False, True, True]
    # top_k = 1 is every valid token (the naive special case); one token at least
    assert torch.equal(select_tokens(relevance, valid, 1.0), valid)
    assert select_tokens(relevance, valid, 0.01).sum(1).tolist() == [1, 1]
    random_keep = select_tokens(relevance, valid, 0.5, "random", torch.Generator().manual_seed(0))
    assert random_keep.sum(1).tolist() == [2, 2] and not (random_keep & ~valid).any()


def teacher_batch(logits, targets=None) -> TeacherBatch:
    b = len(logits)
    return TeacherBatch(torch.zeros(b, 4, 8), torch.zeros(b, 8), torch.zeros(b, 3, 8),
                        torch.ones(b, 3, dtype=torch.bool), torch.zeros(b, 8), torch.tensor(logits),
                        torch.tensor(targets if targets is not None else [-1] * b))


def test_weights_follow_the_teachers_confidence_in_the_ground_truth():
    # VQA: softmax probability of the ground-truth candidate
    batch = teacher_batch([[4.0, 0.0, 0.0], [0.0, 0.0, 4.0], [0.0, 0.0, 0.0]], [0, 0, 1])
    conf = teacher_confidence("vqa", batch, torch.zeros(3, dtype=torch.long), torch.zeros(3, dtype=torch.long), 1.0)
    p = math.exp(4) / (math.exp(4) + 2)
    assert conf.tolist() == pytest.approx([p, 1 / (math.exp(4) + 2), 1 / 3])
    weights = instance_weights(conf, "confidence")
    assert weights.mean().item() == pytest.approx(1.0)
    assert weights[0] > weights[2] > weights[1]
    assert instance_weights(conf, "constant").tolist() == [1.0, 1.0, 1.0]
    # VCR: mean of the right answer's and the right rationale's probabilities among four each
    logits = [[5.0, 0, 0, 0, 0, 0, 0, 5.0], [0.0] * 8]
    conf = teacher_confidence("vcr", teacher_batch(logits), torch.tensor([0, 1]), torch.tensor([3, 2]), 1.0)
    high = math.exp(5) / (math.exp(5) + 3)
    assert conf.tolist() == pytest.approx([high, 0.25])
    # SNLI-VE: a hypothesis the teacher finds very similar is confidently entailed, not contradicted
    sims = [[30.0], [10.0], [30.0], [20.0]]
    labels = torch.tensor([0, 0, 2, 1])  # entailment, entailment, contradiction, neutral
    conf = teacher_confidence("snli_ve", teacher_batch(sims), labels, labels, 2.0)
    s = np.array(sims)[:, 0]
    p = 1 / (1 + np.exp(-2.0 * (s - s.mean()) / s.std()))
    assert conf.tolist() == pytest.approx([p[0], p[1], 1 - p[2], 1 - abs(2 * p[3] - 1)], rel=1e-5)
    assert conf[0] > 0.8 and conf[1] < 0.1 and conf[2] < 0.2


# --- a small world: prepared tasks, a tiny CLIP teacher, a tiny student -------------------------------------


@pytest.fixture(scope="module")
def world(small_world, tmp_path_factory):
    _, raw = small_world
    root = tmp_path_factory.mktemp("clip_td")
    for task in ("vqa", "snli_ve", "vcr"):
        prepare(task, raw, root / task, {"shard_size_mb": 1, "texture_threshold": 8.0})
    torch.manual_seed(0)
    clip, _, _ = load_clip("TinyCLIP-64")
    save_clip(clip, model_config("TinyCLIP-64"), root / "clip")
    params = smoke_params()
    texts = [t for task in ("vqa", "snli_ve", "vcr") for e in load_examples(task, root / task) for t in e.texts]
    vocab = train_vocabulary(texts, 300, root / "vocab")
    build_tiny_student(params["models"]["student"]["tiny"], vocab, 0).save(root / "student")
    return params, root


def test_cached_teacher_features_equal_the_online_ones(world, tmp_path):
    params, root = world
    cfg = params["clip_td"]["teacher"]
    for task in ("vqa", "snli_ve", "vcr"):
        summary = cache_clip_features(task, root / "clip", root / task, tmp_path / task, cfg, torch.device("cpu"))
        cache = ClipFeatureCache(tmp_path / task)
        examples = load_examples(task, root / task)[:6]
        teacher = ClipTeacher(root / "clip")
        with PreparedDataset(root / task) as data:
            online = teacher.features(task, examples, [data.image(e.image) for e in examples], cfg["max_words"],
                                      summary["vqa_candidates"])
        cached = cache.batch([e.id for e in examples])
        for name in ("image_tokens", "image_pooled", "words", "text_pooled"):
            assert torch.allclose(getattr(cached, name), getattr(online, name).float(), atol=2e-3), (task, name)
        assert torch.equal(cached.word_mask, online.word_mask)
        assert torch.allclose(cached.choice_logits, online.choice_logits, atol=1e-4)
        assert torch.equal(cached.choice_target, online.choice_target)
        assert cached.word_mask.any(1).all()  # every distilled text has words
    # the teacher's pooled embeddings are CLIP's own
    with PreparedDataset(root / "vcr") as data:
        example = load_examples("vcr", root / "vcr")[0]
        image = data.image(example.image)
    tokens, pooled = teacher.image_features([image])
    expected = teacher.model.encode_image(teacher.preprocess(image)[None], normalize=True)
    assert torch.allclose(pooled, expected, atol=1e-5) and tokens.shape[1] == 64  # 8x8 patches
    text = teacher.text_features([example.distill_text], 24)[2]
    assert torch.allclose(text, teacher.model.encode_text(teacher.tokenizer([example.distill_text]),
                                                          normalize=True), atol=1e-5)


def test_finetune_never_reads_the_teacher_and_naive_distils_every_token(world, tmp_path):
    params, root = world
    cfg = params["clip_td"]
    examples = load_examples("snli_ve", root / "snli_ve")[:4]
    with PreparedDataset(root / "snli_ve") as data:
        images = [data.image(e.image) for e in examples]
    torch.manual_seed(0)
    model = ClipTdModel(load_student(root / "student"), 3, 64)
    finetune = ClipTdBatchLoss(model, "snli_ve", cfg["methods"]["finetune"], cfg, [], None, torch.device("cpu"))
    loss, metrics = finetune(examples, images)  # teacher_source None: any teacher access would fail
    assert set(metrics) == {"loss_task", "loss"} and loss.item() == pytest.approx(metrics["loss_task"])
    loss.backward()
    assert model.project_image.weight.grad is None and model.project_text.weight.grad is None

    cache_clip_features("snli_ve", root / "clip", root / "snli_ve", tmp_path / "cache", cfg["teacher"],
                        torch.device("cpu"))
    cache = ClipFeatureCache(tmp_path / "cache")
    naive = ClipTdBatchLoss(model, "snli_ve", cfg["methods"]["naive"], cfg, [], cache, torch.device("cpu"))
    loss, metrics = naive(examples, images)
    # naive = task + weight * mean over instances of the mean distance over all tokens (weights 1)
    teacher = cache.batch([e.id for e in examples])
    enc = model.student.encode(images, [e.distill_text for e in examples], cfg["teacher"]["max_words"])
    image_d = 1 - torch.cosine_similarity(model.project_image(enc.image), teacher.image_tokens, dim=-1)
    words = model.project_text(enc.word_features())
    text_d = 1 - torch.cosine_similarity(words, teacher.words, dim=-1)
    mask = (teacher.word_mask & enc.word_mask).float()
    expected = ((image_d.mean(1) + (text_d * mask).sum(1) / mask.sum(1)) / 2).mean()
    assert metrics["loss_distill"] == pytest.approx(expected.item(), rel=1e-4)
    assert loss.item() == pytest.approx(metrics["loss_task"] + cfg["methods"]["naive"]["weight"] * expected.item(),
                                        rel=1e-4)
    loss.backward()
    assert model.project_image.weight.grad.abs().sum() > 0


def cached_batch(world, tmp_path, task: str, n: int):
    """A batch of ``n`` examples of ``task`` with their images, the teacher cache, and a fresh model."""
    params, root = world
    cfg = params["clip_td"]
    cache_clip_features(task, root / "clip", root / task, tmp_path / "cache", cfg["teacher"], torch.device("cpu"))
    examples = load_examples(task, root / task)[:n]
    with PreparedDataset(root / task) as data:
        images = [data.image(e.image) for e in examples]
    torch.manual_seed(0)
    model = ClipTdModel(load_student(root / "student"), 1 if task == "vcr" else 3, 64)
    return cfg, ClipFeatureCache(tmp_path / "cache"), examples, images, model


def test_vcr_embeds_each_image_once_for_its_texts_with_the_same_loss_and_gradients(world, tmp_path):
    # the optimised inputs (texts padded to the batch's longest, each image embedded once for its 8
    # texts) against each plain path: same loss and gradients
    cfg, cache, examples, images, model = cached_batch(world, tmp_path, "vcr", 4)
    texts = [t for e in examples for t in e.texts]
    assert model.student.tokenize(texts, 24)[0]["input_ids"].shape[1] < model.student.max_text_len  # shorter
    embeddings = model.student.vilt.embeddings
    embedded, visual_embed = [], embeddings.visual_embed
    embeddings.visual_embed = lambda pixels, *a, **k: embedded.append(len(pixels)) or visual_embed(pixels, *a, **k)
    results = {}
    for once, padding in ((True, "longest"), (False, "longest"), (True, "max_length")):
        model.zero_grad(set_to_none=True)
        loss, _ = ClipTdBatchLoss(model, "vcr", cfg["methods"]["targeted"], cfg, [], cache, torch.device("cpu"),
                                  embed_images_once=once, padding=padding)(examples, images)
        loss.backward()
        results[once, padding] = loss.item(), {k: p.grad.clone() for k, p in model.named_parameters()
                                               if p.grad is not None}
    assert embedded == [4, 4 * 8, 4]  # once per image, against once per (image, text) pair
    loss, grads = results[True, "longest"]
    assert "student.vilt.embeddings.patch_embeddings.projection.weight" in grads
    for plain in ((False, "longest"), (True, "max_length")):
        plain_loss, plain_grads = results[plain]
        assert loss == pytest.approx(plain_loss, rel=1e-6) and grads.keys() == plain_grads.keys()
        # equal up to float summation order, relative to each gradient's scale: the untrained VCR head sits
        # at chance (loss ln 4), so its gradients are small differences (measured: within 8e-4); the 1e-7
        # floor is for gradients that are 0 up to rounding (attention key biases, the score's bias), far
        # below the 1e-5..1e-1 of the others
        for name in grads:
            scale = plain_grads[name].abs().max()
            assert (grads[name] - plain_grads[name]).abs().max() <= 2e-3 * scale + 1e-7, (plain, name)


def test_word_pooling_averages_exactly_the_pieces_of_each_word(world):
    _, root = world
    student = load_student(root / "student")
    texts = ["what colour is the zigzagged thing", "a", "two stars left of a purplish square " * 6]
    tokens, pool, mask = student.tokenize(texts, 6)
    ids = tokens["input_ids"]
    assert ids.shape[1] == student.max_text_len  # the third text is truncated
    for b, text in enumerate(texts):
        for w in range(6):
            if w >= len(text.split()):
                assert not mask[b, w] and not pool[b, w].any()
                continue
            # word w's pieces are the tokens of the word tokenised alone, each weighted 1 / their number
            pieces = student.tokenizer.convert_tokens_to_ids(student.tokenizer.tokenize(text.split()[w]))
            where = pool[b, w].nonzero().flatten()
            assert mask[b, w] and ids[b, where].tolist() == pieces
            assert pool[b, w, where].tolist() == pytest.approx([1 / len(pieces)] * len(pieces))
            assert where.tolist() == list(range(where[0], where[0] + len(pieces)))  # contiguous


@pytest.mark.parametrize("task", ["vcr", "snli_ve"])
def test_bf16_step_gives_the_fp32_loss_and_gradients_within_bf16_tolerance(world, tmp_path, task):
    # clip_td.train.precision: bf16 (a user's choice on a CPU with native bf16) against fp32 (the default)
    cfg, cache, examples, images, model = cached_batch(world, tmp_path, task, 8)
    trainer = Trainer(tmp_path / "run", LoopConfig.from_params({**cfg["train"], "precision": "bf16"}, 0),
                      dict(model.named_parameters()), len(examples), None, torch.device("cpu"))
    with trainer.autocast():  # what the training loop runs the loss under when params ask for bf16
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
    batch_loss = ClipTdBatchLoss(model, task, cfg["methods"]["targeted"], cfg, [], cache, torch.device("cpu"))
    results = {}
    for bf16 in (False, True):
        model.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss, metrics = batch_loss(examples, images)
        loss.backward()
        grad = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
        results[bf16] = loss.item(), metrics, grad
    (loss32, metrics32, grad32), (loss16, metrics16, grad16) = results[False], results[True]
    assert loss16 != loss32  # bf16 did run
    assert loss16 == pytest.approx(loss32, rel=1e-2)
    assert metrics16["loss_distill"] == pytest.approx(metrics32["loss_distill"], rel=1e-2)
    assert F.cosine_similarity(grad16, grad32, dim=0) > 0.99
    assert (grad16.norm() / grad32.norm()).item() == pytest.approx(1, abs=0.05)


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


def test_targeted_run_resumes_to_identical_weights_and_evaluates(world, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="pipeline_steps.train.loop")
    params, root = world
    cfg = params["clip_td"]
    cfg["train"] = {**cfg["train"], "steps": 4, "checkpoint_every": 2}
    cache_clip_features("vcr", root / "clip", root / "vcr", tmp_path / "cache", cfg["teacher"], torch.device("cpu"))
    ids = [e.id for e in load_examples("vcr", root / "vcr")]
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": ids[:24], "eval": ids[24:]}))
    common = dict(task="vcr", method_name="targeted", cfg=cfg, seed=0, student_folder=root / "student",
                  prepared=root / "vcr", split_file=split, teacher_clip=None, teacher_cache=tmp_path / "cache")
    train_clip_td(**common, out=tmp_path / "straight", work=tmp_path / "work-straight")
    # a job killed after step 2 leaves only the step-2 checkpoint; the rerun resumes from it
    shutil.copytree(tmp_path / "work-straight/checkpoints/step-2", tmp_path / "work-resumed/checkpoints/step-2")
    shutil.copy(tmp_path / "work-straight/run.json", tmp_path / "work-resumed/run.json")
    train_clip_td(**common, out=tmp_path / "resumed", work=tmp_path / "work-resumed")
    assert f"resumed from {tmp_path / 'work-resumed/checkpoints/step-2'}" in caplog.text
    a = load_file(tmp_path / "straight/student/model.safetensors")
    b = load_file(tmp_path / "resumed/student/model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert torch.equal(load_file(tmp_path / "straight/head.safetensors")["3.weight"],
                       load_file(tmp_path / "resumed/head.safetensors")["3.weight"])
    # the predictions the training job saved are the saved model's on the evaluation ids
    model, meta = load_clip_td(tmp_path / "resumed", torch.device("cpu"))
    with PreparedDataset(root / "vcr") as data:
        again = predict(model, load_examples("vcr", root / "vcr", ids[24:]), data, 5, meta["max_words"])
    saved = np.load(tmp_path / "resumed/predictions.npz")
    assert saved["ids"].tolist() == ids[24:]
    np.testing.assert_allclose(saved["logits"], again.numpy(), rtol=1e-5, atol=1e-6)
    report = evaluate_clip_td(tmp_path / "resumed", root / "vcr", split, params["evaluate"])
    assert report["examples"] == len(ids) - 24
    assert 0 <= report["q2ar"] <= min(report["q2a"], report["qa2r"]) <= 1
    summary = json.loads((tmp_path / "resumed/train_summary.json").read_text())
    assert summary["method"] == "targeted" and summary["train_examples"] == 24
    assert np.isfinite(summary["final"]["loss_distill"])
    # params changed since: the finished run's checkpoints are not resumed, training starts afresh
    changed = {**common, "cfg": {**cfg, "distill": {**cfg["distill"], "loss": "mse"}}}
    train_clip_td(**changed, out=tmp_path / "changed", work=tmp_path / "work-resumed")
    assert "holds checkpoints of another configuration (differs in: identity)" in caplog.text
    summary = json.loads((tmp_path / "changed/train_summary.json").read_text())
    assert summary["distill"]["loss"] == "mse" and np.isfinite(summary["final"]["loss_distill"])
    c = load_file(tmp_path / "changed/student/model.safetensors")
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_augmentation_needs_the_online_teacher(world, tmp_path):
    params, root = world
    ids = [e.id for e in load_examples("snli_ve", root / "snli_ve")]
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": ids[:16], "eval": ids[16:24]}))
    cfg = {**params["clip_td"], "augment": {"crop_scale": 0.6},
           "train": {**params["clip_td"]["train"], "steps": 2, "checkpoint_every": 2}}
    common = dict(task="snli_ve", method_name="targeted", seed=0, student_folder=root / "student",
                  prepared=root / "snli_ve", split_file=split)
    with pytest.raises(ValueError, match="needs clip_td.teacher.mode: online"):
        train_clip_td(**common, cfg=cfg, teacher_clip=None, teacher_cache=tmp_path / "no-cache",
                      out=tmp_path / "cached", work=tmp_path / "work-cached")
    assert not (tmp_path / "cached").exists()
    online = {**cfg, "teacher": {**cfg["teacher"], "mode": "online"}}
    summary = train_clip_td(**common, cfg=online, teacher_clip=root / "clip", teacher_cache=None,
                            out=tmp_path / "online", work=tmp_path / "work-online")
    assert summary["teacher_mode"] == "online" and np.isfinite(summary["final"]["loss_distill"])
    assert (tmp_path / "online/student/config.json").is_file()


def test_student_image_tokens_come_back_in_raster_order(world):
    """With no encoder layers a token depends on its own patch only: changing patch (row 2, column 5)
    must change image token 2 * grid + 5 and no other, in spite of ViLT's random patch order."""
    from PIL import Image

    from pipeline_steps.models.student import Student, tiny_config
    from transformers import BertTokenizer, ViltModel

    _, root = world
    spec = {**smoke_params()["models"]["student"]["tiny"], "layers": 0}
    tokenizer = BertTokenizer.from_pretrained(root / "student")
    torch.manual_seed(0)
    student = Student(ViltModel(tiny_config(spec, len(tokenizer))), tokenizer).eval()
    grid, patch = student.grid, spec["patch_size"]
    base = np.full((spec["image_size"], spec["image_size"], 3), 128, dtype=np.uint8)
    changed = base.copy()
    changed[2 * patch:3 * patch, 5 * patch:6 * patch] = 255
    state = torch.random.get_rng_state()
    with torch.no_grad():
        a = student.encode([Image.fromarray(base)], ["a red square"]).image[0]
        b = student.encode([Image.fromarray(changed)], ["a red square"]).image[0]
    assert torch.equal(torch.random.get_rng_state(), state)  # ViLT's sampling left the generator alone
    moved = (a - b).abs().sum(-1) > 1e-6
    assert moved.nonzero().flatten().tolist() == [2 * grid + 5]


def test_student_vocabulary_is_the_same_on_every_run(tmp_path):
    texts = ["A red circle and a blue square.", "Is the square blue?", "two stars", "a red star"] * 3
    a = train_vocabulary(texts, 50, tmp_path / "a").read_text()
    b = train_vocabulary(list(reversed(texts)), 50, tmp_path / "b").read_text()
    assert a == b  # no dependence on order (or on hash seeds: ties are broken alphabetically)
    vocab = a.split()
    chars = sorted(set("".join(texts).lower()) - {" "})
    assert vocab[:5 + 2 * len(chars)] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + chars + [f"##{c}" for c in chars]
    # then whole words, most frequent first, ties alphabetical, cut at the size
    words = ["blue", "red", "square", "and", "circle", "is", "star", "stars", "the", "two"]
    assert vocab[5 + 2 * len(chars):] == words[:50 - 5 - 2 * len(chars)]


def test_two_gpu_job_runs_one_process_per_device_and_matches_one_process(world, tmp_path):
    """A training job with clip_td.gpus: 2 starts two torchrun processes (gloo on CPU here) that
    all-reduce gradients: their model equals a one-process run of the same batch, written once."""
    params, root = world
    # fp32: bf16 rounds a half batch's activations differently from a whole one's, which would hide
    # the all-reduce's exactness behind bf16 noise
    params["clip_td"]["train"] = {**params["clip_td"]["train"], "steps": 3, "checkpoint_every": 10,
                                  "precision": "fp32"}
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(params))
    ids = [e.id for e in load_examples("snli_ve", root / "snli_ve")]
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": ids[:32], "eval": ids[32:]}))
    outs = {}
    for gpus in (1, 2):
        out, work = tmp_path / f"run-{gpus}", tmp_path / f"work-{gpus}"
        command = launcher(gpus).split() + [
            "train-clip-td", "--params", str(params_file), "--task", "snli_ve", "--method", "finetune",
            "--seed", "0", "--student", str(root / "student"), "--prepared", str(root / "snli_ve"),
            "--split", str(split), "--out", str(out), "--work", str(work), "--threads", "1"]
        proc = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=REPO)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        outs[gpus] = out
    assert launcher(2).startswith("torchrun ")
    one = load_file(outs[1] / "student/model.safetensors")
    two = load_file(outs[2] / "student/model.safetensors")
    init = load_file(root / "student/model.safetensors")
    moved = max((one[k] - init[k]).abs().max().item() for k in one)
    gap = max((one[k] - two[k]).abs().max().item() for k in one)
    assert moved > 1e-3 and gap < moved / 100, (moved, gap)
    assert sorted(p.name for p in outs[2].iterdir()) == sorted(p.name for p in outs[1].iterdir())
    assert not list(tmp_path.glob("run-2.*"))  # no second writer's leftovers


def test_default_params_give_the_same_run_on_avx2_only_kernels(world, tmp_path):
    """The default precision (fp32 on CPU) does not depend on the CPU: a training run with every
    kernel library held to AVX2 code paths, as on a CPU without AVX-512 or native bf16, ends with
    the same evaluation logits up to float summation order."""
    params, root = world
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(params))
    ids = [e.id for e in load_examples("snli_ve", root / "snli_ve")]
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": ids[:16], "eval": ids[16:32]}))
    env = {k: v for k, v in os.environ.items() if k not in AVX2_ONLY_ENV}
    logits = {}
    for name, isa in (("native", {}), ("avx2", AVX2_ONLY_ENV)):
        out = tmp_path / name
        proc = subprocess.run(
            [sys.executable, "-m", "pipeline_steps", "train-clip-td", "--params", str(params_file), "--task",
             "snli_ve", "--method", "finetune", "--seed", "0", "--student", str(root / "student"), "--prepared",
             str(root / "snli_ve"), "--split", str(split), "--out", str(out), "--work", str(tmp_path / f"work-{name}")],
            capture_output=True, text=True, env={**env, **isa}, cwd=REPO, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        # the held run uses AVX2 kernels; the native one uses the machine's own (AVX2 too on a CPU
        # without AVX-512, where the two runs must then agree exactly)
        native = torch.backends.cpu.get_cpu_capability()
        assert f"kernels {'AVX2' if name == 'avx2' else native}," in proc.stderr, proc.stderr[-3000:]
        logits[name] = np.load(out / "predictions.npz")["logits"]
    assert not np.array_equal(logits["native"], np.zeros_like(logits["native"]))
    np.testing.assert_allclose(logits["avx2"], logits["native"], rtol=1e-4, atol=1e-5)


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
    save_predictions(run / "predictions.npz", ids, logits)
    report = evaluate_clip_td(run, root / "snli_ve", split, params["evaluate"])
    assert report["accuracy"]["value"] == pytest.approx(4 / 6) and report["examples"] == 6
    save_predictions(run / "predictions.npz", ids[::-1], logits)
    with pytest.raises(ValueError, match=f"other ids than the evaluation ids of {split}"):
        evaluate_clip_td(run, root / "snli_ve", split, params["evaluate"])
