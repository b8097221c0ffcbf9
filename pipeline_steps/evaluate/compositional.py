"""CLIP on Winoground, ARO, SugarCrepe and zero-shot classification.

Every image and caption of a benchmark is embedded once (L2-normalised); all scores are dot
products of those embeddings.  Metric definitions: :mod:`pipeline_steps.metrics`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..errors import MissingInput
from .. import metrics
from ..grid import evaluated_datasets
from ..seeding import rng_for
from ..data.shards import PreparedDataset
from ..models.clip import encode_text, load_clip
from .perturbations import Tagger, perturbations, pre_caption


class ClipEmbedder:
    """Batched, normalised CLIP embeddings of PIL images and strings."""

    def __init__(self, clip_folder: str | Path, device: torch.device, batch_size: int):
        self.model, self.preprocess, self.tokenizer = load_clip(f"local-dir:{clip_folder}", device=str(device))
        self.model.eval()
        self.device, self.batch_size = device, batch_size

    @torch.no_grad()
    def images(self, images: Sequence) -> np.ndarray:
        out = []
        for i in range(0, len(images), self.batch_size):
            x = torch.stack([self.preprocess(im) for im in images[i:i + self.batch_size]]).to(self.device)
            out.append(self.model.encode_image(x, normalize=True).float().cpu())
        return torch.cat(out).numpy()

    @torch.no_grad()
    def texts(self, texts: Sequence[str]) -> np.ndarray:
        out = []
        for i in range(0, len(texts), self.batch_size):
            tokens = self.tokenizer(list(texts[i:i + self.batch_size])).to(self.device)
            out.append(encode_text(self.model, tokens, normalize=True).float().cpu())
        return torch.cat(out).numpy()

    def text_table(self, texts: Sequence[str]) -> tuple[np.ndarray, dict[str, int]]:
        """Embeddings of the unique strings, and each string's row."""
        unique = sorted(set(texts))
        return self.texts(unique), {t: i for i, t in enumerate(unique)}


def _ci(values, boot: dict) -> dict:
    return metrics.with_ci(values, boot["n"], boot["seed"], boot["alpha"])


def winoground(data: PreparedDataset, emb: ClipEmbedder, boot: dict) -> dict:
    records = list(data.records())
    keys = sorted({r[f"image_{k}"] for r in records for k in (0, 1)})
    image_emb = emb.images([data.image(k) for k in keys])
    row = {k: i for i, k in enumerate(keys)}
    text_emb, trow = emb.text_table([r[f"caption_{c}"] for r in records for c in (0, 1)])
    scores = np.array([[[text_emb[trow[r[f"caption_{c}"]]] @ image_emb[row[r[f"image_{i}"]]]
                         for i in (0, 1)] for c in (0, 1)] for r in records])
    return winoground_report(scores, records, boot)


def winoground_overall(scores: np.ndarray, boot: dict) -> dict:
    """{"overall": text/image/group, "diagnostics": pairwise and same-winner rates}, each with its CI."""
    return {"overall": {k: _ci(v, boot) for k, v in metrics.winoground_correct(scores).items()},
            "diagnostics": {k: _ci(v, boot) for k, v in metrics.winoground_diagnostics(scores).items()}}


def winoground_report(scores: np.ndarray, records: list[dict], boot: dict) -> dict:
    """Text/image/group with CIs overall, per collapsed_tag and per num_main_preds; the diagnostics overall."""
    correct = metrics.winoground_correct(scores)

    def block(mask) -> dict:
        return {k: _ci(v[mask], boot) for k, v in correct.items()}

    report = {"n": len(records), **winoground_overall(scores, boot), "by_collapsed_tag": {}, "by_num_main_preds": {}}
    for field, name in (("collapsed_tag", "by_collapsed_tag"), ("num_main_preds", "by_num_main_preds")):
        for value in sorted({r[field] for r in records}):
            report[name][str(value)] = block(np.array([r[field] == value for r in records]))
    return report


def _crop(image, bbox):
    x, y, w, h = bbox
    return image.crop((x, y, x + w, y + h))


def aro_vg(data: PreparedDataset, emb: ClipEmbedder, kind: str, aro_cfg: dict, boot: dict) -> dict:
    """VG-Relation / VG-Attribution: cropped image, [false, true] captions, correct iff true wins."""
    records = list(data.records())
    image_emb = emb.images([_crop(data.image(r["image"]), r["bbox"]) for r in records])
    text_emb, trow = emb.text_table([r[k] for r in records for k in ("true_caption", "false_caption")])
    true = np.array([text_emb[trow[r["true_caption"]]] @ image_emb[n] for n, r in enumerate(records)])
    false = np.array([text_emb[trow[r["false_caption"]]] @ image_emb[n] for n, r in enumerate(records)])
    correct = true > false
    if kind == "relation":
        groups = [r["relation_name"] for r in records]
        macro = metrics.macro_accuracy(correct, groups, exclude=aro_cfg["symmetric_relations"])
        rule = f"macro over relations, excluding {len(aro_cfg['symmetric_relations'])} symmetric ones"
    else:
        groups = [f"{r['attributes'][0]}_{r['attributes'][1]}" for r in records]
        macro = metrics.macro_accuracy(correct, groups, min_count=aro_cfg["attribute_min_count"])
        rule = f"macro over attribute pairs with >= {aro_cfg['attribute_min_count']} items"
    return {"macro_accuracy": macro, "rule": rule, "micro": _ci(correct, boot),
            "per_group": metrics.group_accuracies(correct, groups)}


