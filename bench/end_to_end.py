"""The whole default pipeline, as a new user runs it: `snakemake --cores 2` in a fresh copy.

Records the wall time and peak memory of the run, and the per-rule breakdown from Snakemake's own
benchmark files (`benchmarks/**/*.tsv`: each job's wall time and peak RSS): jobs, summed seconds and
the longest job per rule. Target: at most 20 minutes on 2 CPU cores of the slowest kind (AVX2 only).

    python bench/end_to_end.py --out bench/results/end_to_end-cpu2.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
from helpers import copy_project  # noqa: E402  the tests' notion of what a project copy holds
from pipeline_steps.hardware import machine_info  # noqa: E402


def per_rule(benchmarks: Path) -> dict:
    rules: dict[str, dict] = defaultdict(lambda: {"jobs": 0, "seconds": 0.0, "longest_s": 0.0, "max_rss_mb": 0.0})
    for tsv in sorted(benchmarks.rglob("*.tsv")):
        row = pd.read_csv(tsv, sep="\t").iloc[0]
        rel = tsv.relative_to(benchmarks)
        rule = rel.parts[0] if len(rel.parts) > 1 else rel.stem
        if rule == "evaluate" and len(rel.parts) > 2:
            rule = "evaluate/clip_td"
        r = rules[rule]
        r["jobs"] += 1
        r["seconds"] += float(row["s"])
        r["longest_s"] = max(r["longest_s"], float(row["s"]))
        r["max_rss_mb"] = max(r["max_rss_mb"], float(row["max_rss"]) if row["max_rss"] != "-" else 0.0)
    return dict(sorted(rules.items(), key=lambda kv: -kv[1]["seconds"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--keep", type=Path, help="run in this folder and keep it (default: a temporary one)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        project = copy_project(args.keep or Path(tmp) / "project", smoke=False)
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "snakemake", "--cores", str(args.cores)], cwd=project,
                              capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(project)})
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            raise SystemExit(proc.stderr[-5000:])
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        rules = per_rule(project / "benchmarks")
    report = {"bench": "end_to_end", "machine": machine_info(), "cores": args.cores, "wall_s": wall, "wall_min": wall / 60,
              "target_min": 20, "jobs": sum(r["jobs"] for r in rules.values()),
              "job_seconds": sum(r["seconds"] for r in rules.values()),
              "peak_rss_mb_of_one_process": peak_mb, "rules": rules}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
