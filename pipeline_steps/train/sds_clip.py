"""SDS-CLIP fine-tuning: ``L = L_CLIP + lambda * L_SDS`` (Basu et al., 2023).

Trainable: CLIP's LayerNorm parameters (both towers or the image tower) and ``h_w``, a linear map
from the CLIP image embedding to the UNet's input shape.  Frozen: everything else of CLIP, the UNet
and its text encoder (whose states come from the feature cache).

``L_SDS`` is the denoising error of the frozen UNet on ``z = h_w(f(x))`` noised to a random
timestep ``t`` in ``[t_min, t_max]``, conditioned on the caption:

- ``gradient: full`` backpropagates the weighted MSE ``w(t) ||eps_hat - eps||^2`` through the UNet;
- ``gradient: sds`` uses the score-distillation gradient ``w(t) (eps_hat - eps)`` on ``z`` and
  skips the UNet Jacobian: the surrogate ``sum(z * g.detach())`` with
  ``g = w(t) (eps_hat - eps) / (B * D)`` has exactly that gradient, on the same scale as the
  mean-reduced MSE of the full mode (D = elements of z).

``w(t)`` is 1 (``uniform``) or ``1 - alphas_cumprod[t]`` (``sds``, DreamFusion's choice).
With lambda = 0 (the COCO fine-tune control) the UNet is not run at all.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import torch
from safetensors.torch import save_file

from ..features import TextStateCache
from ..hardware import device_for
from ..io import atomic_write_json
from ..models.clip import clip_contrastive_loss, layernorm_parameters, load_clip, save_clip
from ..models.diffusion import denoising_errors, load_teacher
from .data import CaptionedImages
from .loop import LoopConfig, Trainer
from .outputs import finish_model_folder

log = logging.getLogger(__name__)


def make_h_w(embed_dim: int, input_shape: tuple[int, ...], init_std: float, seed: int) -> torch.nn.Linear:
    """The linear map from CLIP's image embedding to the UNet input (flattened)."""
    g = torch.Generator().manual_seed(seed)
    layer = torch.nn.Linear(embed_dim, math.prod(input_shape))
    with torch.no_grad():
        layer.weight.normal_(0, init_std, generator=g)
        layer.bias.zero_()
    return layer


@torch.no_grad()
def fit_h_w(layer: torch.nn.Linear, embeddings: torch.Tensor, targets: torch.Tensor, ridge: float) -> float:
    """Set ``layer`` to the ridge regression of the teacher's encoding of images on their CLIP
    embeddings, so that L_SDS starts from a decoded image and not from a grey one.  Returns R^2."""
    e_mean, y_mean = embeddings.mean(0), targets.mean(0)
    e, y = embeddings - e_mean, targets - y_mean
    gram = e.T @ e + ridge * len(e) * torch.eye(e.shape[1], dtype=e.dtype, device=e.device)
    weight = torch.linalg.solve(gram, e.T @ y).T                       # (out, in)
    layer.weight.copy_(weight)
    layer.bias.copy_(y_mean - weight @ e_mean)
    residual = (y - e @ weight.T).pow(2).sum()
    return float(1 - residual / y.pow(2).sum())


def sds_weight(alphas_cumprod: torch.Tensor, t: torch.Tensor, weighting: str) -> torch.Tensor:
    if weighting == "uniform":
        return torch.ones_like(t, dtype=alphas_cumprod.dtype)
    if weighting == "sds":
        return 1 - alphas_cumprod[t]
    raise ValueError(f"unknown SDS weighting {weighting!r}")


def sds_loss(z: torch.Tensor, unet, context: torch.Tensor, alphas_cumprod: torch.Tensor,
             sds_cfg: dict, generator: torch.Generator) -> tuple[torch.Tensor, float]:
    """(loss to backpropagate, denoising MSE for logging) for UNet inputs ``z`` (B, C, H, W)."""
    b = len(z)
    t = torch.randint(sds_cfg["t_min"], sds_cfg["t_max"] + 1, (b,), generator=generator, device=z.device)
    eps = torch.randn(z.shape, generator=generator, device=z.device, dtype=z.dtype)
    a = alphas_cumprod[t].view(-1, 1, 1, 1).to(z.dtype)
    w = sds_weight(alphas_cumprod, t, sds_cfg["weighting"]).view(-1, 1, 1, 1).to(z.dtype)
    if sds_cfg["gradient"] == "full":
        z_t = a.sqrt() * z + (1 - a).sqrt() * eps
        eps_hat = unet(z_t, t, encoder_hidden_states=context).sample
        err = (eps_hat.float() - eps.float()) ** 2
        return (w * err).mean(), err.mean().item()
    if sds_cfg["gradient"] == "sds":
        with torch.no_grad():
            z_t = a.sqrt() * z.detach() + (1 - a).sqrt() * eps
            eps_hat = unet(z_t, t, encoder_hidden_states=context).sample
            grad = w * (eps_hat - eps) / z[0].numel() / b
        return (z * grad).sum(), ((eps_hat.float() - eps.float()) ** 2).mean().item()
    raise ValueError(f"unknown sds.gradient {sds_cfg['gradient']!r}")


