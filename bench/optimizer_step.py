"""AdamW step of the training loop on each model's trainable parameters: fused against torch's default.

On CPU, torch's default AdamW is the single-tensor implementation, a Python loop over the tensors
(about ten kernel launches per tensor); ``fused=True`` updates all of them in one kernel per dtype.
The loop (:class:`pipeline_steps.train.loop.Trainer`) uses fused on every device. For the
synthetic world's models, with the parameter sets the pipeline trains, this bench times one
``optimizer.step()`` of each implementation side by side (round robin) and checks that they agree:
after ``--agree-steps`` steps on the same gradients, the largest parameter difference.

    python bench/optimizer_step.py --threads 1 --out bench/results/optimizer_step-cpu1.json
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

from pipeline_steps.hardware import machine_info
from pipeline_steps.models.clip import load_clip
from pipeline_steps.models.diffusion import build_tiny_teacher
from pipeline_steps.models.student import tiny_config

REPO = Path(__file__).resolve().parent.parent
IMPLEMENTATIONS = {"default": {}, "foreach": {"foreach": True}, "fused": {"fused": True}}


def parameter_sets(params: dict, tmp: Path) -> dict[str, list[torch.Tensor]]:
    """The trainable parameters of each synthetic-world training run."""
    from transformers import ViltModel

    torch.manual_seed(0)
    clip, _, _ = load_clip("TinyCLIP-64")
    teacher = build_tiny_teacher(params["models"]["diffusion"]["tiny"], tmp / "tokenizer", 0)
    spec = params["models"]["student"]["tiny"]
    student = ViltModel(tiny_config(spec, spec["vocab_size"]))
    return {
        "pretrain_clip": list(clip.parameters()),
        "pretrain_diffusion": list(teacher.unet.parameters()) + list(teacher.text_encoder.parameters()),
        "clip_td_student": list(student.parameters()),
    }


def timed_steps(params: list[torch.Tensor], steps: int, warmup: int) -> dict[str, float]:
    """Median ms of one step per implementation, each on its own copy of the parameters."""
    copies = {}
    for name, kwargs in IMPLEMENTATIONS.items():
        tensors = [p.detach().clone().requires_grad_(True) for p in params]
        for t in tensors:
            t.grad = torch.randn_like(t)
        copies[name] = torch.optim.AdamW(tensors, lr=1e-4, weight_decay=0.01, **kwargs)
    times: dict[str, list[float]] = {name: [] for name in copies}
    for round_ in range(warmup + steps):
        for name, optimizer in copies.items():
            start = time.perf_counter()
            optimizer.step()
            if round_ >= warmup:
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) * 1000 for name, t in times.items()}


def agreement(params: list[torch.Tensor], steps: int) -> float:
    """Largest |fused - default| parameter difference after ``steps`` steps on the same gradients."""
    gen = torch.Generator().manual_seed(0)
    grads = [[torch.randn(p.shape, generator=gen) for p in params] for _ in range(steps)]
    result = {}
    for name in ("default", "fused"):
        tensors = [p.detach().clone().requires_grad_(True) for p in params]
        optimizer = torch.optim.AdamW(tensors, lr=1e-3, weight_decay=0.01, **IMPLEMENTATIONS[name])
        for step_grads in grads:
            for t, g in zip(tensors, step_grads):
                t.grad = g.clone()
            optimizer.step()
        result[name] = tensors
    return max((a - b).abs().max().item() for a, b in zip(result["default"], result["fused"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--agree-steps", type=int, default=20)
    parser.add_argument("--threads", type=int, help="torch CPU threads (the workflow's jobs use 1)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    with tempfile.TemporaryDirectory() as tmp:
        sets = parameter_sets(params, Path(tmp))
    models = {}
    for name, tensors in sets.items():
        ms = timed_steps(tensors, args.steps, args.warmup)
        models[name] = {"tensors": len(tensors), "parameters": sum(t.numel() for t in tensors),
                        "step_ms": ms, "fused_speedup_over_default": ms["default"] / ms["fused"],
                        "max_abs_difference_fused_vs_default": agreement(tensors, args.agree_steps)}
    report = {"bench": "optimizer_step", "device": "cpu", "machine": machine_info(),
              "cpu_threads": torch.get_num_threads(), "torch": torch.__version__, "steps": args.steps,
              "agree_steps": args.agree_steps, "models": models}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
