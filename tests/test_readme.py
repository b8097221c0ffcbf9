"""Every command the README shows is exercised by a test: the cheap ones here, as written; the
others by the tests named in EXERCISED_ELSEWHERE, whose source must pass the command's arguments."""

from __future__ import annotations

import ast
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import REPO, SNAKEMAKE, copy_project, run
from pipeline_steps.cluster import slurm_site

README = REPO / "README.md"
COMMAND_WORDS = ("snakemake", "dvc", "python", "pytest", "pip", "sudo", "bash", "export", "cp", "echo")

# Commands run by the tests of this file, exactly as the README writes them (/tmp paths aside).
RUN_HERE = {
    "echo 'splits: {lowshot: {fractions: [0.1, 0.2, 1.5]}}' > bad.yaml",
    "snakemake -n --configfile bad.yaml",
    "python -m pipeline_steps --help",
    "python -m pipeline_steps synthesize --params params.yaml --source vqa --out /tmp/raw/vqa",
    "python -m pipeline_steps prepare --params params.yaml --dataset vqa --raw data/raw --out /tmp/vqa",
    "python -m pipeline_steps splits --params params.yaml --dataset vqa --prepared /tmp/vqa --out /tmp/splits",
    "python -m pipeline_steps build-mirror --params params.yaml --raw data/raw --out /tmp/mirror",
    "snakemake --cores 2 --configfile tests/smoke-params.yaml",
    "cp profiles/slurm/site.example.yaml profiles/slurm/site.yaml",
    "snakemake --rulegraph > docs/rulegraph.dot && dot -Tpng docs/rulegraph.dot -o docs/rulegraph.png",
    "pip install dvc-s3",
    "dvc remote add -d s3 s3://<bucket>/<prefix>",
}

# Commands that need the whole pipeline, the SLURM cluster or DVC's repository: where they run.
EXERCISED_ELSEWHERE = {
    "pip install -e '.[test]'": [".ci/run"],
    "pytest -q": [".ci/run"],
    "sudo bash tests/slurm/start-cluster.sh": ["tests/conftest.py::cluster"],
    "snakemake --cores 2": ["tests/conftest.py::local_run"],
    "snakemake -n --configfile presets/paper.yaml": [
        "tests/test_workflow.py::test_the_paper_preset_dry_runs_the_full_grids_with_gpus"],
    "snakemake --profile slurm": ["tests/test_slurm.py::test_profile_runs_every_job_through_slurm"],
    "snakemake --cores 2 --configfile presets/paper.yaml rehearsal.yaml": ["tests/test_paper_rehearsal.py::rehearse"],
    # the paper grid through the profile: submitted on the local cluster (smoke size) and dry-run in full
    "snakemake --profile slurm --configfile presets/paper.yaml": [
        "tests/test_slurm.py::test_profile_runs_every_job_through_slurm",
        "tests/test_cluster.py::test_jobs_get_the_site_and_multi_gpu_training_starts_torchrun"],
    "export SBATCH_ACCOUNT=my-project SBATCH_PARTITION=gpu": [
        "tests/test_cluster.py::test_site_settings_come_from_sbatch_variables_then_the_site_file",
        "tests/test_slurm.py::test_profile_runs_every_job_through_slurm"],
    "export HF_TOKEN=...": ["tests/test_acquire.py::test_gated_source_without_or_with_a_wrong_token"],
    "snakemake --report results/report.html": [
        "tests/test_workflow.py::test_results_hold_the_papers_tables_figures_and_a_report"],
    "snakemake --cores all $PIPELINE_SNAKEMAKE_ARGS <target>": ["dvc.yaml"],
    "python -m pipeline_steps.dvc_stage <rules-file> <target>": ["dvc.yaml"],
    "dvc repro": ["tests/test_dvc.py::dvc_project"],
    'PIPELINE_SNAKEMAKE_ARGS="--profile slurm" dvc repro': [
        "tests/test_slurm.py::test_profile_runs_every_job_through_slurm"],
    "dvc metrics show": ["tests/test_dvc.py::test_dvc_repro_in_a_git_repo_runs_what_is_missing_and_writes_a_lock"],
    "dvc plots show": ["tests/test_dvc.py::test_dvc_repro_in_a_git_repo_runs_what_is_missing_and_writes_a_lock"],
    "dvc exp run -n sds-weighting -S sds_clip.sds.weighting=sds": [
        "tests/test_dvc.py::test_dvc_experiment_changes_a_param_and_shows_it_next_to_the_baseline"],
    "dvc exp show": ["tests/test_dvc.py::test_dvc_experiment_changes_a_param_and_shows_it_next_to_the_baseline"],
    "dvc exp run --queue -n sds-t-min -S sds_clip.sds.t_min=300": [
        "tests/test_dvc.py::test_queued_experiments_run_in_the_background_and_show_up"],
    "dvc queue start": ["tests/test_dvc.py::test_queued_experiments_run_in_the_background_and_show_up"],
    "dvc push": ["tests/test_dvc.py::test_dvc_push_and_pull_through_the_default_local_remote"],
    "dvc pull": ["tests/test_dvc.py::test_dvc_push_and_pull_through_the_default_local_remote"],
    "dvc commit": ["tests/test_dvc.py::test_a_run_made_with_snakemake_alone_is_recorded_by_dvc_commit"],
    'pytest -m "not integration and not slurm"': ["tests/test_readme.py::test_the_fast_loop_leaves_out_every_workflow_run"],
    "snakemake --rerun-incomplete": [
        "tests/test_faults.py::test_killed_workflow_resumes_with_rerun_incomplete_without_redoing_finished_jobs"],
    "snakemake --unlock": [
        "tests/test_faults.py::test_killed_workflow_resumes_with_rerun_incomplete_without_redoing_finished_jobs"],
}


