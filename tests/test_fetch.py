"""Paper mode's fetches from a Hugging Face hub on loopback (tests/hub_server.py):

- a fetched CLIP reloads as the same model (QuickGELU and the preprocessing survive the save);
- SD and ViLT folders are read at the commit recorded in the lock at their first fetch, whatever
  ``main`` points to later, skip the files the pipeline never reads, and hold ``FETCHED.json``;
- a served file whose sha256 differs from the lock fails, leaving no folder;
- a missing token, a wrong token and an unknown revision each give the explanatory error, and the
  token is written nowhere.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import open_clip
import pytest
import torch
import yaml
from PIL import Image

from helpers import REPO
from hub_server import HubServer
from pipeline_steps.io import sha256_file
from pipeline_steps.models import clip as clip_models
from pipeline_steps.models import fetch
from pipeline_steps.models.clip import load_clip, needs_quick_gelu

TOKEN = "hf_loopback_secret_4417"


@pytest.mark.parametrize("architecture", ["ViT-B-16", "ViT-B-32-quickgelu"])
def test_a_fetched_openai_clip_reloads_with_the_same_embeddings(architecture, tmp_path, monkeypatch):
    built = {}

    def published(arch, tag, device="cpu", cache_dir=None):
        # what open_clip builds for the tag, with random weights instead of the downloaded ones
        torch.manual_seed(0)
        model, _, preprocess = open_clip.create_model_and_transforms(
            arch, pretrained=None, force_quick_gelu=needs_quick_gelu(arch, tag))
        open_clip.set_model_preprocess_cfg(model, {**open_clip.get_model_preprocess_cfg(model),
                                                   **{k: v for k, v in open_clip.get_pretrained_cfg(
                                                       arch.replace("-quickgelu", ""), tag).items()
                                                      if k in ("mean", "std", "interpolation", "resize_mode")}})
        built["model"], built["preprocess"] = model.eval(), preprocess
        return model, preprocess, open_clip.get_tokenizer(arch)

    monkeypatch.setattr(clip_models, "load_clip", published)
    hub_id = open_clip.get_pretrained_cfg(architecture, "openai")["hf_hub"].strip("/")
    with HubServer() as hub:
        commit = hub.publish(hub_id, {"open_clip_model.safetensors": b"weights"})
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        out = fetch.fetch_clip(architecture, "openai", tmp_path / "clip")
    saved = json.loads((out / "open_clip_config.json").read_text())
    assert saved["model_cfg"].get("quick_gelu") is True
    assert saved["preprocess_cfg"]["mean"] == pytest.approx(open_clip.OPENAI_DATASET_MEAN)
    assert saved["preprocess_cfg"]["interpolation"] == "bicubic"
    fetched = json.loads((out / "FETCHED.json").read_text())
    assert (fetched["hub_id"], fetched["commit"]) == (hub_id, commit)
    assert fetched["files"]["open_clip_model.safetensors"]["sha256"] == sha256_file(out / "open_clip_model.safetensors")

    reloaded, preprocess, tokenizer = load_clip(f"local-dir:{out}")
    reloaded.eval()
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (256, 300, 3), dtype=np.uint8))
    pixels = preprocess(image).unsqueeze(0)
    assert torch.equal(pixels, built["preprocess"](image).unsqueeze(0))
    text = tokenizer(["a red square left of a blue circle"])
    with torch.no_grad():
        for encode, x in (("encode_image", pixels), ("encode_text", text)):
            before, after = getattr(built["model"], encode)(x), getattr(reloaded, encode)(x)
            assert torch.allclose(after, before, rtol=1e-5, atol=1e-6), (encode, (after - before).abs().max())


SD = "CompVis/stable-diffusion-v1-4"
PNDM = {"_class_name": "PNDMScheduler", "beta_schedule": "scaled_linear", "beta_start": 0.00085,
        "beta_end": 0.012, "num_train_timesteps": 1000, "steps_offset": 1, "skip_prk_steps": True}


def sd_repository(version: bytes) -> dict[str, bytes]:
    """SD 1.x's layout (contents stand in for the weights: these tests fetch, they do not load)."""
    files = {"model_index.json": json.dumps({"_class_name": "StableDiffusionPipeline"}).encode(),
             "scheduler/scheduler_config.json": json.dumps(PNDM).encode()}
    for part in ("unet", "vae", "text_encoder"):
        files[f"{part}/config.json"] = json.dumps({"part": part}).encode()
    files["unet/diffusion_pytorch_model.safetensors"] = b"unet weights " + version
    files["vae/diffusion_pytorch_model.safetensors"] = b"vae weights " + version
    files["text_encoder/model.safetensors"] = b"text encoder weights " + version
    for name in ("vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json"):
        files[f"tokenizer/{name}"] = name.encode()
    # published beside the pipeline, never read by it
    files["safety_checker/config.json"] = b"{}"
    files["safety_checker/model.safetensors"] = b"safety checker weights"
    files["feature_extractor/preprocessor_config.json"] = b"{}"
    return files


