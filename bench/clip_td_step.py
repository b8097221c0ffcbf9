"""Cost of one CLIP-TD training step relative to a plain fine-tune step, side by side in one run.

Runs the project's own batch loss (:class:`pipeline_steps.train.clip_td.ClipTdBatchLoss`) with
AdamW, under the training loop's precision (``--precision``, as ``clip_td.train.precision``; ``auto``:
bf16 autocast on CUDA, fp32 on CPU), for:

- ``finetune``: task loss only;
- ``naive`` / ``targeted`` with the teacher features read from a cache (host memory, copied to the
  device every step, as the memory-mapped cache is);
- ``targeted-online``: the frozen CLIP teacher runs inside the step;
- ``finetune-padded`` (and, for VCR, ``finetune-padded-image-per-text``): the plain input paths the
  two input optimisations replace: every text padded to the student's maximum length instead of the
  batch's longest, and each image embedded again for each of its 8 texts instead of once;
- ``finetune-bf16`` (or ``finetune-fp32`` when ``--precision`` is bf16): a fine-tune step in the
  other precision, side by side (on a CPU, bf16 is fast only where it is native: AVX512-BF16, AMX).

``--scale paper``: a ViLT-B/32-sized student (768 wide, 12 layers, 384 px, 144 patches, 40 text
tokens) and a CLIP ViT-B/16 teacher, random weights, VCR-shaped batches (8 texts per example) or
SNLI-VE-shaped ones (1 text).  ``--scale tiny``: the synthetic world's sizes (for CPU).
Writes JSON with the median step time, samples/s, peak memory and each variant's ratio to finetune.

    python bench/clip_td_step.py --device cuda --scale paper --task snli_ve --out bench/results/x.json
    python bench/clip_td_step.py --device cpu --scale tiny --task vcr --threads 1 --out /tmp/x.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from pipeline_steps.clip_teacher import ClipTeacher, TeacherBatch
from pipeline_steps.hardware import PRECISIONS, autocast_dtype, machine_info
from pipeline_steps.models.clip import load_clip, model_config, save_clip
from pipeline_steps.models.student import Student, tiny_config
from pipeline_steps.models.clip_td import ClipTdModel
from pipeline_steps.tasks import Example
from pipeline_steps.train.distill import ClipTdBatchLoss

WORDS = ("red square circle left of above below blue green star cross there is a the what color "
         "is where relative to triangle yellow purple orange shape how many").split()


def student_of(scale: str, device: torch.device) -> Student:
    from transformers import BertTokenizer, ViltConfig, ViltModel

    vocab = {w: i for i, w in enumerate(dict.fromkeys(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]))}
    tokenizer = BertTokenizer(vocab=vocab, do_lower_case=True)
    if scale == "paper":
        config = ViltConfig(vocab_size=30522, max_image_length=-1)  # ViLT-B/32 sizes
    else:
        config = tiny_config({"hidden_size": 64, "layers": 2, "heads": 2, "intermediate_size": 128,
                              "image_size": 64, "patch_size": 8, "max_text_len": 40}, len(vocab))
    return Student(ViltModel(config).to(device), tokenizer)


def examples_of(task: str, n: int, rng: np.random.Generator) -> list[Example]:
    def text(k: int) -> str:
        return " ".join(rng.choice(WORDS, size=k))

    if task == "vcr":
        return [Example(f"{i}", "img", [text(14) for _ in range(8)], 0, label=0, rationale_label=1,
                        choice_texts=[]) for i in range(n)]
    return [Example(f"{i}", "img", [text(10)], 0, label=int(rng.integers(3))) for i in range(n)]


class HostCache:
    """Teacher features held in host memory and handed out per batch, like the memory-mapped cache."""

    def __init__(self, batch: TeacherBatch):
        self.cpu = TeacherBatch(*(getattr(batch, k).cpu() for k in
                                  ("image_tokens", "image_pooled", "words", "word_mask", "text_pooled",
                                   "choice_logits", "choice_target")))

    def batch(self, ids):
        return self.cpu


def one_step(loss: ClipTdBatchLoss, optimizer, examples, images, device, bf16: bool) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    optimizer.zero_grad(set_to_none=True)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        value, _ = loss(examples, images)
    value.backward()
    optimizer.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def time_variants(losses: dict, model, examples, images, device, steps: int, warmup: int) -> dict:
    """Round-robin over the variants (one step each per round), so clock and cache drift hit all alike.

    ``losses``: name -> (batch loss, bf16 autocast on or off)."""
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-5, fused=True)  # as the training loop
    times: dict[str, list[float]] = {name: [] for name in losses}
    peak: dict[str, float] = {}
    for round_ in range(warmup + steps):
        for name, (loss, bf16) in losses.items():
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            elapsed = one_step(loss, optimizer, examples, images, device, bf16)
            if round_ >= warmup:
                times[name].append(elapsed)
            if device.type == "cuda":
                peak[name] = max(peak.get(name, 0.0), torch.cuda.max_memory_allocated() / 2**30)
    out = {}
    for name, t in times.items():
        median = statistics.median(t)
        out[name] = {"median_step_s": median, "samples_per_s": len(examples) / median, "steps": steps,
                     "precision": "bf16" if losses[name][1] else "fp32"}
        if name in peak:
            out[name]["peak_memory_gb"] = peak[name]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--scale", choices=["tiny", "paper"], default="tiny")
    parser.add_argument("--task", choices=["snli_ve", "vcr"], default="snli_ve")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--profile", type=Path, help="also write a cProfile of 5 targeted steps here")
    parser.add_argument("--threads", type=int, help="torch CPU threads (the workflow's jobs use 1)")
    parser.add_argument("--precision", choices=PRECISIONS, default="auto",
                        help="every variant but the precision contrast (clip_td.train.precision; auto: bf16 "
                             "on CUDA, fp32 on CPU)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    student = student_of(args.scale, device)
    architecture = "ViT-B-16" if args.scale == "paper" else "TinyCLIP-64"
    with tempfile.TemporaryDirectory() as tmp:
        clip, _, _ = load_clip(architecture)
        save_clip(clip, model_config(architecture), tmp)
        teacher = ClipTeacher(tmp, device)
    size = student.image_size
    images = [Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)) for _ in range(args.batch_size)]
    examples = examples_of(args.task, args.batch_size, rng)
    cfg = {"teacher": {"max_words": 24}, "weighting": {"snli_temperature": 2.0},
           "distill": {"loss": "cosine", "modalities": ["image", "text"], "selection": "cross_modal"}}
    methods = {"finetune": {"weight": 0.0, "top_k": 1.0, "weighting": "constant"},
               "naive": {"weight": 1.0, "top_k": 1.0, "weighting": "constant"},
               "targeted": {"weight": 1.0, "top_k": 0.5, "weighting": "confidence"}}
    if args.task == "vcr":
        for e in examples:
            e.choice_texts = e.texts
    cached = HostCache(teacher.features(args.task, examples, images, 24))
    model = ClipTdModel(student, 3 if args.task == "snli_ve" else 1, teacher.model.visual.output_dim).to(device)
    model.train()
    variants = {"finetune": (methods["finetune"], None), "naive": (methods["naive"], cached),
                "targeted": (methods["targeted"], cached), "targeted-online": (methods["targeted"], (teacher, None))}
    bf16 = autocast_dtype(args.precision, device) is not None
    losses = {name: (ClipTdBatchLoss(model, args.task, method, cfg, [], source, device), bf16)
              for name, (method, source) in variants.items()}
    # the plain paths the optimised ones are measured against (see the docstring)
    losses["finetune-fp32" if bf16 else "finetune-bf16"] = (losses["finetune"][0], not bf16)
    losses["finetune-padded"] = (ClipTdBatchLoss(model, args.task, methods["finetune"], cfg, [], None, device,
                                                 padding="max_length"), bf16)
    if args.task == "vcr":
        losses["finetune-padded-image-per-text"] = (ClipTdBatchLoss(
            model, args.task, methods["finetune"], cfg, [], None, device, padding="max_length",
            embed_images_once=False), bf16)
    results = time_variants(losses, model, examples, images, device, args.steps, args.warmup)
    if args.profile:
        import cProfile
        import io
        import pstats

        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5, fused=True)
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(5):
            one_step(losses["targeted"][0], optimizer, examples, images, device, bf16)
        profiler.disable()
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(40)
        args.profile.write_text(text.getvalue())
    base = results["finetune"]["median_step_s"]
    for r in results.values():
        r["ratio_to_finetune"] = r["median_step_s"] / base
    report = {"bench": "clip_td_step", "machine": machine_info(device), "device": str(device),
              "scale": args.scale, "task": args.task, "batch_size": args.batch_size,
              "texts_per_example": len(examples[0].texts), "student_patches": student.grid ** 2,
              "teacher": architecture, "torch": torch.__version__, "cpu_threads": torch.get_num_threads(),
              "variants": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
