"""Pure metric functions (no I/O, no models): each takes arrays of scores and returns numbers.

Conventions follow the reference implementations (see the README's metric section): comparisons
are strict, so a tie counts as a failure.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence

import numpy as np


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


def winoground_diagnostics(scores) -> dict[str, np.ndarray]:
    """Per-example diagnostics beside the three scores (``scores[n, c, i]`` as above).

    pairwise_text / pairwise_image: the fraction of the example's two caption (image) comparisons
    won by the right one, chance 0.5; same_caption_wins: one caption beats the other on both images
    (a caption-level offset, not binding); same_image_wins: one image wins for both captions.
    """
    s = np.asarray(scores, dtype=np.float64)
    c0_i0, c0_i1, c1_i0, c1_i1 = s[:, 0, 0], s[:, 0, 1], s[:, 1, 0], s[:, 1, 1]
    return {"pairwise_text": ((c0_i0 > c1_i0).astype(float) + (c1_i1 > c0_i1)) / 2,
            "pairwise_image": ((c0_i0 > c0_i1).astype(float) + (c1_i1 > c1_i0)) / 2,
            "same_caption_wins": (c0_i0 > c1_i0) == (c0_i1 > c1_i1),
            "same_image_wins": (c0_i0 > c0_i1) == (c1_i0 > c1_i1)}


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


# --- VQA v2 (port of the official vqaEval.py, GT-Vision-Lab/VQA) ---------------------------------------

_CONTRACTIONS = {
    "aint": "ain't", "arent": "aren't", "cant": "can't", "couldve": "could've", "couldnt": "couldn't",
    "couldn'tve": "couldn't've", "couldnt've": "couldn't've", "didnt": "didn't", "doesnt": "doesn't",
    "dont": "don't", "hadnt": "hadn't", "hadnt've": "hadn't've", "hadn'tve": "hadn't've",
    "hasnt": "hasn't", "havent": "haven't", "hed": "he'd", "hed've": "he'd've", "he'dve": "he'd've",
    "hes": "he's", "howd": "how'd", "howll": "how'll", "hows": "how's", "Id've": "I'd've",
    "I'dve": "I'd've", "Im": "I'm", "Ive": "I've", "isnt": "isn't", "itd": "it'd", "itd've": "it'd've",
    "it'dve": "it'd've", "itll": "it'll", "let's": "let's", "maam": "ma'am", "mightnt": "mightn't",
    "mightnt've": "mightn't've", "mightn'tve": "mightn't've", "mightve": "might've",
    "mustnt": "mustn't", "mustve": "must've", "neednt": "needn't", "notve": "not've",
    "oclock": "o'clock", "oughtnt": "oughtn't", "ow's'at": "'ow's'at", "'ows'at": "'ow's'at",
    "'ow'sat": "'ow's'at", "shant": "shan't", "shed've": "she'd've", "she'dve": "she'd've",
    "she's": "she's", "shouldve": "should've", "shouldnt": "shouldn't", "shouldnt've": "shouldn't've",
    "shouldn'tve": "shouldn't've", "somebody'd": "somebodyd", "somebodyd've": "somebody'd've",
    "somebody'dve": "somebody'd've", "somebodyll": "somebody'll", "somebodys": "somebody's",
    "someoned": "someone'd", "someoned've": "someone'd've", "someone'dve": "someone'd've",
    "someonell": "someone'll", "someones": "someone's", "somethingd": "something'd",
    "somethingd've": "something'd've", "something'dve": "something'd've",
    "somethingll": "something'll", "thats": "that's", "thered": "there'd", "thered've": "there'd've",
    "there'dve": "there'd've", "therere": "there're", "theres": "there's", "theyd": "they'd",
    "theyd've": "they'd've", "they'dve": "they'd've", "theyll": "they'll", "theyre": "they're",
    "theyve": "they've", "twas": "'twas", "wasnt": "wasn't", "wed've": "we'd've", "we'dve": "we'd've",
    "weve": "we've", "werent": "weren't", "whatll": "what'll", "whatre": "what're", "whats": "what's",
    "whatve": "what've", "whens": "when's", "whered": "where'd", "wheres": "where's",
    "whereve": "where've", "whod": "who'd", "whod've": "who'd've", "who'dve": "who'd've",
    "wholl": "who'll", "whos": "who's", "whove": "who've", "whyll": "why'll", "whyre": "why're",
    "whys": "why's", "wont": "won't", "wouldve": "would've", "wouldnt": "wouldn't",
    "wouldnt've": "wouldn't've", "wouldn'tve": "wouldn't've", "yall": "y'all", "yall'll": "y'all'll",
    "y'allll": "y'all'll", "yall'd've": "y'all'd've", "y'alld've": "y'all'd've",
    "y'all'dve": "y'all'd've", "youd": "you'd", "youd've": "you'd've", "you'dve": "you'd've",
    "youll": "you'll", "youre": "you're", "youve": "you've",
}
_NUMBER_WORDS = {"none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4",
                 "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10"}
_ARTICLES = {"a", "an", "the"}
_PUNCTUATION = [";", r"/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<",
                "@", "`", ",", "?", "!"]
# The official pattern: "(?!<=" is a typo for a look-behind and is kept, to match official numbers.
_PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)")
_COMMA_STRIP = re.compile(r"(\d)(\,)(\d)")


def _process_punctuation(text: str) -> str:
    out = text
    for p in _PUNCTUATION:
        if (p + " " in text or " " + p in text) or re.search(_COMMA_STRIP, text) is not None:
            out = out.replace(p, "")
        else:
            out = out.replace(p, " ")
    return _PERIOD_STRIP.sub("", out, re.UNICODE)


def _process_digit_article(text: str) -> str:
    words = []
    for word in text.lower().split():
        word = _NUMBER_WORDS.get(word, word)
        if word not in _ARTICLES:
            words.append(word)
    return " ".join(_CONTRACTIONS.get(w, w) for w in words)


@functools.lru_cache(maxsize=65536)
def normalize_vqa_answer(answer: str) -> str:
    """The official answer normalisation (punctuation, digits, articles, contractions); memoised, as a
    split's answers repeat in every evaluation pass."""
    answer = answer.replace("\n", " ").replace("\t", " ").strip()
    return _process_digit_article(_process_punctuation(answer))


def vqa_soft_score(matches: int) -> float:
    """min(1, matches / 3) averaged over the 10 leave-one-out annotator subsets, in closed form:
    0, 0.3, 0.6, 0.9, 1.0 for 0, 1, 2, 3, >= 4 matching annotators (the training targets too)."""
    return (0.0, 0.3, 0.6, 0.9)[matches] if matches < 4 else 1.0


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
        gts = [normalize_vqa_answer(a) for a in gts]
        pred = normalize_vqa_answer(pred)
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
