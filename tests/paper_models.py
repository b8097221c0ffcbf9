"""Hub repositories of paper mode's models in their published layouts, with random weights.

Each function returns ``{path: bytes}`` for :meth:`hub_server.HubServer.publish`:

- :func:`openai_clip`: open_clip's ``timm/vit_*_clip_224.openai`` repository of an architecture,
  at its real size (``open_clip_model.safetensors`` + ``open_clip_config.json``);
- :func:`stable_diffusion`: ``CompVis/stable-diffusion-v1-4``'s folders. SD-1.4's block types,
  4 latent channels, the VAE's 8x downsampling and ``scaling_factor``, a 77-position CLIP text
  encoder with SD's BPE vocabulary and the PNDM scheduler config, at reduced widths and latent size;
  ``safety_checker/`` and ``feature_extractor/`` are published too, as on the hub;
- :func:`vilt_mlm`: ``dandelin/vilt-b32-mlm``: ``ViltForMaskedLM`` at 384 px with 32 px patches, 40
  text positions and a 30522-entry BERT ``vocab.txt`` (reduced width), as ``pytorch_model.bin``.
"""

from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path

import torch

SD_ID = "CompVis/stable-diffusion-v1-4"
VILT_ID = "dandelin/vilt-b32-mlm"
PNDM = {"_class_name": "PNDMScheduler", "_diffusers_version": "0.7.0.dev0", "beta_end": 0.012,
        "beta_schedule": "scaled_linear", "beta_start": 0.00085, "clip_sample": False,
        "num_train_timesteps": 1000, "set_alpha_to_one": False, "skip_prk_steps": True,
        "steps_offset": 1, "trained_betas": None}
SD_MODEL_INDEX = {"_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.2.2",
                  "feature_extractor": ["transformers", "CLIPImageProcessor"],
                  "safety_checker": ["stable_diffusion", "StableDiffusionSafetyChecker"],
                  "scheduler": ["diffusers", "PNDMScheduler"], "text_encoder": ["transformers", "CLIPTextModel"],
                  "tokenizer": ["transformers", "CLIPTokenizer"], "unet": ["diffusers", "UNet2DConditionModel"],
                  "vae": ["diffusers", "AutoencoderKL"]}


def _folder_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def openai_clip(architecture: str, seed: int = 0) -> tuple[str, dict[str, bytes]]:
    """(hub id, files) of open_clip's ``openai`` tag of ``architecture``, random weights."""
    import open_clip
    from safetensors.torch import save

    hub_id = open_clip.get_pretrained_cfg(architecture, "openai")["hf_hub"].strip("/")
    torch.manual_seed(seed)
    model = open_clip.create_model(architecture, pretrained=None)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    config = {"model_cfg": open_clip.get_model_config(architecture),
              "preprocess_cfg": {"mean": list(open_clip.OPENAI_DATASET_MEAN),
                                 "std": list(open_clip.OPENAI_DATASET_STD)}}
    return hub_id, {"open_clip_model.safetensors": save(state),
                    "open_clip_config.json": json.dumps(config, indent=2).encode()}


def stable_diffusion(seed: int = 0, latent_size: int = 16) -> dict[str, bytes]:
    """SD-1.4's repository layout and block structure at reduced widths (random weights)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from pipeline_steps.models.diffusion import bpe_tokenizer

    torch.manual_seed(seed)
    text_width = 64
    unet = UNet2DConditionModel(
        sample_size=latent_size, in_channels=4, out_channels=4, layers_per_block=2,
        block_out_channels=(32, 64, 64, 64), attention_head_dim=8, cross_attention_dim=text_width,
        norm_num_groups=32,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3)
    # four blocks: three downsamplings, SD's 8x
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, layers_per_block=1,
                        block_out_channels=(32, 32, 64, 64), norm_num_groups=32,
                        sample_size=latent_size * 8, scaling_factor=0.18215,
                        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=49408, max_position_embeddings=77, hidden_size=text_width, intermediate_size=4 * text_width,
        num_attention_heads=2, num_hidden_layers=2, hidden_act="quick_gelu", bos_token_id=49406,
        eos_token_id=49407, pad_token_id=1))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        unet.save_pretrained(root / "unet", safe_serialization=True)
        vae.save_pretrained(root / "vae", safe_serialization=True)
        text_encoder.save_pretrained(root / "text_encoder", safe_serialization=True)
        bpe_tokenizer(root / "tokenizer-build", 77).save_pretrained(root / "tokenizer")
        files = _folder_files(root)
    files = {p: d for p, d in files.items() if not p.startswith("tokenizer-build/")}
    files["scheduler/scheduler_config.json"] = json.dumps(PNDM, indent=2).encode()
    files["model_index.json"] = json.dumps(SD_MODEL_INDEX, indent=2).encode()
    # published beside the pipeline, never read by it
    files["safety_checker/config.json"] = b'{"_name_or_path": "CompVis/stable-diffusion-safety-checker"}'
    files["safety_checker/model.safetensors"] = b"safety checker weights (not read)"
    files["feature_extractor/preprocessor_config.json"] = b'{"crop_size": 224, "do_center_crop": true}'
    return files


def bert_vocabulary(words: list[str], size: int = 30522) -> list[str]:
    """A BERT-uncased-shaped vocabulary of exactly ``size`` entries that covers ``words``:
    [PAD], [unused*], [UNK], [CLS], [SEP], [MASK], every character (and its ## form), the words."""
    chars = sorted({c for w in words for c in w.lower()} | set("abcdefghijklmnopqrstuvwxyz0123456789.,?!'-"))
    vocab = ["[PAD]"] + [f"[unused{i}]" for i in range(99)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab += chars + [f"##{c}" for c in chars]
    seen = set(vocab)
    for w in sorted({w.lower() for w in words}):
        if w not in seen:
            vocab.append(w)
            seen.add(w)
    vocab += [f"[unused{i}]" for i in range(99, 99 + size - len(vocab))]
    return vocab[:size]


def vilt_mlm(words: list[str], seed: int = 0) -> dict[str, bytes]:
    """``dandelin/vilt-b32-mlm``'s files: ViltForMaskedLM (reduced width), pytorch_model.bin, BERT vocab."""
    from transformers import ViltConfig, ViltForMaskedLM

    torch.manual_seed(seed)
    config = ViltConfig(vocab_size=30522, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=256, image_size=384, patch_size=32, max_position_embeddings=40,
                        max_image_length=-1, num_images=-1)
    config.architectures = ["ViltForMaskedLM"]
    model = ViltForMaskedLM(config)
    weights = io.BytesIO()
    torch.save(model.state_dict(), weights)
    vocab = bert_vocabulary(words)
    return {"config.json": config.to_json_string().encode(), "pytorch_model.bin": weights.getvalue(),
            "vocab.txt": ("\n".join(vocab) + "\n").encode(),
            "tokenizer_config.json": json.dumps({"do_lower_case": True, "model_max_length": 40,
                                                 "tokenizer_class": "BertTokenizer"}).encode(),
            "special_tokens_map.json": json.dumps({"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]",
                                                   "cls_token": "[CLS]", "mask_token": "[MASK]"}).encode(),
            "preprocessor_config.json": json.dumps({"do_normalize": True, "do_resize": True, "size": 384,
                                                    "image_mean": [0.5] * 3, "image_std": [0.5] * 3,
                                                    "size_divisor": 32}).encode()}
