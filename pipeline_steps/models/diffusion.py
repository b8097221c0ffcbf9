"""The diffusion teacher: a text-conditioned UNet, its noise scheduler and its frozen text encoder.

Both modes load a diffusers-layout folder with ``local_files_only=True``:

- paper mode: a Stable Diffusion 1.x folder (``unet/``, ``text_encoder/``, ``tokenizer/``,
  ``scheduler/``, ``vae/``); images are encoded to 4x64x64 latents by the VAE;
- synthetic mode: the tiny teacher that :func:`pipeline_steps.train.pretrain.pretrain_diffusion`
  trains and saves in the same layout, without ``vae/``: it denoises images directly (pixel space,
  3 x ``sample_size`` x ``sample_size``, values in [-1, 1]).

The tokenizer of the tiny teacher is built from open_clip's bundled BPE file, so its ids equal
SD's (`<|endoftext|>` pads, as in SD 1.x).
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from ..errors import MissingInput


@dataclass
class DiffusionTeacher:
    unet: UNet2DConditionModel
    scheduler: DDPMScheduler
    text_encoder: CLIPTextModel
    tokenizer: CLIPTokenizer
    vae: AutoencoderKL | None

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(channels, height, width) of what the UNet denoises: h_w maps CLIP embeddings to it."""
        size = self.unet.config.sample_size
        size = tuple(size) if isinstance(size, (list, tuple)) else (size, size)
        return (self.unet.config.in_channels, *size)

    def freeze(self) -> "DiffusionTeacher":
        for module in (self.unet, self.text_encoder, self.vae):
            if module is not None:
                module.requires_grad_(False)
                module.eval()
        return self

    def to(self, device) -> "DiffusionTeacher":
        for module in (self.unet, self.text_encoder, self.vae):
            if module is not None:
                module.to(device)
        return self

    @torch.no_grad()
    def encode_text(self, captions: list[str]) -> torch.Tensor:
        """Frozen text-encoder states (B, 77, D): the UNet's cross-attention context."""
        device = next(self.text_encoder.parameters()).device
        ids = self.tokenizer(captions, padding="max_length", truncation=True,
                             max_length=self.tokenizer.model_max_length, return_tensors="pt").input_ids
        return self.text_encoder(ids.to(device)).last_hidden_state

    @torch.no_grad()
    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] (B, 3, H, W) -> what the UNet denoises (VAE latents or pixels in [-1, 1])."""
        x = images * 2 - 1
        if self.vae is not None:
            size = self.input_shape[1] * 2 ** (len(self.vae.config.block_out_channels) - 1)
            x = F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False)
            return self.vae.encode(x).latent_dist.mean * self.vae.config.scaling_factor
        return F.interpolate(x, size=self.input_shape[1:], mode="area")


@torch.no_grad()
def denoising_errors(unet: UNet2DConditionModel, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor,
                     context: torch.Tensor, alphas_cumprod: torch.Tensor, error: str = "mse") -> torch.Tensor:
    """(B,) how badly the UNet predicts ``noise[b]`` added to ``x0[b]`` at timestep ``t[b]`` under
    ``context[b]``: the MSE over the input's elements (Diffusion Classifier) or the unsquared L2
    distance (``error="l2"``, DiffusionITM).  The teacher score and SDS-CLIP's diagnostics both read it."""
    a = alphas_cumprod[t].view(-1, *([1] * (x0.dim() - 1)))
    pred = unet(a.sqrt() * x0 + (1 - a).sqrt() * noise, t, encoder_hidden_states=context).sample
    diff = (pred - noise).flatten(1)
    return diff.pow(2).mean(dim=1) if error == "mse" else diff.norm(dim=1)


