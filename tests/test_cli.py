"""`python -m pipeline_steps`: the project's own errors in one line, anything else with its traceback."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline_steps import cli, errors

REPO = Path(__file__).resolve().parent.parent


def test_a_missing_input_is_one_line_naming_the_step_and_the_path(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pipeline_steps", "prepare", "--params", str(REPO / "params.yaml"),
                           "--dataset", "vqa", "--raw", str(tmp_path / "raw"), "--out", str(tmp_path / "vqa")],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: prepare: raw source ") and str(tmp_path / "raw") in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "vqa").exists()


def test_a_bug_inside_a_step_keeps_its_traceback(monkeypatch, tmp_path):
    def broken(params, args):
        return {}["no such key"]

    monkeypatch.setitem(cli.STEPS, "splits-summary", (broken, "broken"))
    with pytest.raises(KeyError, match="no such key"):
        cli.main(["splits-summary", "--params", str(REPO / "params.yaml"), str(tmp_path),
                  "--csv", str(tmp_path / "a.csv"), "--markdown", str(tmp_path / "a.md")])


def test_every_error_class_of_the_project_is_defined_in_errors_and_is_a_pipeline_error():
    for path in (REPO / "pipeline_steps").rglob("*.py"):
        if path.name == "errors.py":
            continue
        tree = ast.parse(path.read_text())
        classes = [node.name for node in ast.walk(tree) if isinstance(node, ast.ClassDef)
                   and any(getattr(base, "id", "").endswith(("Error", "Exception")) for base in node.bases)]
        assert not classes, f"{path.relative_to(REPO)} defines error classes {classes}: put them in errors.py"
    own = [obj for obj in vars(errors).values() if isinstance(obj, type) and issubclass(obj, Exception)
           and obj.__module__ == errors.__name__]
    assert len(own) >= 10 and all(issubclass(cls, errors.PipelineError) for cls in own)
