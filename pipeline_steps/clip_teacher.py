"""The frozen CLIP teacher of CLIP-TD: token features, computed once and cached, or online.

For every example the teacher gives (all L2-normalised, in CLIP's joint embedding space):

- ``image_tokens`` (P, D): the ViT's patch tokens after ``ln_post``, projected with ``visual.proj``;
- ``image_pooled`` (D): the image embedding;
- ``words`` (W, D) + ``word_mask``: for each whitespace word of the distilled text (the same word
  units the student uses, :func:`pipeline_steps.models.student.words_of`), the mean of its BPE
  tokens after ``ln_final``, projected with ``text_projection``;
- ``text_pooled`` (D): the text embedding of the distilled text;
- ``choice_logits`` (C) and ``choice_target``: the teacher's zero-shot logits
  (``logit_scale * cos``) of the image against the texts it can judge, from which training derives
  its confidence in the ground truth (each task's ``teacher_confidence``, :mod:`pipeline_steps.tasks`):
  VQA, "question + answer" for candidate answers of the question's answer type; VCR, the 8 Q->A and
  QA->R texts; SNLI-VE, the hypothesis alone.

The cache (``<features>/clip_td/<teacher>/<task>/``) stores images once per image key and texts once
per example, as float16 ``.npy`` arrays read memory-mapped; ``ids.json`` and ``image_keys.json``
give the rows.  Online mode computes the same batch with :meth:`ClipTeacher.features`, which is
also what the cache is built from, so the two agree up to float16 rounding (tested).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .errors import InputError, MissingInput
from .data.shards import PreparedDataset
from .io import CacheRows, atomic_dir, dumps_json
from .models.student import words_of
from .tasks import Example, get_task
from .tasks.examples import load_examples

ARRAYS = ("image_tokens", "image_pooled", "words", "word_mask", "text_pooled", "choice_logits",
          "choice_target")


@dataclass
class TeacherBatch:
    image_tokens: torch.Tensor  # (B, P, D)
    image_pooled: torch.Tensor  # (B, D)
    words: torch.Tensor  # (B, W, D)
    word_mask: torch.Tensor  # (B, W) bool
    text_pooled: torch.Tensor  # (B, D)
    choice_logits: torch.Tensor  # (B, C); -inf where a row has fewer choices
    choice_target: torch.Tensor  # (B,) index of the ground truth among the choices (VQA), else -1

    def to(self, device) -> "TeacherBatch":
        return TeacherBatch(*(getattr(self, k).to(device) for k in ARRAYS))

    @property
    def grid(self) -> int:
        return math.isqrt(self.image_tokens.shape[1])


class ClipTeacher:
    """A frozen open_clip ViT CLIP and the token features CLIP-TD distils."""

    def __init__(self, clip_folder: str | Path, device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        from .models.clip import load_clip  # open_clip: 2 s of imports that cached-teacher jobs skip

        self.model, self.preprocess, self.tokenizer = load_clip(f"local-dir:{clip_folder}",
                                                                device=str(self.device))
        self.model.eval().requires_grad_(False)
        text_tower = all(hasattr(self.model, a) for a in ("token_embedding", "ln_final", "text_projection"))
        if not text_tower or getattr(self.model.visual, "proj", None) is None:
            raise InputError(f"{clip_folder}: the CLIP-TD teacher must be an open_clip ViT CLIP with a "
                             f"projected image tower and a built-in text tower")
        if not all(hasattr(self.tokenizer, a) for a in ("sot_token_id", "eot_token_id", "encode")):
            raise InputError(f"{clip_folder}: the teacher's tokenizer must be CLIP's BPE tokenizer")
        self.context = int(self.model.positional_embedding.shape[0])
        self.logit_scale = float(self.model.logit_scale.exp().clamp(max=100))

    # --- image -------------------------------------------------------------------------------------
    @torch.no_grad()
    def image_features(self, images) -> tuple[torch.Tensor, torch.Tensor]:
        """(patch tokens (B, P, D), pooled (B, D)) for PIL images, normalised."""
        x = torch.stack([self.preprocess(im) for im in images]).to(self.device)
        visual = self.model.visual
        visual.output_tokens = True
        try:
            pooled, tokens = visual(x)
        finally:
            visual.output_tokens = False
        return F.normalize(tokens @ visual.proj, dim=-1), F.normalize(pooled, dim=-1)

    # --- text --------------------------------------------------------------------------------------
    def _sequences(self, texts: list[str], max_words: int) -> tuple[torch.Tensor, list[list]]:
        """Token ids built word by word, and each word's (start, end) token span (None: no tokens)."""
        ids = torch.zeros(len(texts), self.context, dtype=torch.long)
        spans = []
        for b, text in enumerate(texts):
            seq, word_spans = [self.tokenizer.sot_token_id], []
            for word in words_of(text):
                piece = self.tokenizer.encode(word)
                if len(seq) + len(piece) > self.context - 1:
                    break
                if len(word_spans) < max_words:
                    word_spans.append((len(seq), len(seq) + len(piece)) if piece else None)
                seq += piece
            seq.append(self.tokenizer.eot_token_id)
            ids[b, :len(seq)] = torch.tensor(seq)
            spans.append(word_spans)
        return ids, spans

    @torch.no_grad()
    def _text_tokens(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(every token projected (B, L, D), pooled (B, D)), as ``CLIP.encode_text`` computes them."""
        from open_clip.transformer import text_global_pool

        from .models.clip import text_token_states

        m = self.model
        x, ids = text_token_states(m, ids.to(self.device))
        pooled = text_global_pool(x, ids, m.text_pool_type, eos_token_id=getattr(m, "text_eos_id", None))
        return x @ m.text_projection, pooled @ m.text_projection

    def text_pooled(self, texts: list[str]) -> torch.Tensor:
        ids = self.tokenizer(texts).to(self.device)
        return F.normalize(self._text_tokens(ids)[1], dim=-1)

    def text_features(self, texts: list[str], max_words: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(word features (B, W, D), word mask (B, W), pooled (B, D)), normalised."""
        ids, spans = self._sequences(texts, max_words)
        tokens, pooled = self._text_tokens(ids)
        words = tokens.new_zeros(len(texts), max_words, tokens.shape[-1])
        mask = torch.zeros(len(texts), max_words, dtype=torch.bool)
        for b, word_spans in enumerate(spans):
            for w, span in enumerate(word_spans):
                if span is not None:
                    words[b, w] = tokens[b, span[0]:span[1]].mean(0)
                    mask[b, w] = True
        return F.normalize(words, dim=-1), mask, F.normalize(pooled, dim=-1)

    # --- everything for a batch of examples ----------------------------------------------------------
    @torch.no_grad()
    def features(self, task: str, examples: list[Example], images, max_words: int,
                 candidates=None) -> TeacherBatch:
        """``candidates``: the task's ``teacher_candidates`` (VQA: candidate answers per type)."""
        image_tokens, image_pooled = self.image_features(images)
        words, mask, text_pooled, logits, targets = self.example_features(task, examples, image_pooled, max_words,
                                                                          candidates)
        return TeacherBatch(image_tokens, image_pooled, words, mask, text_pooled, logits, targets)

    @torch.no_grad()
    def example_features(self, task: str, examples: list[Example], image_pooled: torch.Tensor, max_words: int,
                         candidates=None) -> tuple[torch.Tensor, ...]:
        """What depends on each example's texts: (words, word mask, text pooled, choice logits,
        choice target), given its image's pooled feature (row ``b`` for example ``b``)."""
        words, mask, text_pooled = self.text_features([e.distill_text for e in examples], max_words)
        choice_texts, targets = get_task(task).teacher_choices(examples, candidates)
        width = max(len(c) for c in choice_texts)
        flat = self.text_pooled([t for c in choice_texts for t in c])
        logits = torch.full((len(examples), width), float("-inf"), device=self.device)
        row = 0
        for b, c in enumerate(choice_texts):
            logits[b, :len(c)] = self.logit_scale * flat[row:row + len(c)] @ image_pooled[b]
            row += len(c)
        return words, mask.to(self.device), text_pooled, logits, torch.tensor(targets, device=self.device)


# --- the cache ---------------------------------------------------------------------------------------

def cache_clip_features(task: str, clip_folder: str | Path, prepared: str | Path, out: str | Path,
                        teacher_cfg: dict, device: torch.device) -> dict:
    """Teacher features of every labelled example of a prepared task dataset."""
    teacher = ClipTeacher(clip_folder, device)
    examples = load_examples(task, prepared)
    with PreparedDataset(prepared) as data:
        train_ids = {r["id"] for r in data.records("train")}
        candidates = get_task(task).teacher_candidates([e for e in examples if e.id in train_ids], teacher_cfg)
        batch_size, max_words = int(teacher_cfg["batch_size"]), int(teacher_cfg["max_words"])
        image_keys = sorted({e.image for e in examples})
        image_row = {k: n for n, k in enumerate(image_keys)}
        with atomic_dir(out) as tmp:
            arrays: dict[str, np.ndarray] = {}

            def store(name: str, rows: slice, value: torch.Tensor, shape_rest, n: int, dtype) -> None:
                if name not in arrays:
                    arrays[name] = np.lib.format.open_memmap(tmp / f"{name}.npy", mode="w+", dtype=dtype,
                                                             shape=(n, *shape_rest))
                arrays[name][rows] = value.cpu().numpy().astype(dtype)

            # per image (once, however many examples share it), then per example: texts and choices
            image_pooled = []
            for start in range(0, len(image_keys), batch_size):
                keys = image_keys[start:start + batch_size]
                tokens, pooled = teacher.image_features([data.image(k) for k in keys])
                rows = slice(start, start + len(keys))
                store("image_tokens", rows, tokens, tokens.shape[1:], len(image_keys), np.float16)
                store("image_pooled", rows, pooled, pooled.shape[1:], len(image_keys), np.float16)
                image_pooled.append(pooled)
            image_pooled = torch.cat(image_pooled)
            width = 1
            per_example = []
            for start in range(0, len(examples), batch_size):
                chunk = examples[start:start + batch_size]
                pooled = image_pooled[[image_row[e.image] for e in chunk]]
                words, word_mask, text_pooled, choice_logits, choice_target = teacher.example_features(
                    task, chunk, pooled, max_words, candidates)
                rows = slice(start, start + len(chunk))
                n = len(examples)
                store("words", rows, words, words.shape[1:], n, np.float16)
                store("word_mask", rows, word_mask, word_mask.shape[1:], n, np.bool_)
                store("text_pooled", rows, text_pooled, text_pooled.shape[1:], n, np.float16)
                store("choice_target", rows, choice_target, (), n, np.int64)
                per_example.append(choice_logits.cpu())
                width = max(width, choice_logits.shape[1])
            logits = torch.full((len(examples), width), float("-inf"))
            row = 0
            for block in per_example:
                logits[row:row + len(block), :block.shape[1]] = block
                row += len(block)
            np.save(tmp / "choice_logits.npy", logits.numpy().astype(np.float32))
            for a in arrays.values():
                a.flush()
            (tmp / "ids.json").write_text(json.dumps([e.id for e in examples]))
            (tmp / "image_keys.json").write_text(json.dumps(image_keys))
            (tmp / "image_of.json").write_text(json.dumps([image_row[e.image] for e in examples]))
            summary = {"task": task, "teacher": str(clip_folder), "examples": len(examples),
                       "images": len(image_keys), "patch_tokens": int(arrays["image_tokens"].shape[1]),
                       "dim": int(arrays["image_tokens"].shape[2]), "max_words": max_words,
                       "choices": width, "vqa_candidates": candidates, "logit_scale": teacher.logit_scale}
            (tmp / "summary.json").write_text(dumps_json(summary))
    return summary


class ClipFeatureCache:
    """Memory-mapped reader of a task's cached teacher features."""

    def __init__(self, folder: str | Path):
        folder = Path(folder)
        if not (folder / "summary.json").is_file():
            raise MissingInput(f"{folder} is not a CLIP-TD teacher cache; run the features stage")
        self.summary = json.loads((folder / "summary.json").read_text())
        self.cache = CacheRows(folder, ARRAYS, "teacher cache")
        self.image_of = np.asarray(json.loads((folder / "image_of.json").read_text()))

    def batch(self, ids: list[str]) -> TeacherBatch:
        rows = self.cache.rows(ids)
        image_rows = self.image_of[rows]

        def take(name: str, index: np.ndarray, dtype=torch.float32) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(self.cache.arrays[name][index])).to(dtype)

        return TeacherBatch(take("image_tokens", image_rows), take("image_pooled", image_rows),
                            take("words", rows), take("word_mask", rows, torch.bool),
                            take("text_pooled", rows), take("choice_logits", rows),
                            take("choice_target", rows, torch.long))
