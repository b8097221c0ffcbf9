"""Summarise CLIP-TD runs of a finished project over seeds: mean ± sd of one metric, with the
image-ablated passes (shuffled and blank images), and Welch's t of each run against a control.

    python bench/clip_td_shifts.py --project . --task vcr --metric q2a --domain textured \
        --runs full-finetune shift-source-finetune shift-movie-finetune --seeds 0 1 2 \
        --control full-finetune --command "snakemake ..." --out bench/results/<name>.json

Reads results/metrics/clip_td/<task>-<split>-<method>-s<seed>.json. With --domain, the metric is
taken on that visual domain's evaluation examples only (the metrics' per_domain block), so runs
whose evaluation sets differ in their mix of domains are compared on the same kind of image.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from datetime import date
from pathlib import Path

from pipeline_steps.hardware import machine_info

PASSES = ("model", "shuffled_image", "blank_image")


def _incomplete_beta(x: float, a: float, b: float) -> float:
    """The regularised incomplete beta function I_x(a, b), by its continued fraction (Lentz)."""
    if x <= 0.0 or x >= 1.0:
        return 0.0 if x <= 0.0 else 1.0
    if x > (a + 1) / (a + b + 2):  # the fraction converges fast on this side only
        return 1.0 - _incomplete_beta(1.0 - x, b, a)
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)) / a
    tiny, c, d = 1e-300, 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    fraction = d
    for m in range(1, 300):
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            fraction *= c * d
        if abs(c * d - 1.0) < 1e-12:
            break
    return front * fraction


def welch(a: list[float], b: list[float]) -> tuple[float, float]:
    """Welch's t of mean(a) - mean(b) and its two-sided p (Welch-Satterthwaite degrees of freedom)."""
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    t = (statistics.mean(a) - statistics.mean(b)) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    return t, _incomplete_beta(df / (df + t * t), df / 2, 0.5)


def metric_of(block: dict, metric: str, domain: str | None) -> float:
    """``metric`` of a report block, a dotted path (``per_answer_type.other``); a metric with a CI
    (VQA's ``{value, ci_low, ...}``) gives its value."""
    value = block if domain is None else block["per_domain"][domain]
    for key in metric.split("."):
        value = value[key]
    return value["value"] if isinstance(value, dict) else value


def examples_of(result: dict, domain: str | None) -> int:
    """How many examples the metric is taken on (the ablated passes score the same ones)."""
    return result["examples"] if domain is None else result["per_domain"][domain]["examples"]


def summarise(project: Path, task: str, runs: list[str], seeds: list[int], metric: str,
              domain: str | None, control: str | None) -> dict:
    table = {}
    for name in runs:
        values: dict[str, list[float]] = {p: [] for p in PASSES}
        examples = set()
        for seed in seeds:
            path = project / "results/metrics/clip_td" / f"{task}-{name}-s{seed}.json"
            result = json.loads(path.read_text())
            for p in PASSES:
                values[p].append(metric_of(result if p == "model" else result[p], metric, domain))
            examples.add(examples_of(result, domain))
        table[name] = {p: {"mean": round(statistics.mean(v), 4),
                           "sd": round(statistics.stdev(v), 4) if len(v) > 1 else 0.0, "seeds": v}
                       for p, v in values.items()}
        table[name]["examples"] = sorted(examples)
    if control:
        for name in runs:
            if name != control:
                t, p = welch(table[name]["model"]["seeds"], table[control]["model"]["seeds"])
                table[name]["welch_vs_control"] = {"t": round(t, 2), "p": round(p, 3)}
    return table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, default=Path("."))
    parser.add_argument("--task", required=True)
    parser.add_argument("--runs", nargs="+", required=True, help="<split>-<method>, e.g. shift-source-naive")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--metric", required=True)
    parser.add_argument("--domain", default=None)
    parser.add_argument("--control", default=None)
    parser.add_argument("--command", default="", help="the command that produced the runs")
    parser.add_argument("--wall-s", type=float, default=None)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    table = summarise(args.project, args.task, args.runs, args.seeds, args.metric, args.domain, args.control)
    result = {"bench": f"clip_td_{args.task}_shifts", "date": date.today().isoformat(),
              "machine": machine_info(),
              "command": args.command, "wall_s": args.wall_s, "task": args.task, "metric": args.metric,
              "domain": args.domain, "control": args.control, "runs": table}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    for name, row in table.items():
        cells = "  ".join(f"{p} {100 * row[p]['mean']:.1f} ± {100 * row[p]['sd']:.1f}" for p in PASSES)
        test = row.get("welch_vs_control")
        print(f"{name:28s} n={row['examples']}  {cells}" + (f"  (t={test['t']}, p={test['p']})" if test else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
