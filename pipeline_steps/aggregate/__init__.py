"""The end of the DAG: every run's metrics gathered into the papers' tables, figures and one
headline ``metrics.json``.

Inputs are the per-run reports the evaluation steps write (``results/metrics/...``) and the dvclive
curves in the model folders.  Outputs (``aggregate(...)``):

- ``tables/sds_clip.{csv,md,tex}``: per backbone, rows base CLIP / COCO fine-tune (lambda = 0) /
  SDS-CLIP at the lambda selected on held-out COCO captions, then the whole lambda sweep; columns
  Winoground text/image/group, ARO VG-R / VG-A / COCO-Ord / Flickr-Ord, SugarCrepe mean, each
  zero-shot set and the selection score.
- ``tables/sds_clip_diagnostics.{csv,md}``: per SDS-CLIP run, the L_CLIP / L_SDS gradient norms and
  their ratio, h_w's fit, and whether the teacher reads the caption on h_w(f(x)) as on the real image.
- ``tables/clip_td.{csv,md,tex}``: per task (and VCR metric), rows finetune / naive / targeted and
  the image-ablated baselines (``blank_image`` and ``shuffled_image``: finetune with the images blanked,
  or each swapped for another evaluation image; never marked best);
  columns full, each low-shot fraction, each domain shift.
- ``tables/clip_td_domains.{csv,md}``: the full split and each shift by the visual domain of the
  evaluation images, so that a shift stands beside the full split's score on the same domain.
- ``figures/*.{png,svg}``: low-shot curves, domain-shift bars, Winoground/ARO bars with CIs, the
  lambda sweep, the teacher's score next to CLIP's, SDS-CLIP's gradient norms, training curves.
- ``metrics.json`` (DVC metrics) and ``plots/*.csv`` (DVC plots).

Cells are percentages: ``mean ± sd (n=seeds)`` over seeds when there are several, else the value with its 95%
bootstrap CI; the best value of each column (within a table) is marked (bold).  The CSVs are tidy
(one row per cell) with mean, sd, seeds, ci_low and ci_high (per-seed bounds averaged).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

from ..io import atomic_write_json, atomic_write_text
from .figures import (STYLE, figure_compositional, figure_grad_norms, figure_lambda, figure_lowshot, figure_shift,
                      figure_teacher, figure_training)
from .reports import (clip_td_domain_rows, clip_td_rows, read_curves, read_grad_norms, sds_clip_diagnostics,
                      sds_clip_rows, selected_lambdas, summarize)
from .tables import clip_td_domain_table, clip_td_tables, sds_clip_tables, sds_diagnostics_table

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
        # the lambda chosen on held-out COCO captions, with its run's numbers (``dvc exp show`` columns)
        for backbone, lam in selected_lambdas(sds).items():
            out["sds_clip"][backbone]["selected"] = {"lambda": lam, **out["sds_clip"][backbone][f"lam{lam:g}"]}
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
        by_domain = clip_td_domain_rows(metrics_root)
        if not by_domain.empty:  # reports written before per_domain have none
            clip_td_domain_table(by_domain, out / "tables")
        figures += figure_lowshot(ctd, out / "figures")
        figures += figure_shift(ctd, out / "figures")
        low = ctd[ctd["setting"].str.match(r"full|lowshot-")].copy()
        low["fraction"] = low["setting"].map(lambda s: 1.0 if s == "full" else float(s.split("-")[1]) / 100)
        low.to_csv(out / "plots" / "clip_td_lowshot.csv", index=False)
    norms = read_grad_norms([Path(d) for d in model_dirs])
    diagnostics = sds_clip_diagnostics([Path(d) for d in model_dirs], norms)
    if not diagnostics.empty:
        sds_diagnostics_table(diagnostics, out / "tables")
    if not norms.empty:
        figures += figure_grad_norms(norms, out / "figures")
    curves = read_curves([Path(d) for d in model_dirs])
    if curves:
        figures += figure_training(curves, out / "figures")
        pd.concat([df.assign(run=run) for run, df in curves.items()]).to_csv(
            out / "plots" / "training_loss.csv", index=False)
    result = headline(sds, ctd)
    atomic_write_json(out / "metrics.json", result)
    atomic_write_text(out / "figures" / "INDEX.txt", "\n".join(p.name for p in figures) + "\n")
    return result
