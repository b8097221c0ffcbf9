"""One CLIP-TD run (train/clip_td.py): exact resume, augmentation's teacher, two processes against
one, and the same run on AVX2-only kernels."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml
from helpers import REPO
from safetensors.torch import load_file

from pipeline_steps.clip_teacher import cache_clip_features
from pipeline_steps.cluster import launcher
from pipeline_steps.data.shards import PreparedDataset
from pipeline_steps.evaluate.vl_tasks import evaluate_clip_td
from pipeline_steps.hardware import AVX2_ONLY_ENV
from pipeline_steps.models.clip_td import load_clip_td
from pipeline_steps.tasks.examples import load_examples
from pipeline_steps.train.clip_td import predict, train_clip_td


def test_targeted_run_resumes_to_identical_weights_and_evaluates(world, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="pipeline_steps.train.loop")
    params, root = world
    cfg = params["clip_td"]
    cfg["train"] = {**cfg["train"], "steps": 4, "checkpoint_every": 2}
    cache_clip_features("vcr", root / "clip", root / "vcr", tmp_path / "cache", cfg["teacher"], torch.device("cpu"))
    ids = [e.id for e in load_examples("vcr", root / "vcr")]
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": ids[:24], "eval": ids[24:]}))
    common = dict(task="vcr", method_name="targeted", cfg=cfg, seed=0, student_folder=root / "student",
                  prepared=root / "vcr", split_file=split, teacher_clip=None, teacher_cache=tmp_path / "cache")
    train_clip_td(**common, out=tmp_path / "straight", work=tmp_path / "work-straight")
    # a job killed after step 2 leaves only the step-2 checkpoint; the rerun resumes from it
    shutil.copytree(tmp_path / "work-straight/checkpoints/step-2", tmp_path / "work-resumed/checkpoints/step-2")
    shutil.copy(tmp_path / "work-straight/run.json", tmp_path / "work-resumed/run.json")
    train_clip_td(**common, out=tmp_path / "resumed", work=tmp_path / "work-resumed")
    assert f"resumed from {tmp_path / 'work-resumed/checkpoints/step-2'}" in caplog.text
    a = load_file(tmp_path / "straight/student/model.safetensors")
    b = load_file(tmp_path / "resumed/student/model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert torch.equal(load_file(tmp_path / "straight/head.safetensors")["3.weight"],
                       load_file(tmp_path / "resumed/head.safetensors")["3.weight"])
    # the predictions the training job saved are the saved model's on the evaluation ids
    model, meta = load_clip_td(tmp_path / "resumed", torch.device("cpu"))
    with PreparedDataset(root / "vcr") as data:
        again = predict(model, load_examples("vcr", root / "vcr", ids[24:]), data, 5, meta["max_words"])
    saved = np.load(tmp_path / "resumed/predictions.npz")
    assert saved["ids"].tolist() == ids[24:]
    np.testing.assert_allclose(saved["logits"], again.numpy(), rtol=1e-5, atol=1e-6)
    report = evaluate_clip_td(tmp_path / "resumed", root / "vcr", split, params["evaluate"])
    assert report["examples"] == len(ids) - 24
    assert 0 <= report["q2ar"] <= min(report["q2a"], report["qa2r"]) <= 1
    summary = json.loads((tmp_path / "resumed/train_summary.json").read_text())
    assert summary["method"] == "targeted" and summary["train_examples"] == 24
    assert np.isfinite(summary["final"]["loss_distill"])
    # params changed since: the finished run's checkpoints are not resumed, training starts afresh
    changed = {**common, "cfg": {**cfg, "distill": {**cfg["distill"], "loss": "mse"}}}
    train_clip_td(**changed, out=tmp_path / "changed", work=tmp_path / "work-resumed")
    assert "holds checkpoints of another configuration (differs in: identity)" in caplog.text
    summary = json.loads((tmp_path / "changed/train_summary.json").read_text())
    assert summary["distill"]["loss"] == "mse" and np.isfinite(summary["final"]["loss_distill"])
    c = load_file(tmp_path / "changed/student/model.safetensors")
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_augmentation_needs_the_online_teacher(world, tmp_path):
    params, root = world
    ids = [e.id for e in load_examples("snli_ve", root / "snli_ve")]
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": ids[:16], "eval": ids[16:24]}))
    cfg = {**params["clip_td"], "augment": {"crop_scale": 0.6},
           "train": {**params["clip_td"]["train"], "steps": 2, "checkpoint_every": 2}}
    common = dict(task="snli_ve", method_name="targeted", seed=0, student_folder=root / "student",
                  prepared=root / "snli_ve", split_file=split)
    with pytest.raises(ValueError, match="needs clip_td.teacher.mode: online"):
        train_clip_td(**common, cfg=cfg, teacher_clip=None, teacher_cache=tmp_path / "no-cache",
                      out=tmp_path / "cached", work=tmp_path / "work-cached")
    assert not (tmp_path / "cached").exists()
    online = {**cfg, "teacher": {**cfg["teacher"], "mode": "online"}}
    summary = train_clip_td(**common, cfg=online, teacher_clip=root / "clip", teacher_cache=None,
                            out=tmp_path / "online", work=tmp_path / "work-online")
    assert summary["teacher_mode"] == "online" and np.isfinite(summary["final"]["loss_distill"])
    assert (tmp_path / "online/student/config.json").is_file()


def test_lowshot_length_full_split_trains_every_fraction_as_long_as_the_full_split(world, tmp_path):
    params, root = world
    ids = [e.id for e in load_examples("snli_ve", root / "snli_ve")]
    splits = tmp_path / "splits"
    splits.mkdir()
    (splits / "full.json").write_text(json.dumps({"train": ids[:32], "eval": ids[32:40], "setting": "full"}))
    lowshot = splits / "lowshot-25-seed0.json"
    lowshot.write_text(json.dumps({"train": ids[:8], "eval": ids[32:40], "setting": "lowshot-25", "fraction": 0.25}))
    train = {**params["clip_td"]["train"], "epochs": 1.0, "steps": 1, "batch_size": 4, "checkpoint_every": 10}
    common = dict(task="snli_ve", method_name="finetune", seed=0, student_folder=root / "student",
                  prepared=root / "snli_ve", teacher_clip=None, teacher_cache=None)
    steps = {}
    for length in ("split", "full_split"):
        # the task's override wins over clip_td.lowshot_length
        cfg = {**params["clip_td"], "train": train, "task_train": {"snli_ve": {"lowshot_length": length}},
               "lowshot_length": "full_split" if length == "split" else "split"}
        for split in (lowshot, splits / "full.json"):
            summary = train_clip_td(**common, cfg=cfg, split_file=split, out=tmp_path / f"{length}-{split.stem}",
                                    work=tmp_path / f"work-{length}-{split.stem}")
            assert summary["train_examples"] == (8 if split == lowshot else 32)
            steps[length, split.stem] = summary["steps"]
    # one epoch of 8 examples in batches of 4 is 2 steps; of the full split's 32, 8
    assert steps == {("split", "lowshot-25-seed0"): 2, ("split", "full"): 8,
                     ("full_split", "lowshot-25-seed0"): 8, ("full_split", "full"): 8}


def test_two_gpu_job_runs_one_process_per_device_and_matches_one_process(world, tmp_path):
    """A training job with clip_td.gpus: 2 starts two torchrun processes (gloo on CPU here) that
    all-reduce gradients: their model equals a one-process run of the same batch, written once."""
    params, root = world
    # fp32: bf16 rounds a half batch's activations differently from a whole one's, which would hide
    # the all-reduce's exactness behind bf16 noise
    params["clip_td"]["train"] = {**params["clip_td"]["train"], "steps": 3, "checkpoint_every": 10,
                                  "precision": "fp32"}
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(params))
    ids = [e.id for e in load_examples("snli_ve", root / "snli_ve")]
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": ids[:32], "eval": ids[32:]}))
    outs = {}
    for gpus in (1, 2):
        out, work = tmp_path / f"run-{gpus}", tmp_path / f"work-{gpus}"
        command = launcher(gpus).split() + [
            "train-clip-td", "--params", str(params_file), "--task", "snli_ve", "--method", "finetune",
            "--seed", "0", "--student", str(root / "student"), "--prepared", str(root / "snli_ve"),
            "--split", str(split), "--out", str(out), "--work", str(work), "--threads", "1"]
        proc = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=REPO)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        outs[gpus] = out
    assert launcher(2).startswith("torchrun ")
    one = load_file(outs[1] / "student/model.safetensors")
    two = load_file(outs[2] / "student/model.safetensors")
    init = load_file(root / "student/model.safetensors")
    moved = max((one[k] - init[k]).abs().max().item() for k in one)
    gap = max((one[k] - two[k]).abs().max().item() for k in one)
    assert moved > 1e-3 and gap < moved / 100, (moved, gap)
    assert sorted(p.name for p in outs[2].iterdir()) == sorted(p.name for p in outs[1].iterdir())
    assert not list(tmp_path.glob("run-2.*"))  # no second writer's leftovers


def test_default_params_give_the_same_run_on_avx2_only_kernels(world, tmp_path):
    """The default precision (fp32 on CPU) does not depend on the CPU: a training run with every
    kernel library held to AVX2 code paths, as on a CPU without AVX-512 or native bf16, ends with
    the same evaluation logits up to float summation order."""
    params, root = world
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(params))
    ids = [e.id for e in load_examples("snli_ve", root / "snli_ve")]
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": ids[:16], "eval": ids[16:32]}))
    env = {k: v for k, v in os.environ.items() if k not in AVX2_ONLY_ENV}
    logits = {}
    for name, isa in (("native", {}), ("avx2", AVX2_ONLY_ENV)):
        out = tmp_path / name
        proc = subprocess.run(
            [sys.executable, "-m", "pipeline_steps", "train-clip-td", "--params", str(params_file), "--task",
             "snli_ve", "--method", "finetune", "--seed", "0", "--student", str(root / "student"), "--prepared",
             str(root / "snli_ve"), "--split", str(split), "--out", str(out), "--work", str(tmp_path / f"work-{name}")],
            capture_output=True, text=True, env={**env, **isa}, cwd=REPO, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        # the held run uses AVX2 kernels; the native one uses the machine's own (AVX2 too on a CPU
        # without AVX-512, where the two runs must then agree exactly)
        native = torch.backends.cpu.get_cpu_capability()
        assert f"kernels {'AVX2' if name == 'avx2' else native}," in proc.stderr, proc.stderr[-3000:]
        logits[name] = np.load(out / "predictions.npz")["logits"]
    assert not np.array_equal(logits["native"], np.zeros_like(logits["native"]))
    np.testing.assert_allclose(logits["avx2"], logits["native"], rtol=1e-4, atol=1e-5)


def test_training_length_follows_the_data():
    """With epochs, a larger split never trains fewer steps; `steps` is the least a small one gets."""
    from pipeline_steps.train.clip_td import train_section
    from pipeline_steps.train.loop import LoopConfig

    params = yaml.safe_load((REPO / "params.yaml").read_text())["clip_td"]
    for task in ("vqa", "snli_ve", "vcr"):
        section = train_section(params, task)
        steps = [LoopConfig.from_params(section, 0, n).steps for n in (10, 300, 3000, 30000)]
        assert steps == sorted(steps) and steps[0] == section["steps"] and steps[-1] > steps[1], (task, steps)
        full = LoopConfig.from_params(section, 0, 3000)
        assert full.steps == max(section["steps"], -(-int(section["epochs"] * 3000) // section["batch_size"]))
    assert LoopConfig.from_params({"steps": 7, "batch_size": 4, "lr": 1.0, "epochs": None}, 0, 10_000).steps == 7
    with pytest.raises(ValueError, match="epochs"):
        LoopConfig.from_params({"steps": 7, "batch_size": 4, "lr": 1.0, "epochs": 2.0}, 0)
