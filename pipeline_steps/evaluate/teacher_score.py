"""The diffusion teacher's own Winoground score (the paper's motivating experiment).

For each (caption, image) pair the score is minus the mean denoising error over the timesteps and
noise draws in params: the image is encoded, noised to ``t`` with noise shared by the four pairs of
an example (and by every example: ``draws`` noises per timestep, as in Diffusion Classifier and
DiffusionITM), and the UNet predicts the noise conditioned on the caption.  The error is the MSE over
the UNet input's elements (Diffusion Classifier) or the unsquared L2 distance (DiffusionITM).

``normalize: empty_caption`` (DiffusionITM) subtracts the error of the same noisy image under the
empty caption.  That term depends only on the image, so text comparisons are unchanged and image
comparisons lose the image's a-priori likelihood (some images are easier to denoise whatever the
caption).  Both scorings are reported; the params choose the headline one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torchvision.transforms.functional import pil_to_tensor

from ..data.shards import PreparedDataset
from ..models.diffusion import denoising_errors, load_teacher
from .compositional import winoground_overall, winoground_report

NORMALIZATIONS = ("empty_caption", "none")
ERRORS = ("mse", "l2")


@torch.no_grad()
def winoground_diffusion_errors(teacher_dir: str | Path, prepared: str | Path, timesteps: list[int], draws: int,
                                error: str, seed: int, device: torch.device, batch_size: int) -> tuple[np.ndarray, list[dict]]:
    """errors[n, c, i]: mean denoising error of caption c (0, 1, and 2 = the empty caption) on image i."""
    if error not in ERRORS:
        raise ValueError(f"evaluate.teacher_score.error: {error!r} is not one of {ERRORS}")
    teacher = load_teacher(teacher_dir, str(device))
    g = torch.Generator(device="cpu").manual_seed(seed)
    k = len(timesteps) * draws
    noise = torch.randn((draws, len(timesteps), *teacher.input_shape), generator=g).transpose(0, 1)
    noise = noise.reshape(k, *teacher.input_shape).to(device)           # timestep-major, then draw
    t = torch.tensor(timesteps, device=device).repeat_interleave(draws)
    alphas = teacher.scheduler.alphas_cumprod.to(device)
    # every (caption, image, timestep x draw) triple of an example, evaluated in chunks of the batch
    c_idx, i_idx, k_idx = (a.reshape(-1).to(device) for a in torch.meshgrid(
        torch.arange(3), torch.arange(2), torch.arange(k), indexing="ij"))
    with PreparedDataset(prepared) as data:
        records = list(data.records())
        errors = np.zeros((len(records), 3, 2))
        for n, r in enumerate(records):
            images = torch.stack([pil_to_tensor(data.image(r[f"image_{i}"])).float() / 255 for i in (0, 1)])
            x0 = teacher.encode_images(images.to(device))                              # (2, C, H, W)
            context = teacher.encode_text([r["caption_0"], r["caption_1"], ""])        # (3, L, D)
            err = torch.empty(len(c_idx), device=device)
            for start in range(0, len(c_idx), batch_size):
                c, i, j = (a[start:start + batch_size] for a in (c_idx, i_idx, k_idx))
                err[start:start + batch_size] = denoising_errors(teacher.unet, x0[i], t[j], noise[j], context[c],
                                                                 alphas, error)
            errors[n] = err.view(3, 2, k).mean(dim=2).cpu().numpy()
    return errors, records


def scores_from_errors(errors: np.ndarray, normalize: str) -> np.ndarray:
    """scores[n, c, i] for captions 0 and 1: minus the error, less the empty caption's when normalised."""
    if normalize not in NORMALIZATIONS:
        raise ValueError(f"evaluate.teacher_score.normalize: {normalize!r} is not one of {NORMALIZATIONS}")
    err = errors[:, :2]
    if normalize == "empty_caption":
        err = err - errors[:, 2:3]  # the image's own error, the same for both captions
    return -err


def teacher_winoground(teacher_dir: str | Path, prepared: str | Path, cfg: dict, device: torch.device) -> dict:
    ts = cfg["teacher_score"]
    errors, records = winoground_diffusion_errors(teacher_dir, prepared, ts["timesteps"], ts["draws"], ts["error"],
                                                  ts["seed"], device, cfg["batch_size"])
    report = winoground_report(scores_from_errors(errors, ts["normalize"]), records, cfg["bootstrap"])
    report["by_normalization"] = {normalize: winoground_overall(scores_from_errors(errors, normalize), cfg["bootstrap"])
                                  for normalize in NORMALIZATIONS}
    report["protocol"] = {"timesteps": ts["timesteps"], "draws": ts["draws"], "seed": ts["seed"], "error": ts["error"],
                          "normalize": ts["normalize"],
                          "noise": f"{ts['draws']} draw(s) per timestep, shared by all pairs",
                          # SD: VAE latents (mean x scaling_factor); the synthetic teacher: pixels
                          "space": "latent" if (Path(teacher_dir) / "vae").is_dir() else "pixel"}
    return report