def readme_commands() -> set[str]:
    """Lines of ```bash blocks (comments dropped), `$ ` lines of other blocks, and inline code
    that starts with a command."""
    text = README.read_text()
    commands = set()
    for lang, body in re.findall(r"```(\w*)\n(.*?)```", text, re.S):
        for line in body.splitlines():
            if lang == "bash":
                command = "" if line.lstrip().startswith("#") else re.split(r"\s+#", line)[0].strip()
            else:
                command = line[2:].strip() if line.startswith("$ ") else ""
            commands.update(c.strip() for c in command.split(" / ") if c.strip())
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    for span in re.findall(r"`([^`\n]+)`", prose):
        if span.split()[0] in COMMAND_WORDS and len(span.split()) > 1:
            commands.update(c.strip() for c in span.split(" / "))
    return commands


def test_every_readme_command_is_exercised():
    commands = readme_commands()
    assert len(commands) >= 30
    missing = commands - RUN_HERE - set(EXERCISED_ELSEWHERE)
    assert not missing, f"README commands no test exercises: {sorted(missing)}"
    stale = (RUN_HERE | set(EXERCISED_ELSEWHERE)) - commands
    assert not stale, f"commands no longer in the README: {sorted(stale)}"


def source_of(reference: str) -> str:
    """The text of a file, or of one function (test or fixture) in a Python file."""
    path, _, name = reference.partition("::")
    text = (REPO / path).read_text()
    if not name:
        return text
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return ast.get_source_segment(text, node)
    raise AssertionError(f"{reference}: no such function")


def arguments(command: str) -> list[str]:
    """What a test must pass to run the command: each word (program names become the test's own,
    an environment assignment its variable name; placeholders and `sudo` dropped)."""
    words = []
    for word in shlex.split(command):
        if word in ("sudo", "export") or word.startswith("<") or word == "...":
            continue
        if "=" in word and word.split("=")[0].isupper():  # VAR=value: the variable is what counts
            words.append(word.split("=")[0])
            if word.split("=", 1)[1] not in ("...", "my-project", "gpu"):
                words.append(word.split("=", 1)[1])
            continue
        words.append({"snakemake": "SNAKEMAKE", "pytest": "pytest", "pip": "pip"}.get(word, word))
    return words


@pytest.mark.parametrize("command", sorted(EXERCISED_ELSEWHERE))
def test_commands_run_elsewhere_pass_their_arguments(command):
    sources = "\n".join(source_of(ref) for ref in EXERCISED_ELSEWHERE[command])
    absent = [word for word in arguments(command) if word not in sources]
    assert not absent, f"{command!r}: {EXERCISED_ELSEWHERE[command]} never pass {absent}"


