"""Numeric precision: fp32 on CPU by default, whatever the CPU, so results do not depend on it."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from helpers import REPO
from pipeline_steps import config
from pipeline_steps.hardware import autocast_dtype, machine_info
from pipeline_steps.train.loop import LoopConfig, Trainer


def loop_sections(schema: dict, params: dict, path: tuple = ()):
    """(key path, params section) of every training-loop section the schema declares."""
    if schema.get("$ref") == "#/$defs/loop":
        yield ".".join(path), params
        return
    for key, sub in schema.get("properties", {}).items():
        if isinstance(sub, dict) and isinstance(params, dict) and key in params:
            yield from loop_sections(sub, params[key], path + (key,))


def every_trainer(params: dict) -> dict[str, dict]:
    schema = yaml.safe_load((REPO / "workflow/schemas/params.schema.yaml").read_text())
    return dict(loop_sections(schema, params))


@pytest.mark.parametrize("preset", [None, "presets/paper.yaml", "presets/synthetic-full.yaml"])
def test_every_trainer_runs_fp32_on_cpu_under_the_default_params(preset, tmp_path):
    params = config.load(REPO / "params.yaml", *([REPO / preset] if preset else []))
    trainers = every_trainer(params)
    # pretraining (CLIP, diffusion teacher, student), SDS-CLIP and CLIP-TD
    assert set(trainers) == {"pretrain.clip", "pretrain.diffusion", "pretrain.student", "sds_clip.train",
                             "clip_td.train"}
    weight = torch.nn.Parameter(torch.ones(2))
    for key, section in trainers.items():
        trainer = Trainer(tmp_path / key, LoopConfig.from_params(section, 0, 4), {"w": weight}, 4, None,
                          torch.device("cpu"))
        with trainer.autocast():  # what the loop runs every loss under
            assert not torch.is_autocast_enabled("cpu"), f"{key}.precision runs bf16 on CPU"
            assert (weight @ weight).dtype == torch.float32  # a matmul, which bf16 autocast would cast


def test_auto_is_fp32_on_cpu_and_bf16_on_cuda_and_explicit_choices_hold_on_both():
    assert autocast_dtype("auto", torch.device("cpu")) is None
    assert autocast_dtype("auto", torch.device("cuda", 0)) is torch.bfloat16  # decided from the device alone
    assert autocast_dtype("auto", "cuda") is torch.bfloat16
    for device in ("cpu", "cuda"):
        assert autocast_dtype("fp32", device) is None
        assert autocast_dtype("bf16", device) is torch.bfloat16
    with pytest.raises(ValueError, match="precision must be one of auto, bf16, fp32, not 'fp16'"):
        autocast_dtype("fp16", "cpu")


def test_a_bad_precision_in_params_names_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("clip_td: {train: {precision: half}}\n")
    with pytest.raises(config.ParamsError, match=r"clip_td\.train\.precision"):
        config.load(REPO / "params.yaml", bad)


def test_machine_info_names_the_cpu_flags_that_decide_speed():
    info = machine_info()
    assert info["cpu_model"] and info["cores"] >= 1 and info["torch"] == torch.__version__
    assert set(info["cpu_flags"]) >= {"avx2", "avx512f", "avx512_bf16", "amx_bf16"}
    assert info["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    json.dumps(info)  # goes into benchmark JSON as it is