def fetch_teacher(hub: HubServer, tmp_path, out: str, revision: str = "main", token: str | None = TOKEN):
    """`python -m pipeline_steps fetch-pretrained --kind diffusion` as a user runs it, against the hub."""
    override = tmp_path / "fetch.yaml"
    override.write_text(yaml.safe_dump({"models": {"lock": str(tmp_path / "models.lock.json"),
                                                   "diffusion": {"revision": revision}}}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(hub.environment(tmp_path / "hf-home"), PYTHONPATH=str(REPO))
    if token:
        env["HF_TOKEN"] = token
    return subprocess.run([sys.executable, "-m", "pipeline_steps", "fetch-pretrained", "--params",
                           str(REPO / "params.yaml"), "--params", str(override), "--kind", "diffusion",
                           "--out", str(tmp_path / out)], capture_output=True, text=True, env=env, cwd=tmp_path)


def test_the_teacher_is_read_at_its_locked_commit_and_a_changed_file_fails(tmp_path):
    with HubServer(TOKEN) as hub:
        first = hub.publish(SD, sd_repository(b"v1"), gated=True)
        proc = fetch_teacher(hub, tmp_path, "sd")
        assert proc.returncode == 0, proc.stderr[-3000:]
        folder = tmp_path / "sd"
        fetched = json.loads((folder / "FETCHED.json").read_text())
        assert (fetched["hub_id"], fetched["revision"], fetched["commit"]) == (SD, "main", first)
        served = {p: d for p, d in sd_repository(b"v1").items() if p.split("/")[0] not in
                  ("safety_checker", "feature_extractor")}
        assert set(fetched["files"]) == set(served)
        assert all((folder / p).read_bytes() == d for p, d in served.items())
        lock = json.loads((tmp_path / "models.lock.json").read_text())[SD]
        assert lock["commit"] == first and lock["files"] == {p: f["sha256"] for p, f in fetched["files"].items()}

        # main moves on: the lock keeps the teacher at the commit of the first fetch
        assert hub.publish(SD, sd_repository(b"v2"), gated=True) != first
        proc = fetch_teacher(hub, tmp_path, "sd-again")
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert json.loads((tmp_path / "sd-again/FETCHED.json").read_text())["commit"] == first
        assert (tmp_path / "sd-again/unet/diffusion_pytorch_model.safetensors").read_bytes().endswith(b"v1")

        # the hub serves other bytes at the pinned commit: verification fails, nothing is left
        hub.repos[SD]["commits"][first]["unet/diffusion_pytorch_model.safetensors"] = b"tampered"
        proc = fetch_teacher(hub, tmp_path, "sd-tampered")
        assert proc.returncode != 0
        assert "unet/diffusion_pytorch_model.safetensors differ from the sha256 pinned in" in proc.stderr
        assert not (tmp_path / "sd-tampered").exists()
        # asking for another revision than the lock's is refused with the way out
        proc = fetch_teacher(hub, tmp_path, "sd-other", revision="v2.0")
        assert proc.returncode != 0 and "remove its entry from" in proc.stderr


@pytest.mark.parametrize("token, revision, message", [
    (None, "main", "GatedRepo"),
    ("hf_wrong_token", "main", "GatedRepo"),
    (TOKEN, "no-such-revision", "RevisionNotFound"),
])
def test_token_and_revision_errors_explain_themselves_and_the_token_is_written_nowhere(
        tmp_path, token, revision, message):
    with HubServer(TOKEN) as hub:
        hub.publish(SD, sd_repository(b"v1"), gated=True)
        proc = fetch_teacher(hub, tmp_path, "sd", revision=revision, token=token)
        sent = {r["authorization"] for r in hub.requests}
    assert proc.returncode != 0
    assert f"cannot fetch {SD}@{revision}" in proc.stderr and message in proc.stderr
    assert "set HF_TOKEN" in proc.stderr
    assert not (tmp_path / "sd").exists()
    assert sent == ({None} if token is None else {f"Bearer {token}"})
    if token:
        assert token not in proc.stdout + proc.stderr
        for path in tmp_path.rglob("*"):
            if path.is_file():
                assert token.encode() not in path.read_bytes(), path
