"""The same pipeline through `snakemake --profile profiles/slurm` on the local SLURM cluster."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from conftest import REPO, SNAKEMAKE, copy_project, run
from pipeline_steps.io import tree_digest

pytestmark = pytest.mark.slurm


@pytest.fixture(scope="module")
def cluster():
    if shutil.which("sbatch") is None:
        if os.environ.get("CI"):
            pytest.fail("CI must run the SLURM tests: install slurm (see .ci/run)")
        pytest.skip("SLURM is not installed here (see tests/slurm/start-cluster.sh)")
    proc = subprocess.run(["bash", str(REPO / "tests/slurm/start-cluster.sh")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def scontrol_job(job_id: str) -> dict[str, str]:
    out = subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True, check=True).stdout
    return dict(re.findall(r"(\w+)=(\S+)", out))


def test_profile_runs_every_job_through_slurm(cluster, tmp_path, local_run):
    project = copy_project(tmp_path / "project")
    # training-side jobs ask for one (fake) GPU, as on a real cluster; one CLIP-TD task and setting
    # (every method) keeps the run short
    gpus = tmp_path / "gpus.yaml"
    gpus.write_text("sds_clip: {gpus: 1}\nclip_td: {gpus: 1, tasks: [snli_ve], settings: [lowshot]}\n")
    run(SNAKEMAKE + ["--profile", "profiles/slurm", "--configfile", str(gpus)], cwd=project, timeout=1800)
    for out in ("data/prepared", "data/splits", "results/metrics/sds_clip"):
        assert tree_digest(project / out) == tree_digest(local_run / out), out
    clip_td = sorted((project / "results/metrics/clip_td").iterdir())
    assert [p.name for p in clip_td] == [f"snli_ve-lowshot-50-{m}-s0.json" for m in ("finetune", "naive", "targeted")]
    for metrics in clip_td:
        assert metrics.read_bytes() == (local_run / "results/metrics/clip_td" / metrics.name).read_bytes()
    # one SLURM log per job, named by its SLURM job id; the controller knows each job
    logs = sorted((project / "logs/slurm").glob("rule_*/**/*.log"))
    # every job of the DAG but the local ones (downloads, fetches and aggregation run where Snakemake runs)
    local = [project / "benchmarks/aggregate.tsv"]
    assert all(p.is_file() for p in local)
    assert len(logs) == len(list((project / "benchmarks").rglob("*.tsv"))) - len(local)
    assert (project / "results/tables/clip_td.md").is_file()
    # each job asked SLURM for its rule's resources (profile set-resources overrides the rule)
    expected = {"rule_synthesize": ("2000M", "00:30:00"), "rule_prepare": ("4000M", "02:00:00"),
                "rule_splits": ("2000M", "00:30:00"), "rule_splits_summary": ("1000M", "00:10:00"),
                "rule_pretrain_clip": ("4000M", "02:00:00"), "rule_pretrain_diffusion": ("4000M", "02:00:00"),
                "rule_cache_text_states": ("4000M", "01:00:00"), "rule_train_sds_clip": ("8000M", "12:00:00"),
                "rule_evaluate_clip": ("4000M", "02:00:00"), "rule_teacher_score": ("4000M", "02:00:00"),
                "rule_pretrain_student": ("4000M", "02:00:00"), "rule_cache_clip_features": ("8000M", "02:00:00"),
                "rule_train_clip_td": ("8000M", "12:00:00"), "rule_evaluate_clip_td": ("4000M", "01:00:00")}
    with_gpu = {"rule_cache_text_states", "rule_train_sds_clip", "rule_teacher_score", "rule_cache_clip_features",
                "rule_train_clip_td", "rule_evaluate_clip", "rule_evaluate_clip_td"}
    assert {p.relative_to(project / "logs/slurm").parts[0] for p in logs} == set(expected)
    for log in logs:
        job = scontrol_job(log.stem)
        rule = log.relative_to(project / "logs/slurm").parts[0]
        assert job["JobState"] == "COMPLETED", (log, job)
        assert job["Partition"] == "main" and job["WorkDir"] == str(project)
        assert (job["MinMemoryNode"], job["TimeLimit"]) == expected[rule], (log, job)
        assert ("gpu:1" in job.get("TresPerJob", "")) == (rule in with_gpu), (log, job)
        if rule in ("rule_train_sds_clip", "rule_train_clip_td"):
            assert job["NumCPUs"] == "2"
