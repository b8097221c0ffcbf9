"""Throughput of one SDS-CLIP training step, each optimisation against the naive path, in one run.

Runs the project's own step: :meth:`pipeline_steps.train.sds_clip.SdsClipModel.loss` (CLIP loss +
lambda * L_SDS through the frozen UNet), backward, AdamW on the trainable LayerNorms and h_w, the
same autocast as the training loop. Variants, each a configuration of that code:

- ``naive``: fp32, the caption's text-encoder states computed in every step, ``sds.gradient: full``;
- ``cached``: fp32, text states read from a host cache (as the ``cache_text_states`` stage gives);
- ``bf16``: + bf16 autocast (the loop's default on CUDA);
- ``compiled``: + ``torch.compile`` of the UNet (``--compile``; ``sds_clip.train.compile``);
- ``sds``: the best of the above with ``sds.gradient: sds`` (no backward through the UNet);
- ``sds-naive``: ``sds.gradient: sds`` on the naive path, so the sds mode's own gains show too.

``--scale paper``: CLIP ViT-B/32 and an SD-1.x-sized UNet (4x64x64 latents, 768-wide context, 77
tokens) with its CLIP-L text encoder, random weights. ``--scale tiny``: the synthetic world's sizes
(for CPU; absolute times there mean little, the ratios are the point). Writes JSON with the median
step time, samples/s, peak memory, FLOPs per sample, achieved TFLOP/s and each variant's ratio to
naive, plus how far bf16's loss is from fp32's on the same batch.

    python bench/sds_clip_step.py --device cuda --scale paper --compile --out bench/results/sds_clip_step-h100.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
import yaml
from torch.utils.flop_counter import FlopCounterMode

from pipeline_steps.hardware import autocast_dtype, machine_info
from pipeline_steps.models.clip import load_clip, model_config, save_clip
from pipeline_steps.models.diffusion import DiffusionTeacher, build_tiny_teacher, save_teacher
from pipeline_steps.train.schedule import step_generator
from pipeline_steps.train.sds_clip import SdsClipModel

REPO = Path(__file__).resolve().parent.parent


def paper_teacher(tokenizer_dir: Path) -> DiffusionTeacher:
    """Stable Diffusion 1.x's UNet and text encoder shapes, random weights."""
    from diffusers import DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from pipeline_steps.models.diffusion import bpe_tokenizer

    unet = UNet2DConditionModel(sample_size=64, in_channels=4, out_channels=4, cross_attention_dim=768,
                                block_out_channels=(320, 640, 1280, 1280), layers_per_block=2,
                                attention_head_dim=8)
    text = CLIPTextModel(CLIPTextConfig(vocab_size=49408, hidden_size=768, intermediate_size=3072,
                                        num_attention_heads=12, num_hidden_layers=12,
                                        max_position_embeddings=77, hidden_act="quick_gelu"))
    scheduler = DDPMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                              beta_schedule="scaled_linear", clip_sample=False)
    return DiffusionTeacher(unet, scheduler, text, bpe_tokenizer(tokenizer_dir), None)


def build(scale: str, tmp: Path, device: torch.device, sds_cfg: dict) -> SdsClipModel:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    architecture = "ViT-B-32" if scale == "paper" else params["models"]["clip"]["clip-tiny"]["architecture"]
    torch.manual_seed(0)
    clip, _, _ = load_clip(architecture)
    save_clip(clip, model_config(architecture), tmp / "clip")
    teacher = paper_teacher(tmp / "tok") if scale == "paper" else \
        build_tiny_teacher(params["models"]["diffusion"]["tiny"], tmp / "tok", 0)
    save_teacher(teacher, tmp / "teacher")
    cfg = {"layernorm_scope": "both", "sds": sds_cfg}
    return SdsClipModel(tmp / "clip", tmp / "teacher", cfg, 0, device)


class Batch:
    """One batch on the host, as the training loop's loss_fn sees it."""

    def __init__(self, model: SdsClipModel, size: int, batch_size: int):
        g = torch.Generator().manual_seed(0)
        self.images = torch.rand(batch_size, 3, size, size, generator=g)
        words = "a red square left of a blue circle above the green star below".split()
        self.captions = [" ".join(words[i % 5:i % 5 + 6]) for i in range(batch_size)]
        self.texts = model.tokenizer(self.captions)
        # the cache holds float16 states, like cache_text_states writes
        self.cached = model.teacher.encode_text(self.captions).to(torch.float16).cpu()


