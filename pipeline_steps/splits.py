"""Low-shot and domain-shift splits of the task datasets (VQA v2, SNLI-VE, VCR).

Every split is one JSON file ``<splits>/<dataset>/<name>.json`` with ``train`` and ``eval`` id
lists and a ``stats`` block.  Names: ``full``, ``lowshot-<percent>-seed<seed>``, ``shift-<kind>``.

Low-shot subsets are drawn from the training split, stratified by the task label (VQA: the
majority answer; SNLI-VE: the gold label; VCR: the answer index), and **nested**: for one seed each
label's records are put in one random order and a fraction takes the first ``round(f * n)`` of that
order, so a smaller fraction's subset is inside every larger one.  Evaluation always uses the full
evaluation split.

Domain-shift splits (choices written down here because the paper does not state them):

- ``priors`` (VQA, after VQA-CP v2): train and val are pooled; per question type, the groups of
  questions sharing a majority answer are shuffled and whole groups go to ``eval`` until it holds
  ``eval_fraction`` of that type, so each question type's answer prior differs between train and eval.
- ``movie`` (VCR): labelled records pooled; ``eval_fraction`` of the movies go to eval, so train and
  eval movies are disjoint.
- ``source`` (VCR): train on LSMDC movies, evaluate on MovieClips ones.
- ``domain`` (SNLI-VE, VQA, VCR): train on the training split's ``plain`` images, evaluate on the
  evaluation split's ``textured`` images (the visual domain is measured on each image when it is
  prepared; see :func:`pipeline_steps.data.shards.texture_score`).
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from pathlib import Path

import pandas as pd

from .errors import InputError, ParamsError
from .data.registry import TASKS
from .data.shards import PreparedDataset
from .grid import percent_name
from .io import atomic_dir, atomic_write_text, dumps_json
from .seeding import rng_for


def lowshot_name(fraction: float, seed: int) -> str:
    return f"lowshot-{percent_name(fraction)}-seed{seed}"


def split_names(dataset: str, splits_cfg: dict) -> list[str]:
    """Every split file the configuration asks for, without the ``.json``."""
    names = ["full"]
    if dataset in splits_cfg["lowshot"]["datasets"]:
        names += [lowshot_name(f, s) for s in splits_cfg["lowshot"]["seeds"]
                  for f in splits_cfg["lowshot"]["fractions"]]
    names += [f"shift-{kind}" for kind in splits_cfg["shift"].get(dataset, [])]
    return names


def _round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def nested_lowshot(ids: list[str], labels: list, fractions: list[float], seed: int,
                   salt: str = "") -> dict[float, list[str]]:
    """Stratified, nested subsets of ``ids`` for each fraction (see the module docstring)."""
    rng = rng_for(seed, "lowshot", salt)
    by_label: dict[str, list[str]] = defaultdict(list)
    for i, label in zip(ids, labels):
        by_label[str(label)].append(i)
    orders = {label: [members[j] for j in rng.permutation(len(members))]
              for label, members in sorted(by_label.items())}
    largest = max(orders, key=lambda k: (len(orders[k]), k)) if orders else None
    subsets = {}
    for f in sorted(fractions):
        chosen = [i for label, order in orders.items()
                  for i in order[:_round_half_up(f * len(order))]]
        if not chosen and largest is not None:
            chosen = orders[largest][:1]  # never an empty training set
        subsets[f] = sorted(chosen)
    return subsets


def priors_shift(records: list[dict], eval_fraction: float, seed: int) -> tuple[list, list]:
    """VQA-CP-style split: whole (question type, answer) groups go to train or eval."""
    groups: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        groups[r["question_type"]][r["multiple_choice_answer"]].append(r["id"])
    train, evaluation = [], []
    rng = rng_for(seed, "priors")
    for qtype in sorted(groups):
        answers = sorted(groups[qtype])
        target = eval_fraction * sum(len(groups[qtype][a]) for a in answers)
        held: list[str] = []
        for j in rng.permutation(len(answers)):
            members = groups[qtype][answers[j]]
            if len(held) + len(members) <= target:
                held += members
            else:
                train += members
        if not held and len(answers) > 1:
            # every group is larger than the target: hold out the smallest one
            smallest = min(answers, key=lambda a: (len(groups[qtype][a]), a))
            held = groups[qtype][smallest]
            train = [i for i in train if i not in set(held)]
        evaluation += held
    return sorted(train), sorted(evaluation)


def movie_shift(records: list[dict], eval_fraction: float, seed: int) -> tuple[list, list]:
    movies = sorted({r["movie"] for r in records})
    rng = rng_for(seed, "movie")
    n_eval = max(1, min(len(movies) - 1, _round_half_up(eval_fraction * len(movies))))
    held = {movies[j] for j in rng.permutation(len(movies))[:n_eval]}
    train = sorted(r["id"] for r in records if r["movie"] not in held)
    evaluation = sorted(r["id"] for r in records if r["movie"] in held)
    return train, evaluation


def _label_stats(records_by_id: dict, ids: list[str], field: str, top: int = 10) -> dict:
    counts = Counter(str(records_by_id[i][field]) for i in ids)
    return {"n": len(ids), "labels": len(counts),
            "top_labels": {k: v for k, v in counts.most_common(top)}}


def build(dataset: str, prepared: str | Path, out: str | Path, splits_cfg: dict) -> list[str]:
    """Write every split of ``dataset`` into the directory ``out``; returns the split names."""
    if dataset not in TASKS:
        raise ValueError(f"splits are defined for {', '.join(TASKS)}, not {dataset!r}")
    task = TASKS[dataset]
    label = task["label"]
    with PreparedDataset(prepared) as data:
        records = list(data.records())
        domain_by_image = data.index["domain"].to_dict()
    domain_of = {r["id"]: domain_by_image[r["image"]] for r in records}
    by_id = {r["id"]: r for r in records}
    train_recs = [r for r in records if r["split"] == task["train"]]
    eval_recs = [r for r in records if r["split"] == task["eval"]]
    labelled = [r for r in records if r.get(label) is not None]
    if not train_recs or not eval_recs:
        raise InputError(f"{prepared}: needs records in splits '{task['train']}' and '{task['eval']}'")
    train_ids = [r["id"] for r in train_recs]
    eval_ids = [r["id"] for r in eval_recs]

    splits: dict[str, dict] = {"full": {"setting": "full", "train": train_ids, "eval": eval_ids}}
    low = splits_cfg["lowshot"]
    if dataset in low["datasets"]:
        for seed in low["seeds"]:
            subsets = nested_lowshot(train_ids, [r[label] for r in train_recs], low["fractions"],
                                     seed, salt=dataset)
            for f, ids in subsets.items():
                splits[lowshot_name(f, seed)] = {"setting": f"lowshot-{percent_name(f)}",
                                                 "fraction": f, "seed": seed, "train": ids,
                                                 "eval": eval_ids}
    shift = splits_cfg["shift"]
    for kind in shift.get(dataset, []):
        if kind == "priors":
            tr, ev = priors_shift(labelled, shift["eval_fraction"], shift["seed"])
        elif kind == "movie":
            tr, ev = movie_shift(labelled, shift["eval_fraction"], shift["seed"])
        elif kind == "source":
            tr = sorted(r["id"] for r in labelled if r["source"] == "lsmdc")
            ev = sorted(r["id"] for r in labelled if r["source"] != "lsmdc")
        elif kind == "domain":
            tr = sorted(i for i in train_ids if domain_of[i] == "plain")
            ev = sorted(i for i in eval_ids if domain_of[i] == "textured")
        else:
            raise ParamsError(f"unknown shift kind {kind!r} for {dataset}")
        if not tr or not ev:
            raise InputError(f"{dataset}: shift-{kind} leaves an empty side "
                             f"(train {len(tr)}, eval {len(ev)}); the data has too few records")
        splits[f"shift-{kind}"] = {"setting": f"shift-{kind}", "train": tr, "eval": ev}

    with atomic_dir(out) as tmp:
        for name, split in splits.items():
            stats = {"train": _label_stats(by_id, split["train"], label),
                     "eval": _label_stats(by_id, split["eval"], label),
                     "train_domains": dict(Counter(domain_of[i] for i in split["train"])),
                     "eval_domains": dict(Counter(domain_of[i] for i in split["eval"]))}
            if dataset == "vcr":
                stats["train_movies"] = len({by_id[i]["movie"] for i in split["train"]})
                stats["eval_movies"] = len({by_id[i]["movie"] for i in split["eval"]})
            doc = {"dataset": dataset, "name": name, "label_field": label, **split, "stats": stats}
            (tmp / f"{name}.json").write_text(dumps_json(doc), encoding="utf-8")
    return list(splits)


def _majority_share(stats: dict) -> float:
    return round(max(stats["top_labels"].values(), default=0) / max(stats["n"], 1), 4)


def load_split(path: str | Path, known_ids: set[str] | None = None) -> dict:
    """Read a split file (its "train" and "eval" id lists must be non-empty); with ``known_ids``, fail
    naming any id the dataset does not have."""
    path = Path(path)
    doc = json.loads(path.read_text(encoding="utf-8"))
    for key in ("train", "eval"):
        if not isinstance(doc.get(key), list) or not doc[key]:
            raise InputError(f"{path}: '{key}' must be a non-empty list of record ids")
    if known_ids is not None:
        unknown = sorted({i for part in ("train", "eval") for i in doc[part]} - known_ids)
        if unknown:
            shown = ", ".join(unknown[:10]) + (" ..." if len(unknown) > 10 else "")
            raise InputError(f"{path}: {len(unknown)} ids are not in the dataset: {shown}")
    return doc


def summarize(split_dirs: list[str | Path], out_csv: str | Path, out_md: str | Path) -> pd.DataFrame:
    """One table of every split: sizes and label distribution (CSV + Markdown)."""
    rows = []
    for d in split_dirs:
        for path in sorted(Path(d).glob("*.json"), key=_split_order):
            doc = json.loads(path.read_text(encoding="utf-8"))
            st = doc["stats"]
            rows.append({"dataset": doc["dataset"], "split": doc["name"], "train": st["train"]["n"],
                         "eval": st["eval"]["n"], "train_labels": st["train"]["labels"],
                         "eval_labels": st["eval"]["labels"],
                         "train_majority_share": _majority_share(st["train"]),
                         "eval_majority_share": _majority_share(st["eval"]),
                         "train_domains": " ".join(f"{k}={v}" for k, v in sorted(st["train_domains"].items())),
                         "eval_domains": " ".join(f"{k}={v}" for k, v in sorted(st["eval_domains"].items()))})
    table = pd.DataFrame(rows)
    atomic_write_text(out_csv, table.to_csv(index=False))
    atomic_write_text(out_md, _markdown(table))
    return table


def _split_order(path: Path) -> tuple:
    """full, then low-shot by seed and fraction, then shifts."""
    name = path.stem
    if name.startswith("lowshot-"):
        _, pct, seed = name.split("-")
        return (1, int(seed.removeprefix("seed")), float(pct), name)
    return (0 if name == "full" else 2, 0, 0.0, name)


def _markdown(table: pd.DataFrame) -> str:
    header = "| " + " | ".join(table.columns) + " |"
    rule = "|" + "|".join("---" for _ in table.columns) + "|"
    body = ["| " + " | ".join(str(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([header, rule, *body]) + "\n"
