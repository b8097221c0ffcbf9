"""CLIP-TD's method (train/distill.py): token selection, confidence weights, the method special
cases (fine-tuning never reads the teacher), VCR's shared image embedding, bf16 against fp32."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pipeline_steps.clip_teacher import ClipFeatureCache, TeacherBatch, cache_clip_features
from pipeline_steps.data.shards import PreparedDataset
from pipeline_steps.models.clip_td import ClipTdModel
from pipeline_steps.models.student import load_student
from pipeline_steps.tasks.examples import load_examples
from pipeline_steps.train.distill import ClipTdBatchLoss, instance_weights, select_tokens, teacher_confidence
from pipeline_steps.train.loop import LoopConfig, Trainer


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
