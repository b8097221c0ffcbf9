"""Helpers the tests share: the repository, smoke-size params, project copies, running commands."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline_steps.config import deep_merge

REPO = Path(__file__).resolve().parent.parent
SMOKE_PARAMS = REPO / "tests" / "smoke-params.yaml"
# What a workflow run needs from the repository (data, logs and caches are left behind).
PROJECT_FILES = ("Snakefile", "params.yaml", "dvc.yaml", ".dvcignore", ".gitignore", ".dvc/config", "workflow",
                 "profiles", "slurm", "presets", "pipeline_steps", "tests/smoke-params.yaml", "pyproject.toml")
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def smoke_params() -> dict:
    base = yaml.safe_load((REPO / "params.yaml").read_text())
    return deep_merge(base, yaml.safe_load(SMOKE_PARAMS.read_text()))


def copy_project(dest: Path, smoke: bool = True) -> Path:
    """A copy of the project in ``dest`` with params.yaml set to the smoke-size world."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in PROJECT_FILES:
        src = REPO / name
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():  # ./slurm -> profiles/slurm: a link in the copy too
            os.symlink(os.readlink(src), target)
        elif src.is_dir():
            shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, target)
    if smoke:
        (dest / "params.yaml").write_text(yaml.safe_dump(smoke_params(), sort_keys=False))
    return dest


def run(cmd: list[str], cwd: Path, timeout: float = 900, check: bool = True,
        env: dict | None = None) -> subprocess.CompletedProcess:
    """Run a command, failing the test with its output when it exits non-zero."""
    full_env = {**os.environ, **(env or {})}
    # the copy's own package must win over any other checkout on sys.path
    full_env["PYTHONPATH"] = str(cwd)
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=full_env)
    if check and proc.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} exited {proc.returncode}\n--- stdout\n{proc.stdout[-6000:]}"
                    f"\n--- stderr\n{proc.stderr[-6000:]}")
    return proc


def clone_run(project: Path, dest: Path) -> Path:
    """A copy of a finished project (outputs and Snakemake's records of them; no checkpoints)."""
    shutil.copytree(project, dest, symlinks=True, ignore=shutil.ignore_patterns(".work", "__pycache__"))
    return dest


def scontrol_job(job_id: str) -> dict[str, str]:
    out = subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True, check=True).stdout
    return dict(re.findall(r"(\w+)=(\S+)", out))
