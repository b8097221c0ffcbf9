"""Published CLIP weights fetched into a folder reload as the same model: QuickGELU and the
preprocessing survive the save, so a `local-dir:` CLIP embeds exactly as the fetched one."""

from __future__ import annotations

import json

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image

from pipeline_steps.models import fetch
from pipeline_steps.models.clip import load_clip, needs_quick_gelu


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

    monkeypatch.setattr(fetch, "load_clip", published)
    out = fetch.fetch_clip(architecture, "openai", tmp_path / "clip")
    saved = json.loads((out / "open_clip_config.json").read_text())
    assert saved["model_cfg"].get("quick_gelu") is True
    assert saved["preprocess_cfg"]["mean"] == pytest.approx(open_clip.OPENAI_DATASET_MEAN)
    assert saved["preprocess_cfg"]["interpolation"] == "bicubic"

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
