"""Code dependencies: a code change reruns exactly the jobs whose step runs the changed module, and
`dvc repro` sees every module a stage runs."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
import yaml

from helpers import REPO, SNAKEMAKE, clone_run, run
from pipeline_steps import code_deps, grid
from test_workflow import job_counts


def rule_steps() -> dict[str, str]:
    """{rule: step} for every rule that runs a step."""
    found = {}
    for smk in (REPO / "workflow/rules").glob("*.smk"):
        for block in re.split(r"^\s*rule ", smk.read_text(), flags=re.M)[1:]:
            steps = code_deps.rule_file_steps(block)
            assert len(steps) <= 1, block
            if steps:
                found[block.split(":")[0].strip()] = steps.pop()
    return found


def test_every_rule_that_runs_a_step_carries_that_steps_code_digest():
    for smk in (REPO / "workflow/rules").glob("*.smk"):
        for block in re.split(r"^\s*rule ", smk.read_text(), flags=re.M)[1:]:
            if "{params.step}" in block:
                assert code_deps.rule_file_steps(block), f"{smk.name}: rule {block.split(':')[0]} has no step_params"
    assert set(rule_steps().values()) <= set(code_deps.step_names())


def test_dvc_stage_deps_are_the_code_of_the_steps_their_rules_run():
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        deps = stage["deps"]
        rules = [d for d in deps if d.startswith("workflow/rules/") and d != "workflow/rules/common.smk"]
        assert rules, f"stage {name} names no rule file"
        assert set(code_deps.WORKFLOW_FILES) <= set(deps), name
        package = sorted(d for d in deps if d.startswith("pipeline_steps"))
        expected = code_deps.stage_files(rules, REPO)
        missing, extra = sorted(set(expected) - set(package)), sorted(set(package) - set(expected))
        assert not missing and not extra, f"dvc.yaml stage {name}: add {missing}, remove {extra}"


def test_every_data_file_of_the_package_is_claimed_by_the_module_that_reads_it():
    data = [code_deps.ROOT / rel for rels in code_deps.PACKAGE_DATA.values() for rel in rels]
    for path in code_deps.ROOT.rglob("*"):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".py":
            assert any(path == d or d in path.parents for d in data), \
                f"{path}: name the module that reads it in code_deps.PACKAGE_DATA"


# Third-party libraries are imported once; then each step, in a forked child, imports cli and its
# handler's modules, and reports which package modules Python loaded.
PROBE = """
import importlib, json, os, sys
import numpy, pandas, torch, open_clip, transformers, diffusers, huggingface_hub  # noqa: F401
result = {}
for step, modules in json.loads(sys.stdin.read()).items():
    read, write = os.pipe()
    if os.fork() == 0:
        os.close(read)
        import pipeline_steps.cli
        for name in modules:
            importlib.import_module(name)
        loaded = sorted(m for m in sys.modules if m == "pipeline_steps" or m.startswith("pipeline_steps."))
        os.write(write, json.dumps(loaded).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        result[step] = json.loads(pipe.read())
    os.wait()
print(json.dumps(result))
"""


def test_the_static_closure_holds_every_module_python_loads():
    """What Python really imports for each step's handler is inside the closure read from the source."""
    functions = code_deps.cli_functions()
    handler_imports = {step: sorted(code_deps.imports_in(code_deps.CLI, [functions[code_deps.handler_name(step)]]))
                       for step in code_deps.step_names()}
    proc = subprocess.run([sys.executable, "-c", PROBE], input=json.dumps(handler_imports), capture_output=True,
                          text=True, cwd=REPO, check=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    loaded = json.loads(proc.stdout)
    assert set(loaded) == set(code_deps.step_names())
    for step, modules in loaded.items():
        outside = set(modules) - {"pipeline_steps.__main__"} - set(code_deps.step_modules(step))
        assert not outside, (step, sorted(outside))


@pytest.mark.integration
def test_editing_one_module_reruns_exactly_the_jobs_whose_step_runs_it(local_run, tmp_path):
    project = clone_run(local_run, tmp_path / "project")
    params = yaml.safe_load((project / "params.yaml").read_text())
    clip_td_runs = len(grid.clip_td_runs(params["clip_td"], params["splits"]))
    steps = rule_steps()

    def rerun_after_editing(rel: str) -> dict[str, int]:
        path = project / rel
        original = path.read_text()
        path.write_text(original + "\n# an edit\n")
        try:
            return job_counts(run(SNAKEMAKE + ["-n"], cwd=project).stdout)
        finally:
            path.write_text(original)

    def runners(rel: str) -> set[str]:
        return {rule for rule, step in steps.items() if rel in code_deps.step_files(step)}

    # the diffusion teacher's score: its own jobs, then the tables
    assert runners("pipeline_steps/evaluate/teacher_score.py") == {"teacher_score"}
    assert rerun_after_editing("pipeline_steps/evaluate/teacher_score.py") == {
        "teacher_score": 1, "aggregate": 1, "all": 1}
    # CLIP-TD's metrics: every CLIP-TD evaluation, not its training nor SDS-CLIP's evaluation
    assert rerun_after_editing("pipeline_steps/evaluate/vl_tasks.py") == {
        "evaluate_clip_td": clip_td_runs, "aggregate": 1, "all": 1}
    # the figures: aggregation alone
    assert rerun_after_editing("pipeline_steps/aggregate/figures.py") == {"aggregate": 1, "all": 1}
    # with the edits undone, nothing is left to do
    assert "Nothing to be done" in run(SNAKEMAKE + ["-n"], cwd=project).stdout
