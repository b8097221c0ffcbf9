"""The synthetic world's teachers, trained from scratch on the synthetic COCO captions.

No pretrained weights exist offline, so in synthetic mode the ``pretrained`` stage trains:

- a tiny CLIP (open_clip architecture from params) with the symmetric InfoNCE loss, on a corpus
  larger and broader than the student's (COCO and Flickr30k captions: more images, both domains),
  as the published CLIPs saw far more than the VL students distilled from them;
- a tiny text-conditioned diffusion teacher (UNet + its own CLIP text encoder) with the DDPM
  noise-prediction loss, captions dropped 10% of the time (so it also models images without text,
  the empty-caption term of the teacher score), on timesteps from ``train_t_min`` up, where the
  caption decides the image.

Each is a real training run of the shared loop (checkpoints, resume, dvclive curves) and ends in a
folder that the paper-mode loaders read unchanged: an open_clip ``local-dir`` folder, and a
diffusers-layout folder.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn.functional as F

from ..hardware import device_for
from ..io import digest
from ..models.clip import clip_contrastive_loss, load_clip, model_config, save_clip
from ..models.diffusion import build_tiny_teacher, save_teacher
from .data import CaptionedImages
from .loop import LoopConfig, Trainer
from .outputs import finish_model_folder

log = logging.getLogger(__name__)


def pretrain_clip(spec: dict, train_cfg: dict, prepared: list[str | Path], out: str | Path,
                  work: str | Path, seed: int) -> dict:
    """Train ``spec['architecture']`` from random init on the train captions of the ``prepared``
    datasets (``pretrain.clip_corpus``: COCO and Flickr30k, more images than the student's COCO)."""
    device = device_for()
    torch.manual_seed(seed)
    model, preprocess, tokenizer = load_clip(spec["architecture"], None, device=str(device))
    data = CaptionedImages(prepared, "train")
    cfg = LoopConfig.from_params(train_cfg, seed, len(data))

    def loss_fn(step, indices, generator):
        images = data.images(indices, preprocess).to(device)
        texts = tokenizer(data.captions(indices)).to(device)
        loss = clip_contrastive_loss(model.encode_image(images), model.encode_text(texts), model.logit_scale)
        return loss, {"loss": loss.item()}

    model.train()
    trainer = Trainer(work, cfg, dict(model.named_parameters()), len(data), loss_fn, device,
                      identity={"clip": spec})
    last = trainer.run()
    summary = {"architecture": spec["architecture"], "steps": cfg.steps, "final": last,
               "train_captions": len(data), "corpus": [Path(p).name for p in prepared],
               "train_images": len({(k, r["image"]) for k, r in zip(data.source, data.records)})}
    finish_model_folder(Path(out), Path(work),
            lambda d: save_clip(model, model_config(spec["architecture"]), d), summary)
    return summary


def pretrain_diffusion(spec: dict, train_cfg: dict, prepared_coco: str | Path, out: str | Path,
                       work: str | Path, seed: int) -> dict:
    """Train the tiny text-conditioned diffusion teacher on the COCO train captions."""
    device = device_for()
    work = Path(work)
    teacher = build_tiny_teacher(spec, work / "tokenizer", seed).to(device)
    data = CaptionedImages(prepared_coco, "train")
    cfg = LoopConfig.from_params(train_cfg, seed, len(data))
    alphas = teacher.scheduler.alphas_cumprod.to(device)
    dropout = float(spec["caption_dropout"])
    t_min = int(spec["train_t_min"])

    def loss_fn(step, indices, generator):
        x0 = teacher.encode_images(data.unit_images(indices).to(device))
        captions = data.captions(indices)
        drop = torch.rand(len(captions), generator=generator, device=device) < dropout
        captions = ["" if d else c for c, d in zip(captions, drop.tolist())]
        ids = teacher.tokenizer(captions, padding="max_length", truncation=True,
                                max_length=teacher.tokenizer.model_max_length, return_tensors="pt").input_ids
        context = teacher.text_encoder(ids.to(device)).last_hidden_state
        t = torch.randint(t_min, len(alphas), (len(x0),), generator=generator, device=device)
        noise = torch.randn(x0.shape, generator=generator, device=device)
        a = alphas[t].view(-1, 1, 1, 1)
        noisy = a.sqrt() * x0 + (1 - a).sqrt() * noise
        loss = F.mse_loss(teacher.unet(noisy, t, encoder_hidden_states=context).sample, noise)
        return loss, {"loss": loss.item()}

    teacher.unet.train()
    teacher.text_encoder.train()
    named = {f"unet.{k}": p for k, p in teacher.unet.named_parameters()}
    named |= {f"text_encoder.{k}": p for k, p in teacher.text_encoder.named_parameters()}
    last = Trainer(work, cfg, named, len(data), loss_fn, device, identity={"diffusion": spec}).run()
    teacher.freeze()
    summary = {"steps": cfg.steps, "final": last, "input_shape": list(teacher.input_shape),
               "train_captions": len(data)}
    finish_model_folder(Path(out), work, lambda d: save_teacher(teacher, d), summary)
    return summary


def student_corpus(prepared: dict[str, str | Path]) -> list[str]:
    """Every text the student will read: COCO captions and the task texts (for the vocabulary)."""
    from ..tasks import TASKS
    from ..tasks.examples import load_examples

    texts = [r["caption"] for r in CaptionedImages(prepared["coco"], "train").records]
    for task in TASKS:
        if task in prepared:
            for e in load_examples(task, prepared[task]):
                texts += e.texts
                texts += [a for a in e.answers]
    return texts


def mlm_masks(ids: torch.Tensor, attention: torch.Tensor, rows: torch.Tensor, never: torch.Tensor,
              probability: float, generator: torch.Generator) -> torch.Tensor:
    """(B, T) bool: the tokens MLM masks, each with ``probability`` among the real tokens of ``rows``
    (the matched captions) that are not in ``never`` (special tokens and the unmasked words: a mask
    then asks for a word the image decides, a colour, a shape, a size or a relation, not an "a" or
    an "of" that the text alone gives)."""
    maskable = maskable_tokens(ids, attention, never) & rows.unsqueeze(1)
    return maskable & (torch.rand(ids.shape, generator=generator, device=ids.device) < probability)


def maskable_tokens(ids: torch.Tensor, attention: torch.Tensor, never: torch.Tensor) -> torch.Tensor:
    """(B, T) bool: the real tokens MLM may mask, those not in ``never``."""
    return attention.bool() & ~torch.isin(ids, never.to(ids.device))


# held-out captions on which the pretrained student's grounding is measured
GROUNDING_CAPTIONS = 500


@torch.no_grad()
def masked_word_accuracy(student, mlm_head, data: CaptionedImages, never: torch.Tensor, n: int,
                         device: torch.device, batch_size: int = 100) -> dict:
    """Does the student read the image? On the first ``n`` captions of ``data`` (held out), one
    maskable token per caption (drawn with a fixed seed; the synthetic vocabulary holds every caption
    word whole) is masked and predicted with the caption's image and with the image blanked: a
    student that grounds its words is right more often with the image."""
    mask_id = student.tokenizer.convert_tokens_to_ids("[MASK]")
    generator = torch.Generator().manual_seed(0)
    right = {"with_image": 0, "blank_image": 0}
    count = 0
    for start in range(0, min(n, len(data)), batch_size):
        indices = list(range(start, min(start + batch_size, n, len(data))))
        tokens, _, _ = student.tokenize(data.captions(indices), 0, padding="max_length")
        ids, attention = tokens["input_ids"], tokens["attention_mask"]
        maskable = maskable_tokens(ids, attention, never)
        keep = maskable.any(1)
        # one maskable position per caption, uniformly
        scores = torch.rand(ids.shape, generator=generator).masked_fill(~maskable, -1.0)
        position = scores.argmax(1)
        rows = torch.arange(len(ids))[keep]
        chosen = torch.zeros_like(maskable)
        chosen[rows, position[keep]] = True
        pixels = student.pixels(data.pil_images(indices)).to(device)
        for name, images in (("with_image", pixels), ("blank_image", torch.zeros_like(pixels))):
            enc = student(images, ids.masked_fill(chosen, mask_id).to(device), attention.to(device))
            predicted = mlm_head(enc.text[chosen.to(device)]).argmax(-1).cpu()
            right[name] += int((predicted == ids[chosen]).sum())
        count += int(keep.sum())
    return {"captions": count, **{k: round(v / max(count, 1), 4) for k, v in right.items()}}


def pretrain_student(spec: dict, train_cfg: dict, prepared: dict[str, str | Path], out: str | Path,
                     work: str | Path, seed: int, domains: list[str]) -> dict:
    """Pretrain the tiny ViLT on the COCO captions of images of ``domains`` (``pretrain.student_domains``)
    with masked-language modelling + image-text matching.

    The vocabulary is a WordPiece vocabulary trained on the captions and the task texts (the
    synthetic stand-in for BERT's).  MLM masks ``mask_probability`` of the words other than
    ``unmasked_words``.  ITM: every second example gets another example's caption.
    """
    from ..models.student import SPECIAL_TOKENS, build_tiny_student, train_vocabulary

    device = device_for()
    work = Path(work)
    vocab = train_vocabulary(student_corpus(prepared), int(spec["vocab_size"]), work / "vocabulary")
    student = build_tiny_student(spec, vocab, seed).to(device)
    h, vocab_size = student.hidden_size, len(student.tokenizer)
    torch.manual_seed(seed)
    mlm_head = torch.nn.Sequential(torch.nn.Linear(h, h), torch.nn.GELU(), torch.nn.LayerNorm(h),
                                   torch.nn.Linear(h, vocab_size)).to(device)
    itm_head = torch.nn.Linear(h, 2).to(device)
    data = CaptionedImages(prepared["coco"], "train", domains)
    cfg = LoopConfig.from_params(train_cfg, seed, len(data))
    mask_id = student.tokenizer.convert_tokens_to_ids("[MASK]")
    mask_p = float(spec["mask_probability"])
    vocabulary = student.tokenizer.get_vocab()
    never = torch.tensor([vocabulary[w] for w in [*SPECIAL_TOKENS, *spec["unmasked_words"]] if w in vocabulary],
                         device=device)

    def loss_fn(step, indices, generator):
        captions = data.captions(indices)
        n = len(captions)
        matched = torch.arange(n, device=device) % 2 == 0
        shifted = [captions[(i + 1) % n] for i in range(n)]  # a caption of another image
        texts = [c if m else s for c, s, m in zip(captions, shifted, matched.tolist())]
        # padded to max_text_len: the masking draws below are over this shape, and padding to the
        # batch's longest caption would draw other masks, hence another pretrained student
        tokens, _, _ = student.tokenize(texts, 0, padding="max_length")
        ids = tokens["input_ids"].to(device)
        attention = tokens["attention_mask"].to(device)
        chosen = mlm_masks(ids, attention, matched, never, mask_p, generator)
        enc = student(student.pixels(data.pil_images(indices)).to(device), ids.masked_fill(chosen, mask_id),
                      attention)
        itm = F.cross_entropy(itm_head(enc.pooled).float(), matched.long())
        mlm = (F.cross_entropy(mlm_head(enc.text[chosen]).float(), ids[chosen])
               if chosen.any() else enc.text.sum() * 0)
        loss = mlm + itm
        return loss, {"loss": loss.item(), "loss_mlm": mlm.item(), "loss_itm": itm.item()}

    student.train()
    named = {f"student.{k}": p for k, p in student.vilt.named_parameters()}
    named |= {f"mlm_head.{k}": p for k, p in mlm_head.named_parameters()}
    named |= {f"itm_head.{k}": p for k, p in itm_head.named_parameters()}
    identity = {"student": spec, "vocabulary": digest(student.tokenizer.get_vocab())}
    last = Trainer(work, cfg, named, len(data), loss_fn, device, identity=identity).run()
    student.eval()
    mlm_head.eval()
    summary = {"steps": cfg.steps, "final": last, "vocabulary": vocab_size, "train_captions": len(data),
               "train_domains": sorted(domains), "hidden_size": h,
               "masked_word_accuracy": masked_word_accuracy(student, mlm_head, CaptionedImages(prepared["coco"], "val"),
                                                            never, GROUNDING_CAPTIONS, device)}
    finish_model_folder(Path(out), work, student.save, summary)
    return summary
