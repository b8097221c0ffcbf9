"""The papers' figures (PNG + SVG): low-shot curves, domain-shift bars, compositional bars, the lambda
sweep, the teacher against CLIP, SDS-CLIP's gradient norms, training curves."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

from ..grid import parse_clip_td_run
from ..tasks import TASKS
from ..tasks.examples import BLANK_IMAGE, SHUFFLED_IMAGE
from .reports import METHOD_ORDER, selected_lambdas, summarize
from .tables import sds_method, sds_method_order, setting_label, setting_order

STYLE = {"figure.dpi": 110, "axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False,
         "axes.spines.right": False, "font.size": 9, "legend.frameon": False}


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
    """Headline metric vs training fraction (full = 100%), one line per method (mean over seeds),
    band = +- sd over seeds (the 95% CI for one seed)."""
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
            # the image-ablated baselines in grey: the floor the image must lift
            style = {BLANK_IMAGE: {"color": "grey", "linestyle": "--"},
                     SHUFFLED_IMAGE: {"color": "dimgrey", "linestyle": ":"}}.get(method, {})
            line, = ax.plot(x, mean, marker="o", label=method, **style)
            if g.size().max() > 1:
                sd = 100 * g.std().fillna(0.0).to_numpy()
                low, high = mean - sd, mean + sd
            else:  # one seed: the run's 95% bootstrap CI
                cis = part[part["method"] == method].groupby("fraction")[["ci_low", "ci_high"]].mean()
                low, high = 100 * cis["ci_low"].to_numpy(), 100 * cis["ci_high"].to_numpy()
            ax.fill_between(x, low, high, alpha=0.2, color=line.get_color())
        ax.set_xscale("log")
        ax.set_xlabel("training data (% of the full split)")
        ax.set_ylabel(TASKS[task].figure_label)
        seeds = int(part.groupby(["method", "fraction"]).size().max()) if len(part) else 0
        band = "± sd" if seeds > 1 else "95% CI"
        ax.set_title(f"{TASKS[task].title} ({seeds} seed{'s' if seeds != 1 else ''}; band: {band})", fontsize=9)
    axes[0][0].legend(fontsize=7)
    return _save(fig, out, "clip_td_lowshot")


# the image-ablated baselines in grey, as in the low-shot figure
BASELINE_BARS = {BLANK_IMAGE: {"color": "silver", "hatch": "//"}, SHUFFLED_IMAGE: {"color": "grey", "hatch": ".."}}


def _bars(ax, labels: list[str], groups: list[str], means, lows, highs) -> None:
    """Grouped bars: one group per label, one bar per group name, error bars from lows/highs."""
    width = 0.8 / max(1, len(groups))
    x = np.arange(len(labels))
    for i, g in enumerate(groups):
        m = np.asarray(means[i], float)
        pos = x + (i - (len(groups) - 1) / 2) * width
        ax.bar(pos, m, width, label=g, **BASELINE_BARS.get(g, {}))
        lo, hi = np.asarray(lows[i], float), np.asarray(highs[i], float)
        has = np.isfinite(lo) & np.isfinite(hi)  # no bar where the metric has no CI (e.g. macro averages)
        if has.any():
            ax.errorbar(pos[has], m[has], yerr=np.clip(np.vstack([m[has] - lo[has], hi[has] - m[has]]), 0, None),
                        fmt="none", ecolor="black", capsize=2, linewidth=1)
    ax.set_xticks(x, labels, rotation=20, ha="right")


def _legend_below(fig, ax, n: int) -> None:
    """One legend under the whole figure, below the (rotated) tick labels; needs constrained layout."""
    fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncol=min(n, 3), fontsize=7)


def _whiskers(part: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """``part`` (a summary) with the error-bar bounds ``low``/``high``, and what they are: +- sd over
    seeds where a row has several, else the 95% bootstrap CI of its one run (the base CLIP has one)."""
    several = part["seeds"] > 1
    low = np.where(several, part["mean"] - part["sd"], part["ci_low"])
    high = np.where(several, part["mean"] + part["sd"], part["ci_high"])
    seeds = int(part["seeds"].max()) if len(part) else 1
    if several.all():
        label = f"± sd over {seeds} seeds"
    elif several.any():
        label = f"± sd over {seeds} seeds; 95% CI where one run"
    else:
        label = "95% bootstrap CI, 1 seed"
    return part.assign(low=low, high=high), label


def figure_shift(rows: pd.DataFrame, out: Path) -> list[Path]:
    """Full vs each domain shift per task, bars per method; error bars: +- sd over seeds (95% CI for one seed)."""
    import matplotlib.pyplot as plt

    tasks = [t for t in TASKS if t in set(rows["task"])]
    fig, axes = plt.subplots(1, len(tasks), figsize=(3.4 * len(tasks), 3.2), squeeze=False, layout="constrained")
    for ax, task in zip(axes[0], tasks):
        part, whiskers = _whiskers(summarize(rows[(rows["task"] == task) & (rows["metric"] == TASKS[task].figure_metric)
                                                  & rows["setting"].str.match(r"full|shift-")], ["method", "setting"]))
        settings = setting_order(set(part["setting"]))
        methods = [m for m in METHOD_ORDER if m in set(part["method"])]
        cell = {(r.method, r.setting): r for r in part.itertuples()}
        get = lambda f: [[100 * getattr(cell[(m, s)], f) if (m, s) in cell else np.nan for s in settings]  # noqa: E731
                         for m in methods]
        _bars(ax, [setting_label(s) for s in settings], methods, get("mean"), get("low"), get("high"))
        ax.set_ylabel(TASKS[task].figure_label)
        ax.set_title(f"{TASKS[task].title} (error bars: {whiskers})", fontsize=9)
    _legend_below(fig, axes[0][0], 4)
    return _save(fig, out, "clip_td_shift")


def figure_compositional(rows: pd.DataFrame, out: Path) -> list[Path]:
    """Winoground and ARO per backbone: base CLIP / COCO fine-tune / SDS-CLIP at the lambda selected on
    COCO val, error bars +- sd over seeds (95% CIs for one seed)."""
    import matplotlib.pyplot as plt

    metrics = [m for m in dict.fromkeys(rows["metric"]) if m.startswith(("Winoground", "ARO"))]
    backbones = sorted(set(rows["backbone"]))
    fig, axes = plt.subplots(len(backbones), 1, figsize=(7.5, 0.4 + 2.9 * len(backbones)), squeeze=False,
                             layout="constrained")
    selected = selected_lambdas(rows)
    for ax, backbone in zip(axes[:, 0], backbones):
        part, whiskers = _whiskers(summarize(rows[rows["backbone"] == backbone], ["method", "metric"]))
        methods = [m for m in sds_method_order(part)[:2] if m in set(part["method"])]
        if backbone in selected:
            methods.append(sds_method(selected[backbone]))
        cell = {(r.method, r.metric): r for r in part.itertuples()}
        get = lambda f: [[100 * getattr(cell[(m, k)], f) if (m, k) in cell else np.nan for k in metrics]  # noqa: E731
                         for m in methods]
        labels = [m + (", selected on COCO val" if m.startswith("SDS-CLIP") else "") for m in methods]
        _bars(ax, metrics, labels, get("mean"), get("low"), get("high"))
        ax.set_ylabel("accuracy (%)")
        ax.set_title(f"{backbone}: compositional benchmarks (error bars: {whiskers})")
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


NORMALIZATION_LABELS = {"empty_caption": "normalised", "none": "raw"}


def figure_teacher(rows: pd.DataFrame, teacher_reports: dict[str, dict], out: Path) -> list[Path]:
    """The diffusion teacher's own Winoground score next to base CLIP and SDS-CLIP runs."""
    import matplotlib.pyplot as plt

    kinds = ["text", "image", "group"]
    part = summarize(rows[rows["metric"].str.startswith("Winoground")], ["backbone", "method", "metric"])
    names, means, lows, highs = [], [], [], []
    for name, report in teacher_reports.items():
        # both scorings: raw denoising errors and less the empty caption's (DiffusionITM)
        scorings = report.get("by_normalization", {"as reported": report})
        for scoring, block in scorings.items():
            names.append(f"diffusion teacher ({name}), {NORMALIZATION_LABELS.get(scoring, scoring)}")
            vals = [block["overall"][k] for k in kinds]
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