def one_step(model: SdsClipModel, optimizer, batch: Batch, variant: dict, step: int) -> tuple[float, float]:
    device = model.device
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    optimizer.zero_grad(set_to_none=True)
    images, texts = batch.images.to(device), batch.texts.to(device)
    if variant["cached"]:
        context = batch.cached.to(device, torch.float32)
    else:
        context = model.teacher.encode_text(batch.captions)
    generator = step_generator(0, step, device)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=variant["bf16"]):
        loss, metrics = model.loss(images, texts, context, 1.0, variant["sds"], generator)
    loss.backward()
    optimizer.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, metrics["loss"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--scale", choices=["tiny", "paper"], default="tiny")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile of the UNet")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    device = torch.device(args.device)
    base_sds = {"gradient": "full", "t_min": 20, "t_max": 980, "weighting": "uniform", "h_w_init_std": 0.02}
    sds_mode = {**base_sds, "gradient": "sds"}
    best_bf16 = autocast_dtype("auto", device) is not None  # the loop's default: bf16 on CUDA, fp32 on CPU
    variants = {
        "naive": {"cached": False, "bf16": False, "sds": base_sds, "compile": False},
        "cached": {"cached": True, "bf16": False, "sds": base_sds, "compile": False},
        "bf16": {"cached": True, "bf16": True, "sds": base_sds, "compile": False},
    }
    if args.compile:
        variants["compiled"] = {"cached": True, "bf16": best_bf16, "sds": base_sds, "compile": True}
    variants["sds"] = {"cached": True, "bf16": best_bf16, "sds": sds_mode, "compile": args.compile}
    variants["sds-naive"] = {"cached": False, "bf16": False, "sds": sds_mode, "compile": False}

    with tempfile.TemporaryDirectory() as tmp:
        model = build(args.scale, Path(tmp), device, base_sds)
    size = model.clip.visual.image_size
    size = size[0] if isinstance(size, (tuple, list)) else size
    batch = Batch(model, size, args.batch_size)
    eager_unet = model.teacher.unet
    compiled_unet = torch.compile(eager_unet) if args.compile else None
    optimizer = torch.optim.AdamW(list(model.trainable().values()), lr=0.0, fused=True)  # as the training loop
    initial = {k: p.detach().clone() for k, p in model.trainable().items()}

    def use(variant):
        model.teacher.unet = compiled_unet if variant["compile"] else eager_unet

    # the same step in fp32 and bf16 (lr 0: the weights do not move): how far apart are the losses
    losses = {}
    for name in ("cached", "bf16"):
        use(variants[name])
        losses[name] = one_step(model, optimizer, batch, variants[name], 0)[1]
    # FLOPs of one step (forward + backward) for each gradient mode, counted on the eager model
    flops = {}
    for name in ("cached", "sds"):
        use({**variants[name], "compile": False})
        with FlopCounterMode(display=False) as counter:
            one_step(model, optimizer, batch, {**variants[name], "bf16": False}, 0)
        flops[name] = counter.get_total_flops()

    times: dict[str, list[float]] = {name: [] for name in variants}
    peak: dict[str, float] = {}
    for round_ in range(args.warmup + args.steps):  # round-robin: drift hits every variant alike
        for name, variant in variants.items():
            use(variant)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            elapsed, _ = one_step(model, optimizer, batch, variant, round_)
            if round_ >= args.warmup:
                times[name].append(elapsed)
            if device.type == "cuda":
                peak[name] = max(peak.get(name, 0.0), torch.cuda.max_memory_allocated() / 2**30)
    moved = max((p.detach() - initial[k]).abs().max().item() for k, p in model.trainable().items())
    assert moved == 0.0, "lr 0 must leave the weights as they were"

    results = {}
    naive = statistics.median(times["naive"])
    for name, t in times.items():
        median = statistics.median(t)
        step_flops = flops["sds"] if variants[name]["sds"]["gradient"] == "sds" else flops["cached"]
        results[name] = {
            "median_step_s": median, "samples_per_s": args.batch_size / median,
            "speedup_over_naive": naive / median, "steps": args.steps,
            "flops_per_sample": step_flops / args.batch_size, "achieved_tflops": step_flops / median / 1e12,
            "config": {k: (v["gradient"] if k == "sds" else v) for k, v in variants[name].items()}}
        if name in peak:
            results[name]["peak_memory_gb"] = peak[name]
    report = {"bench": "sds_clip_step", "machine": machine_info(device), "device": str(device),
              "cpu_threads": torch.get_num_threads(), "scale": args.scale, "batch_size": args.batch_size,
              "image_size": size, "unet_input": list(model.teacher.input_shape),
              "unet_parameters": sum(p.numel() for p in eager_unet.parameters()),
              "trainable_parameters": sum(p.numel() for p in model.trainable().values()),
              "torch": torch.__version__,
              "loss_fp32": losses["cached"], "loss_bf16": losses["bf16"],
              "loss_bf16_relative_difference": abs(losses["bf16"] - losses["cached"]) / abs(losses["cached"]),
              "variants": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
