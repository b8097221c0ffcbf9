"""Cluster settings: the site's SLURM account/partition and multi-GPU training launches."""

from __future__ import annotations

import re

import pytest

from helpers import SNAKEMAKE, copy_project, run
from pipeline_steps.cluster import SiteError, slurm_site


def test_site_settings_come_from_sbatch_variables_then_the_site_file(tmp_path):
    site = tmp_path / "site.yaml"
    assert slurm_site({}, site) == {}  # neither: SLURM's own defaults apply
    site.write_text("account: proj-a\npartition: gpu\n")
    assert slurm_site({}, site) == {"slurm_account": "proj-a", "slurm_partition": "gpu"}
    assert slurm_site({"SBATCH_ACCOUNT": "proj-b"}, site) == {"slurm_account": "proj-b", "slurm_partition": "gpu"}
    site.write_text("acount: proj-a\n")
    with pytest.raises(SiteError, match=rf"{re.escape(str(site))}: unknown key 'acount'"):
        slurm_site({}, site)
    site.write_text("partition: 3\n")
    with pytest.raises(SiteError, match="partition must be a non-empty string"):
        slurm_site({}, site)


def test_jobs_get_the_site_and_multi_gpu_training_starts_torchrun(tmp_path):
    project = copy_project(tmp_path / "paper", smoke=False)
    (project / "profiles/slurm/site.yaml").write_text("account: proj-a\npartition: gpu-long\n")
    gpus = tmp_path / "gpus.yaml"
    gpus.write_text("sds_clip: {gpus: 4}\nclip_td: {gpus: 2}\n")
    proc = run(SNAKEMAKE + ["-n", "-p", "--configfile", "presets/paper.yaml", str(gpus)], cwd=project,
               env={"SBATCH_ACCOUNT": "proj-b"})
    jobs = re.findall(r"^(?:local)?rule (\w+):\n(.*?)(?=^\[|\Z)", proc.stdout, re.M | re.S)
    assert len(jobs) > 400
    for rule, body in jobs:
        resources = dict(re.findall(r"(\w+)=([^,\s]+)", re.search(r"resources: (.*)", body).group(1))) \
            if "resources:" in body else {}
        command = body.split("Shell command: ")[-1] if "Shell command: " in body else ""
        if rule in ("acquire", "fetch_clip", "fetch_diffusion", "fetch_student", "aggregate", "all"):
            assert "slurm_account" not in resources, rule  # local rules run where Snakemake runs
            continue
        # the environment's account wins over the site file's; the partition comes from the file
        assert (resources["slurm_account"], resources["slurm_partition"]) == ("proj-b", "gpu-long"), rule
        if rule in ("train_sds_clip", "train_clip_td"):
            n = 4 if rule == "train_sds_clip" else 2
            assert resources["gpu"] == str(n) and resources["cpus_per_task"] == str(2 * n)
            assert command.startswith(f"torchrun --standalone --nnodes 1 --nproc-per-node {n} -m pipeline_steps ")
        else:  # evaluation and features run one process on at most one GPU
            assert resources.get("gpu", "0") in ("0", "1") and command.startswith("python -m pipeline_steps "), rule