def bpe_tokenizer(out_dir: str | Path, max_length: int = 77) -> CLIPTokenizer:
    """A CLIPTokenizer equal to SD 1.x's, built offline from open_clip's bundled BPE merges."""
    import open_clip.tokenizer as oct

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    merges = gzip.open(oct.default_bpe()).read().decode("utf-8").split("\n")[1:49152 - 256 - 2 + 1]
    vocab = list(oct.bytes_to_unicode().values())
    vocab += [v + "</w>" for v in vocab]
    vocab += ["".join(m.split()) for m in merges] + ["<|startoftext|>", "<|endoftext|>"]
    (out_dir / "vocab.json").write_text(json.dumps({v: i for i, v in enumerate(vocab)}))
    (out_dir / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    # model_max_length is required: padding="max_length" fails without it
    return CLIPTokenizer(str(out_dir / "vocab.json"), str(out_dir / "merges.txt"),
                         model_max_length=max_length, pad_token="<|endoftext|>")


def build_tiny_teacher(cfg: dict, tokenizer_dir: str | Path, seed: int) -> DiffusionTeacher:
    """Random-init tiny teacher from the ``pretrained.diffusion`` params section."""
    torch.manual_seed(seed)
    channels = tuple(cfg["block_out_channels"])
    unet = UNet2DConditionModel(
        sample_size=cfg["sample_size"], in_channels=3, out_channels=3,
        block_out_channels=channels, layers_per_block=cfg["layers_per_block"],
        norm_num_groups=cfg["norm_num_groups"], cross_attention_dim=cfg["text_hidden_size"],
        attention_head_dim=cfg["attention_head_dim"],
        down_block_types=("DownBlock2D",) + ("CrossAttnDownBlock2D",) * (len(channels) - 1),
        up_block_types=("CrossAttnUpBlock2D",) * (len(channels) - 1) + ("UpBlock2D",))
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=49408, bos_token_id=49406, eos_token_id=49407, pad_token_id=49407,
        max_position_embeddings=cfg["max_length"], hidden_size=cfg["text_hidden_size"],
        intermediate_size=cfg["text_hidden_size"] * 4, num_attention_heads=cfg["text_heads"],
        num_hidden_layers=cfg["text_layers"]))
    scheduler = DDPMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                              beta_schedule="scaled_linear", clip_sample=False)
    tokenizer = bpe_tokenizer(tokenizer_dir, cfg["max_length"])
    return DiffusionTeacher(unet, scheduler, text_encoder, tokenizer, None)


def save_teacher(teacher: DiffusionTeacher, out_dir: str | Path) -> Path:
    out_dir = Path(out_dir)
    teacher.unet.save_pretrained(out_dir / "unet", safe_serialization=True)
    teacher.text_encoder.save_pretrained(out_dir / "text_encoder", safe_serialization=True)
    teacher.tokenizer.save_pretrained(out_dir / "tokenizer")
    teacher.scheduler.save_pretrained(out_dir / "scheduler")
    if teacher.vae is not None:
        teacher.vae.save_pretrained(out_dir / "vae", safe_serialization=True)
    return out_dir


def load_teacher(folder: str | Path, device: str = "cpu") -> DiffusionTeacher:
    """Load a diffusers-layout folder offline (an SD 1.x snapshot or our tiny teacher)."""
    folder = Path(folder)
    missing = [s for s in ("unet", "text_encoder", "tokenizer", "scheduler") if not (folder / s).is_dir()]
    if missing:
        raise MissingInput(f"{folder} is not a diffusion teacher folder: missing {', '.join(missing)}/")
    kw = {"local_files_only": True}
    unet = UNet2DConditionModel.from_pretrained(folder, subfolder="unet", **kw)
    # SD ships a PNDM config; a DDPM scheduler built from it has the same noise schedule
    scheduler = DDPMScheduler.from_pretrained(folder, subfolder="scheduler", **kw)
    text_encoder = CLIPTextModel.from_pretrained(folder, subfolder="text_encoder", **kw)
    tokenizer = CLIPTokenizer.from_pretrained(folder, subfolder="tokenizer", **kw)
    vae = AutoencoderKL.from_pretrained(folder, subfolder="vae", **kw) if (folder / "vae").is_dir() else None
    return DiffusionTeacher(unet, scheduler, text_encoder, tokenizer, vae).to(device).freeze()
