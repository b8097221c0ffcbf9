"""How the synthetic diffusion teacher learns Winoground: its score along one pretraining run.

Runs the project's own pretraining (:func:`pipeline_steps.train.pretrain.pretrain_diffusion`, the
``pretrain_diffusion`` rule's code) with the params' teacher and loop, overridden from the command
line, keeps a checkpoint every ``--every`` steps, and scores each with the project's teacher score
(:func:`pipeline_steps.evaluate.teacher_score.winoground_diffusion_errors`, the params' protocol).
Writes JSON: per checkpoint, the normalised and raw text / image / group scores, pairwise text
accuracy and pairwise accuracy per Winoground tag, plus the training time of the whole run.

Needs a prepared COCO and Winoground of the world to measure (e.g. a default run's
``data/prepared``):

    python bench/teacher_pretraining.py --prepared /path/to/run/data/prepared --steps 1200 --every 300 \\
        --out bench/results/teacher_pretraining-cpu1.json
    python bench/teacher_pretraining.py ... --set attention_head_dim=8 --set train_t_min=0 --lr 2e-3
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from safetensors.torch import load_file

from pipeline_steps.evaluate.teacher_score import scores_from_errors, winoground_diffusion_errors
from pipeline_steps.hardware import machine_info
from pipeline_steps.metrics import winoground_correct
from pipeline_steps.models.diffusion import build_tiny_teacher, save_teacher
from pipeline_steps.train.pretrain import pretrain_diffusion

REPO = Path(__file__).resolve().parents[1]


def pairwise_text(scores: np.ndarray) -> np.ndarray:
    """Per example, the mean of the two text comparisons (chance 0.5)."""
    return ((scores[:, 0, 0] > scores[:, 1, 0]).astype(float) + (scores[:, 1, 1] > scores[:, 0, 1])) / 2


def score_checkpoint(spec: dict, checkpoint: Path, folder: Path, prepared: Path, protocol: dict) -> dict:
    teacher = build_tiny_teacher(spec, folder / "tokenizer", 0)
    tensors = load_file(checkpoint / "trainable.safetensors")
    teacher.unet.load_state_dict({k.removeprefix("unet."): v for k, v in tensors.items() if k.startswith("unet.")})
    teacher.text_encoder.load_state_dict(
        {k.removeprefix("text_encoder."): v for k, v in tensors.items() if k.startswith("text_encoder.")})
    save_teacher(teacher, folder)
    errors, records = winoground_diffusion_errors(folder, prepared / "winoground", protocol["timesteps"],
                                                  protocol["draws"], protocol["error"], protocol["seed"],
                                                  torch.device("cpu"), 256)
    out = {}
    for normalize in ("empty_caption", "none"):
        correct = winoground_correct(scores_from_errors(errors, normalize))
        out[normalize] = {k: round(float(v.mean()), 4) for k, v in correct.items()}
    pairwise = pairwise_text(scores_from_errors(errors, "none"))
    tags = np.array([r["collapsed_tag"] for r in records])
    out["pairwise_text"] = round(float(pairwise.mean()), 4)
    out["pairwise_text_by_tag"] = {t: round(float(pairwise[tags == t].mean()), 4) for t in sorted(set(tags))}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prepared", type=Path, required=True, help="folder with prepared coco/ and winoground/")
    parser.add_argument("--params", type=Path, default=REPO / "params.yaml")
    parser.add_argument("--steps", type=int, help="pretraining steps (default: the params')")
    parser.add_argument("--every", type=int, default=300, help="score a checkpoint every this many steps")
    parser.add_argument("--lr", type=float)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a key of models.diffusion.tiny (YAML value)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    params = yaml.safe_load(args.params.read_text())
    spec = dict(params["models"]["diffusion"]["tiny"])
    for item in args.set:
        key, value = item.split("=", 1)
        if key not in spec:
            parser.error(f"--set {key}: models.diffusion.tiny has no key {key!r}")
        spec[key] = yaml.safe_load(value)
    loop = dict(params["pretrain"]["diffusion"], checkpoint_every=args.every, keep_checkpoints=10_000)
    loop |= {k: v for k, v in (("steps", args.steps), ("lr", args.lr), ("batch_size", args.batch_size)) if v}
    protocol = params["evaluate"]["teacher_score"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        start = time.perf_counter()
        pretrain_diffusion(spec, loop, args.prepared / "coco", tmp / "teacher", tmp / "work", params["pretrain"]["seed"])
        train_s = time.perf_counter() - start
        curve = []
        for checkpoint in sorted((tmp / "work" / "checkpoints").glob("step-*"), key=lambda p: int(p.name[5:])):
            step = int(checkpoint.name[5:])
            curve.append({"step": step, **score_checkpoint(spec, checkpoint, tmp / f"scored-{step}",
                                                            args.prepared, protocol)})
            print(json.dumps(curve[-1]), flush=True)
    result = {"bench": "teacher_pretraining", "machine": machine_info(), "threads": args.threads,
              "teacher": spec, "loop": loop, "protocol": protocol, "train_s": round(train_s, 1), "curve": curve}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
