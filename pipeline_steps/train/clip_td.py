"""CLIP-TD training: one run of the grid (task x setting x method x seed), and its predictions on the
split's evaluation ids. The method (the distillation losses and weights) is in ``distill.py``."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file

from ..errors import ParamsError
from ..hardware import device_for
from ..io import digest
from ..seeding import rng_for
from ..clip_teacher import ClipFeatureCache, ClipTeacher
from ..data.shards import PreparedDataset
from ..models.clip_td import ClipTdModel
from ..models.student import load_student
from ..splits import load_split
from ..tasks import Example, get_task
from ..tasks.examples import BLANK_IMAGE, PREDICTIONS, SHUFFLED_IMAGE, load_examples
from .distill import ClipTdBatchLoss
from .loop import LoopConfig, Trainer
from .outputs import finish_model_folder

log = logging.getLogger(__name__)


def augment_crop(image: Image.Image, crop_scale: float, rng: np.random.Generator) -> Image.Image:
    """A random square crop covering ``[crop_scale, 1]`` of the area, resized back."""
    if crop_scale >= 1:
        return image
    w, h = image.size
    side = math.sqrt(rng.uniform(crop_scale, 1.0))
    cw, ch = max(1, round(w * side)), max(1, round(h * side))
    x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    return image.crop((x, y, x + cw, y + ch)).resize((w, h), Image.BICUBIC)


# --- training and prediction ----------------------------------------------------------------------------------

def train_section(cfg: dict, task: str) -> dict:
    """clip_td.train and clip_td.lowshot_length with the task's overrides (clip_td.task_train.<task>)
    applied."""
    return {**cfg["train"], "lowshot_length": cfg["lowshot_length"], **cfg.get("task_train", {}).get(task, {})}


def length_items(section: dict, split: dict, split_file: str | Path) -> int:
    """The number of training examples the run's epochs are counted on: its own split's, or for a
    low-shot run with ``lowshot_length: full_split`` the task's full split's (the file beside it), so
    that every fraction trains as many steps as the full split and the low-shot curve measures the
    data, not the steps."""
    if split.get("fraction") is None or section["lowshot_length"] == "split":
        return len(split["train"])
    return len(load_split(Path(split_file).parent / "full.json")["train"])


def train_clip_td(task: str, method_name: str, cfg: dict, seed: int, student_folder: str | Path,
                  prepared: str | Path, split_file: str | Path, teacher_clip: str | Path | None,
                  teacher_cache: str | Path | None, out: str | Path, work: str | Path) -> dict:
    """One run of the grid; writes the fine-tuned student + head to ``out``."""
    if method_name not in cfg["methods"]:
        raise ParamsError(f"clip_td.methods has no method {method_name!r}")
    method = cfg["methods"][method_name]
    device = device_for()
    split = load_split(split_file)
    examples = load_examples(task, prepared, split["train"])
    outputs = get_task(task).outputs(examples, cfg, str(split_file))
    torch.manual_seed(seed)
    student = load_student(student_folder, device)
    teacher_source = None
    teacher_dim = 1
    crop_scale = float(cfg["augment"]["crop_scale"])
    if float(method["weight"]) > 0:
        if cfg["teacher"]["mode"] == "online":
            clip = ClipTeacher(teacher_clip, device)
            candidates = get_task(task).teacher_candidates(examples, cfg["teacher"])
            teacher_source = (clip, candidates)
            teacher_dim = int(clip.model.visual.output_dim)
        else:
            if crop_scale < 1:
                raise ParamsError("clip_td.augment.crop_scale < 1 changes the images the teacher sees: "
                                 "it needs clip_td.teacher.mode: online")
            teacher_source = ClipFeatureCache(teacher_cache)
            teacher_dim = int(teacher_source.summary["dim"])
    model = ClipTdModel(student, len(outputs), teacher_dim).to(device)
    batch_loss = ClipTdBatchLoss(model, task, method, cfg, outputs, teacher_source, device)
    data = PreparedDataset(prepared)
    section = train_section(cfg, task)
    loop_cfg = LoopConfig.from_params(section, seed, length_items(section, split, split_file))

    def loss_fn(step, indices, generator):
        batch = [examples[i] for i in indices]
        rng = rng_for(seed, "augment", step)
        images = [augment_crop(data.image(e.image), crop_scale, rng) for e in batch]
        return batch_loss(batch, images, generator)

    model.train()
    named = {k: p for k, p in model.named_parameters()}
    identity = {"task": task, "method": method, "clip_td": cfg, "train_ids": digest(split["train"])}
    last = Trainer(work, loop_cfg, named, len(examples), loss_fn, device, identity=identity).run()
    model.eval()
    # the run's outputs on its split's evaluation ids, computed while the model is in memory: the
    # evaluation job then needs no model (and none of torch's start-up)
    eval_examples = load_examples(task, prepared, split["eval"])
    logits = predict(model, eval_examples, data, loop_cfg.batch_size, batch_loss.max_words)
    # the image-ablated baselines: every image blanked (what the text alone gives), and every image
    # swapped for another evaluation image (in distribution, unlike a blank: what a wrong image gives)
    blank = predict(model, eval_examples, data, loop_cfg.batch_size, batch_loss.max_words, images="blank")
    shuffled = predict(model, eval_examples, data, loop_cfg.batch_size, batch_loss.max_words, images="shuffled")
    data.close()

    def write(folder: Path) -> None:
        model.student.save(folder / "student")
        save_file({k: v.detach().cpu().contiguous() for k, v in model.head.state_dict().items()},
                  folder / "head.safetensors")
        (folder / "task.json").write_text(json.dumps(
            {"task": task, "outputs": outputs, "max_words": batch_loss.max_words}, indent=1))
        save_predictions(folder / PREDICTIONS, split["eval"], logits.numpy(), blank.numpy(), shuffled.numpy())

    summary = {"task": task, "method": method_name, "method_config": method, "seed": seed,
               "split": Path(split_file).name, "train_examples": len(examples), "steps": loop_cfg.steps,
               "final": last, "distill": cfg["distill"], "teacher_mode": cfg["teacher"]["mode"],
               "outputs": len(outputs)}
    finish_model_folder(Path(out), Path(work), write, summary)
    return summary


def save_predictions(path: Path, ids: list[str], logits: np.ndarray, blank_image_logits: np.ndarray,
                     shuffled_image_logits: np.ndarray) -> None:
    """The evaluation ids and the model's (N, outputs) logits: with the images, with them blanked and
    with them shuffled, as plain arrays (no pickle)."""
    np.savez(path, ids=np.array(ids, dtype=str), logits=logits.astype(np.float32),
             **{f"{BLANK_IMAGE}_logits": blank_image_logits.astype(np.float32),
                f"{SHUFFLED_IMAGE}_logits": shuffled_image_logits.astype(np.float32)})


def shuffled_images(examples: list[Example]) -> list[str]:
    """Each example's image swapped for another: the evaluation images in order of first use, each
    replaced by the next one (the last by the first). With two or more images, a deterministic
    derangement that keeps every image in the set: the input stays in distribution while no text
    sees its own image."""
    order = list(dict.fromkeys(e.image for e in examples))
    following = {image: order[(i + 1) % len(order)] for i, image in enumerate(order)}
    return [following[e.image] for e in examples]


@torch.no_grad()
def predict(model: ClipTdModel, examples: list[Example], data: PreparedDataset, batch_size: int,
            max_words: int, images: str = "real") -> torch.Tensor:
    """(N, outputs) logits; VCR: (N, 8) scores of the Q->A and QA->R texts.

    ``images``: ``real``; ``blank``: every image replaced by the normalisation mean (zeros at the
    student's input); ``shuffled``: every image swapped for another evaluation image
    (:func:`shuffled_images`). The image-ablated baselines: a student that scores as well without its
    image does not use it.
    """
    if images not in ("real", "blank", "shuffled"):
        raise ValueError(f"images: {images!r} is not real, blank or shuffled")
    image_ids = shuffled_images(examples) if images == "shuffled" else [e.image for e in examples]
    out = []
    dev = next(model.parameters()).device
    for start in range(0, len(examples), batch_size):
        batch = examples[start:start + batch_size]
        per = len(batch[0].texts)
        texts = [t for e in batch for t in e.texts]
        tokens, _, _ = model.student.tokenize(texts, max_words)
        if images == "blank":  # nothing to decode
            size = model.student.image_size
            pixels = torch.zeros(len(batch), 3, size, size, device=dev)
        else:
            pixels = model.student.pixels([data.image(i) for i in image_ids[start:start + batch_size]]).to(dev)
        enc = model.student(pixels, tokens["input_ids"].to(dev), tokens["attention_mask"].to(dev),
                            texts_per_image=per)
        logits = model.head(enc.pooled).float().cpu()
        out.append(logits.view(len(batch), -1))
    return torch.cat(out)
