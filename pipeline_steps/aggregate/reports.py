"""Reading every run's reports into tidy rows (one per run and metric), and summarising over seeds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ..grid import parse_clip_td_run, parse_sds_run
from ..tasks.examples import IMAGE_ABLATIONS

# the finetune runs evaluated with their images ablated come after the methods
METHOD_ORDER = ["finetune", "naive", "targeted", *IMAGE_ABLATIONS]
# SDS-CLIP's lambda is selected on this metric (held-out COCO captions), never on a benchmark
SELECTION_METRIC = "COCO-val order (selection)"

def _ci(entry: dict) -> tuple[float, float, float]:
    return entry["value"], entry.get("ci_low", np.nan), entry.get("ci_high", np.nan)


def sds_clip_rows(metrics_root: Path) -> pd.DataFrame:
    """One row per (run, metric): backbone, method, lambda, seed, value, ci_low, ci_high."""
    rows = []
    for run_dir in sorted((metrics_root / "sds_clip").glob("*")):
        name = run_dir.name
        run = parse_sds_run(name)
        if run is None:
            continue
        backbone, seed = run.backbone, run.seed
        if run.is_base:
            method, lam = "CLIP (base)", np.nan
        else:
            lam = run.lam
            method = "COCO fine-tune (λ=0)" if lam == 0 else f"SDS-CLIP (λ={lam:g})"
        cells = {}
        wino = json.loads((run_dir / "winoground.json").read_text())["overall"]
        for k in ("text", "image", "group"):
            cells[f"Winoground {k}"] = _ci(wino[k])
        aro = json.loads((run_dir / "aro.json").read_text())
        cells["ARO VG-R"] = (aro["vg_relation"]["macro_accuracy"], np.nan, np.nan)
        cells["ARO VG-A"] = (aro["vg_attribution"]["macro_accuracy"], np.nan, np.nan)
        cells["ARO COCO-Ord"] = _ci(aro["coco_order"]["ci"])
        cells["ARO Flickr-Ord"] = _ci(aro["flickr_order"]["ci"])
        cells["SugarCrepe"] = (json.loads((run_dir / "sugarcrepe.json").read_text())["mean"], np.nan, np.nan)
        for dataset, report in sorted(json.loads((run_dir / "zeroshot.json").read_text()).items()):
            cells[f"zero-shot {dataset.removeprefix('zeroshot_')}"] = _ci(report["top1"])
        cells[SELECTION_METRIC] = _ci(json.loads((run_dir / "selection.json").read_text())["ci"])
        for metric, (value, lo, hi) in cells.items():
            rows.append({"backbone": backbone, "method": method, "lambda": lam, "seed": seed, "run": name,
                         "metric": metric, "value": value, "ci_low": lo, "ci_high": hi})
    return pd.DataFrame(rows)


def selected_lambdas(rows: pd.DataFrame) -> dict[str, float]:
    """Per backbone, the lambda > 0 with the best mean selection score over seeds (ties: the smallest)."""
    part = rows[(rows["metric"] == SELECTION_METRIC) & (rows["lambda"] > 0)]
    means = part.groupby(["backbone", "lambda"])["value"].mean().reset_index()
    return {b: float(g.sort_values(["value", "lambda"], ascending=[False, True])["lambda"].iloc[0])
            for b, g in means.groupby("backbone")}


def _clip_td_blocks(metrics_root: Path):
    """(run, method, block, report) for every CLIP-TD report: the run's own block, and for finetune runs
    the image-ablated baselines' blocks under their names."""
    for path in sorted((metrics_root / "clip_td").glob("*.json")):
        run = parse_clip_td_run(path.stem)
        if run is None:
            continue
        report = json.loads(path.read_text())
        yield run, run.method, report, report
        if run.method == "finetune":  # the image-ablated baselines
            for name in IMAGE_ABLATIONS:
                if name in report:
                    yield run, name, report[name], report


def clip_td_rows(metrics_root: Path) -> pd.DataFrame:
    """One row per (run, metric): task, setting, method, seed, value, ci_low, ci_high."""
    rows = []
    for run, method, block, report in _clip_td_blocks(metrics_root):
        for metric, value in block["headline"].items():
            ci = block.get(f"{metric}_ci") or (block.get(metric) if isinstance(block.get(metric), dict) else {})
            rows.append({"task": run.task, "setting": run.setting, "method": method,
                         "seed": run.seed, "metric": metric, "value": value,
                         "ci_low": ci.get("ci_low", np.nan), "ci_high": ci.get("ci_high", np.nan),
                         "examples": report["examples"]})
    return pd.DataFrame(rows)


