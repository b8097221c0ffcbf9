"""Shared fixtures: a small synthetic world, and copies of the project to run the workflow in.

Plain helpers (project copies, commands, smoke params) are in helpers.py. Tests that run the
workflow (the smoke pipeline, Snakemake or DVC) are marked ``integration``, so that
``pytest -m "not integration and not slurm"`` is the fast inner loop.
"""

from __future__ import annotations

import copy
import inspect
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from helpers import REPO, SNAKEMAKE, copy_project, run, smoke_params

WORKFLOW_FIXTURES = {"local_run", "dvc_project"}


def pytest_collection_modifyitems(items):
    """Mark as integration every test that runs the workflow: through a fixture that ran it, or by
    calling Snakemake or DVC itself."""
    for item in items:
        function = getattr(item, "function", None)
        source = inspect.getsource(function) if function else ""
        if WORKFLOW_FIXTURES & set(item.fixturenames) or "SNAKEMAKE" in source or '"dvc"' in source:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def small_world(tmp_path_factory) -> tuple[dict, Path]:
    """(synthetic config, raw root) of a small world with every raw source written once."""
    from pipeline_steps.data.synthetic import SOURCES, synthesize

    cfg = smoke_params()["synthetic"]
    root = tmp_path_factory.mktemp("raw")
    for source in SOURCES:
        synthesize(source, cfg, root / source)
    return cfg, root


@pytest.fixture(scope="session")
def local_run(tmp_path_factory) -> Path:
    """A project copy on which `snakemake --cores 2` ran the smoke-size pipeline."""
    project = copy_project(tmp_path_factory.mktemp("local") / "project")
    run(SNAKEMAKE + ["--cores", "2"], cwd=project)
    return project


@pytest.fixture(scope="session")
def cluster():
    if shutil.which("sbatch") is None:
        if os.environ.get("CI"):
            pytest.fail("CI must run the SLURM tests: install slurm (see .ci/run)")
        pytest.skip("SLURM is not installed here (see tests/slurm/start-cluster.sh)")
    proc = subprocess.run(["bash", str(REPO / "tests/slurm/start-cluster.sh")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


@pytest.fixture(scope="session")
def world_files(small_world, tmp_path_factory):
    """Prepared CLIP-TD tasks, a tiny CLIP teacher and a tiny student (built once)."""
    from pipeline_steps.data.prepare import prepare
    from pipeline_steps.models.clip import load_clip, model_config, save_clip
    from pipeline_steps.models.student import build_tiny_student, train_vocabulary
    from pipeline_steps.tasks.examples import load_examples

    _, raw = small_world
    root = tmp_path_factory.mktemp("clip_td")
    for task in ("vqa", "snli_ve", "vcr"):
        prepare(task, raw, root / task, {"shard_size_mb": 1, "texture_threshold": 8.0})
    torch.manual_seed(0)
    clip, _, _ = load_clip("TinyCLIP-64")
    save_clip(clip, model_config("TinyCLIP-64"), root / "clip")
    params = smoke_params()
    texts = [t for task in ("vqa", "snli_ve", "vcr") for e in load_examples(task, root / task) for t in e.texts]
    vocab = train_vocabulary(texts, 300, root / "vocab")
    build_tiny_student(params["models"]["student"]["tiny"], vocab, 0).save(root / "student")
    return params, root


@pytest.fixture
def world(world_files):
    """(smoke params, root of world_files): the params are a fresh copy, tests change them."""
    params, root = world_files
    return copy.deepcopy(params), root
