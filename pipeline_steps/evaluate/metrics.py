"""Pure metric functions (no I/O, no models): each takes arrays of scores and returns numbers.

Conventions follow the reference implementations (see the README's metric section): comparisons
are strict, so a tie counts as a failure.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from ..tasks.vqa_answers import process_digit_article, process_punctuation


def winoground_correct(scores) -> dict[str, np.ndarray]:
    """Per-example booleans. ``scores[n, c, i]`` = similarity of caption c with image i.

    text: for each image the right caption wins; image: for each caption the right image wins;
    group: both (Thrush et al. 2022, §3.2).
    """
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 3 or s.shape[1:] != (2, 2):
        raise ValueError(f"Winoground scores must have shape (N, 2, 2), got {s.shape}")
    c0_i0, c0_i1, c1_i0, c1_i1 = s[:, 0, 0], s[:, 0, 1], s[:, 1, 0], s[:, 1, 1]
    text = (c0_i0 > c1_i0) & (c1_i1 > c0_i1)
    image = (c0_i0 > c0_i1) & (c1_i1 > c1_i0)
    return {"text": text, "image": image, "group": text & image}


def winoground_scores(scores) -> dict[str, float]:
    """{"text", "image", "group"} as fractions of examples."""
    return {k: float(v.mean()) if len(v) else float("nan") for k, v in winoground_correct(scores).items()}


def macro_accuracy(correct: Sequence[bool], groups: Sequence, min_count: int = 1,
                   exclude: Iterable = ()) -> float:
    """Mean over groups of the per-group accuracy; groups with fewer than ``min_count`` items or
    listed in ``exclude`` are dropped.  NaN when no group is left."""
    excluded = set(exclude)
    per_group: dict = {}
    for ok, g in zip(correct, groups, strict=True):
        if g not in excluded:
            per_group.setdefault(g, []).append(bool(ok))
    accs = [np.mean(v) for v in per_group.values() if len(v) >= min_count]
    return float(np.mean(accs)) if accs else float("nan")


def group_accuracies(correct: Sequence[bool], groups: Sequence) -> dict[str, dict]:
    """{group: {"accuracy", "n"}} for reporting."""
    out: dict = {}
    for ok, g in zip(correct, groups, strict=True):
        out.setdefault(str(g), []).append(bool(ok))
    return {g: {"accuracy": float(np.mean(v)), "n": len(v)} for g, v in sorted(out.items())}


def precision_at_1(scores) -> float:
    """``scores`` (N, K); option 0 is correct; it must beat every other option strictly."""
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 2 or s.shape[1] < 2:
        raise ValueError(f"scores must have shape (N, K>=2), got {s.shape}")
    return float((s[:, 0] > s[:, 1:].max(axis=1)).mean()) if len(s) else float("nan")


def pairwise_accuracy(positive, negative) -> float:
    """Fraction of items whose positive score is strictly above the negative one (SugarCrepe)."""
    p, n = np.asarray(positive, dtype=np.float64), np.asarray(negative, dtype=np.float64)
    return float((p > n).mean()) if len(p) else float("nan")


def bootstrap_ci(values, n_boot: int = 1000, seed: int = 0, alpha: float = 0.05) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean of ``values``."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, len(v), size=(n_boot, len(v)))].mean(axis=1)
    return float(np.quantile(means, alpha / 2)), float(np.quantile(means, 1 - alpha / 2))


def with_ci(values, n_boot: int, seed: int, alpha: float) -> dict:
    """{"value", "ci_low", "ci_high", "n"} for a vector of per-item 0/1 or real outcomes."""
    v = np.asarray(values, dtype=np.float64)
    low, high = bootstrap_ci(v, n_boot, seed, alpha)
    return {"value": float(v.mean()) if len(v) else float("nan"), "ci_low": low, "ci_high": high,
            "n": int(len(v))}


# --- VQA v2 (port of the official vqaEval.py, GT-Vision-Lab/VQA; answer processing in tasks/vqa_answers.py)

def vqa_accuracy(prediction: str, answers: Sequence[str]) -> float:
    """Official VQA v2 accuracy of one predicted answer against the ten human ``answers``.

    As in vqaEval.py, punctuation and digit/article processing is applied only when the ten answers
    are not all identical, and the score is the mean over the ten leave-one-out subsets of
    ``min(1, #matches among the other nine / 3)``.
    """
    if len(answers) != 10:
        raise ValueError(f"VQA accuracy needs the 10 human answers, got {len(answers)}")
    gts = [a.replace("\n", " ").replace("\t", " ").strip() for a in answers]
    pred = prediction.replace("\n", " ").replace("\t", " ").strip()
    if len(set(gts)) > 1:
        gts = [process_digit_article(process_punctuation(a)) for a in gts]
        pred = process_digit_article(process_punctuation(pred))
    accs = []
    for i in range(len(gts)):
        others = gts[:i] + gts[i + 1:]
        accs.append(min(1.0, sum(a == pred for a in others) / 3))
    return float(np.mean(accs))


# --- VCR and SNLI-VE -----------------------------------------------------------------------------------

def vcr_accuracies(answer_pred, answer_label, rationale_pred, rationale_label) -> dict[str, float]:
    """Q->A, QA->R and the joint Q->AR: an example counts for Q->AR only when both are right
    (rowanz/r2c eval_q2ar.py; not the product of the two accuracies)."""
    a_hit = np.asarray(answer_pred) == np.asarray(answer_label)
    r_hit = np.asarray(rationale_pred) == np.asarray(rationale_label)
    if a_hit.shape != r_hit.shape:
        raise ValueError(f"answer and rationale arrays differ in length: {a_hit.shape} vs {r_hit.shape}")
    if not len(a_hit):
        return {"q2a": float("nan"), "qa2r": float("nan"), "q2ar": float("nan")}
    return {"q2a": float(a_hit.mean()), "qa2r": float(r_hit.mean()), "q2ar": float((a_hit & r_hit).mean())}


def accuracy(pred, label) -> float:
    """Fraction of predictions equal to their label (SNLI-VE)."""
    p, y = np.asarray(pred), np.asarray(label)
    if p.shape != y.shape:
        raise ValueError(f"predictions and labels differ in shape: {p.shape} vs {y.shape}")
    return float((p == y).mean()) if len(p) else float("nan")