class SdsClipModel:
    """CLIP + h_w + frozen teacher, and the loss of one batch."""

    def __init__(self, clip_folder: str | Path, teacher_dir: str | Path | None, cfg: dict, seed: int,
                 device: torch.device):
        self.device = device
        self.clip, self.preprocess, self.tokenizer = load_clip(f"local-dir:{clip_folder}", device=str(device))
        self.clip.requires_grad_(False)
        self.ln_params = dict(layernorm_parameters(self.clip, cfg["layernorm_scope"]))
        for p in self.ln_params.values():
            p.requires_grad_(True)
        self.teacher = load_teacher(teacher_dir, str(device)) if teacher_dir else None
        if self.teacher is not None:
            self.alphas = self.teacher.scheduler.alphas_cumprod.to(device)
            self.h_w = make_h_w(self.clip.visual.output_dim, self.teacher.input_shape,
                                cfg["sds"]["h_w_init_std"], seed).to(device)
        else:
            self.h_w = None

    @torch.no_grad()
    def init_h_w(self, sds_cfg: dict, data: CaptionedImages, generator: torch.Generator) -> dict:
        """``h_w_init: fit`` fits h_w to decode the CLIP embeddings of training images into their
        encodings by the teacher; ``random`` keeps the N(0, h_w_init_std) init."""
        if sds_cfg["h_w_init"] == "random":
            return {"h_w_init": "random"}
        n = min(int(sds_cfg["h_w_fit_images"]), len(data))
        indices = torch.randperm(len(data), generator=generator)[:n].tolist()
        embeddings = self.clip.encode_image(data.images(indices, self.preprocess).to(self.device)).float()
        targets = self.teacher.encode_images(data.unit_images(indices).to(self.device)).flatten(1).float()
        r2 = fit_h_w(self.h_w, embeddings, targets, float(sds_cfg["h_w_fit_ridge"]))
        log.info("h_w fitted on %d training images (R^2 %.3f)", n, r2)
        return {"h_w_init": "fit", "h_w_fit_images": n, "h_w_fit_r2": round(r2, 4)}

    @torch.no_grad()
    def teacher_diagnostics(self, data: CaptionedImages, n: int, timesteps: list[int], seed: int) -> dict:
        """Does the teacher read the caption on h_w(f(x)) as it does on the real image's encoding?

        Mean denoising MSE over ``timesteps`` (one noise per timestep, shared by everything) of the real
        encoding and of h_w(f(x)), each under its own caption, another image's caption and the empty
        caption, on ``n`` held-out captions; ``matched_wins`` is the rate at which the own caption
        denoises better than the other one (chance 0.5).
        """
        g = torch.Generator().manual_seed(seed)
        indices = torch.randperm(len(data), generator=g)[:min(n, len(data))].tolist()
        captions = data.captions(indices)
        others = captions[1:] + captions[:1]
        contexts = {"matched": self.teacher.encode_text(captions), "mismatched": self.teacher.encode_text(others),
                    "empty": self.teacher.encode_text([""]).expand(len(indices), -1, -1)}
        images = data.images(indices, self.preprocess).to(self.device)
        inputs = {"real": self.teacher.encode_images(data.unit_images(indices).to(self.device)),
                  "h_w": self.h_w(self.clip.encode_image(images)).view(len(indices), *self.teacher.input_shape)}
        noise = torch.randn((len(timesteps), *self.teacher.input_shape), generator=g).to(self.device)
        out: dict = {"captions": len(indices), "timesteps": timesteps}
        for name, z in inputs.items():
            errors = {}
            for kind, context in contexts.items():
                errors[kind] = sum(denoising_errors(self.teacher.unet, z, torch.full((len(z),), t, device=self.device),
                                                    noise[k].expand_as(z), context, self.alphas)
                                   for k, t in enumerate(timesteps)) / len(timesteps)
            out[name] = {f"mse_{k}": round(float(v.mean()), 6) for k, v in errors.items()}
            out[name]["matched_wins"] = round(float((errors["matched"] < errors["mismatched"]).float().mean()), 4)
        return out

    def trainable(self) -> dict[str, torch.nn.Parameter]:
        named = {f"clip.{k}": p for k, p in self.ln_params.items()}
        if self.h_w is not None:
            named |= {f"h_w.{k}": p for k, p in self.h_w.named_parameters()}
        return named

    def loss(self, images: torch.Tensor, texts: torch.Tensor, context: torch.Tensor | None, lam: float,
             sds_cfg: dict, generator: torch.Generator, gradient_norms: bool = False) -> tuple[torch.Tensor, dict]:
        image_emb = self.clip.encode_image(images)
        text_emb = self.clip.encode_text(texts)
        l_clip = clip_contrastive_loss(image_emb, text_emb, self.clip.logit_scale)
        metrics = {"loss_clip": l_clip.item()}
        if lam == 0:
            if gradient_norms:
                metrics |= self.gradient_norms(l_clip, None)
            return l_clip, {**metrics, "loss": l_clip.item()}
        z = self.h_w(image_emb).view(len(images), *self.teacher.input_shape)
        l_sds, mse = sds_loss(z, self.teacher.unet, context, self.alphas, sds_cfg, generator)
        if gradient_norms:
            metrics |= self.gradient_norms(l_clip, l_sds)
        # the sds surrogate's value means nothing: report L_CLIP + lambda * denoising MSE
        return l_clip + lam * l_sds, {**metrics, "denoise_mse": mse, "loss": l_clip.item() + lam * mse}

    def gradient_norms(self, l_clip: torch.Tensor, l_sds: torch.Tensor | None) -> dict[str, float]:
        """L2 norms of each loss's gradient (unweighted by lambda) at the trained LayerNorms and at h_w.

        Their ratio says which lambda lets L_SDS move the update: lambda ~ |g_clip| / |g_sds| at the
        LayerNorms puts both terms on the same scale.  h_w gets no L_CLIP gradient.
        """
        ln = list(self.ln_params.values())

        def norm(grads) -> float:
            return float(torch.sqrt(sum((g.float() ** 2).sum() for g in grads if g is not None)))

        out = {"grad_norm_clip_ln": norm(torch.autograd.grad(l_clip, ln, retain_graph=True, allow_unused=True))}
        if l_sds is not None:
            # one backward pass through the UNet for both parameter groups
            grads = torch.autograd.grad(l_sds, ln + list(self.h_w.parameters()), retain_graph=True, allow_unused=True)
            out["grad_norm_sds_ln"], out["grad_norm_sds_h_w"] = norm(grads[:len(ln)]), norm(grads[len(ln):])
        return out