def clip_td_domain_rows(metrics_root: Path) -> pd.DataFrame:
    """One row per (run, visual domain of the evaluation images, metric), for the full split and the
    shifts: task, setting, method, seed, domain, examples, value (reports' ``per_domain``)."""
    rows = []
    for run, method, block, _ in _clip_td_blocks(metrics_root):
        if run.setting.startswith("lowshot-"):
            continue
        for domain, scores in block.get("per_domain", {}).items():
            for metric, value in scores.items():
                if metric != "examples":
                    rows.append({"task": run.task, "setting": run.setting, "method": method, "seed": run.seed,
                                 "domain": domain, "examples": scores["examples"], "metric": metric,
                                 "value": value, "ci_low": np.nan, "ci_high": np.nan})
    return pd.DataFrame(rows)


def summarize(rows: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Mean, sd and count over seeds per ``keys``; CI bounds averaged over seeds."""
    g = rows.groupby(keys, dropna=False, sort=False)
    out = g.agg(mean=("value", "mean"), sd=("value", "std"), seeds=("value", "size"),
                ci_low=("ci_low", "mean"), ci_high=("ci_high", "mean")).reset_index()
    out["sd"] = out["sd"].fillna(0.0)
    return out


GRAD_NORMS = ("grad_norm_clip_ln", "grad_norm_sds_ln", "grad_norm_sds_h_w")


def read_grad_norms(model_dirs: list[Path]) -> pd.DataFrame:
    """Per logged step of every SDS-CLIP run with lambda > 0: the L_CLIP and L_SDS gradient norms
    (dvclive), one row each, with the run's name, backbone, lambda and seed."""
    frames = []
    for d in model_dirs:
        run = parse_sds_run(d.name)
        if run is None or run.is_base or not run.lam:
            continue
        for name in GRAD_NORMS:
            tsv = d / "dvclive" / "plots" / "metrics" / "train" / f"{name}.tsv"
            if tsv.is_file():
                df = pd.read_csv(tsv, sep="\t")
                frames.append(pd.DataFrame({"run": d.name, "backbone": run.backbone, "lambda": run.lam,
                                            "seed": run.seed, "norm": name, "step": df["step"], "value": df[name]}))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def sds_clip_diagnostics(model_dirs: list[Path], grad_norms: pd.DataFrame) -> pd.DataFrame:
    """One row per SDS-CLIP run with lambda > 0: the medians over logged steps of the L_CLIP and L_SDS
    gradient norms at the LayerNorms (``grad_norms``, from read_grad_norms; and their ratio, the lambda at
    which both weigh the same), h_w's gradient norm and fit, and whether the teacher reads the caption on
    h_w(f(x)) as on the real image."""
    medians = grad_norms.groupby(["run", "norm"])["value"].median() if not grad_norms.empty else pd.Series()
    rows = []
    for d in model_dirs:
        run = parse_sds_run(d.name)
        summary_file = d / "train_summary.json"
        if run is None or run.is_base or not run.lam or not summary_file.is_file():
            continue
        summary = json.loads(summary_file.read_text())
        norms = {name: float(medians.get((d.name, name), np.nan)) for name in GRAD_NORMS}
        diag = summary.get("teacher_diagnostics") or {}
        rows.append({"run": d.name, "backbone": run.backbone, "lambda": run.lam, "seed": run.seed, **norms,
                     "norm_ratio_clip_over_sds": norms["grad_norm_clip_ln"] / norms["grad_norm_sds_ln"],
                     "h_w_init": summary.get("h_w_init"), "h_w_fit_r2": summary.get("h_w_fit_r2", np.nan),
                     **{f"teacher_{image}_{k}": v for image in ("real", "h_w")
                        for k, v in diag.get(image, {}).items()}})
    return pd.DataFrame(rows)


def read_curves(model_dirs: list[Path]) -> dict[str, pd.DataFrame]:
    curves = {}
    for d in model_dirs:
        tsv = d / "dvclive" / "plots" / "metrics" / "train" / "loss.tsv"
        if tsv.is_file():
            curves[f"{d.parent.name}/{d.name}"] = pd.read_csv(tsv, sep="\t")
    return curves
