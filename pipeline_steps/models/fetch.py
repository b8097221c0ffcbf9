"""Paper mode: fetch published weights into ``models/pretrained/`` (run on a login node).

CLIP weights come through open_clip's pretrained tags (Hugging Face hub), the diffusion teacher as
a snapshot of an SD 1.x repository pinned to a revision.  ``HF_TOKEN`` is read from the
environment and passed to the hub client only: it is never printed, logged or written.  When the
hub cannot be reached the error says which folder to place by hand.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from ..errors import FetchError
from ..io import atomic_dir
from .clip import load_clip, model_config, needs_quick_gelu, save_clip

SD_FILES = ["model_index.json", "scheduler/*", "text_encoder/*.json", "text_encoder/*.safetensors",
            "tokenizer/*", "unet/*.json", "unet/diffusion_pytorch_model.safetensors", "vae/*.json",
            "vae/diffusion_pytorch_model.safetensors"]


STUDENT_FILES = ["config.json", "*.safetensors", "pytorch_model.bin", "vocab.txt", "tokenizer*.json",
                 "special_tokens_map.json", "preprocessor_config.json"]


def _scrub(message: str) -> str:
    token = os.environ.get("HF_TOKEN")
    return message.replace(token, "***") if token else message


def fetch_clip(architecture: str, tag: str, out: str | Path) -> Path:
    out = Path(out)
    with tempfile.TemporaryDirectory() as cache:
        try:
            model, _, _ = load_clip(architecture, tag, cache_dir=cache)
        except Exception as e:  # noqa: BLE001 - hub and network errors come in many types
            raise FetchError(
                f"cannot fetch CLIP {architecture} ({tag}): {_scrub(str(e))[:300]}\n"
                f"Offline? Place an open_clip folder at {out}/ with open_clip_config.json and "
                f"open_clip_model.safetensors (see pipeline_steps.models.clip.save_clip), or run this "
                f"step where the Hugging Face hub is reachable.") from None
        with atomic_dir(out) as tmp:
            save_clip(model, folder_config(architecture, tag), tmp, preprocess_config(model))
    return out


def folder_config(architecture: str, tag: str | None) -> dict:
    """The model config a fetched folder reloads with: the architecture's, plus QuickGELU where the
    tag's weights were trained with it (OpenAI's ViT-B-16 and ViT-L-14 configs lack the key, and a
    folder without it reloads with plain GELU under QuickGELU weights, silently)."""
    cfg = dict(model_config(architecture))
    if needs_quick_gelu(architecture, tag):
        cfg["quick_gelu"] = True
    return cfg


def preprocess_config(model) -> dict:
    """The image preprocessing the weights expect (size, mean, std, interpolation, resize mode)."""
    import open_clip

    return {k: list(v) if isinstance(v, tuple) else v for k, v in open_clip.get_model_preprocess_cfg(model).items()}


def _fetch_snapshot(hub_id: str, revision: str, patterns: list[str], out: Path, what: str) -> Path:
    from huggingface_hub import snapshot_download

    with atomic_dir(out) as tmp:
        try:
            snapshot_download(repo_id=hub_id, revision=revision, allow_patterns=patterns,
                              local_dir=tmp, token=os.environ.get("HF_TOKEN") or None)
        except Exception as e:  # noqa: BLE001
            raise FetchError(
                f"cannot fetch {hub_id}@{revision}: {type(e).__name__}: {_scrub(str(e))[:300]}\n"
                f"If the repository is gated, accept its licence on the hub and set HF_TOKEN. "
                f"Offline? Place {what} at {out}/ by hand.") from None
        shutil.rmtree(tmp / ".cache", ignore_errors=True)
    return out


def fetch_diffusion(hub_id: str, revision: str, out: str | Path) -> Path:
    return _fetch_snapshot(hub_id, revision, SD_FILES, Path(out),
                           "the diffusers folder (unet/, text_encoder/, tokenizer/, scheduler/, vae/)")


def fetch_student(hub_id: str, revision: str, out: str | Path) -> Path:
    """A ViLT checkpoint (config, weights, BERT tokenizer files), e.g. dandelin/vilt-b32-mlm."""
    return _fetch_snapshot(hub_id, revision, STUDENT_FILES, Path(out),
                           "the ViLT checkpoint folder (config.json, weights, vocab.txt)")
