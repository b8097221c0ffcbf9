"""SDS-CLIP: the loss and its two gradient modes, what trains, and exact resume after preemption."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from helpers import REPO, smoke_params
from pipeline_steps.data.prepare import prepare
from pipeline_steps.data.shards import PreparedDataset
from pipeline_steps.features import TextStateCache, cache_text_states
from pipeline_steps.io import tree_digest
from pipeline_steps.models.clip import layernorm_parameters
from pipeline_steps.train.pretrain import pretrain_clip, pretrain_diffusion
from pipeline_steps.train.sds_clip import SdsClipModel, sds_loss, sds_weight, train_sds_clip


@pytest.fixture(scope="module")
def setup(small_world, tmp_path_factory):
    """Prepared COCO, a briefly trained tiny CLIP and teacher, and the text-state cache."""
    _, raw = small_world
    root = tmp_path_factory.mktemp("sds")
    params = smoke_params()
    prepare("coco", raw, root / "coco", {"shard_size_mb": 1, "texture_threshold": 8.0})
    clip_spec = params["models"]["clip"]["clip-tiny"]
    pretrain_clip(clip_spec, {"steps": 4, "batch_size": 16, "lr": 1e-3}, [root / "coco"], root / "clip",
                  root / "work-clip", 0)
    # the teacher must have learned some denoising for the gradient modes to be comparable
    pretrain_diffusion(params["models"]["diffusion"]["tiny"],
                       {"steps": 150, "batch_size": 32, "lr": 2e-3, "warmup_steps": 10},
                       root / "coco", root / "teacher", root / "work-teacher", 0)
    cache_text_states(root / "teacher", root / "coco", root / "text")
    return params, root


def test_sds_gradient_is_the_weighted_noise_residual(setup):
    params, root = setup
    model = SdsClipModel(root / "clip", root / "teacher", params["sds_clip"], 0, torch.device("cpu"))
    unet, alphas = model.teacher.unet, model.alphas
    context = model.teacher.encode_text(["a red square left of a blue circle"] * 4)
    cfg = {"gradient": "sds", "t_min": 100, "t_max": 900, "weighting": "sds"}
    z = torch.randn(4, *model.teacher.input_shape, requires_grad=True)
    sds_loss(z, unet, context, alphas, cfg, torch.Generator().manual_seed(3))[0].backward()
    # the same draws, by hand
    g = torch.Generator().manual_seed(3)
    t = torch.randint(100, 901, (4,), generator=g)
    eps = torch.randn(z.shape, generator=g)
    a = alphas[t].view(-1, 1, 1, 1)
    with torch.no_grad():
        eps_hat = unet(a.sqrt() * z + (1 - a).sqrt() * eps, t, encoder_hidden_states=context).sample
    w = sds_weight(alphas, t, "sds").view(-1, 1, 1, 1)
    expected = w * (eps_hat - eps) / z[0].numel() / len(z)
    torch.testing.assert_close(z.grad, expected)


def test_sds_gradient_reaches_h_w_and_clip_through_the_chain_rule(setup):
    params, root = setup
    model = SdsClipModel(root / "clip", root / "teacher", params["sds_clip"], 0, torch.device("cpu"))
    images = torch.rand(4, 3, 64, 64)
    cfg = dict(params["sds_clip"]["sds"], gradient="sds")
    context = model.teacher.encode_text(["a red square"] * 4)
    image_emb = model.clip.encode_image(images).detach()
    flat = model.h_w(image_emb)
    flat.retain_grad()
    z = flat.view(4, *model.teacher.input_shape)
    loss, _ = sds_loss(z, model.teacher.unet, context, model.alphas, cfg, torch.Generator().manual_seed(0))
    loss.backward()
    # dL/dW of the linear map = (dL/dz)^T x (CLIP image embedding)
    torch.testing.assert_close(model.h_w.weight.grad, flat.grad.T @ image_emb)
    model.h_w.zero_grad()
    loss, _ = model.loss(images, model.tokenizer(["a red square"] * 4), context, 1.0, cfg,
                         torch.Generator().manual_seed(0))
    loss.backward()
    image_tower = [p for k, p in model.ln_params.items() if k.startswith("visual.")]
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in image_tower)


def test_gradient_norms_are_those_of_each_loss_and_leave_the_update_unchanged(setup):
    """The logged norms choose the lambda grid: they must be the norms of L_CLIP's and L_SDS's own
    gradients, and measuring them must not change the step."""
    params, root = setup
    model = SdsClipModel(root / "clip", root / "teacher", params["sds_clip"], 0, torch.device("cpu"))
    images = torch.rand(4, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    texts = model.tokenizer(["a red square left of a blue circle"] * 4)
    context = model.teacher.encode_text(["a red square left of a blue circle"] * 4)
    cfg = params["sds_clip"]["sds"]
    ln, h_w = list(model.ln_params.values()), list(model.h_w.parameters())

    def grads(lam, measure):
        for p in model.trainable().values():
            p.grad = None
        loss, metrics = model.loss(images, texts, context, lam, cfg, torch.Generator().manual_seed(1),
                                   gradient_norms=measure)
        loss.backward()
        return [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in ln + h_w], metrics

    clip_only, logged = grads(0.0, measure=True)
    assert set(logged) == {"loss_clip", "loss", "grad_norm_clip_ln"}
    norm = lambda gs: float(torch.sqrt(sum((g ** 2).sum() for g in gs)))  # noqa: E731
    assert logged["grad_norm_clip_ln"] == pytest.approx(norm(clip_only[:len(ln)]), rel=1e-5)
    both, logged = grads(2.0, measure=True)
    unmeasured, _ = grads(2.0, measure=False)
    assert all(torch.equal(a, b) for a, b in zip(both, unmeasured))
    # the total gradient is g_clip + lambda * g_sds: the logged L_SDS norms are of g_sds, unweighted
    sds_part = [(b - c) / 2.0 for b, c in zip(both, clip_only)]
    assert logged["grad_norm_sds_ln"] == pytest.approx(norm(sds_part[:len(ln)]), rel=1e-4)
    assert logged["grad_norm_sds_h_w"] == pytest.approx(norm(sds_part[len(ln):]), rel=1e-4)
    assert logged["grad_norm_sds_h_w"] > 0 and logged["grad_norm_clip_ln"] > 0


def test_full_and_sds_gradients_agree_in_direction(setup):
    params, root = setup
    model = SdsClipModel(root / "clip", root / "teacher", params["sds_clip"], 0, torch.device("cpu"))
    context = model.teacher.encode_text(["a red square left of a blue circle"] * 8)
    cosines = []
    for trial in range(8):
        z0 = torch.randn(8, *model.teacher.input_shape, generator=torch.Generator().manual_seed(trial)) * 0.5
        grads = []
        for mode in ("full", "sds"):
            z = z0.clone().requires_grad_(True)
            cfg = {"gradient": mode, "t_min": 20, "t_max": 980, "weighting": "uniform"}
            sds_loss(z, model.teacher.unet, context, model.alphas, cfg,
                     torch.Generator().manual_seed(100 + trial))[0].backward()
            grads.append(z.grad.flatten())
        cosines.append(torch.nn.functional.cosine_similarity(*grads, dim=0).item())
    assert min(cosines) > 0.3, cosines


def test_optimised_steps_give_the_naive_loss_and_gradients(setup):
    """The benchmark's speed-ups change how, not what: the cached float16 text states and bf16
    autocast give the loss and gradients of the naive fp32 step with the text encoder in the step."""
    params, root = setup
    model = SdsClipModel(root / "clip", root / "teacher", params["sds_clip"], 0, torch.device("cpu"))
    cache = TextStateCache(root / "text")
    with PreparedDataset(root / "coco") as data:
        records = list(data.records("train"))[:8]
    captions = [r["caption"] for r in records]
    images = torch.rand(8, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    texts = model.tokenizer(captions)

    def step(context, bf16):
        for p in model.trainable().values():
            p.grad = None
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss, _ = model.loss(images, texts, context, 1.0, dict(params["sds_clip"]["sds"], gradient="full"),
                                 torch.Generator().manual_seed(1))
        loss.backward()
        return loss.item(), torch.cat([p.grad.flatten() for p in model.trainable().values()])

    naive_loss, naive_grad = step(model.teacher.encode_text(captions), bf16=False)
    cached = cache.get([r["id"] for r in records]).float()
    cached_loss, cached_grad = step(cached, bf16=False)
    assert cached_loss == pytest.approx(naive_loss, rel=1e-3)
    assert torch.nn.functional.cosine_similarity(cached_grad, naive_grad, dim=0) > 0.999
    bf16_loss, bf16_grad = step(cached, bf16=True)
    assert bf16_loss == pytest.approx(naive_loss, rel=2e-2)
    assert torch.nn.functional.cosine_similarity(bf16_grad.float(), naive_grad, dim=0) > 0.98


@pytest.mark.parametrize("scope", ["both", "image"])
def test_only_layernorms_and_h_w_train(setup, tmp_path, scope):
    params, root = setup
    cfg = dict(params["sds_clip"], layernorm_scope=scope,
               train=dict(params["sds_clip"]["train"], steps=2, lr=1e-2, warmup_steps=0))
    teacher_before = tree_digest(root / "teacher")
    train_sds_clip(cfg, 1.0, 0, root / "clip", root / "teacher", root / "text", root / "coco",
                   tmp_path / "out", tmp_path / "work")
    before = load_file(root / "clip" / "open_clip_model.safetensors")
    after = load_file(tmp_path / "out" / "open_clip_model.safetensors")
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    from pipeline_steps.models.clip import load_clip

    model, _, _ = load_clip(f"local-dir:{root / 'clip'}")
    allowed = {k for k, _ in layernorm_parameters(model, scope)}
    assert changed and changed <= allowed
    if scope == "image":
        assert all(k.startswith("visual.") for k in changed)
    assert set(load_file(tmp_path / "out" / "h_w.safetensors")) == {"weight", "bias"}
    assert tree_digest(root / "teacher") == teacher_before  # the frozen teacher is untouched


def test_lambda_zero_is_clip_loss_only(setup, tmp_path):
    params, root = setup
    cfg = dict(params["sds_clip"], train=dict(params["sds_clip"]["train"], steps=2))
    summary = train_sds_clip(cfg, 0.0, 0, root / "clip", root / "teacher", root / "text", root / "coco",
                             tmp_path / "out", tmp_path / "work")
    assert "denoise_mse" not in summary["final"] and summary["final"]["loss"] == summary["final"]["loss_clip"]
    assert not (tmp_path / "out" / "h_w.safetensors").exists()


def _train_cmd(root, params_file, out, work):
    return [sys.executable, "-m", "pipeline_steps", "train-sds-clip", "--params", str(REPO / "params.yaml"),
            "--params", str(params_file), "--lam", "1", "--seed", "0", "--clip", str(root / "clip"),
            "--teacher", str(root / "teacher"), "--text-cache", str(root / "text"), "--prepared",
            str(root / "coco"), "--out", str(out), "--work", str(work)]


def test_preempted_run_resumes_to_identical_weights(setup, tmp_path):
    params, root = setup
    params_file = tmp_path / "p.yaml"
    # long enough to be stopped mid-run (the signal is sent once step 2 is saved), short enough to run twice
    params_file.write_text("sds_clip: {train: {steps: 24, batch_size: 16, lr: 1.0e-3, warmup_steps: 5, "
                           "checkpoint_every: 2, log_every: 1}}\n")
    subprocess.run(_train_cmd(root, params_file, tmp_path / "straight", tmp_path / "w1"), check=True,
                   capture_output=True)
    # the same run, sent SIGTERM (as SLURM does before preemption) once it has checkpointed
    proc = subprocess.Popen(_train_cmd(root, params_file, tmp_path / "resumed", tmp_path / "w2"),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 120
    while not (tmp_path / "w2/checkpoints/step-2/state.json").exists() and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    output = proc.communicate(timeout=120)[0]
    assert proc.returncode == 75, output
    assert not (tmp_path / "resumed").exists()  # no half-written output
    stopped = max(int(p.name.split("-")[1]) for p in (tmp_path / "w2/checkpoints").glob("step-*"))
    assert stopped < 24
    second = subprocess.run(_train_cmd(root, params_file, tmp_path / "resumed", tmp_path / "w2"),
                            capture_output=True, text=True)
    assert second.returncode == 0, second.stderr[-3000:]
    assert f"resumed from {tmp_path / 'w2/checkpoints'}/step-{stopped}" in second.stderr
    # h_w was fitted when the run started, not again on resuming (its checkpoint holds h_w), and the
    # summary still reports the fit
    assert "h_w fitted" in output and "h_w fitted" not in second.stderr
    summaries = [json.loads((tmp_path / run / "train_summary.json").read_text()) for run in ("straight", "resumed")]
    assert summaries[0]["h_w_fit_r2"] == summaries[1]["h_w_fit_r2"] > 0
    a = load_file(tmp_path / "straight/open_clip_model.safetensors")
    b = load_file(tmp_path / "resumed/open_clip_model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    ha, hb = load_file(tmp_path / "straight/h_w.safetensors"), load_file(tmp_path / "resumed/h_w.safetensors")
    assert all(torch.equal(ha[k], hb[k]) for k in ha)


def test_fitted_h_w_decodes_images_and_the_run_reports_how_the_teacher_reads_them(setup, tmp_path):
    params, root = setup
    from pipeline_steps.train.data import CaptionedImages

    data = CaptionedImages(root / "coco", "train")
    held_out = list(range(len(data)))[-32:]  # the fit below samples the other rows only
    fits = {}
    for init in ("random", "fit"):
        cfg = dict(params["sds_clip"], sds=dict(params["sds_clip"]["sds"], h_w_init=init, h_w_fit_images=64))
        model = SdsClipModel(root / "clip", root / "teacher", cfg, 0, torch.device("cpu"))
        sample = CaptionedImages(root / "coco", "train")
        sample.records, sample.ids = sample.records[:-32], sample.ids[:-32]
        report = model.init_h_w(cfg["sds"], sample, torch.Generator().manual_seed(0))
        with torch.no_grad():
            decoded = model.h_w(model.clip.encode_image(data.images(held_out, model.preprocess)))
            target = model.teacher.encode_images(data.unit_images(held_out)).flatten(1)
        fits[init] = ((decoded - target) ** 2).mean().item(), report
    assert fits["random"][1] == {"h_w_init": "random"}
    assert fits["fit"][1]["h_w_init"] == "fit" and 0 < fits["fit"][1]["h_w_fit_r2"] <= 1
    # on images it was not fitted on, the fitted map decodes better than a grey image does
    assert fits["fit"][0] < fits["random"][0]
    cfg = dict(params["sds_clip"], train=dict(params["sds_clip"]["train"], steps=2))
    summary = train_sds_clip(cfg, 1.0, 0, root / "clip", root / "teacher", root / "text", root / "coco",
                             tmp_path / "out", tmp_path / "work")
    diagnostics = summary["teacher_diagnostics"]
    for image in ("real", "h_w"):
        assert 0 <= diagnostics[image]["matched_wins"] <= 1
        assert all(diagnostics[image][f"mse_{k}"] > 0 for k in ("matched", "mismatched", "empty"))
    assert summary["h_w_init"] == "fit"
