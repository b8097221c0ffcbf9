"""The CLIP-TD student: an existing vision-language model from transformers (ViLT), unchanged.

``ViltModel`` is patch based (no region detector), so the same code runs a published checkpoint
(paper mode: a ViLT-B/32 folder, e.g. ``dandelin/vilt-b32-mlm``) and the synthetic world's tiny
one, built from a config and pretrained in the ``pretrained`` stage.  A student folder is what
``save_pretrained`` writes: ``config.json`` + weights + the BERT tokenizer files.

Two details make the student's tokens line up with the teacher's:

- images are resized to a square ``image_size`` (every patch valid), and ViLT's patch sampling,
  which returns the patches in random order, is undone: image tokens come back in raster order,
  so image token ``i`` is patch ``(i // grid, i % grid)``;
- texts are tokenised from whitespace-separated words (``is_split_into_words``), and
  :meth:`Student.word_features` averages each word's word pieces, so word ``w`` of the student
  lines up with word ``w`` of the CLIP teacher (:mod:`pipeline_steps.clip_teacher`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from transformers import BertTokenizer, ViltConfig, ViltModel

from ..errors import MissingInput

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
# ViLT's image normalisation (mean = std = 0.5 per channel)
PIXEL_MEAN, PIXEL_STD = 0.5, 0.5


def words_of(text: str) -> list[str]:
    """The word units both tokenisers see: whitespace-separated pieces."""
    return text.split()


def train_vocabulary(texts, vocab_size: int, out_dir: str | Path) -> Path:
    """A WordPiece vocabulary (``vocab.txt``) for ``texts``, the same on every run.

    Special tokens, every character seen (alone and as a ``##`` continuation, so nothing is
    unknown), then whole words by frequency (ties alphabetical) up to ``vocab_size``.  BERT's
    normaliser and pre-tokeniser split the words exactly as the tokenizer will.  (The tokenizers
    library's WordPiece trainer breaks count ties in hash order: two runs could differ.)
    """
    from collections import Counter

    from tokenizers.normalizers import BertNormalizer
    from tokenizers.pre_tokenizers import BertPreTokenizer

    normalizer, pre_tokenizer = BertNormalizer(lowercase=True), BertPreTokenizer()
    words = Counter(w for text in texts
                    for w, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text)))
    chars = sorted({c for w in words for c in w})
    vocab = SPECIAL_TOKENS + chars + [f"##{c}" for c in chars]
    known = set(vocab)
    for word, _ in sorted(words.items(), key=lambda item: (-item[1], item[0])):
        if len(vocab) >= vocab_size:
            break
        if word not in known:
            vocab.append(word)
            known.add(word)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    return out_dir / "vocab.txt"


def tiny_config(spec: dict, vocab_size: int) -> ViltConfig:
    """A small ViLT from ``models.student.tiny``."""
    return ViltConfig(vocab_size=vocab_size, hidden_size=spec["hidden_size"],
                      num_hidden_layers=spec["layers"], num_attention_heads=spec["heads"],
                      intermediate_size=spec["intermediate_size"], image_size=spec["image_size"],
                      patch_size=spec["patch_size"], max_position_embeddings=spec["max_text_len"],
                      max_image_length=-1, num_images=-1, hidden_dropout_prob=0.0,
                      attention_probs_dropout_prob=0.0)


@dataclass
class Encoded:
    """One forward pass: text tokens (B, T, D), image tokens in raster order (B, P, D), pooled (B, D)."""
    text: torch.Tensor
    image: torch.Tensor
    pooled: torch.Tensor
    word_pool: torch.Tensor  # (B, W, T): averages each word's pieces
    word_mask: torch.Tensor  # (B, W) bool: word present in the (truncated) input

    def word_features(self) -> torch.Tensor:
        return self.word_pool @ self.text


class Student(torch.nn.Module):
    """ViltModel + its tokenizer, with inputs built from PIL images and texts."""

    def __init__(self, vilt: ViltModel, tokenizer: BertTokenizer, max_text_len: int | None = None):
        super().__init__()
        self.vilt = vilt
        self.tokenizer = tokenizer
        self.max_text_len = int(max_text_len or vilt.config.max_position_embeddings)
        self.image_size = int(vilt.config.image_size)
        self.grid = self.image_size // int(vilt.config.patch_size)

    @property
    def hidden_size(self) -> int:
        return int(self.vilt.config.hidden_size)

    @property
    def device(self) -> torch.device:
        return next(self.vilt.parameters()).device

    # --- inputs ----------------------------------------------------------------------------------
    def pixels(self, images: list[Image.Image]) -> torch.Tensor:
        """(B, 3, S, S) normalised pixels of square-resized images."""
        arrays = [np.asarray(im.convert("RGB").resize((self.image_size, self.image_size), Image.BICUBIC),
                             dtype=np.float32) for im in images]
        x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2) / 255.0
        return (x - PIXEL_MEAN) / PIXEL_STD

    def tokenize(self, texts: list[str], max_words: int,
                 padding: str = "longest") -> tuple[dict, torch.Tensor, torch.Tensor]:
        """Token ids + attention mask, and the word pooling matrix (B, max_words, T) and mask.

        ``padding="longest"`` pads to the batch's longest text (at most ``max_text_len``): padded
        positions are masked out of attention, so only the compute changes (texts are often a
        third of ``max_text_len``); ``"max_length"`` always pads to ``max_text_len`` (the plain path,
        for benchmarks)."""
        words = [words_of(t) or ["."] for t in texts]
        enc = self.tokenizer(words, is_split_into_words=True, padding=padding, truncation=True,
                             max_length=self.max_text_len, return_tensors="pt")
        # (text, word, token) of every word piece, set in one indexed write (one tensor write per
        # piece cost ~6 ms of a 150 ms VCR training step)
        rows, word_index, token_index = [], [], []
        for b in range(len(texts)):
            for t, w in enumerate(enc.word_ids(b)):
                if w is not None and w < max_words:
                    rows.append(b)
                    word_index.append(w)
                    token_index.append(t)
        pool = torch.zeros(len(texts), max_words, enc["input_ids"].shape[1])
        pool[rows, word_index, token_index] = 1.0
        counts = pool.sum(-1, keepdim=True)
        mask = counts.squeeze(-1) > 0
        pool = pool / counts.clamp(min=1)
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}, pool, mask

    # --- forward ---------------------------------------------------------------------------------
    def forward(self, pixel_values: torch.Tensor, input_ids: torch.Tensor,
                attention_mask: torch.Tensor, word_pool: torch.Tensor | None = None,
                word_mask: torch.Tensor | None = None, texts_per_image: int = 1) -> Encoded:
        """``texts_per_image``: image ``i`` goes with texts ``i * k .. i * k + k - 1`` (VCR pairs one
        image with 8 texts): its patches are embedded once and shared by its texts."""
        emb = self.vilt.embeddings
        pixel_mask = torch.ones(pixel_values.shape[0], *pixel_values.shape[2:], dtype=torch.long,
                                device=pixel_values.device)
        # ViLT draws a random patch order (torch.multinomial on the global generator): keep the
        # global generator untouched (resumed runs stay exact) and put the patches back in raster order.
        with torch.random.fork_rng(devices=[]):
            image_embeds, image_mask, (patch_index, (_, width)) = emb.visual_embed(
                pixel_values, pixel_mask, max_image_length=-1)
        order = (patch_index[..., 0] * width + patch_index[..., 1]).argsort(dim=1)
        patches = torch.gather(image_embeds[:, 1:], 1,
                               order.unsqueeze(-1).expand(-1, -1, image_embeds.shape[-1]))
        image_embeds = torch.cat([image_embeds[:, :1], patches], dim=1)
        if texts_per_image > 1:
            image_embeds = image_embeds.repeat_interleave(texts_per_image, dim=0)
            image_mask = image_mask.repeat_interleave(texts_per_image, dim=0)
        out = self.vilt(input_ids=input_ids, attention_mask=attention_mask, image_embeds=image_embeds,
                        pixel_mask=image_mask)
        hidden = out.last_hidden_state
        t = input_ids.shape[1]
        b = len(hidden)
        if word_pool is None:
            word_pool = hidden.new_zeros(b, 0, t)
            word_mask = torch.zeros(b, 0, dtype=torch.bool, device=hidden.device)
        return Encoded(text=hidden[:, :t], image=hidden[:, t + 1:], pooled=out.pooler_output,
                       word_pool=word_pool.to(hidden.dtype), word_mask=word_mask)

    def encode(self, images: list[Image.Image], texts: list[str], max_words: int = 0) -> Encoded:
        """Build the inputs on the student's device and run it."""
        tokens, pool, mask = self.tokenize(texts, max_words)
        dev = self.device
        return self(self.pixels(images).to(dev), tokens["input_ids"].to(dev),
                    tokens["attention_mask"].to(dev), pool.to(dev), mask.to(dev))

    # --- folders ---------------------------------------------------------------------------------
    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        self.vilt.save_pretrained(folder, safe_serialization=True)
        self.tokenizer.save_pretrained(folder)
        return folder


def build_tiny_student(spec: dict, vocab_file: str | Path, seed: int) -> Student:
    tokenizer = BertTokenizer(vocab=str(vocab_file), do_lower_case=True)
    torch.manual_seed(seed)
    vilt = ViltModel(tiny_config(spec, len(tokenizer)))
    return Student(vilt, tokenizer, spec["max_text_len"])


def load_student(folder: str | Path, device: str | torch.device = "cpu") -> Student:
    """A student folder (``save`` of the tiny one, or a published ViLT checkpoint) offline."""
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise MissingInput(f"{folder} is not a student folder (no config.json); run the "
                                f"pretrained stage or place a ViLT checkpoint there")
    vilt = ViltModel.from_pretrained(folder, local_files_only=True)
    tokenizer = BertTokenizer.from_pretrained(folder, local_files_only=True)
    return Student(vilt.to(device), tokenizer)
