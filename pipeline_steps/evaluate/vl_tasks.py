"""Evaluation of a CLIP-TD student on its split's evaluation ids: VQA accuracy, SNLI-VE accuracy,
VCR Q->A / QA->R / Q->AR, each with a bootstrap CI over examples, and per-group breakdowns (the task's,
and ``per_domain``: by the visual domain of the evaluation image, which puts a domain shift beside the
full split's score on the same domain); the same headline metrics with every image blanked
(``blank_image``: what the text alone gives) and with every image swapped for another evaluation
image (``shuffled_image``: what a wrong image gives).

The training job writes the run's logits on the evaluation ids (``predictions.npz``) while its
model is in memory; this step scores them against the labels, with numpy alone.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..data.shards import PreparedDataset
from ..errors import InputError, MissingInput
from ..metrics import with_ci
from ..tasks import get_task
from ..splits import load_split
from ..tasks.examples import IMAGE_ABLATIONS, PREDICTIONS, load_examples


def read_predictions(model_folder: Path, eval_ids: list[str],
                     split_file: str | Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The run's (N, outputs) logits with the images, and per image ablation, in the order of ``eval_ids``."""
    path = model_folder / PREDICTIONS
    if not path.is_file():
        raise MissingInput(f"{path} is missing: the run folder was not written by train-clip-td")
    with np.load(path, allow_pickle=False) as saved:
        missing = [a for a in IMAGE_ABLATIONS if f"{a}_logits" not in saved.files]
        if missing:
            raise InputError(f"{path} has no {' or '.join(missing)} predictions (an older run folder); "
                             f"train the run again")
        ids, logits = saved["ids"].tolist(), saved["logits"]
        ablated = {a: saved[f"{a}_logits"] for a in IMAGE_ABLATIONS}
    if ids != eval_ids:
        raise InputError(f"{path} holds predictions for other ids than the evaluation ids of {split_file}; "
                         f"train the run again on this split")
    return logits, ablated


def evaluate_clip_td(model_folder: str | Path, prepared: str | Path, split_file: str | Path,
                     eval_cfg: dict) -> dict:
    model_folder = Path(model_folder)
    meta = json.loads((model_folder / "task.json").read_text())
    task = meta["task"]
    split = load_split(split_file)
    examples = load_examples(task, prepared, split["eval"])
    logits, ablated_logits = read_predictions(model_folder, split["eval"], split_file)
    boot = eval_cfg["bootstrap"]
    ci = lambda values: with_ci(values, boot["n"], boot["seed"], boot["alpha"])  # noqa: E731
    mean_only = lambda values: {"value": float(np.mean(values)), "n": len(values)}  # noqa: E731
    with PreparedDataset(prepared) as data:
        domains = np.array([data.domain(e.image) for e in examples])

    def scored(values: np.ndarray) -> dict:
        """The task's report, and its headline metrics on each visual domain's examples (without CIs:
        the per-group breakdowns say where, not how surely)."""
        result = get_task(task).report(values, examples, meta["outputs"], ci)
        result["per_domain"] = {}
        for domain in sorted(set(domains)):
            rows = np.flatnonzero(domains == domain)
            part = get_task(task).report(values[rows], [examples[i] for i in rows], meta["outputs"], mean_only)
            result["per_domain"][str(domain)] = {"examples": len(rows), **part["headline"]}
        return result

    report: dict = {"task": task, "split": Path(split_file).stem, "examples": len(examples)}
    report.update(scored(logits))
    # the image-ablated baselines: the same model with every image blanked or shuffled (headline
    # metrics with CIs, and the per-group breakdown that tells where the image counts)
    for name, values in ablated_logits.items():
        ablated = scored(values)
        report[name] = {k: v for k, v in ablated.items()
                        if k == "headline" or k.startswith("per_") or k.removesuffix("_ci") in ablated["headline"]}
    return report