def train_sds_clip(cfg: dict, lam: float, seed: int, clip_folder: str | Path, teacher_dir: str | Path,
                   text_cache: str | Path, prepared_coco: str | Path, out: str | Path,
                   work: str | Path) -> dict:
    """One run of the grid; writes an open_clip folder (+ h_w) to ``out``."""
    device = device_for()
    torch.manual_seed(seed)
    model = SdsClipModel(clip_folder, teacher_dir if lam > 0 else None, cfg, seed, device)
    data = CaptionedImages(prepared_coco, "train")
    # h_w's initialisation is fitted when a run starts, not when it resumes (the checkpoint holds h_w);
    # what the fit found is kept beside the checkpoints for the summary
    init_record = Path(work) / "h_w_init.json"

    def init_h_w() -> None:
        atomic_write_json(init_record, model.init_h_w(cfg["sds"], data, torch.Generator().manual_seed(seed)))
    cache = TextStateCache(text_cache) if lam > 0 else None
    loop_cfg = LoopConfig.from_params(cfg["train"], seed, len(data))
    if loop_cfg.compile and device.type == "cuda" and model.teacher is not None:
        model.teacher.unet = torch.compile(model.teacher.unet)

    def loss_fn(step, indices, generator):
        images = data.images(indices, model.preprocess).to(device)
        texts = model.tokenizer(data.captions(indices)).to(device)
        context = None
        if cache is not None:
            context = cache.get([data.ids[i] for i in indices]).to(device, torch.float32)
        # the gradient norms cost two more backward passes: only on the steps that are logged
        logged = (step + 1) % loop_cfg.log_every == 0 or step + 1 == loop_cfg.steps
        return model.loss(images, texts, context, lam, cfg["sds"], generator, gradient_norms=logged)

    model.clip.train()
    last = Trainer(work, loop_cfg, model.trainable(), len(data), loss_fn, device,
                   identity={"sds_clip": cfg, "lambda": lam, "clip": str(clip_folder)},
                   on_fresh_start=init_h_w if lam > 0 else None).run()
    model.clip.eval()
    h_w_init, diagnostics = {}, {}
    if lam > 0:
        h_w_init = json.loads(init_record.read_text())
        diag = cfg["diagnostics"]
        diagnostics = model.teacher_diagnostics(CaptionedImages(prepared_coco, "val"), int(diag["captions"]),
                                                [int(t) for t in diag["timesteps"]], seed)

    def write(folder: Path) -> None:
        save_clip(model.clip, model_config_of(clip_folder), folder)
        if model.h_w is not None:
            save_file({k: v.detach().cpu() for k, v in model.h_w.state_dict().items()}, folder / "h_w.safetensors")

    summary = {"lambda": lam, "seed": seed, "steps": loop_cfg.steps, "final": last,
               "sds": cfg["sds"], "layernorm_scope": cfg["layernorm_scope"],
               "trainable_parameters": sum(p.numel() for p in model.trainable().values()),
               **h_w_init, "teacher_diagnostics": diagnostics}
    finish_model_folder(Path(out), Path(work), write, summary)
    return summary


def model_config_of(clip_folder: str | Path) -> dict:
    return json.loads((Path(clip_folder) / "open_clip_config.json").read_text())["model_cfg"]
