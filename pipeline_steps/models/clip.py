"""CLIP through open_clip: published architectures and tags, tiny configs, offline local folders.

A model is named by ``(architecture, pretrained)``:

- ``("ViT-B-32", "openai")``: a published tag (downloaded into the HF cache when online).  OpenAI
  and LAION-400M weights were trained with QuickGELU, which open_clip does not switch on by itself:
  :func:`needs_quick_gelu` decides and :func:`load_clip` passes ``force_quick_gelu``.
- ``("TinyCLIP-64", None)``: a config shipped in ``pipeline_steps/models/configs`` (random init).
- ``("local-dir:/path", None)``: a folder with ``open_clip_config.json`` + weights, as written by
  :func:`save_clip`; loads with no network.
"""

from __future__ import annotations

import json
from pathlib import Path

import open_clip
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from ..errors import ParamsError

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
QUICK_GELU_TAGS = ("openai", "laion400m_e31", "laion400m_e32", "yfcc15m", "cc12m", "metaclip_400m",
                   "metaclip_fullcc")
_registered = False


def register_tiny_configs() -> None:
    """Make the package's tiny architectures known to open_clip (once per process)."""
    global _registered
    if not _registered:
        open_clip.add_model_config(str(CONFIG_DIR))
        _registered = True


def needs_quick_gelu(architecture: str, pretrained: str | None) -> bool:
    return bool(pretrained) and pretrained in QUICK_GELU_TAGS and "quickgelu" not in architecture


def load_clip(architecture: str, pretrained: str | None = None, device: str = "cpu",
              cache_dir: str | None = None):
    """(model, preprocess_val, tokenizer) for an architecture name or a ``local-dir:`` folder."""
    register_tiny_configs()
    model, _, preprocess = open_clip.create_model_and_transforms(
        architecture, pretrained=pretrained, device=device, cache_dir=cache_dir,
        force_quick_gelu=needs_quick_gelu(architecture, pretrained))
    return model, preprocess, open_clip.get_tokenizer(architecture)


def model_config(architecture: str) -> dict:
    register_tiny_configs()
    cfg = open_clip.get_model_config(architecture)
    if cfg is None:
        raise ParamsError(f"unknown open_clip architecture {architecture!r}")
    return cfg


def save_clip(model: torch.nn.Module, model_cfg: dict, out_dir: str | Path,
              preprocess_cfg: dict | None = None) -> Path:
    """Write a folder that ``load_clip(f"local-dir:{out_dir}")`` reads offline."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, out_dir / "open_clip_model.safetensors")
    (out_dir / "open_clip_config.json").write_text(json.dumps(
        {"model_cfg": model_cfg, "preprocess_cfg": preprocess_cfg or {}}, indent=2))
    return out_dir


def text_token_states(model, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(every token after ``ln_final`` (B, L, W), the ids it was computed from), as ``encode_text``
    computes them, on fewer positions where that changes nothing: with causal attention and the
    end token (the largest id) pooled, no position sees a later one, so the padding after the
    batch's last end token is dropped. Texts of ~15 tokens then cost 15 positions instead of 77."""
    attn_mask = model.attn_mask
    if model.text_pool_type == "argmax" and attn_mask is not None:
        length = int(ids.argmax(dim=-1).max()) + 1
        ids, attn_mask = ids[:, :length], attn_mask[:length, :length]
    cast = model.transformer.get_cast_dtype()
    x = model.token_embedding(ids).to(cast) + model.positional_embedding[:ids.shape[1]].to(cast)
    return model.ln_final(model.transformer(x, attn_mask=attn_mask)), ids


def encode_text(model, ids: torch.Tensor, normalize: bool = False) -> torch.Tensor:
    """``model.encode_text(ids)`` of an open_clip CLIP, computed on the texts' own length."""
    from open_clip.transformer import text_global_pool

    if not hasattr(model, "token_embedding"):  # a text tower of another kind: its own method
        return model.encode_text(ids, normalize=normalize)
    x, ids = text_token_states(model, ids)
    x = text_global_pool(x, ids, model.text_pool_type, eos_token_id=getattr(model, "text_eos_id", None))
    x = model.text_projection(x) if isinstance(model.text_projection, torch.nn.Linear) else x @ model.text_projection
    return F.normalize(x, dim=-1) if normalize else x


def layernorm_parameters(model: torch.nn.Module, scope: str) -> list[tuple[str, torch.nn.Parameter]]:
    """LayerNorm weights and biases of both towers (``both``) or the image tower (``image``)."""
    if scope not in ("both", "image"):
        raise ValueError(f"LayerNorm scope must be 'both' or 'image', not {scope!r}")
    params = []
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.LayerNorm) and (scope == "both" or name.startswith("visual.")):
            params += [(f"{name}.{p}", t) for p, t in module.named_parameters(recurse=False)]
    return params


def clip_contrastive_loss(image_emb: torch.Tensor, text_emb: torch.Tensor,
                          logit_scale: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE over the batch (pairs on the diagonal)."""
    image_emb = F.normalize(image_emb, dim=-1)
    text_emb = F.normalize(text_emb, dim=-1)
    logits = logit_scale.exp().clamp(max=100) * image_emb @ text_emb.T
    target = torch.arange(len(logits), device=logits.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
