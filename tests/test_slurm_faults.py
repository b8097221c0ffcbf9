"""A training job on the local SLURM cluster sent SIGTERM (preemption notice), SIGKILL (node
failure) and cancelled with scancel: Snakemake sees each attempt fail, retries it, the retry resumes
from the last checkpoint, and the final model equals an uninterrupted run's bit for bit."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from safetensors.torch import load_file

from helpers import SNAKEMAKE, clone_run, scontrol_job

pytestmark = pytest.mark.slurm
RUN = "snli_ve-full-targeted-s0"


STEPS = 400


def long_training(project: Path) -> None:
    """Long enough (tens of seconds) to be caught mid-run three times, checkpointing every second or so."""
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["clip_td"]["train"].update(steps=STEPS, batch_size=16, checkpoint_every=20, log_every=20)
    params["clip_td"]["gpus"] = 1
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def running_training_job() -> str | None:
    out = subprocess.run(["squeue", "-h", "-o", "%i|%T|%k"], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        job, state, comment = line.split("|", 2)
        if state == "RUNNING" and comment.startswith("rule_train_clip_td"):
            return job
    return None


def job_is_active(job: str) -> bool:
    """Running or completing: after scancel a job leaves RUNNING at once, while its process may
    still be writing the checkpoint its SIGTERM asked for."""
    out = subprocess.run(["squeue", "-h", "-j", job, "-o", "%T"], capture_output=True, text=True).stdout
    return out.strip() in ("RUNNING", "COMPLETING", "CONFIGURING", "SUSPENDED")


def checkpoint_steps(work: Path) -> list[int]:
    return sorted(int(p.parent.name.split("-")[1]) for p in work.glob("checkpoints/step-*/state.json"))


def test_signalled_killed_and_cancelled_jobs_are_retried_and_resume_exactly(cluster, local_run, tmp_path):
    reference, project = clone_run(local_run, tmp_path / "reference"), clone_run(local_run, tmp_path / "slurm")
    for p in (reference, project):
        long_training(p)
    target = f"models/clip_td/{RUN}"
    # the uninterrupted reference trains beside the cluster run: most of the cluster run is waiting
    uninterrupted = subprocess.Popen(SNAKEMAKE + ["--cores", "1", target], cwd=reference,
                                     env={**os.environ, "PYTHONPATH": str(reference)}, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
    (project / "profiles/slurm/site.yaml").write_text("account: research\npartition: main\n")
    proc = subprocess.Popen(SNAKEMAKE + ["--profile", "slurm", "--retries", "3", target], cwd=project,
                            env={**os.environ, "PYTHONPATH": str(project)}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    work = project / "models/.work/clip_td" / RUN
    faults = {"SIGTERM": ["--full", "--signal=TERM"], "SIGKILL": ["--full", "--signal=KILL"], "scancel": []}
    killed: dict[str, tuple[str, int]] = {}
    last = 0
    try:
        for fault, how in faults.items():
            deadline = time.monotonic() + 600
            job = None
            while time.monotonic() < deadline:  # a running attempt that got past the last checkpoint
                job = running_training_job()
                if job and job not in {j for j, _ in killed.values()} and checkpoint_steps(work)[-1:] > [last]:
                    break
                time.sleep(0.2)
            else:
                pytest.fail(f"no attempt reached a new checkpoint before {fault}")
            subprocess.run(["scancel", *how, job], check=True)
            while job_is_active(job):
                time.sleep(0.2)
            last = checkpoint_steps(work)[-1]
            killed[fault] = (job, last)
        output = proc.communicate(timeout=900)[0]
        reference_output = uninterrupted.communicate(timeout=900)[0]
    finally:
        proc.kill()
        uninterrupted.kill()
    assert uninterrupted.returncode == 0, reference_output[-5000:]
    assert proc.returncode == 0, output[-5000:]
    # every interruption is seen as a failure and retried; none finished the run
    assert output.count("Trying to restart job") == 3, output[-5000:]
    assert [step for _, step in killed.values()] == sorted({step for _, step in killed.values()})
    assert all(step < STEPS for _, step in killed.values())
    states = {fault: scontrol_job(job)["JobState"] for fault, (job, _) in killed.items()}
    assert states["scancel"] == "CANCELLED" and states["SIGTERM"] in ("FAILED", "CANCELLED"), states
    # the final attempt resumed from the checkpoint the last interruption left
    log = (project / f"logs/clip_td/{RUN}.log").read_text()
    assert f"resumed from models/.work/clip_td/{RUN}/checkpoints/step-{killed['scancel'][1]}" in log
    a = load_file(reference / target / "student/model.safetensors")
    b = load_file(project / target / "student/model.safetensors")
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    head = "head.safetensors"
    assert (reference / target / head).read_bytes() == (project / target / head).read_bytes()