def aro_order(data: PreparedDataset, emb: ClipEmbedder, seed: int, boot: dict,
              records: list[dict] | None = None) -> dict:
    """COCO-Order / Flickr30k-Order: P@1 of the original caption among it and 4 perturbations."""
    records = list(data.records()) if records is None else records
    tagger = Tagger()
    options = []
    for r in records:
        original = pre_caption(r["caption"])
        options.append([original] + perturbations(original, tagger, rng_for(seed, "aro-order", r["id"])))
    keys = sorted({r["image"] for r in records})
    image_emb = emb.images([data.image(k) for k in keys])
    row = {k: i for i, k in enumerate(keys)}
    text_emb, trow = emb.text_table([o for opts in options for o in opts])
    scores = np.array([[text_emb[trow[o]] @ image_emb[row[r["image"]]] for o in opts]
                       for r, opts in zip(records, options)])
    correct = scores[:, 0] > scores[:, 1:].max(axis=1)
    return {"precision_at_1": metrics.precision_at_1(scores), "ci": _ci(correct, boot),
            "tagger": tagger.name, "seed": seed}


def coco_val_order(data: PreparedDataset, emb: ClipEmbedder, selection: dict, boot: dict) -> dict:
    """The model-selection score: ARO's order test on held-out COCO captions (the val split).

    SDS-CLIP's lambda is chosen on it, never on a benchmark.  Captions are drawn with a fixed seed,
    so every model of a grid is scored on the same ones.
    """
    records = list(data.records("val"))
    if not records:
        raise MissingInput(f"{data.root} has no 'val' captions to select models on")
    n = min(int(selection["max_captions"]), len(records))
    chosen = sorted(rng_for(selection["seed"], "coco-val-selection").choice(len(records), size=n, replace=False))
    report = aro_order(data, emb, selection["seed"], boot, [records[i] for i in chosen])
    return report | {"split": "val", "captions": n}


SUGARCREPE_GROUPS = {"replace": ("replace_att", "replace_obj", "replace_rel"),
                     "swap": ("swap_att", "swap_obj"), "add": ("add_att", "add_obj")}


def sugarcrepe(data: PreparedDataset, emb: ClipEmbedder, boot: dict) -> dict:
    records = list(data.records())
    keys = sorted({r["image"] for r in records})
    image_emb = emb.images([data.image(k) for k in keys])
    row = {k: i for i, k in enumerate(keys)}
    text_emb, trow = emb.text_table([r[k] for r in records for k in ("caption", "negative_caption")])
    pos = np.array([text_emb[trow[r["caption"]]] @ image_emb[row[r["image"]]] for r in records])
    neg = np.array([text_emb[trow[r["negative_caption"]]] @ image_emb[row[r["image"]]] for r in records])
    categories = np.array([r["category"] for r in records])
    subsets = {c: _ci(pos[categories == c] > neg[categories == c], boot) for c in sorted(set(categories))}
    accs = {c: v["value"] for c, v in subsets.items()}
    groups = {g: float(np.mean([accs[c] for c in cs if c in accs])) for g, cs in SUGARCREPE_GROUPS.items()}
    return {"subsets": subsets, "groups": groups, "mean": float(np.mean(list(accs.values())))}


def zeroshot(data: PreparedDataset, emb: ClipEmbedder, templates: list[str], boot: dict) -> dict:
    """Top-1 accuracy; each class's text embedding is the normalised mean over the templates."""
    records = list(data.records())
    classes = sorted({r["label"] for r in records})
    class_emb = np.stack([emb.texts([t.format(c) for t in templates]).mean(axis=0) for c in classes])
    class_emb /= np.linalg.norm(class_emb, axis=1, keepdims=True)
    image_emb = emb.images([data.image(r["image"]) for r in records])
    predicted = (image_emb @ class_emb.T).argmax(axis=1)
    truth = np.array([classes.index(r["label"]) for r in records])
    return {"top1": _ci(predicted == truth, boot), "classes": classes, "chance": 1 / len(classes),
            "templates": templates}


def evaluate_clip(clip_folder: str | Path, prepared: list[str | Path], cfg: dict, device: torch.device) -> dict:
    """All four benchmark families and the COCO-val selection score for one model: {file stem: report}.

    ``prepared`` lists the prepared benchmark folders, found by name (``winoground``, ...).
    """
    by_name = {Path(p).name: Path(p) for p in prepared}
    needed = evaluated_datasets(cfg)
    missing = [n for n in needed if n not in by_name]
    if missing:
        raise MissingInput(f"prepared datasets missing for evaluation: {', '.join(missing)}")
    emb = ClipEmbedder(clip_folder, device, cfg["batch_size"])
    boot = cfg["bootstrap"]
    with PreparedDataset(by_name["winoground"]) as d:
        wino = winoground(d, emb, boot)
    aro = {}
    for name, kind in (("vg_relation", "relation"), ("vg_attribution", "attribution")):
        with PreparedDataset(by_name[f"aro_{name}"]) as d:
            aro[name] = aro_vg(d, emb, kind, cfg["aro"], boot)
    for name in ("coco_order", "flickr_order"):
        with PreparedDataset(by_name[f"aro_{name}"]) as d:
            aro[name] = aro_order(d, emb, cfg["aro"]["order_seed"], boot)
    with PreparedDataset(by_name["sugarcrepe"]) as d:
        sc = sugarcrepe(d, emb, boot)
    with PreparedDataset(by_name["coco"]) as d:
        selection = coco_val_order(d, emb, cfg["selection"], boot)
    zs = {}
    for name in cfg["zeroshot"]["datasets"]:
        with PreparedDataset(by_name[name]) as d:
            zs[name] = zeroshot(d, emb, cfg["zeroshot"]["templates"], boot)
    return {"winoground": wino, "aro": aro, "sugarcrepe": sc, "zeroshot": zs, "selection": selection}
