"""Faults a shared cluster produces, with real processes and signals: a diverging loss, damaged and
malicious checkpoints, the workflow process killed mid-DAG, and (tests/test_slurm_faults.py) jobs
signalled and cancelled through SLURM."""

from __future__ import annotations

import json
import logging
import os
import pickle
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
import torch
import yaml

from helpers import SNAKEMAKE, clone_run
from pipeline_steps.train.loop import LoopConfig, Trainer


def toy_trainer(out: Path, steps: int = 10, nan_at: int | None = None) -> tuple[Trainer, torch.nn.Parameter]:
    """The project's training loop on a one-parameter regression (everything but the model is real)."""
    weight = torch.nn.Parameter(torch.zeros(3))
    target = torch.tensor([1.0, -2.0, 0.5])

    def loss_fn(step, indices, generator):
        loss = ((weight - target) ** 2).sum() + 0 * torch.randn(1, generator=generator).sum()
        if step == nan_at:
            loss = loss * float("nan")
        return loss, {"loss": loss.item()}

    cfg = LoopConfig(steps=steps, batch_size=4, lr=0.1, checkpoint_every=5, keep_checkpoints=2, log_every=5)
    return Trainer(out, cfg, {"w": weight}, 16, loss_fn, torch.device("cpu")), weight


def test_a_diverging_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    trainer, _ = toy_trainer(tmp_path, steps=10, nan_at=7)
    with pytest.raises(FloatingPointError, match=r"non-finite loss nan at step 7 .*last good checkpoint is kept in"):
        trainer.run()
    assert [p.name for p in trainer.checkpoints()] == ["step-5"]
    fresh, weight = toy_trainer(tmp_path, steps=10)
    assert fresh.load_latest() == 5 and torch.isfinite(weight).all()


def test_a_truncated_checkpoint_falls_back_to_the_previous_one(tmp_path, caplog):
    trainer, _ = toy_trainer(tmp_path, steps=10)
    trainer.run()
    assert [p.name for p in trainer.checkpoints()] == ["step-5", "step-10"]
    newest = tmp_path / "checkpoints/step-10/trainable.safetensors"
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])  # the node died mid-write
    caplog.set_level(logging.WARNING, logger="pipeline_steps.train.loop")
    resumed, weight = toy_trainer(tmp_path, steps=10)
    assert resumed.load_latest() == 5
    assert f"checkpoint {newest.parent} is unreadable" in caplog.text
    # resuming from step 5 ends where the uninterrupted run ended
    straight, straight_weight = toy_trainer(tmp_path / "straight", steps=10)
    straight.run()
    resumed.run()
    assert torch.equal(weight, straight_weight)


class RunsCode:
    """A pickle that runs a command when unpickled: what a malicious checkpoint would carry."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_checkpoints_never_execute_code_they_carry(tmp_path, caplog):
    trainer, _ = toy_trainer(tmp_path, steps=10)
    trainer.run()
    marker = tmp_path / "code-ran"
    with open(tmp_path / "checkpoints/step-10/optimizer.pt", "wb") as f:
        pickle.dump({"state": RunsCode(marker), "param_groups": []}, f)
    caplog.set_level(logging.WARNING, logger="pipeline_steps.train.loop")
    resumed, _ = toy_trainer(tmp_path, steps=10)
    assert resumed.load_latest() == 5  # refused as unreadable (weights_only), the older one is used
    assert not marker.exists() and "step-10 is unreadable" in caplog.text



def test_training_jobs_never_write_into_the_dvc_repository(tmp_path, monkeypatch):
    # jobs run side by side inside the project: dvclive's own signal files under .dvc/tmp raced when
    # two runs ended together (one deleted the file the other was deleting)
    project = tmp_path / "project"
    (project / ".dvc").mkdir(parents=True)
    (project / ".dvc/config").write_text("[core]\n    no_scm = true\n")
    monkeypatch.chdir(project)
    trainer, _ = toy_trainer(project / "models/.work/run", steps=10)
    trainer.run()
    assert sorted(p.name for p in (project / ".dvc").iterdir()) == ["config"]
    metrics = json.loads((project / "models/.work/run/dvclive/metrics.json").read_text())
    assert metrics["step"] == 10 and "loss" in metrics["train"]

# --- the workflow process killed mid-DAG ----------------------------------------------------------------


def outputs_of(project: Path, pattern: str) -> dict[str, float]:
    return {str(p.relative_to(project)): p.stat().st_mtime for p in project.glob(pattern)}


def finished_runs(log: str) -> set[str]:
    """The CLIP-TD runs Snakemake's own log reports as finished."""
    block = r"^(?:local)?rule train_clip_td:\n(?:.*\n)*?\s+output: (\S+)\n(?:.*\n)*?\s+jobid: (\d+)"
    outputs = dict(re.findall(block, log, re.M))
    by_id = {jobid: output for output, jobid in outputs.items()}
    return {by_id[j] for j in re.findall(r"Finished jobid: (\d+) \(Rule: train_clip_td\)", log) if j in by_id}


def test_killed_workflow_resumes_with_rerun_incomplete_without_redoing_finished_jobs(local_run, tmp_path):
    project = clone_run(local_run, tmp_path / "project")
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["clip_td"]["tasks"] = ["snli_ve"]
    params["clip_td"]["distill"]["loss"] = "l1"  # re-runs the distilling SNLI-VE runs and their evaluations
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    runs = "models/clip_td/snli_ve-*-[nt]*-s0"
    before = outputs_of(project, runs)
    assert len(before) == 6
    env = {**os.environ, "PYTHONPATH": str(project)}
    # the login session dies once Snakemake has reported two training jobs finished: Snakemake and the
    # jobs it started are killed together
    proc = subprocess.Popen(SNAKEMAKE + ["--cores", "2"], cwd=project, env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log: list[str] = []
    reader = threading.Thread(target=lambda: log.extend(proc.stdout), daemon=True)
    reader.start()
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and len(finished_runs("".join(log))) < 2:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    reader.join(timeout=10)
    finished = {run: outputs_of(project, run)[run] for run in finished_runs("".join(log))}
    assert 2 <= len(finished) < 6, finished
    # the dead run may have left its lock (Snakemake then asks for --unlock; harmless when there is none)
    subprocess.run(SNAKEMAKE + ["--unlock"], cwd=project, env=env, check=True, capture_output=True)
    rerun = subprocess.run(SNAKEMAKE + ["--cores", "2", "--rerun-incomplete"], cwd=project, env=env,
                           capture_output=True, text=True, timeout=900)
    assert rerun.returncode == 0, rerun.stderr[-4000:]
    after = outputs_of(project, runs)
    assert all(after[k] == v for k, v in finished.items())  # finished before the kill: not redone
    assert all(after[k] != before[k] for k in after)  # every run was brought up to date
    started = set(re.findall(r"output: (models/clip_td/\S+)", rerun.stdout + rerun.stderr))
    assert started and started.isdisjoint(finished)
    for run in after:  # every evaluation follows its (new) run
        report = json.loads((project / "results/metrics/clip_td" / f"{Path(run).name}.json").read_text())
        assert report["examples"] > 0
    assert "Nothing to be done" in subprocess.run(SNAKEMAKE + ["--cores", "2", "-n"], cwd=project, env=env,
                                                  capture_output=True, text=True).stdout
