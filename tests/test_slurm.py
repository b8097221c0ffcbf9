"""The same pipeline through `snakemake --profile slurm` on the local SLURM cluster."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from helpers import SNAKEMAKE, clone_run, run, scontrol_job
from pipeline_steps.io import tree_digest

pytestmark = pytest.mark.slurm


def test_profile_runs_every_job_through_slurm(cluster, tmp_path, local_run):
    # the smoke run's raw data and all but one prepared dataset are kept: one prepare job stands for
    # the data stage, every later job runs again through SLURM
    project = clone_run(local_run, tmp_path / "project")
    for out in ("data/prepared/vqa", "data/splits", "data/features", "models", "results", "logs", "benchmarks"):
        shutil.rmtree(project / out)
    # training-side jobs ask for one (fake) GPU, as on a real cluster; one CLIP-TD task and setting
    # (every method) keeps the run short
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["sds_clip"]["gpus"] = 1
    params["clip_td"].update(gpus=1, tasks=["snli_ve"], settings=["lowshot"])
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    # the site's account from the site file (only the workflow reads it), its partition from SLURM's
    # own variable
    (project / "profiles/slurm/site.yaml").write_text("account: research\n")
    site = {"SBATCH_PARTITION": "main"}
    run(SNAKEMAKE + ["--profile", "slurm"], cwd=project, timeout=1800, env=site)
    for out in ("data/prepared", "data/splits", "results/metrics/sds_clip"):
        assert tree_digest(project / out) == tree_digest(local_run / out), out
    clip_td = sorted((project / "results/metrics/clip_td").iterdir())
    assert [p.name for p in clip_td] == [f"snli_ve-lowshot-50-{m}-s0.json" for m in ("finetune", "naive", "targeted")]
    for metrics in clip_td:
        assert metrics.read_bytes() == (local_run / "results/metrics/clip_td" / metrics.name).read_bytes()
    # one SLURM log per job, named by its SLURM job id; the controller knows each job
    logs = sorted((project / "logs/slurm").glob("rule_*/**/*.log"))
    # every job of the DAG but the local ones (synthesis, downloads, fetches and aggregation run where
    # Snakemake runs); prepare ran for the one dataset removed
    local = [project / "benchmarks/aggregate.tsv"]
    assert [p.name for p in (project / "benchmarks/prepare").iterdir()] == ["vqa.tsv"]
    assert all(p.is_file() for p in local)
    assert len(logs) == len(list((project / "benchmarks").rglob("*.tsv"))) - len(local)
    assert (project / "results/tables/clip_td.md").is_file()
    # each job asked SLURM for its rule's resources (the workflow profile's set-resources overrides the rule)
    expected = {"rule_prepare": ("4000M", "02:00:00"),
                "rule_splits": ("2000M", "00:30:00"), "rule_splits_summary": ("1000M", "00:10:00"),
                "rule_pretrain_clip": ("4000M", "02:00:00"), "rule_pretrain_diffusion": ("4000M", "02:00:00"),
                "rule_cache_text_states": ("4000M", "01:00:00"), "rule_train_sds_clip": ("8000M", "12:00:00"),
                "rule_evaluate_clip": ("4000M", "02:00:00"), "rule_teacher_score": ("4000M", "02:00:00"),
                "rule_pretrain_student": ("4000M", "02:00:00"), "rule_cache_clip_features": ("8000M", "02:00:00"),
                "rule_train_clip_td": ("8000M", "12:00:00"), "rule_evaluate_clip_td": ("4000M", "01:00:00")}
    with_gpu = {"rule_cache_text_states", "rule_train_sds_clip", "rule_teacher_score", "rule_cache_clip_features",
                "rule_train_clip_td", "rule_evaluate_clip"}
    assert {p.relative_to(project / "logs/slurm").parts[0] for p in logs} == set(expected)
    for log in logs:
        job = scontrol_job(log.stem)
        rule = log.relative_to(project / "logs/slurm").parts[0]
        assert job["JobState"] == "COMPLETED", (log, job)
        assert (job["Partition"], job["Account"], job["WorkDir"]) == ("main", "research", str(project))
        assert (job["MinMemoryNode"], job["TimeLimit"]) == expected[rule], (log, job)
        assert ("gpu:1" in job.get("TresPerJob", "")) == (rule in with_gpu), (log, job)
        if rule in ("rule_train_sds_clip", "rule_train_clip_td"):
            assert job["NumCPUs"] == "2"
    # DVC's stages through the same profile: everything is up to date, so no job is submitted
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    proc = run(["dvc", "repro"], cwd=project, env={**site, "PIPELINE_SNAKEMAKE_ARGS": "--profile slurm"})
    output = proc.stdout + proc.stderr
    stages = yaml.safe_load((project / "dvc.yaml").read_text())["stages"]
    assert output.count("Using profiles slurm and workflow specific profile profiles/default") == len(stages)
    assert "has been submitted with SLURM jobid" not in output
    assert len(list((project / "logs/slurm").glob("rule_*/**/*.log"))) == len(logs)
