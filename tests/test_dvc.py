"""DVC runs the Snakemake targets: its stages' outs equal the targets' outputs, and `dvc repro` works."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from helpers import PROJECT_FILES, SNAKEMAKE, clone_run, copy_project, run
from pipeline_steps.io import tree_digest


def stage_outs(project: Path) -> list[tuple[str, str, list[str]]]:
    """(stage, snakemake target, outs) in dvc.yaml order, with ${paths.*} filled from params."""
    dvc = yaml.safe_load((project / "dvc.yaml").read_text())
    paths = yaml.safe_load((project / "params.yaml").read_text())["paths"]
    stages = []
    for name, stage in dvc["stages"].items():
        outs = [next(iter(o)) if isinstance(o, dict) else o for o in stage["outs"] + stage.get("metrics", [])]
        outs = [re.sub(r"\$\{paths\.(\w+)\}", lambda m: paths[m.group(1)], o) for o in outs]
        stages.append((name, stage["cmd"].split()[-1], outs))
    return stages


def snakemake_outputs(project: Path, target: str) -> set[str]:
    proc = run(SNAKEMAKE + [target, "--summary"], cwd=project)
    lines = proc.stdout.strip().splitlines()[1:]
    return {line.split("\t")[0] for line in lines}


def test_dvc_stage_outs_equal_the_outputs_of_their_snakemake_targets(tmp_path):
    project = copy_project(tmp_path / "project")
    earlier: set[str] = set()
    for name, target, outs in stage_outs(project):
        own = snakemake_outputs(project, target) - earlier
        assert own, f"stage {name}: target {target} has no outputs of its own"
        for output in own:
            assert any(output == o or output.startswith(o + "/") for o in outs), \
                f"stage {name}: {output} (from {target}) is not under any DVC out {outs}"
        for o in outs:
            assert any(x == o or x.startswith(o + "/") for x in own), \
                f"stage {name}: DVC out {o} holds no output of {target}"
        earlier |= own


def test_every_rule_belongs_to_the_rules_file_of_one_dvc_stage(tmp_path):
    # dvc_stage forces and allows a stage's rules by reading its rules file: every rule Snakemake
    # knows, in both modes, must be found in exactly one stage's file
    from pipeline_steps import dvc_stage

    project = copy_project(tmp_path / "project")
    stages = yaml.safe_load((project / "dvc.yaml").read_text())["stages"]
    owners: dict[str, list[str]] = {}
    for name, stage in stages.items():
        _, _, _, rules_file, target = stage["cmd"].split()
        assert target == f"{name}_all" and rules_file == f"workflow/rules/{name}.smk", stage["cmd"]
        for rule in dvc_stage.rules_of(project / rules_file):
            owners.setdefault(rule, []).append(name)
    (tmp_path / "paper.yaml").write_text("mode: paper\n")
    for extra in ([], ["--configfile", str(tmp_path / "paper.yaml")]):
        listed = run(SNAKEMAKE + ["--list-rules", *extra], cwd=project).stdout.split()
        for rule in set(listed) - {"all"}:
            assert len(owners.get(rule, [])) == 1, f"rule {rule}: stages {owners.get(rule)}"


def test_a_stage_without_snakemake_records_reruns_its_own_jobs_only(local_run, tmp_path):
    project = clone_run(local_run, tmp_path / "project")
    shutil.rmtree(project / ".snakemake/metadata")  # as in a fresh checkout made by DVC
    before = (project / "results/tables/sds_clip.md").stat().st_mtime
    stage = [sys.executable, "-m", "pipeline_steps.dvc_stage", "workflow/rules/aggregate.smk", "aggregate_all"]
    proc = run(stage, cwd=project)
    assert "no records of aggregate_all's outputs" in proc.stderr
    assert re.findall(r"^(?:local)?rule (\w+):", proc.stdout + proc.stderr, re.M) == ["aggregate", "aggregate_all"]
    assert (project / "results/tables/sds_clip.md").stat().st_mtime > before
    # the other stages stay marked until their own forced run; this one now has records
    unrecorded = json.loads((project / ".snakemake/dvc-unrecorded-stages.json").read_text())
    assert "aggregate_all" not in unrecorded and {"data_all", "evaluate_all"} <= set(unrecorded)
    again = run(stage, cwd=project)
    assert "no records" not in again.stderr and "Nothing to be done" in again.stdout + again.stderr


def git(project: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=project, check=True, capture_output=True)


@pytest.fixture(scope="module")
def dvc_project(tmp_path_factory, local_run) -> Path:
    """A git repository of the project on which `dvc repro` ran.

    It starts from the Snakemake run's data, pretrained models and SDS-CLIP results (DVC stages run
    Snakemake targets, so those stages find nothing to do) and trains one CLIP-TD task and setting,
    every method, through DVC."""
    project = clone_run(local_run, tmp_path_factory.mktemp("dvc") / "project")
    for out in ("models/clip_td", "results/metrics/clip_td", "results/tables", "results/figures",
                "results/metrics.json"):
        path = project / out
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["clip_td"].update(tasks=["vcr"], settings=["full"])
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    git(project, "init", "-q")
    git(project, "add", *PROJECT_FILES)
    git(project, "commit", "-qm", "project")
    proc = run(["dvc", "repro"], cwd=project)
    (project / "repro.log").write_text(proc.stdout)
    return project


def test_dvc_repro_in_a_git_repo_runs_what_is_missing_and_writes_a_lock(dvc_project, local_run):
    project = dvc_project
    log = (project / "repro.log").read_text()
    assert all(f"Running stage '{name}'" in log for name in ("data", "splits", "clip_td", "evaluate", "aggregate"))
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    stages = yaml.safe_load((project / "dvc.yaml").read_text())["stages"]
    assert set(lock["stages"]) == set(stages) >= {"data", "splits", "pretrained", "features", "sds_clip", "clip_td",
                                                  "evaluate", "aggregate"}
    assert {o["path"] for o in lock["stages"]["splits"]["outs"]} == {"data/splits"}
    assert lock["stages"]["splits"]["params"]["params.yaml"]["splits"]["lowshot"]["seeds"] == [0, 1]
    # the CLIP-TD runs trained through DVC equal the Snakemake run's
    clip_td = sorted(p.name for p in (project / "results/metrics/clip_td").iterdir())
    assert clip_td == [f"vcr-full-{m}-s0.json" for m in ("finetune", "naive", "targeted")]
    for name in clip_td:
        assert (project / "results/metrics/clip_td" / name).read_bytes() == \
            (local_run / "results/metrics/clip_td" / name).read_bytes()
    assert (project / "results/tables/clip_td.md").is_file()
    shown = json.loads(run(["dvc", "metrics", "show", "--json"], cwd=project).stdout)
    assert "clip_td" in json.dumps(shown) and "winoground_group" in json.dumps(shown)
    plots = json.loads(run(["dvc", "plots", "show", "--json"], cwd=project).stdout)
    assert {"CLIP-TD low-shot", "Training loss"} <= set(plots["data"])
    status = run(["dvc", "status"], cwd=project)
    assert "Data and pipelines are up to date" in status.stdout
    again = run(["dvc", "repro"], cwd=project)
    assert "didn't change, skipping" in again.stdout and "Running stage" not in again.stdout


def test_dvc_push_and_pull_through_the_default_local_remote(dvc_project):
    project = dvc_project
    git(project, "add", "-A")
    git(project, "commit", "-qm", "results")
    run(["dvc", "push"], cwd=project)
    storage = project.parent / "dvc-storage"  # .dvc/config: the default remote, next to the checkout
    assert storage.is_dir() and any(storage.rglob("*"))
    before = tree_digest(project / "data/prepared")
    shutil.rmtree(project / "data/prepared")
    shutil.rmtree(project / ".dvc/cache")
    run(["dvc", "pull", "data"], cwd=project)
    assert tree_digest(project / "data/prepared") == before
    # the whole cache comes back too: without it, an experiment would find no cached outputs to check
    # out and run every stage again
    run(["dvc", "pull"], cwd=project)
    assert "Data and pipelines are up to date" in run(["dvc", "status"], cwd=project).stdout


def test_dvc_experiment_changes_a_param_and_shows_it_next_to_the_baseline(dvc_project):
    project = dvc_project
    # an SDS-CLIP param: the experiment retrains and evaluates SDS-CLIP, and no CLIP-TD run
    proc = run(["dvc", "exp", "run", "-n", "sds-weighting", "-S", "sds_clip.sds.weighting=sds"], cwd=project)
    assert "Running stage 'sds_clip'" in proc.stdout
    assert "Running stage 'clip_td'" not in proc.stdout and "Running stage 'data'" not in proc.stdout
    rows = json.loads(run(["dvc", "exp", "show", "--json"], cwd=project).stdout)
    text = json.dumps(rows)
    assert "sds-weighting" in text and '"sds"' in text and '"uniform"' in text
    # the headline metrics of the baseline and of the experiment
    assert text.count("winoground_group") >= 2 and text.count("q2ar") >= 2


def test_queued_experiments_run_in_the_background_and_show_up(dvc_project):
    project = dvc_project
    git(project, "add", "-A")
    git(project, "commit", "-qm", "baseline", "--allow-empty")
    proc = run("dvc exp run --queue -n sds-t-min -S sds_clip.sds.t_min=300".split(), cwd=project)
    assert "Queued experiment" in proc.stdout + proc.stderr
    run("dvc queue start".split(), cwd=project)
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        status = run(["dvc", "queue", "status"], cwd=project).stdout
        if not re.search(r"\b(Queued|Running)\b", status):
            break
        time.sleep(5)
    logs = run(["dvc", "queue", "logs", "sds-t-min"], cwd=project, check=False).stdout
    assert re.search(r"sds-t-min\s+.*Success", status), status + logs[-4000:]
    # DVC ran the stage that reads the changed param, not the data stage; in the queue's fresh checkout
    # Snakemake has no records, so the stage reran all of its own jobs and none of another stage's
    assert "Running stage 'sds_clip'" in logs and "Running stage 'data'" not in logs
    assert "Snakemake has no records of sds_clip_all's outputs" in logs
    assert re.search(r"^localrule train_sds_clip:", logs, re.M)
    upstream = re.findall(r"^(?:local)?rule (prepare|splits|pretrain_\w+|cache_\w+|train_clip_td):", logs, re.M)
    assert not upstream, f"the experiment reran other stages' jobs: {upstream}"
    rows = json.loads(run(["dvc", "exp", "show", "--json"], cwd=project).stdout)
    baseline = next(row for row in rows if row.get("name") != "workspace" and row.get("experiments"))
    experiment = next(rev for exp in baseline["experiments"] for rev in exp["revs"] if rev["name"] == "sds-t-min")
    assert experiment["data"]["params"]["params.yaml"]["data"]["sds_clip"]["sds"]["t_min"] == 300
    outs, base_outs = experiment["data"]["outs"], baseline["data"]["outs"]
    assert outs["models/sds_clip"]["hash"] != base_outs["models/sds_clip"]["hash"]  # retrained, not kept
    assert all(outs[o]["hash"] == base_outs[o]["hash"] for o in ("data/prepared", "models/pretrained", "data/features"))
    # both rows have metrics (results/metrics.json is versioned by git, not ignored)
    assert "winoground_group" in json.dumps(experiment["data"]["metrics"])
    assert "winoground_group" in json.dumps(baseline["data"]["metrics"])
    run(["dvc", "queue", "stop"], cwd=project, check=False)  # no worker left behind


def test_a_run_made_with_snakemake_alone_is_recorded_by_dvc_commit(dvc_project):
    project = dvc_project
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["clip_td"]["distill"]["loss"] = "l1"
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(SNAKEMAKE + ["--cores", "2"], cwd=project)
    status = run(["dvc", "status"], cwd=project).stdout
    assert all(f"{stage}:" in status for stage in ("clip_td", "evaluate", "aggregate")) and "splits:" not in status
    run(["dvc", "commit", "--force"], cwd=project)
    assert "Data and pipelines are up to date" in run(["dvc", "status"], cwd=project).stdout
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    assert lock["stages"]["clip_td"]["params"]["params.yaml"]["clip_td"]["distill"]["loss"] == "l1"
