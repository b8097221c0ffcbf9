"""Paper mode rehearsed end to end, as a site would run it with its own mirrors:

    HF_ENDPOINT=<hub mirror> snakemake --cores 2 --configfile presets/paper.yaml <sizes>.yaml

with ``data.mirror`` at a dataset mirror (tests/mirror_server.py, the synthetic world packed as the
real download files) and ``HF_ENDPOINT`` at a Hugging Face hub (tests/hub_server.py) that serves the
published repositories in their real layouts: the real ViT-B/32 CLIP of open_clip's ``openai`` tag,
SD-1.4 and ViLT-B/32 at reduced widths (tests/paper_models.py), and the gated Winoground dataset.
Random weights: the rehearsal checks that every rule of paper mode runs on the published formats
and shapes (VAE latents, 224 px CLIP inputs, SD's 77-token context, ViLT's 384 px input and BERT
vocabulary), not what the numbers are.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

import paper_models
from helpers import SNAKEMAKE, clone_run, copy_project, run
from hub_server import HubServer
from mirror_server import MirrorServer
from pipeline_steps.data.mirror import build_mirror
from pipeline_steps.grid import clip_td_runs, sds_run_name

TOKEN = "hf_rehearsal_token_9051"
CLIP = "ViT-B-32-quickgelu"
METHODS = ["blank_image", "finetune", "naive", "shuffled_image", "targeted"]  # sorted
WINOGROUND = "datasets/facebook/winoground"

# the paper preset's grid, cut to one point per rule: one backbone and one lambda (the lambda=0
# control runs the same rules); every task and method at one low-shot fraction and one seed (the
# splits rule still builds every split: full, low-shot and the shifts); CIFAR-10 zero-shot (the
# CIFAR-100 files go through the same rules, checked in tests/test_acquire.py); steps and batches of two
SIZES = {
    "sds_clip": {"backbones": ["vit-b-32"], "lambdas": [1.0e-3], "seeds": [0],
                 "train": {"steps": 2, "batch_size": 2, "warmup_steps": 1, "checkpoint_every": 1, "log_every": 1},
                 "sds": {"h_w_fit_images": 8}, "diagnostics": {"captions": 8, "timesteps": [500]}},
    "clip_td": {"settings": ["lowshot"], "lowshot_fractions": [0.5], "seeds": [0],
                "teacher": {"clip": "vit-b-32", "batch_size": 8, "vqa_candidates": 4},
                "train": {"epochs": None, "steps": 2, "batch_size": 2, "warmup_steps": 1, "checkpoint_every": 1,
                          "log_every": 1},
                "task_train": {"vcr": {"batch_size": 2}, "vqa": {"epochs": None, "steps": 2, "warmup_steps": 1}}},
    "splits": {"lowshot": {"fractions": [0.5], "seeds": [0]}},
    "prepare": {"shard_size_mb": 0.05},
    "evaluate": {"batch_size": 16, "bootstrap": {"n": 50}, "teacher_score": {"timesteps": [250, 750]},
                 "zeroshot": {"datasets": ["zeroshot_cifar10"]}},
}


def world_words(raw) -> list[str]:
    """Every word of the synthetic world's texts (the served ViLT vocabulary covers them)."""
    words = set()
    for path in raw.rglob("*"):
        if path.suffix in (".json", ".jsonl", ".csv", ".txt"):
            words |= set(re.findall(r"[a-z]+", path.read_text(errors="ignore").lower()))
    return sorted(words)


@pytest.fixture(scope="module")
def mirrors(small_world, tmp_path_factory):
    """(data mirror, hub) serving the small world and the paper's repositories."""
    _, raw = small_world
    root = tmp_path_factory.mktemp("mirror")
    build_mirror(raw, root)
    with MirrorServer(root, TOKEN) as data, HubServer(TOKEN) as hub:
        hub_id, files = paper_models.openai_clip(CLIP)
        hub.publish(hub_id, files)
        hub.publish(paper_models.SD_ID, paper_models.stable_diffusion(), gated=True)
        hub.publish(paper_models.VILT_ID, paper_models.vilt_mlm(world_words(raw)))
        served = root / "huggingface.co" / WINOGROUND / "resolve/main"
        hub.publish(WINOGROUND, {str(p.relative_to(served)): p.read_bytes() for p in served.rglob("*") if p.is_file()},
                    gated=True)
        yield data, root, hub


