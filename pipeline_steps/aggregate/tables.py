"""The papers' tables: Markdown, LaTeX and tidy CSV, cells ``mean ± sd`` over seeds (or value and CI)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..tasks import TASKS
from ..tasks.examples import IMAGE_ABLATIONS
from .reports import METHOD_ORDER, SELECTION_METRIC, selected_lambdas, summarize

def cell_text(row: pd.Series) -> str:
    if row["seeds"] > 1:
        return f"{100 * row['mean']:.1f} ± {100 * row['sd']:.1f} (n={row['seeds']})"
    if np.isfinite(row["ci_low"]):
        return f"{100 * row['mean']:.1f} [{100 * row['ci_low']:.1f}, {100 * row['ci_high']:.1f}]"
    return f"{100 * row['mean']:.1f}"


def pivot(summary: pd.DataFrame, index: str, columns: str, row_order: list, column_order: list,
          baselines: tuple = ()):
    """(text table, best-per-column mask) with rows and columns in the given order; ``baselines``
    rows are shown but never marked best."""
    text = summary.assign(text=summary.apply(cell_text, axis=1)).pivot(index=index, columns=columns, values="text")
    means = summary.pivot(index=index, columns=columns, values="mean")
    rows = [r for r in row_order if r in text.index]
    cols = [c for c in column_order if c in text.columns]
    text, means = text.loc[rows, cols], means.loc[rows, cols]
    contenders = means.drop(index=[r for r in baselines if r in means.index])
    best = means.eq(contenders.max(axis=0), axis=1) & (len(contenders) > 1)
    best.loc[[r for r in baselines if r in best.index]] = False
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


def sds_method(lam: float) -> str:
    return "COCO fine-tune (λ=0)" if lam == 0 else f"SDS-CLIP (λ={lam:g})"


def sds_clip_tables(rows: pd.DataFrame, out: Path) -> dict[str, str]:
    """Per backbone: base CLIP / COCO fine-tune / SDS-CLIP at the lambda selected on COCO val, then the
    whole lambda sweep."""
    summary = summarize(rows, ["backbone", "method", "metric"])
    summary.to_csv(out / "sds_clip.csv", index=False)
    metric_order = list(dict.fromkeys(rows["metric"]))
    selected = selected_lambdas(rows)
    md, tex = ["# SDS-CLIP\n"], []
    for backbone, part in summary.groupby("backbone", sort=True):
        order = sds_method_order(part)
        headline = [m for m in order[:2] if m in set(part["method"])]
        if backbone in selected:
            headline.append(sds_method(selected[backbone]))
            chosen = (f"λ = {selected[backbone]:g}, selected on {SELECTION_METRIC.split(' (')[0]} "
                      f"(held-out COCO captions) among λ > 0")
        else:
            chosen = "no λ > 0 in the grid"
        text, best = pivot(part, "method", "metric", headline, metric_order)
        caption = f"SDS-CLIP, {backbone}: accuracy (%), best per column in bold; {chosen}."
        md += [f"\n## {backbone}\n\n{chosen}.\n\n", markdown(text, best, "method")]
        tex.append(latex(text, best, "method", caption))
        text, best = pivot(part, "method", "metric", order, metric_order)
        md += [f"\n### {backbone}: λ sweep\n\n", markdown(text, best, "method")]
        tex.append(latex(text, best, "method", f"SDS-CLIP, {backbone}: the λ sweep, accuracy (%)."))
    (out / "sds_clip.md").write_text("".join(md))
    (out / "sds_clip.tex").write_text("\n".join(tex))
    return {"sds_clip": "".join(md)}


def sds_diagnostics_table(diagnostics: pd.DataFrame, out: Path) -> None:
    """tables/sds_clip_diagnostics.{csv,md}: per run, the gradient-norm medians, h_w's fit and the
    teacher's reading of h_w(f(x)) next to the real image (matched_wins: own caption beats another's)."""
    diagnostics.to_csv(out / "sds_clip_diagnostics.csv", index=False)
    columns = {"lambda": "λ", "seed": "seed", "grad_norm_clip_ln": "‖g_CLIP‖ LN", "grad_norm_sds_ln": "‖g_SDS‖ LN",
               "norm_ratio_clip_over_sds": "ratio", "grad_norm_sds_h_w": "‖g_SDS‖ h_w", "h_w_fit_r2": "h_w fit R²",
               "teacher_real_matched_wins": "teacher reads real", "teacher_h_w_matched_wins": "teacher reads h_w(f(x))"}
    shown = diagnostics[[c for c in columns if c in diagnostics.columns]].rename(columns=columns)
    lines = ["# SDS-CLIP diagnostics\n",
             "Gradient norms: medians over the logged steps, unweighted by λ; ratio = ‖g_CLIP‖ / ‖g_SDS‖ at the "
             "LayerNorms, the λ at which both losses weigh the same. Teacher reads: the rate at which an image's own "
             "held-out caption denoises it better than another image's caption (chance 0.5), for the real image's "
             "encoding and for h_w(f(x)) at the end of training.\n",
             "| " + " | ".join(shown.columns) + " |", "|" + "---|" * len(shown.columns)]
    for _, r in shown.iterrows():
        lines.append("| " + " | ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in r) + " |")
    (out / "sds_clip_diagnostics.md").write_text("\n".join(lines) + "\n")


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
        text, best = pivot(part, "method", "setting", methods, [setting_label(s) for s in order],
                           baselines=IMAGE_ABLATIONS)
        title = f"{TASKS[task].title}, {metric}"
        md += [f"\n## {title}\n\n", markdown(text, best, "method")]
        tex.append(latex(text, best, "method", f"CLIP-TD, {title} (%), best per column in bold."))
    (out / "clip_td.md").write_text("".join(md))
    (out / "clip_td.tex").write_text("\n".join(tex))


def clip_td_domain_table(rows: pd.DataFrame, out: Path) -> None:
    """tables/clip_td_domains.{csv,md}: the full split and each shift scored on each visual domain of
    their evaluation images. A shift that evaluates on one domain stands beside the full split's score
    on that domain: what training without the domain costs, on the same kind of images."""
    summary = summarize(rows, ["task", "metric", "method", "setting", "domain"])
    summary.to_csv(out / "clip_td_domains.csv", index=False)
    md = ["# CLIP-TD by visual domain of the evaluation images\n\n",
          "Each column is a split scored on the evaluation images of one visual domain (the number of examples in parentheses); "
          "the full split's columns are the in-distribution reference for a shift's.\n"]
    for (task, metric), part in summary.groupby(["task", "metric"], sort=False):
        examples = rows[(rows["task"] == task) & (rows["metric"] == metric)].groupby(["setting", "domain"])["examples"].max()
        label = lambda setting, domain: f"{setting_label(setting)}, {domain} ({examples[(setting, domain)]})"  # noqa: E731
        order = setting_order(set(part["setting"]))
        pairs = sorted(set(zip(part["setting"], part["domain"])), key=lambda p: (order.index(p[0]), p[1]))
        part = part.assign(column=[label(s, d) for s, d in zip(part["setting"], part["domain"])])
        methods = [m for m in METHOD_ORDER if m in set(part["method"])] + sorted(set(part["method"]) - set(METHOD_ORDER))
        text, best = pivot(part, "method", "column", methods, [label(s, d) for s, d in pairs],
                           baselines=IMAGE_ABLATIONS)
        md += [f"\n## {TASKS[task].title}, {metric}\n\n", markdown(text, best, "method")]
    (out / "clip_td_domains.md").write_text("".join(md))
