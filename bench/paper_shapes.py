"""One training step of each paper-size model on the CPU, batch 1, random weights: shapes, parameter
counts, time and peak memory at real size, known before GPU hours are spent.

- ``sds_clip``: SDS-CLIP with CLIP ViT-L/14 (224 px) and Stable Diffusion 1.4's UNet (4x64x64
  latents, 77 x 768 text context; its CLIP-L text encoder gives the context), ``sds.gradient: full``
  (through the UNet) and ``sds`` (the UNet Jacobian skipped), lambda = 1.
- ``clip_td``: CLIP-TD targeted with ViLT-B/32 (384 px, 144 patches, 40 text positions) and an online
  ViT-B/16 teacher, for SNLI-VE (1 text an example) and VCR (8 texts).

Each case runs in a fresh process (its peak RSS is its own), fp32, on all the machine's cores:

    python bench/paper_shapes.py --out bench/results/paper_shapes-cpu2.json
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

CASES = ("sds_clip", "clip_td")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def sds_clip_case() -> dict:
    import torch

    from pipeline_steps.models.clip import load_clip, model_config, save_clip
    from pipeline_steps.models.diffusion import save_teacher
    from pipeline_steps.train.schedule import step_generator
    from pipeline_steps.train.sds_clip import SdsClipModel
    from sds_clip_step import paper_teacher

    device = torch.device("cpu")
    out: dict = {"clip": "ViT-L-14", "teacher": "SD-1.4 UNet + CLIP-L text encoder", "batch_size": 1}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        start = time.perf_counter()
        torch.manual_seed(0)
        clip, _, _ = load_clip("ViT-L-14")
        save_clip(clip, {**model_config("ViT-L-14"), "quick_gelu": True}, tmp / "clip")
        teacher = paper_teacher(tmp / "tok")
        save_teacher(teacher, tmp / "teacher")
        del clip, teacher
        model = SdsClipModel(tmp / "clip", tmp / "teacher",
                             {"layernorm_scope": "both", "sds": {"h_w_init_std": 0.02}}, 0, device)
        out["build_s"] = time.perf_counter() - start
    out["parameters"] = {"clip": count(model.clip), "unet": count(model.teacher.unet),
                         "text_encoder": count(model.teacher.text_encoder), "h_w": count(model.h_w),
                         "trainable": sum(p.numel() for p in model.trainable().values())}
    size = getattr(model.preprocess.transforms[0], "size", None)
    images = torch.rand(1, 3, 224, 224)
    texts = model.tokenizer(["a red square left of a blue circle"])
    context = model.teacher.encode_text(["a red square left of a blue circle"]).float()
    out["shapes"] = {"image": list(images.shape), "preprocess_size": size, "clip_embedding": model.clip.visual.output_dim,
                     "latent": list(model.teacher.input_shape), "text_context": list(context.shape)}
    optimizer = torch.optim.AdamW(list(model.trainable().values()), lr=1e-5, fused=True)
    steps = {}
    for gradient in ("full", "sds"):
        sds_cfg = {"gradient": gradient, "t_min": 20, "t_max": 980, "weighting": "uniform"}
        for step in range(2):  # the first step pays for allocation; the second is the one reported
            start = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            loss, _ = model.loss(images, texts, context, 1.0, sds_cfg, step_generator(0, step, device))
            loss.backward()
            optimizer.step()
            elapsed = time.perf_counter() - start
        steps[gradient] = {"step_s": elapsed, "loss_finite": bool(torch.isfinite(loss))}
    out["steps"] = steps
    return out


def clip_td_case() -> dict:
    import numpy as np
    import torch
    from PIL import Image

    from clip_td_step import examples_of, student_of
    from pipeline_steps.clip_teacher import ClipTeacher
    from pipeline_steps.models.clip import load_clip, model_config, save_clip
    from pipeline_steps.models.clip_td import ClipTdModel
    from pipeline_steps.train.distill import ClipTdBatchLoss

    device = torch.device("cpu")
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    student = student_of("paper", device)
    with tempfile.TemporaryDirectory() as tmp:
        clip, _, _ = load_clip("ViT-B-16")
        save_clip(clip, {**model_config("ViT-B-16"), "quick_gelu": True}, tmp)
        del clip
        teacher = ClipTeacher(tmp, device)
    out: dict = {"student": "ViLT-B/32", "teacher": "ViT-B-16 (online)", "batch_size": 1,
                 "build_s": time.perf_counter() - start,
                 "parameters": {"student": count(student), "teacher": count(teacher.model)},
                 "shapes": {"student_image": student.image_size, "student_patches": student.grid ** 2,
                            "student_text_positions": student.max_text_len}}
    cfg = {"teacher": {"max_words": 24}, "weighting": {"snli_temperature": 2.0},
           "distill": {"loss": "cosine", "modalities": ["image", "text"], "selection": "cross_modal"}}
    method = {"weight": 1.0, "top_k": 0.5, "weighting": "confidence"}
    steps = {}
    for task, outputs in (("snli_ve", ["entailment", "neutral", "contradiction"]), ("vcr", ["score"])):
        examples = examples_of(task, 1, rng)
        if task == "vcr":
            examples[0].choice_texts = examples[0].texts
        images = [Image.fromarray(rng.integers(0, 255, (student.image_size,) * 2 + (3,), dtype=np.uint8))]
        model = ClipTdModel(student, len(outputs), teacher.model.visual.output_dim).to(device).train()
        loss_of = ClipTdBatchLoss(model, task, method, cfg, outputs, (teacher, None), device)
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5, fused=True)
        for _ in range(2):
            start = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            loss, metrics = loss_of(examples, images)
            loss.backward()
            optimizer.step()
            elapsed = time.perf_counter() - start
        steps[task] = {"texts": len(examples[0].texts), "step_s": elapsed, "loss_finite": bool(torch.isfinite(loss)),
                       "loss_distill": metrics["loss_distill"]}
    out["steps"] = steps
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--case", choices=CASES, help="run one case here and print its JSON (the parent's job)")
    args = parser.parse_args()
    if args.case:
        result = {"sds_clip": sds_clip_case, "clip_td": clip_td_case}[args.case]()
        result["peak_rss_mb"] = peak_rss_mb()
        print(json.dumps(result))
        return
    from pipeline_steps.hardware import machine_info

    cases = {}
    for case in CASES:
        proc = subprocess.run([sys.executable, __file__, "--case", case], capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"{case} failed:\n{proc.stderr[-4000:]}")
        cases[case] = json.loads(proc.stdout.strip().splitlines()[-1])
    report = {"bench": "paper_shapes", "machine": machine_info("cpu"), "cases": cases}
    text = json.dumps(report, indent=2)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
