"""Paper mode: fetch published weights into ``models/pretrained/`` (run on a login node).

CLIP weights come through open_clip's pretrained tags (Hugging Face hub), the diffusion teacher and
the student as snapshots of their hub repositories.  ``HF_TOKEN`` is read from the environment and
passed to the hub client only: it is never printed, logged or written.  When the hub cannot be
reached the error says which folder to place by hand.

Pinning: a repository is read at the commit its revision (``main`` by default) resolved to the
first time, recorded with every file's sha256 in the lock file (``models.lock``; commit it with the
params). Later fetches read that commit, whatever ``main`` points to by then, and fail on any file
whose sha256 differs. Every fetched folder holds ``FETCHED.json``: hub id, revision, commit and each
file's size and sha256.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from ..errors import FetchError
from ..io import atomic_dir, atomic_write_json, read_json_object, sha256_file, update_json_locked

SD_FILES = ["model_index.json", "scheduler/*", "text_encoder/*.json", "text_encoder/*.safetensors",
            "tokenizer/*", "unet/*.json", "unet/diffusion_pytorch_model.safetensors", "vae/*.json",
            "vae/diffusion_pytorch_model.safetensors"]


STUDENT_FILES = ["config.json", "*.safetensors", "pytorch_model.bin", "vocab.txt", "tokenizer*.json",
                 "special_tokens_map.json", "preprocessor_config.json"]


def _scrub(message: str) -> str:
    token = os.environ.get("HF_TOKEN")
    return message.replace(token, "***") if token else message


def _endpoint() -> str | None:
    """The hub endpoint (``HF_ENDPOINT``, e.g. a site mirror), read when a fetch runs."""
    return os.environ.get("HF_ENDPOINT") or None


def _resolve_commit(hub_id: str, revision: str) -> str:
    from huggingface_hub import HfApi

    info = HfApi(endpoint=_endpoint()).model_info(hub_id, revision=revision, token=os.environ.get("HF_TOKEN") or None)
    return info.sha


def fetched_record(hub_id: str, revision: str, commit: str, folder: Path) -> dict:
    """``FETCHED.json``: where a folder's files came from, and their sha256."""
    files = {str(p.relative_to(folder)): {"size": p.stat().st_size, "sha256": sha256_file(p)}
             for p in sorted(folder.rglob("*")) if p.is_file() and p.name != "FETCHED.json"}
    return {"hub_id": hub_id, "revision": revision, "commit": commit, "files": files}


def fetch_clip(architecture: str, tag: str, out: str | Path) -> Path:
    import open_clip

    from .clip import load_clip, save_clip

    out = Path(out)
    hub_id = (open_clip.get_pretrained_cfg(architecture, tag).get("hf_hub") or "").strip("/")
    with tempfile.TemporaryDirectory() as cache:
        try:
            commit = _resolve_commit(hub_id, "main") if hub_id else None
            model, _, _ = load_clip(architecture, tag, cache_dir=cache)
        except Exception as e:  # noqa: BLE001 - hub and network errors come in many types
            raise FetchError(
                f"cannot fetch CLIP {architecture} ({tag}): {_scrub(str(e))[:300]}\n"
                f"Offline? Place an open_clip folder at {out}/ with open_clip_config.json and "
                f"open_clip_model.safetensors (see pipeline_steps.models.clip.save_clip), or run this "
                f"step where the Hugging Face hub is reachable.") from None
        with atomic_dir(out) as tmp:
            save_clip(model, folder_config(architecture, tag), tmp, preprocess_config(model))
            atomic_write_json(tmp / "FETCHED.json", fetched_record(hub_id, "main", commit, tmp))
    return out


def folder_config(architecture: str, tag: str | None) -> dict:
    """The model config a fetched folder reloads with: the architecture's, plus QuickGELU where the
    tag's weights were trained with it (OpenAI's ViT-B-16 and ViT-L-14 configs lack the key, and a
    folder without it reloads with plain GELU under QuickGELU weights, silently)."""
    from .clip import model_config, needs_quick_gelu

    cfg = dict(model_config(architecture))
    if needs_quick_gelu(architecture, tag):
        cfg["quick_gelu"] = True
    return cfg


def preprocess_config(model) -> dict:
    """The image preprocessing the weights expect (size, mean, std, interpolation, resize mode)."""
    import open_clip

    return {k: list(v) if isinstance(v, tuple) else v for k, v in open_clip.get_model_preprocess_cfg(model).items()}


class ModelLock:
    """``models.lock``: {hub id: {"revision", "commit", "files": {path: sha256}}}, recorded at a
    repository's first fetch and required by every later one."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def entry(self, hub_id: str) -> dict | None:
        return read_json_object(self.path).get(hub_id)

    def record(self, hub_id: str, revision: str, commit: str, files: dict[str, str]) -> None:
        update_json_locked(self.path, hub_id, {"revision": revision, "commit": commit,
                                               "files": dict(sorted(files.items()))})


def _fetch_snapshot(hub_id: str, revision: str, patterns: list[str], out: Path, what: str,
                    lock: ModelLock) -> Path:
    from huggingface_hub import snapshot_download

    pinned = lock.entry(hub_id)
    if pinned and pinned["revision"] != revision:
        raise FetchError(f"{lock.path} pins {hub_id} at revision {pinned['revision']!r} (commit {pinned['commit']}), "
                         f"but the params ask for {revision!r}: remove its entry from {lock.path} to pin anew")
    with atomic_dir(out) as tmp:
        try:
            commit = pinned["commit"] if pinned else _resolve_commit(hub_id, revision)
            snapshot_download(repo_id=hub_id, revision=commit, allow_patterns=patterns, local_dir=tmp,
                              token=os.environ.get("HF_TOKEN") or None, endpoint=_endpoint())
        except Exception as e:  # noqa: BLE001
            raise FetchError(
                f"cannot fetch {hub_id}@{revision}: {type(e).__name__}: {_scrub(str(e))[:300]}\n"
                f"If the repository is gated, accept its licence on the hub and set HF_TOKEN. "
                f"Offline? Place {what} at {out}/ by hand.") from None
        shutil.rmtree(tmp / ".cache", ignore_errors=True)
        record = fetched_record(hub_id, revision, commit, tmp)
        files = {path: f["sha256"] for path, f in record["files"].items()}
        if pinned:
            differ = sorted(p for p in set(files) | set(pinned["files"]) if files.get(p) != pinned["files"].get(p))
            if differ:
                raise FetchError(f"{hub_id}@{commit}: {', '.join(differ[:5])} differ from the sha256 pinned in "
                                 f"{lock.path}; nothing was written to {out}")
        atomic_write_json(tmp / "FETCHED.json", record)
    if not pinned:
        lock.record(hub_id, revision, commit, files)
    return out


def fetch_diffusion(hub_id: str, revision: str, out: str | Path, lock: str | Path) -> Path:
    """An SD 1.x folder: model_index.json, unet/, vae/, text_encoder/, tokenizer/, scheduler/ (the
    safety checker and feature extractor are not read)."""
    return _fetch_snapshot(hub_id, revision, SD_FILES, Path(out),
                           "the diffusers folder (unet/, text_encoder/, tokenizer/, scheduler/, vae/)", ModelLock(lock))


def fetch_student(hub_id: str, revision: str, out: str | Path, lock: str | Path) -> Path:
    """A ViLT checkpoint (config, weights, BERT tokenizer files), e.g. dandelin/vilt-b32-mlm."""
    return _fetch_snapshot(hub_id, revision, STUDENT_FILES, Path(out),
                           "the ViLT checkpoint folder (config.json, weights, vocab.txt)", ModelLock(lock))
