"""The diffusion teacher's own Winoground score (the paper's motivating experiment).

For each (caption, image) pair the score is minus the mean denoising error over the timesteps in
params: the image is encoded, noised to ``t`` with noise shared by the four pairs of an example
(and by every example: one noise per timestep, as in Diffusion Classifier), and the UNet predicts
the noise conditioned on the caption.  MSE over the UNet input's elements.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torchvision.transforms.functional import pil_to_tensor

from ..data.shards import PreparedDataset
from ..models.diffusion import load_teacher
from .compositional import winoground_report


@torch.no_grad()
def winoground_diffusion_scores(teacher_dir: str | Path, prepared: str | Path, timesteps: list[int],
                                seed: int, device: torch.device) -> tuple[np.ndarray, list[dict]]:
    teacher = load_teacher(teacher_dir, str(device))
    g = torch.Generator(device="cpu").manual_seed(seed)
    noise = torch.randn((len(timesteps), *teacher.input_shape), generator=g).to(device)
    t = torch.tensor(timesteps, device=device)
    alphas = teacher.scheduler.alphas_cumprod.to(device)[t].view(-1, 1, 1, 1)
    with PreparedDataset(prepared) as data:
        records = list(data.records())
        scores = np.zeros((len(records), 2, 2))
        for n, r in enumerate(records):
            images = torch.stack([pil_to_tensor(data.image(r[f"image_{i}"])).float() / 255 for i in (0, 1)])
            x0 = teacher.encode_images(images.to(device))                     # (2, C, H, W)
            context = teacher.encode_text([r["caption_0"], r["caption_1"]])    # (2, L, D)
            # all 2 captions x 2 images x T timesteps in one batch
            x0_b = x0[None, :, None].expand(2, 2, len(timesteps), *x0.shape[1:])
            noisy = alphas.sqrt() * x0_b + (1 - alphas).sqrt() * noise
            ctx = context[:, None, None].expand(2, 2, len(timesteps), *context.shape[1:])
            flat = noisy.reshape(-1, *x0.shape[1:])
            pred = teacher.unet(flat, t.repeat(4), encoder_hidden_states=ctx.reshape(-1, *context.shape[1:])).sample
            err = ((pred - noise.repeat(4, 1, 1, 1)) ** 2).mean(dim=(1, 2, 3)).view(2, 2, len(timesteps))
            scores[n] = -err.mean(dim=2).cpu().numpy()
    return scores, records


def teacher_winoground(teacher_dir: str | Path, prepared: str | Path, cfg: dict, device: torch.device) -> dict:
    ts = cfg["teacher_score"]
    scores, records = winoground_diffusion_scores(teacher_dir, prepared, ts["timesteps"], ts["seed"], device)
    report = winoground_report(scores, records, cfg["bootstrap"])
    report["protocol"] = {"timesteps": ts["timesteps"], "seed": ts["seed"], "error": "mse",
                          "noise": "one draw per timestep, shared by all pairs"}
    return report