def shell(command: str, cwd: Path, tmp: Path) -> subprocess.CompletedProcess:
    """Run a README command in bash as written, its /tmp paths moved under the test's folder."""
    assert command in RUN_HERE
    command = command.replace(" /tmp/", f" {tmp}/")
    # the copy's own package, and the programs of this Python environment
    env = {**os.environ, "PYTHONPATH": str(cwd), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    return subprocess.run(["bash", "-c", command], cwd=cwd, capture_output=True, text=True, timeout=900, env=env)


def test_the_bad_params_example_prints_what_the_readme_says(tmp_path):
    project = copy_project(tmp_path / "project", smoke=False)
    block = re.search(r"```\n\$ echo .*?```", README.read_text(), re.S).group(0)
    expected = next(line for line in block.splitlines() if line.startswith("... ")).removeprefix("... ")
    assert shell("echo 'splits: {lowshot: {fractions: [0.1, 0.2, 1.5]}}' > bad.yaml", project, tmp_path).returncode == 0
    proc = shell("snakemake -n --configfile bad.yaml", project, tmp_path)
    assert proc.returncode != 0 and expected in proc.stdout + proc.stderr


def test_steps_by_hand_and_the_mirror_as_the_readme_runs_them(local_run, tmp_path):
    proc = shell("python -m pipeline_steps --help", local_run, tmp_path)
    assert proc.returncode == 0 and "build-mirror" in proc.stdout
    for command in ("python -m pipeline_steps synthesize --params params.yaml --source vqa --out /tmp/raw/vqa",
                    "python -m pipeline_steps prepare --params params.yaml --dataset vqa --raw data/raw --out /tmp/vqa",
                    "python -m pipeline_steps splits --params params.yaml --dataset vqa --prepared /tmp/vqa "
                    "--out /tmp/splits",
                    "python -m pipeline_steps build-mirror --params params.yaml --raw data/raw --out /tmp/mirror"):
        proc = shell(command, local_run, tmp_path)
        assert proc.returncode == 0, command + "\n" + proc.stderr[-3000:]
    # the same params give the same files as the pipeline's own jobs
    assert (tmp_path / "raw/vqa").is_dir()
    assert (tmp_path / "vqa/records.jsonl").read_bytes() == (local_run / "data/prepared/vqa/records.jsonl").read_bytes()
    pipeline_splits = sorted((local_run / "data/splits/vqa").glob("*.json"))
    assert [p.name for p in pipeline_splits] == sorted(p.name for p in (tmp_path / "splits").iterdir())
    assert all((tmp_path / "splits" / p.name).read_bytes() == p.read_bytes() for p in pipeline_splits)
    assert (tmp_path / "mirror/checksums.json").is_file() and any((tmp_path / "mirror").rglob("*.zip"))


def test_the_smoke_command_is_the_world_the_tests_ran(local_run, tmp_path):
    # the tests' run wrote the smoke params into params.yaml; the README's command merges them over
    # the default params instead: the same configuration, so nothing is left to do
    project = local_run
    default = tmp_path / "default-params.yaml"
    shutil.copy(REPO / "params.yaml", default)
    command = "snakemake --cores 2 --configfile tests/smoke-params.yaml"
    # the default params first, in the same flag (a second --configfile flag would replace the first)
    words = command.split()[1:]
    flag = words.index("--configfile")
    proc = run(SNAKEMAKE + words[:flag + 1] + [str(default)] + words[flag + 1:], cwd=project)
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_the_site_file_example_is_read(tmp_path):
    project = copy_project(tmp_path / "project", smoke=False)
    proc = shell("cp profiles/slurm/site.example.yaml profiles/slurm/site.yaml", project, tmp_path)
    assert proc.returncode == 0
    assert slurm_site({}, project / "profiles/slurm/site.yaml") == {"slurm_account": "my-project",
                                                                     "slurm_partition": "gpu"}


@pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz is not installed (see .ci/run)")
def test_the_rule_graph_picture_is_regenerated_as_the_readme_says(tmp_path):
    project = copy_project(tmp_path / "project", smoke=False)
    (project / "docs").mkdir()
    command = "snakemake --rulegraph > docs/rulegraph.dot && dot -Tpng docs/rulegraph.dot -o docs/rulegraph.png"
    proc = shell(command, project, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted((project / "docs/rulegraph.dot").read_text().splitlines()) == \
        sorted((REPO / "docs/rulegraph.dot").read_text().splitlines())
    assert (project / "docs/rulegraph.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_s3_remote_instructions(tmp_path):
    # dvc-s3 resolves against the installed DVC (a dry run: nothing is installed)
    command = "pip install dvc-s3"
    proc = subprocess.run([sys.executable, "-m", *command.split(), "--dry-run", "--quiet"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    project = copy_project(tmp_path / "project", smoke=False)
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    command = "dvc remote add -d s3 s3://<bucket>/<prefix>".replace("<bucket>", "lab-bucket").replace(
        "<prefix>", "pipeline")
    run(command.split(), cwd=project)
    assert run(["dvc", "remote", "default"], cwd=project).stdout.strip() == "s3"
    assert "s3://lab-bucket/pipeline" in run(["dvc", "remote", "list"], cwd=project).stdout


def test_tests_the_readme_names_exist():
    named = set(re.findall(r"`(test_\w+\.py)(?:::(\w+))?`", README.read_text()))
    assert len(named) >= 15
    for file, function in named:
        assert (REPO / "tests" / file).is_file(), file
        if function:
            source_of(f"tests/{file}::{function}")


def test_the_fast_loop_leaves_out_every_workflow_run():
    """The README's fast loop selects the unit tests of a module and none that runs the workflow
    (collected on two files, as the selection is per test)."""
    files = ["tests/test_grid.py", "tests/test_workflow.py"]
    proc = subprocess.run([sys.executable, "-m", "pytest", "-m", "not integration and not slurm", "--collect-only",
                           "-q", "-p", "no:cacheprovider", *files], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    selected = [line for line in proc.stdout.splitlines() if "::" in line]
    # every test of the grid module; none of the workflow's, which all run Snakemake
    assert selected and all(line.startswith("tests/test_grid.py::") for line in selected), proc.stdout
    assert re.search(r"\((\d+) deselected\)", proc.stdout), proc.stdout
