"""CLIP-TD: distil a frozen CLIP teacher into a VL student during task fine-tuning (Wang et al., 2022).

One code path, three configurations (``clip_td.methods``):

- ``finetune``: the task loss only (``weight: 0``; the teacher is never read);
- ``naive``: task loss + distillation on all tokens (``top_k: 1``) with a constant instance weight;
- ``targeted`` (CLIP-TD): per instance, only the ``top_k`` fraction of tokens most relevant to the
  teacher is distilled, and each instance's term is weighted by the teacher's confidence in the
  ground truth, normalised in the batch.

The paper does not publish these equations; ours (every choice a params key):

- Distilled tokens: the student's image tokens <- the teacher's patch tokens (resampled to the
  student's patch grid) and the student's words <- the teacher's words of the distilled text
  (:mod:`pipeline_steps.tasks`), each through a linear projection student -> teacher dim
  (used in training only: inference is the unchanged student + task head).
- Relevance (``distill.selection: cross_modal``): a patch's cosine with the teacher's embedding of
  the distilled text; a word's cosine with the teacher's image embedding.  ``random`` keeps the same
  number of tokens chosen at random (an ablation).  ``ceil(top_k * valid tokens)`` are kept.
- Token distance (``distill.loss``): ``cosine`` (1 - cos), ``mse`` or ``l1`` against the normalised
  teacher token; an instance's distillation term averages over its kept tokens, then modalities.
- Teacher confidence (:func:`teacher_confidence`; per task in :mod:`pipeline_steps.tasks`): VQA, the
  softmax probability of the majority answer among candidate answers ("question + answer" prompts); VCR, the mean of the probabilities
  of the right answer and the right rationale among the four; SNLI-VE, ``p = sigmoid(T * z)`` with
  ``z`` the image-hypothesis similarity standardised in the batch, and confidence ``p``
  (entailment), ``1 - p`` (contradiction), ``1 - |2p - 1|`` (neutral: the teacher is right to be
  undecided).  Weights are ``c / mean(c)`` over the batch.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from PIL import Image

from ..clip_teacher import TeacherBatch
from ..models.clip_td import ClipTdModel
from ..tasks import Example, get_task


def select_tokens(relevance: torch.Tensor, valid: torch.Tensor, top_k: float, rule: str = "cross_modal",
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """(B, N) bool: per instance, the ``ceil(top_k * valid)`` valid tokens of highest relevance."""
    if not 0 < top_k <= 1:
        raise ValueError(f"top_k must be in (0, 1], got {top_k}")
    if rule == "random":
        relevance = torch.rand(relevance.shape, generator=generator, device=relevance.device)
    elif rule != "cross_modal":
        raise ValueError(f"unknown token selection rule {rule!r}")
    keep = torch.ceil(top_k * valid.sum(1).float()).long()
    scores = relevance.float().masked_fill(~valid, float("-inf"))
    ranks = scores.argsort(dim=1, descending=True, stable=True).argsort(dim=1)
    return (ranks < keep.unsqueeze(1)) & valid


def teacher_confidence(task: str, teacher: TeacherBatch, labels: torch.Tensor,
                       rationale_labels: torch.Tensor, snli_temperature: float) -> torch.Tensor:
    """(B,) the teacher's confidence in each example's ground truth, in [0, 1] (per task:
    :mod:`pipeline_steps.tasks`)."""
    return get_task(task).teacher_confidence(teacher.choice_logits.float(), teacher.choice_target, labels,
                                             rationale_labels, snli_temperature)


def instance_weights(confidence: torch.Tensor, weighting: str) -> torch.Tensor:
    """(B,) weights with mean 1: constant, or proportional to the teacher's confidence."""
    if weighting == "constant":
        return torch.ones_like(confidence)
    if weighting == "confidence":
        return confidence / confidence.mean().clamp(min=1e-8)
    raise ValueError(f"unknown weighting {weighting!r}")


def token_distance(student: torch.Tensor, teacher: torch.Tensor, loss: str) -> torch.Tensor:
    """(B, N) distance of each projected student token to its (normalised) teacher token."""
    student, teacher = student.float(), teacher.float()
    if loss == "cosine":
        return 1 - F.cosine_similarity(student, teacher, dim=-1)
    if loss == "mse":
        return ((student - teacher) ** 2).mean(-1)
    if loss == "l1":
        return (student - teacher).abs().mean(-1)
    raise ValueError(f"unknown distillation loss {loss!r}")


