"""The end of the DAG: every run's metrics gathered into the papers' tables, figures and one
headline ``metrics.json``.

Inputs are the per-run reports the evaluation steps write (``results/metrics/...``) and the dvclive
curves in the model folders.  Outputs (``aggregate(...)``):

- ``tables/sds_clip.{csv,md,tex}``: per backbone, rows base CLIP / COCO fine-tune (lambda = 0) /
  SDS-CLIP (each lambda > 0); columns Winoground text/image/group, ARO VG-R / VG-A / COCO-Ord /
  Flickr-Ord, SugarCrepe mean and each zero-shot set.
- ``tables/clip_td.{csv,md,tex}``: per task (and VCR metric), rows finetune / naive / targeted;
  columns full, each low-shot fraction, each domain shift.
- ``figures/*.{png,svg}``: low-shot curves, domain-shift bars, Winoground/ARO bars with CIs, the
  lambda sweep, the teacher's score next to CLIP's, training curves.
- ``metrics.json`` (DVC metrics) and ``plots/*.csv`` (DVC plots).

Cells are percentages: ``mean ± sd`` over seeds when there are several, else the value with its 95%
bootstrap CI; the best value of each column (within a table) is marked (bold).  The CSVs are tidy
(one row per cell) with mean, sd, seeds, ci_low and ci_high (per-seed bounds averaged).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

from .grid import parse_clip_td_run, parse_sds_run
from .io import atomic_write_json, atomic_write_text
from .tasks import TASKS

METHOD_ORDER = ["finetune", "naive", "targeted"]
STYLE = {"figure.dpi": 110, "axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False,
         "axes.spines.right": False, "font.size": 9, "legend.frameon": False}


# --- reading the per-run reports --------------------------------------------------------------------------

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
        for metric, (value, lo, hi) in cells.items():
            rows.append({"backbone": backbone, "method": method, "lambda": lam, "seed": seed, "run": name,
                         "metric": metric, "value": value, "ci_low": lo, "ci_high": hi})
    return pd.DataFrame(rows)


def clip_td_rows(metrics_root: Path) -> pd.DataFrame:
    """One row per (run, metric): task, setting, method, seed, value, ci_low, ci_high."""
    rows = []
    for path in sorted((metrics_root / "clip_td").glob("*.json")):
        run = parse_clip_td_run(path.stem)
        if run is None:
            continue
        report = json.loads(path.read_text())
        for metric, value in report["headline"].items():
            ci = report.get(f"{metric}_ci") or (report.get(metric) if isinstance(report.get(metric), dict) else {})
            rows.append({"task": run.task, "setting": run.setting, "method": run.method,
                         "seed": run.seed, "metric": metric, "value": value,
                         "ci_low": ci.get("ci_low", np.nan), "ci_high": ci.get("ci_high", np.nan),
                         "examples": report["examples"]})
    return pd.DataFrame(rows)


def summarize(rows: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Mean, sd and count over seeds per ``keys``; CI bounds averaged over seeds."""
    g = rows.groupby(keys, dropna=False, sort=False)
    out = g.agg(mean=("value", "mean"), sd=("value", "std"), seeds=("value", "size"),
                ci_low=("ci_low", "mean"), ci_high=("ci_high", "mean")).reset_index()
    out["sd"] = out["sd"].fillna(0.0)
    return out


# --- tables ------------------------------------------------------------------------------------------------

def cell_text(row: pd.Series) -> str:
    if row["seeds"] > 1:
        return f"{100 * row['mean']:.1f} ± {100 * row['sd']:.1f}"
    if np.isfinite(row["ci_low"]):
        return f"{100 * row['mean']:.1f} [{100 * row['ci_low']:.1f}, {100 * row['ci_high']:.1f}]"
    return f"{100 * row['mean']:.1f}"


def pivot(summary: pd.DataFrame, index: str, columns: str, row_order: list, column_order: list):
    """(text table, best-per-column mask) with rows and columns in the given order."""
    text = summary.assign(text=summary.apply(cell_text, axis=1)).pivot(index=index, columns=columns, values="text")
    means = summary.pivot(index=index, columns=columns, values="mean")
    rows = [r for r in row_order if r in text.index]
    cols = [c for c in column_order if c in text.columns]
    text, means = text.loc[rows, cols], means.loc[rows, cols]
    best = means.eq(means.max(axis=0), axis=1) & (len(rows) > 1)
    return text.fillna("–"), best