def rehearse(project, data, root, hub, tmp_path) -> None:
    sizes = dict(SIZES, data={"mirror": data.url, "checksums": str(root / "checksums.json")})
    (project / "rehearsal.yaml").write_text(yaml.safe_dump(sizes))
    env = {**hub.environment(tmp_path / "hf-home"), "HF_TOKEN": TOKEN}
    # one --configfile flag with both files: a second flag would replace the first
    run(SNAKEMAKE + ["--cores", "2", "--configfile", "presets/paper.yaml", "rehearsal.yaml"],
        cwd=project, env=env, timeout=1500)


def test_paper_mode_runs_every_rule_against_the_published_formats(mirrors, tmp_path):
    data, root, hub = mirrors
    project = copy_project(tmp_path / "paper")
    rehearse(project, data, root, hub, tmp_path)

    # every rule of paper mode ran (Snakemake's benchmark and log folders name them)
    config = yaml.safe_load((project / ".pipeline/params.yaml").read_text())
    assert config["mode"] == "paper"
    models = project / "models/pretrained"
    for name in ("vit-b-32", config["models"]["diffusion"]["name"], config["models"]["student"]["name"]):
        fetched = json.loads((models / name / "FETCHED.json").read_text())
        assert fetched["commit"] and fetched["files"], name
    assert json.loads((models / "vit-b-32/open_clip_config.json").read_text())["model_cfg"]["quick_gelu"] is True
    assert not (models / config["models"]["diffusion"]["name"] / "safety_checker").exists()
    lock = json.loads((project / "models.lock.json").read_text())
    assert set(lock) == {paper_models.SD_ID, paper_models.VILT_ID}
    # Winoground came from the hub, with the token; the other sources from the data mirror
    assert any(r["path"].startswith(WINOGROUND) and r["authorization"] == f"Bearer {TOKEN}" for r in hub.requests)
    assert not data.requests_for("huggingface.co/datasets/facebook/winoground/resolve/main/data/examples.jsonl")

    # every run of the grid is in the results, with every metric of its evaluation
    metrics = json.loads((project / "results/metrics.json").read_text())
    assert set(metrics["sds_clip"]["vit-b-32"]) == {"base", "lam0.001", "selected"}
    assert metrics["sds_clip"]["vit-b-32"].pop("selected")["lambda"] == 1.0e-3  # the only lambda > 0
    for values in metrics["sds_clip"]["vit-b-32"].values():
        assert {"winoground_group", "aro_vg_r", "aro_vg_a", "sugarcrepe", "zero_shot_cifar10"} <= set(values)
        assert all(0 <= v <= 1 for v in values.values())
    runs = clip_td_runs(config["clip_td"], config["splits"])
    assert len(runs) == 9
    for run_name in runs:
        assert (project / f"results/metrics/clip_td/{run_name}.json").is_file(), run_name
    assert {t: {s: sorted(m) for s, m in v.items()} for t, v in metrics["clip_td"].items()} == {
        task: {"lowshot_50": METHODS} for task in ("vqa", "snli_ve", "vcr")}
    for task, shifts in (("vqa", ["priors"]), ("snli_ve", ["domain"]), ("vcr", ["movie", "source"])):
        for name in ["full", "lowshot-50-seed0"] + [f"shift-{s}" for s in shifts]:
            assert json.loads((project / f"data/splits/{task}/{name}.json").read_text()), (task, name)
    # the teacher scored Winoground in SD's latent space
    teacher = json.loads((project / "results/metrics/teacher/sd-1-4/winoground_diffusion.json").read_text())
    assert teacher["protocol"]["space"] == "latent" and teacher["n"] == len(
        (project / "data/prepared/winoground/records.jsonl").read_text().splitlines())
    for table in ("sds_clip", "clip_td"):
        assert (project / f"results/tables/{table}.md").read_text().count("|") > 10
    for figure in ("sds_clip_compositional", "clip_td_lowshot", "teacher_vs_clip"):
        assert (project / f"results/figures/{figure}.png").stat().st_size > 10_000

    # the model side is deterministic: a copy with one SDS-CLIP run, one CLIP-TD run and the teacher's
    # scores removed recomputes them (and the aggregate) to a byte-identical results/metrics.json
    again = clone_run(project, tmp_path / "again")
    recomputed = [f"models/sds_clip/{sds_run_name('vit-b-32', 1.0e-3, 0)}",
                  f"models/clip_td/{runs[-1]}",
                  "results/metrics/teacher", "results/metrics.json"]
    for path in recomputed:
        (shutil.rmtree if (again / path).is_dir() else Path.unlink)(again / path)
    rehearse(again, data, root, hub, tmp_path)
    assert (again / "results/metrics.json").read_bytes() == (project / "results/metrics.json").read_bytes()