def figure_grad_norms(norms: pd.DataFrame, out: Path) -> list[Path]:
    """Per backbone, the L_CLIP gradient norm at the trained LayerNorms against lambda times L_SDS's,
    over training steps (mean over seeds): where the two meet, L_SDS moves the update as much as
    L_CLIP; L_SDS's norm at h_w, which L_CLIP does not reach, in a second panel."""
    import matplotlib.pyplot as plt

    backbones = sorted(set(norms["backbone"]))
    fig, axes = plt.subplots(1, 2 * len(backbones), figsize=(7.2 * len(backbones), 3.2), squeeze=False,
                             layout="constrained")
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, backbone in enumerate(backbones):
        ln_ax, h_w_ax = axes[0][2 * i], axes[0][2 * i + 1]
        part = norms[norms["backbone"] == backbone]
        for j, lam in enumerate(sorted(set(part["lambda"]))):
            colour = colours[j % len(colours)]  # one colour per lambda in both panels
            mean = part[part["lambda"] == lam].groupby(["norm", "step"])["value"].mean()
            if "grad_norm_clip_ln" in mean:
                ln_ax.plot(mean["grad_norm_clip_ln"], color=colour, label=f"λ = {lam:g}: L_CLIP")
            if "grad_norm_sds_ln" in mean:
                ln_ax.plot(lam * mean["grad_norm_sds_ln"], color=colour, linestyle="--",
                           label=f"λ = {lam:g}: λ × L_SDS")
            if "grad_norm_sds_h_w" in mean:
                h_w_ax.plot(mean["grad_norm_sds_h_w"], color=colour, label=f"λ = {lam:g}")
        ln_ax.set_title(f"{backbone}: gradient norms at the LayerNorms")
        h_w_ax.set_title(f"{backbone}: L_SDS gradient norm at h_w")
        ln_ax.set_yscale("log")  # the two losses' norms differ by ~30x before lambda
        for ax in (ln_ax, h_w_ax):
            ax.set_xlabel("training step")
            ax.set_ylabel("gradient norm (L2, mean over seeds)")
            ax.legend(fontsize=7)
    return _save(fig, out, "sds_clip_grad_norms")


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