def markdown(text: pd.DataFrame, best: pd.DataFrame, corner: str) -> str:
    header = f"| {corner} | " + " | ".join(text.columns) + " |"
    lines = [header, "|" + "---|" * (len(text.columns) + 1)]
    for r in text.index:
        cells = [f"**{v}**" if best.loc[r, c] else v for c, v in text.loc[r].items()]
        lines.append(f"| {r} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def latex(text: pd.DataFrame, best: pd.DataFrame, corner: str, caption: str) -> str:
    def esc(s: str) -> str:
        return (s.replace("±", r"$\pm$").replace("λ", r"$\lambda$").replace("%", r"\%").replace("_", r"\_")
                .replace("–", "--"))
    lines = [r"\begin{table}[t]", r"\centering", r"\small",
             r"\begin{tabular}{l" + "c" * len(text.columns) + "}", r"\toprule",
             esc(corner) + " & " + " & ".join(esc(c) for c in text.columns) + r" \\", r"\midrule"]
    for r in text.index:
        cells = [rf"\textbf{{{esc(v)}}}" if best.loc[r, c] else esc(v) for c, v in text.loc[r].items()]
        lines.append(esc(str(r)) + " & " + " & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", rf"\caption{{{esc(caption)}}}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def sds_method_order(summary: pd.DataFrame) -> list[str]:
    sds = sorted({m for m in summary["method"] if m.startswith("SDS-CLIP")},
                 key=lambda m: float(m.split("=")[1].rstrip(")")))
    return ["CLIP (base)", "COCO fine-tune (λ=0)", *sds]


def sds_clip_tables(rows: pd.DataFrame, out: Path) -> dict[str, str]:
    summary = summarize(rows, ["backbone", "method", "metric"])
    summary.to_csv(out / "sds_clip.csv", index=False)
    metric_order = list(dict.fromkeys(rows["metric"]))
    md, tex = ["# SDS-CLIP\n"], []
    for backbone, part in summary.groupby("backbone", sort=True):
        text, best = pivot(part, "method", "metric", sds_method_order(part), metric_order)
        caption = f"SDS-CLIP, {backbone}: accuracy (%), best per column in bold."
        md += [f"\n## {backbone}\n\n", markdown(text, best, "method")]
        tex.append(latex(text, best, "method", caption))
    (out / "sds_clip.md").write_text("".join(md))
    (out / "sds_clip.tex").write_text("\n".join(tex))
    return {"sds_clip": "".join(md)}


def setting_order(settings) -> list[str]:
    low = sorted((s for s in settings if s.startswith("lowshot-")), key=lambda s: float(s.split("-")[1]))
    return (["full"] if "full" in settings else []) + low + sorted(s for s in settings if s.startswith("shift-"))


def setting_label(s: str) -> str:
    if s.startswith("lowshot-"):
        return f"low-shot {s.split('-')[1]}%"
    if s.startswith("shift-"):
        return f"shift: {s.split('-', 1)[1]}"
    return s


def clip_td_tables(rows: pd.DataFrame, out: Path) -> None:
    summary = summarize(rows, ["task", "metric", "method", "setting"])
    summary.to_csv(out / "clip_td.csv", index=False)
    md, tex = ["# CLIP-TD\n"], []
    for (task, metric), part in summary.groupby(["task", "metric"], sort=False):
        order = setting_order(set(part["setting"]))
        part = part.assign(setting=part["setting"].map(setting_label))
        methods = [m for m in METHOD_ORDER if m in set(part["method"])] + \
            sorted(set(part["method"]) - set(METHOD_ORDER))
        text, best = pivot(part, "method", "setting", methods, [setting_label(s) for s in order])
        title = f"{TASKS[task].title}, {metric}"
        md += [f"\n## {title}\n\n", markdown(text, best, "method")]
        tex.append(latex(text, best, "method", f"CLIP-TD, {title} (%), best per column in bold."))
    (out / "clip_td.md").write_text("".join(md))
    (out / "clip_td.tex").write_text("\n".join(tex))


# --- figures ----------------------------------------------------------------------------------------------

def _save(fig, out: Path, name: str) -> list[Path]:
    paths = [out / f"{name}.png", out / f"{name}.svg"]
    if fig.get_layout_engine() is None:  # figures with a legend below use constrained layout
        fig.tight_layout()
    for p in paths:
        fig.savefig(p, bbox_inches="tight")
    import matplotlib.pyplot as plt
    plt.close(fig)
    return paths


def figure_lowshot(rows: pd.DataFrame, out: Path) -> list[Path]:
    """Headline metric vs training fraction (full = 100%), one line per method, band = min..max over seeds."""
    import matplotlib.pyplot as plt

    tasks = [t for t in TASKS if t in set(rows["task"])]
    fig, axes = plt.subplots(1, len(tasks), figsize=(3.4 * len(tasks), 2.8), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        part = rows[(rows["task"] == task) & (rows["metric"] == TASKS[task].figure_metric)
                    & rows["setting"].str.match(r"full|lowshot-")].copy()
        part["fraction"] = part["setting"].map(lambda s: 100.0 if s == "full" else float(s.split("-")[1]))
        for method in [m for m in METHOD_ORDER if m in set(part["method"])]:
            g = part[part["method"] == method].groupby("fraction")["value"]
            x, mean = g.mean().index, 100 * g.mean().to_numpy()
            ax.plot(x, mean, marker="o", label=method)
            ax.fill_between(x, 100 * g.min().to_numpy(), 100 * g.max().to_numpy(), alpha=0.2)
        ax.set_xscale("log")
        ax.set_xlabel("training data (% of the full split)")
        ax.set_ylabel(f"{TASKS[task].figure_metric} (%)")
        ax.set_title(TASKS[task].title)
    axes[0][0].legend()
    return _save(fig, out, "clip_td_lowshot")


def _bars(ax, labels: list[str], groups: list[str], means, lows, highs) -> None:
    """Grouped bars: one group per label, one bar per group name, error bars from lows/highs."""
    width = 0.8 / max(1, len(groups))
    x = np.arange(len(labels))
    for i, g in enumerate(groups):
        m = np.asarray(means[i], float)
        pos = x + (i - (len(groups) - 1) / 2) * width
        ax.bar(pos, m, width, label=g)
        lo, hi = np.asarray(lows[i], float), np.asarray(highs[i], float)
        has = np.isfinite(lo) & np.isfinite(hi)  # no bar where the metric has no CI (e.g. macro averages)
        if has.any():
            ax.errorbar(pos[has], m[has], yerr=np.clip(np.vstack([m[has] - lo[has], hi[has] - m[has]]), 0, None),
                        fmt="none", ecolor="black", capsize=2, linewidth=1)
    ax.set_xticks(x, labels, rotation=20, ha="right")


def _legend_below(fig, ax, n: int) -> None:
    """One legend under the whole figure, below the (rotated) tick labels; needs constrained layout."""
    fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncol=min(n, 3), fontsize=7)


def figure_shift(rows: pd.DataFrame, out: Path) -> list[Path]:
    """Full vs each domain shift per task, bars per method; error bars = 95% bootstrap CI."""
    import matplotlib.pyplot as plt

    tasks = [t for t in TASKS if t in set(rows["task"])]
    fig, axes = plt.subplots(1, len(tasks), figsize=(3.4 * len(tasks), 3.2), squeeze=False, layout="constrained")
    for ax, task in zip(axes[0], tasks):
        part = summarize(rows[(rows["task"] == task) & (rows["metric"] == TASKS[task].figure_metric)
                              & rows["setting"].str.match(r"full|shift-")], ["method", "setting"])
        settings = setting_order(set(part["setting"]))
        methods = [m for m in METHOD_ORDER if m in set(part["method"])]
        cell = {(r.method, r.setting): r for r in part.itertuples()}
        get = lambda f: [[100 * getattr(cell[(m, s)], f) if (m, s) in cell else np.nan for s in settings]  # noqa: E731
                         for m in methods]
        _bars(ax, [setting_label(s) for s in settings], methods, get("mean"), get("ci_low"), get("ci_high"))
        ax.set_ylabel(f"{TASKS[task].figure_metric} (%)")
        ax.set_title(TASKS[task].title)
    _legend_below(fig, axes[0][0], 3)
    return _save(fig, out, "clip_td_shift")


def figure_compositional(rows: pd.DataFrame, out: Path) -> list[Path]:
    """Winoground and ARO per backbone: base CLIP / COCO fine-tune / SDS-CLIP with 95% CIs."""
    import matplotlib.pyplot as plt

    metrics = [m for m in dict.fromkeys(rows["metric"]) if m.startswith(("Winoground", "ARO"))]
    backbones = sorted(set(rows["backbone"]))
    fig, axes = plt.subplots(len(backbones), 1, figsize=(7.5, 0.4 + 2.9 * len(backbones)), squeeze=False,
                             layout="constrained")
    for ax, backbone in zip(axes[:, 0], backbones):
        part = summarize(rows[rows["backbone"] == backbone], ["method", "metric"])
        methods = sds_method_order(part)
        cell = {(r.method, r.metric): r for r in part.itertuples()}
        get = lambda f: [[100 * getattr(cell[(m, k)], f) if (m, k) in cell else np.nan for k in metrics]  # noqa: E731
                         for m in methods]
        _bars(ax, metrics, methods, get("mean"), get("ci_low"), get("ci_high"))
        ax.set_ylabel("accuracy (%)")
        ax.set_title(f"{backbone}: compositional benchmarks (error bars: 95% bootstrap CI)")
    _legend_below(fig, axes[0][0], len(methods))
    return _save(fig, out, "sds_clip_compositional")


def figure_lambda(rows: pd.DataFrame, out: Path) -> list[Path]:
    """Winoground group / text / image and ARO VG-R vs lambda, per backbone (mean over seeds)."""
    import matplotlib.pyplot as plt

    tuned = rows[rows["lambda"].notna()]
    fig, ax = plt.subplots(figsize=(5.0, 3.4), layout="constrained")
    for backbone in sorted(set(tuned["backbone"])):
        for metric in ("Winoground text", "Winoground image", "Winoground group", "ARO VG-R"):
            g = tuned[(tuned["backbone"] == backbone) & (tuned["metric"] == metric)].groupby("lambda")["value"]
            ax.plot(g.mean().index, 100 * g.mean().to_numpy(), marker="o", label=f"{backbone}: {metric}")
    ax.set_xlabel("λ (weight of L_SDS)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title("λ sweep")
    _legend_below(fig, ax, 2)
    return _save(fig, out, "sds_clip_lambda")


def figure_teacher(rows: pd.DataFrame, teacher_reports: dict[str, dict], out: Path) -> list[Path]:
    """The diffusion teacher's own Winoground score next to base CLIP and SDS-CLIP runs."""
    import matplotlib.pyplot as plt

    kinds = ["text", "image", "group"]
    part = summarize(rows[rows["metric"].str.startswith("Winoground")], ["backbone", "method", "metric"])
    names, means, lows, highs = [], [], [], []
    for name, report in teacher_reports.items():
        names.append(f"diffusion teacher ({name})")
        vals = [report["overall"][k] for k in kinds]
        means.append([100 * v["value"] for v in vals])
        lows.append([100 * v["ci_low"] for v in vals])
        highs.append([100 * v["ci_high"] for v in vals])
    for (backbone, method), g in part.groupby(["backbone", "method"], sort=False):
        g = g.set_index("metric")
        names.append(f"{backbone}: {method}")
        means.append([100 * g.loc[f"Winoground {k}", "mean"] for k in kinds])
        lows.append([100 * g.loc[f"Winoground {k}", "ci_low"] for k in kinds])
        highs.append([100 * g.loc[f"Winoground {k}", "ci_high"] for k in kinds])
    fig, ax = plt.subplots(figsize=(6.0, 3.4), layout="constrained")
    _bars(ax, [f"Winoground {k}" for k in kinds], names, means, lows, highs)
    ax.set_ylabel("score (%)")
    ax.set_title("Diffusion teacher vs CLIP on Winoground (95% CI)")
    _legend_below(fig, ax, len(names))
    return _save(fig, out, "teacher_vs_clip")


def figure_training(curves: dict[str, pd.DataFrame], out: Path) -> list[Path]:
    """Training loss vs step of every run (dvclive), one panel per family."""
    import matplotlib.pyplot as plt

    families = defaultdict(dict)
    for run, df in curves.items():
        family, name = run.split("/", 1)
        ctd = parse_clip_td_run(name)
        families[f"{family}: {TASKS[ctd.task].title}" if ctd else family][name] = df
    fig, axes = plt.subplots(1, len(families), figsize=(3.6 * len(families), 4.2), squeeze=False,
                             layout="constrained")
    for ax, (family, runs) in zip(axes[0], sorted(families.items())):
        for run, df in sorted(runs.items()):
            ax.plot(df["step"], df["loss"], label=run, linewidth=1)
        ax.set_xlabel("step")
        ax.set_ylabel("training loss")
        ax.set_title(family)
        if len(runs) <= 12:  # under the panel: inside, it would hide the curves
            ax.legend(fontsize=5, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.2))
    return _save(fig, out, "training_curves")


def read_curves(model_dirs: list[Path]) -> dict[str, pd.DataFrame]:
    curves = {}
    for d in model_dirs:
        tsv = d / "dvclive" / "plots" / "metrics" / "train" / "loss.tsv"
        if tsv.is_file():
            curves[f"{d.parent.name}/{d.name}"] = pd.read_csv(tsv, sep="\t")
    return curves


# --- everything ---------------------------------------------------------------------------------------------

def headline(sds: pd.DataFrame, ctd: pd.DataFrame) -> dict:
    """results/metrics.json: the numbers `dvc metrics show` and `dvc exp show` display."""
    out: dict = {}
    if not sds.empty:
        s = summarize(sds, ["backbone", "method", "metric"])
        for r in s.itertuples():
            key = "base" if r.method == "CLIP (base)" else \
                "lam" + r.method.split("λ=")[1].rstrip(")")  # lam0 is the COCO fine-tune control
            metric = re.sub(r"[^a-z0-9]+", "_", r.metric.lower()).strip("_")
            out.setdefault("sds_clip", {}).setdefault(r.backbone, {}).setdefault(key, {})[metric] = round(r.mean, 4)
    if not ctd.empty:
        c = summarize(ctd, ["task", "metric", "setting", "method"])
        for r in c.itertuples():
            out.setdefault("clip_td", {}).setdefault(r.task, {}).setdefault(r.setting.replace("-", "_"), {}) \
                .setdefault(r.method, {})[r.metric] = round(r.mean, 4)
    return out


def aggregate(metrics_root: str | Path, model_dirs: list[str | Path], out: str | Path) -> dict:
    """Write tables/, figures/, plots/ and metrics.json under ``out``; returns the headline dict."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update(STYLE)
    metrics_root, out = Path(metrics_root), Path(out)
    for sub in ("tables", "figures", "plots"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    sds = sds_clip_rows(metrics_root) if (metrics_root / "sds_clip").is_dir() else pd.DataFrame()
    ctd = clip_td_rows(metrics_root) if (metrics_root / "clip_td").is_dir() else pd.DataFrame()
    teacher = {p.parent.name: json.loads(p.read_text())
               for p in sorted((metrics_root / "teacher").glob("*/winoground_diffusion.json"))}
    figures: list[Path] = []
    if not sds.empty:
        sds_clip_tables(sds, out / "tables")
        figures += figure_compositional(sds, out / "figures")
        figures += figure_lambda(sds, out / "figures")
        figures += figure_teacher(sds, teacher, out / "figures")
        sds.to_csv(out / "plots" / "sds_clip_runs.csv", index=False)
    if not ctd.empty:
        clip_td_tables(ctd, out / "tables")
        figures += figure_lowshot(ctd, out / "figures")
        figures += figure_shift(ctd, out / "figures")
        low = ctd[ctd["setting"].str.match(r"full|lowshot-")].copy()
        low["fraction"] = low["setting"].map(lambda s: 1.0 if s == "full" else float(s.split("-")[1]) / 100)
        low.to_csv(out / "plots" / "clip_td_lowshot.csv", index=False)
    curves = read_curves([Path(d) for d in model_dirs])
    if curves:
        figures += figure_training(curves, out / "figures")
        pd.concat([df.assign(run=run) for run, df in curves.items()]).to_csv(
            out / "plots" / "training_loss.csv", index=False)
    result = headline(sds, ctd)
    atomic_write_json(out / "metrics.json", result)
    atomic_write_text(out / "figures" / "INDEX.txt", "\n".join(p.name for p in figures) + "\n")
    return result
