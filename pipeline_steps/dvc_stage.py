"""``python -m pipeline_steps.dvc_stage RULES_FILE TARGET``: the command of a ``dvc.yaml`` stage.

It runs ``snakemake --cores all $PIPELINE_SNAKEMAKE_ARGS TARGET``, and Snakemake reruns the jobs
whose params, code or inputs changed, judged from its records in ``.snakemake/``.

A checkout made by DVC has no such records: a queued experiment's (``dvc exp run --queue`` runs in
a fresh copy of the commit) or a fresh clone after ``dvc pull``. Snakemake then judges the files by
their modification times, which the checkout sets in no particular order, so it may rerun other
stages' jobs (rewriting outputs that DVC versions under those stages) or skip this stage's jobs
(keeping outputs made under the old params). DVC runs a stage only when its deps or params changed,
so in such a checkout the stage reruns every job of its own rules (``--forcerun``) and no job of
another stage's (``--allowed-rules``: the other stages' outputs are inputs, as DVC checked them out).

Which stages' outputs still lack records is kept in ``.snakemake/dvc-unrecorded-stages.json``:
every stage of ``dvc.yaml`` when a stage first runs in a checkout without records, less each stage
once its forced run has succeeded.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import yaml

SNAKEMAKE_DIR = Path(".snakemake")
# Snakemake's file-based records: one file per output file, written when a job finishes.
RECORDS = SNAKEMAKE_DIR / "metadata"
UNRECORDED = SNAKEMAKE_DIR / "dvc-unrecorded-stages.json"
RULE = re.compile(r"^\s*(?:rule|checkpoint)\s+(\w+)\s*:", re.M)


def rules_of(rules_file: Path) -> list[str]:
    """The rules a rules file defines, in both modes (a rule missing from the current mode is ignored)."""
    return RULE.findall(rules_file.read_text())


def has_records() -> bool:
    return RECORDS.is_dir() and any(RECORDS.iterdir())


def stage_targets(dvc_file: Path = Path("dvc.yaml")) -> list[str]:
    """Every stage's Snakemake target: the last word of its command."""
    return [stage["cmd"].split()[-1] for stage in yaml.safe_load(dvc_file.read_text())["stages"].values()]


def unrecorded_targets() -> list[str]:
    if not has_records():
        _write_unrecorded(stage_targets())
    return json.loads(UNRECORDED.read_text()) if UNRECORDED.is_file() else []


def _write_unrecorded(targets: list[str]) -> None:
    if not targets:
        UNRECORDED.unlink(missing_ok=True)
        return
    SNAKEMAKE_DIR.mkdir(exist_ok=True)
    tmp = UNRECORDED.with_suffix(".tmp")
    tmp.write_text(json.dumps(targets) + "\n")
    tmp.replace(UNRECORDED)


def snakemake_command(rules_file: Path, target: str, forced: bool) -> list[str]:
    command = ["snakemake", "--cores", "all", *shlex.split(os.environ.get("PIPELINE_SNAKEMAKE_ARGS", "")), target]
    if forced:  # after the target: these options take every word that follows them
        rules = rules_of(rules_file)
        command += ["--forcerun", *rules, "--allowed-rules", *rules]
    return command


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m pipeline_steps.dvc_stage RULES_FILE TARGET", file=sys.stderr)
        return 2
    rules_file, target = Path(args[0]), args[1]
    if not rules_file.is_file():
        print(f"dvc_stage: no rules file {rules_file}", file=sys.stderr)
        return 2
    unrecorded = unrecorded_targets()
    forced = target in unrecorded
    command = snakemake_command(rules_file, target, forced)
    if forced:
        print(f"dvc_stage: Snakemake has no records of {target}'s outputs in this checkout:"
              f" rerunning the jobs of {rules_file} and no others", file=sys.stderr)
    print("dvc_stage: " + shlex.join(command), file=sys.stderr, flush=True)
    status = subprocess.run(command).returncode
    if status == 0 and forced:  # stages run one at a time, so the list read above is still current
        _write_unrecorded([t for t in unrecorded if t != target])
    return status


if __name__ == "__main__":
    sys.exit(main())
