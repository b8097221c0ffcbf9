"""What the workflow itself costs before any job runs: building the DAG and deciding nothing changed.

- ``snakemake -n --configfile presets/paper.yaml`` in a fresh copy of the project: the whole paper
  grid (every job missing), DAG built and printed; target < 10 s on 2 cores;
- ``snakemake -n`` of the default synthetic grid, for scale;
- ``dvc repro`` and ``dvc status`` with nothing changed, in a git repository where ``dvc repro`` ran
  the smoke-size pipeline once (``--skip-dvc`` leaves this out: the first run takes minutes), or,
  with ``--finished PATH``, in a copy of a project Snakemake already ran (recorded by ``dvc commit``);
  target < 5 s.

Each command runs ``--repeats`` times; the JSON has every time and the median.

    python bench/workflow_overhead.py --out bench/results/workflow_overhead-cpu2.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
from helpers import copy_project  # noqa: E402  the tests' notion of what a project copy holds
from pipeline_steps.hardware import machine_info  # noqa: E402

SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def timed(cmd: list[str], cwd: Path, repeats: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    times, out = [], ""
    for _ in range(repeats):
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
        times.append(time.perf_counter() - start)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        out = proc.stdout + proc.stderr
    return {"command": " ".join(c if c != sys.executable else "python" for c in cmd),
            "median_s": statistics.median(times), "times_s": times, "output_tail": out[-300:]}


def job_total(output: str) -> int:
    for line in output.splitlines():
        if line.startswith("total"):
            return int(line.split()[1])
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-dvc", action="store_true")
    parser.add_argument("--finished", type=Path, help="a project `snakemake` ran to the end (copied, not changed)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    report = {"bench": "workflow_overhead", "machine": machine_info(), "results": {}}
    with tempfile.TemporaryDirectory() as tmp:
        project = copy_project(Path(tmp) / "paper", smoke=False)
        timed(SNAKEMAKE + ["-n", "--quiet", "rules"], project, 1)  # bytecode caches written once
        paper = timed(SNAKEMAKE + ["-n", "--configfile", "presets/paper.yaml"], project, args.repeats)
        paper["jobs"] = job_total(subprocess.run(
            SNAKEMAKE + ["-n", "--quiet", "rules", "--configfile", "presets/paper.yaml"], cwd=project,
            capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(project)}).stdout)
        report["results"]["snakemake_dry_run_paper_grid"] = {**paper, "target_s": 10}
        default = timed(SNAKEMAKE + ["-n"], project, args.repeats)
        report["results"]["snakemake_dry_run_default_grid"] = default
        if not args.skip_dvc:
            env = {**os.environ, "PYTHONPATH": str(Path(tmp) / "dvc")}
            if args.finished:
                project = Path(tmp) / "dvc"
                shutil.copytree(args.finished, project, symlinks=True, ignore=shutil.ignore_patterns(".work"))
                for cmd in (["git", "init", "-q"], ["dvc", "commit", "-f"], ["git", "add", "-A"],
                            ["git", "commit", "-qm", "bench"]):
                    subprocess.run(cmd, cwd=project, check=True, capture_output=True, env=env)
                report["results"]["dvc_project"] = "a finished default run, recorded with dvc commit"
            else:
                project = copy_project(Path(tmp) / "dvc")
                for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "bench"]):
                    subprocess.run(cmd, cwd=project, check=True, capture_output=True)
                start = time.perf_counter()
                subprocess.run(["dvc", "repro"], cwd=project, check=True, capture_output=True, env=env)
                report["results"]["dvc_repro_first_run_s"] = time.perf_counter() - start
                report["results"]["dvc_project"] = "the smoke-size pipeline after dvc repro"
            noop = timed(["dvc", "repro"], project, args.repeats)
            assert "Running stage" not in noop["output_tail"]
            report["results"]["dvc_repro_nothing_changed"] = {**noop, "target_s": 5}
            report["results"]["dvc_status_nothing_changed"] = timed(["dvc", "status"], project, args.repeats)
            report["results"]["dvc_version"] = timed(["dvc", "--version"], project, args.repeats)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