def resample_grid(tokens: torch.Tensor, grid: int) -> torch.Tensor:
    """(B, g*g, D) patch tokens on the student's (grid x grid) patch grid, renormalised."""
    b, n, d = tokens.shape
    g = math.isqrt(n)
    if g == grid:
        return tokens
    x = tokens.transpose(1, 2).reshape(b, d, g, g).float()
    x = F.interpolate(x, size=(grid, grid), mode="bilinear", align_corners=False)
    return F.normalize(x.reshape(b, d, grid * grid).transpose(1, 2), dim=-1)


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B,) mean of ``values`` over ``mask`` per row (0 where a row keeps nothing)."""
    m = mask.float()
    return (values * m).sum(1) / m.sum(1).clamp(min=1)


class ClipTdBatchLoss:
    """The loss of one batch of examples: task loss + weight * weighted distillation."""

    def __init__(self, model: ClipTdModel, task: str, method: dict, cfg: dict, outputs: list[str],
                 teacher_source, device: torch.device, embed_images_once: bool = True,
                 padding: str = "longest"):
        self.model, self.task, self.method, self.cfg = model, task, method, cfg
        # the plain paths, kept for benchmarks: embed_images_once=False embeds an image again for
        # each of its texts (VCR: 8), padding="max_length" pads every text to the student's maximum
        self.embed_images_once, self.padding = embed_images_once, padding
        self.outputs = outputs  # names of the head's outputs (VQA: the answer vocabulary)
        # cached: anything with .batch(ids) -> TeacherBatch (ClipFeatureCache); online: (ClipTeacher, candidates)
        self.teacher_source = teacher_source
        self.device = device
        self.max_words = int(cfg["teacher"]["max_words"])

    def teacher(self, examples: list[Example], images: list[Image.Image]) -> TeacherBatch:
        if hasattr(self.teacher_source, "batch"):
            return self.teacher_source.batch([e.id for e in examples]).to(self.device)
        clip, candidates = self.teacher_source
        return clip.features(self.task, examples, images, self.max_words, candidates)

    def __call__(self, examples: list[Example], images: list[Image.Image],
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict]:
        dev = self.device
        per = len(examples[0].texts)
        texts = [t for e in examples for t in e.texts]
        student = self.model.student
        tokens, pool, word_mask = student.tokenize(texts, self.max_words, self.padding)
        shared = per if self.embed_images_once else 1  # texts that share one embedding of their image
        pixels = student.pixels(images).to(dev).repeat_interleave(per // shared, dim=0)
        enc = student(pixels, tokens["input_ids"].to(dev), tokens["attention_mask"].to(dev),
                      pool.to(dev), word_mask.to(dev), texts_per_image=shared)
        logits = self.model.head(enc.pooled).float()
        labels = torch.tensor([e.label for e in examples], device=dev)
        rationale_labels = torch.tensor([e.rationale_label for e in examples], device=dev)
        task_loss = get_task(self.task).loss(logits, examples, labels, rationale_labels, self.outputs)
        metrics = {"loss_task": task_loss.item()}
        weight = float(self.method["weight"])
        if weight == 0:
            return task_loss, {**metrics, "loss": task_loss.item()}

        teacher = self.teacher(examples, images)
        rows = torch.tensor([b * per + e.distill_index for b, e in enumerate(examples)], device=dev)
        distill = self.cfg["distill"]
        terms = []
        if "image" in distill["modalities"]:
            target = resample_grid(teacher.image_tokens, student.grid)
            relevance = target @ teacher.text_pooled.float().unsqueeze(-1)
            valid = torch.ones(target.shape[:2], dtype=torch.bool, device=dev)
            keep = select_tokens(relevance.squeeze(-1), valid, self.method["top_k"], distill["selection"],
                                 generator)
            dist = token_distance(self.model.project_image(enc.image[rows]), target, distill["loss"])
            terms.append(masked_mean(dist, keep))
        if "text" in distill["modalities"]:
            target = teacher.words.float()
            relevance = (target @ teacher.image_pooled.float().unsqueeze(-1)).squeeze(-1)
            valid = teacher.word_mask & enc.word_mask[rows]
            keep = select_tokens(relevance, valid, self.method["top_k"], distill["selection"], generator)
            student_words = (enc.word_pool[rows] @ enc.text[rows])
            dist = token_distance(self.model.project_text(student_words), target, distill["loss"])
            terms.append(masked_mean(dist, keep))
        per_instance = torch.stack(terms).mean(0)
        confidence = teacher_confidence(self.task, teacher, labels, rationale_labels,
                                        float(self.cfg["weighting"]["snli_temperature"]))
        weights = instance_weights(confidence, self.method["weighting"])
        distill_loss = (weights.detach() * per_instance).mean()
        loss = task_loss + weight * distill_loss
        return loss, {**metrics, "loss_distill": distill_loss.item(),
                      "teacher_confidence": confidence.mean().item(), "loss": loss.item()}
