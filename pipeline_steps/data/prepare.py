"""Turn raw sources into prepared datasets: normalised records + image shards.

Every prepared record is a flat JSON object with ``id`` (unique string), ``split`` and the image
key(s) it uses (``image`` or ``image_0``/``image_1``); the other fields keep the benchmark's own
names.  Image keys are the image's path inside its raw source, so records of different datasets
that share an image name it the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path

from ..errors import InputError, MissingInput
from ..io import atomic_dir, dumps_json, write_jsonl
from . import aro, coco, imagefolder, snli_ve, sugarcrepe, vcr, vqa, winoground
from .registry import PREPARED_FROM
from .shards import RECORDS, ShardWriter

# (record, [(image key, file on disk), ...])
Item = tuple[dict, list[tuple[str, Path]]]


def _coco(raw: Path) -> Iterator[Item]:
    for split, image_set in (("train", "train2017"), ("val", "val2017")):
        for c in coco.load_captions(raw / "coco" / "annotations" / f"captions_{image_set}.json",
                                    raw / "coco" / image_set):
            key = f"{image_set}/{c.file_name}"
            yield ({"id": str(c.id), "split": split, "image_id": c.image_id, "image": key,
                    "caption": c.caption}, [(key, c.image)])


def _flickr30k(raw: Path) -> Iterator[Item]:
    """One record per caption; images that an evaluation reads (the Karpathy test split of ARO's Flickr
    order set, SNLI-VE's dev and test images) are ``test``, the others ``train``."""
    root = raw / "flickr30k"
    test = {img.image_name for img in coco.load_karpathy_blip(root / "flickr30k_test.json", root)}
    for split in ("dev", "test"):
        test |= {f"flickr30k-images/{it.image.name}"
                 for it in snli_ve.load(raw / "snli_ve", split, root / "flickr30k-images")}
    for name, captions in coco.load_flickr_tokens(root / "results_20130124.token").items():
        key = f"flickr30k-images/{name}"
        image = root / key
        if not image.is_file():
            raise InputError(f"{root / 'results_20130124.token'}: {name} has captions but no image at {image}")
        for k, caption in enumerate(captions):
            yield ({"id": f"{name}#{k}", "split": "test" if key in test else "train", "image": key,
                    "caption": caption}, [(key, image)])


def _winoground(raw: Path) -> Iterator[Item]:
    for e in winoground.load(raw / "winoground"):
        keys = [f"images/{p.name}" for p in (e.image_0, e.image_1)]
        yield ({"id": str(e.id), "split": "test", "caption_0": e.caption_0, "caption_1": e.caption_1,
                "image_0": keys[0], "image_1": keys[1], "tag": e.tag,
                "secondary_tag": e.secondary_tag, "num_main_preds": e.num_main_preds,
                "collapsed_tag": e.collapsed_tag}, list(zip(keys, (e.image_0, e.image_1))))


def _aro_vg(kind: str) -> Callable[[Path], Iterator[Item]]:
    def items(raw: Path) -> Iterator[Item]:
        for it in aro.load_vg(raw / "aro", kind):
            key = f"images/{it.image_path}"
            record = {"id": str(it.index), "split": "test", "image": key, "bbox": list(it.bbox),
                      "true_caption": it.true_caption, "false_caption": it.false_caption}
            if kind == "relation":
                record["relation_name"] = it.relation_name
            else:
                record["attributes"] = list(it.attributes)
            yield record, [(key, it.image)]
    return items


def _aro_order(source: str, file_name: str) -> Callable[[Path], Iterator[Item]]:
    def items(raw: Path) -> Iterator[Item]:
        n = 0
        for img in coco.load_karpathy_blip(raw / source / file_name, raw / source):
            for caption in img.captions:  # every caption is one test case
                yield ({"id": str(n), "split": "test", "image": img.image_name, "caption": caption},
                       [(img.image_name, img.image)])
                n += 1
    return items


def _sugarcrepe(raw: Path) -> Iterator[Item]:
    for it in sugarcrepe.load(raw / "sugarcrepe", raw / "coco" / "val2017"):
        key = f"val2017/{it.filename}"
        yield ({"id": f"{it.category}-{it.key}", "split": "test", "category": it.category,
                "image": key, "caption": it.caption, "negative_caption": it.negative_caption},
               [(key, it.image)])


def _vqa(raw: Path) -> Iterator[Item]:
    for split, image_set in (("train", "train2014"), ("val", "val2014")):
        for q in vqa.load(raw / "vqa", image_set, raw / "coco" / image_set):
            key = f"{image_set}/{q.image.name}"
            yield ({"id": str(q.question_id), "split": split, "image_id": q.image_id, "image": key,
                    "question": q.question, "question_type": q.question_type,
                    "answer_type": q.answer_type,
                    "multiple_choice_answer": q.multiple_choice_answer, "answers": q.answers},
                   [(key, q.image)])


def _snli_ve(raw: Path) -> Iterator[Item]:
    for split in snli_ve.SPLITS:
        for it in snli_ve.load(raw / "snli_ve", split, raw / "flickr30k" / "flickr30k-images"):
            key = f"flickr30k-images/{it.image.name}"
            yield ({"id": it.pair_id, "split": split, "image_id": it.image_id, "image": key,
                    "premise": it.premise, "hypothesis": it.hypothesis, "label": it.label},
                   [(key, it.image)])


def _vcr(raw: Path) -> Iterator[Item]:
    for split in vcr.SPLITS:
        for it in vcr.load(raw / "vcr", split):
            key = f"vcr1images/{it.img_fn}"
            yield ({"id": it.annot_id, "split": split, "image": key, "movie": it.movie,
                    "source": it.source, "objects": it.objects, "boxes": it.boxes,
                    "question": it.question, "answer_choices": it.answer_choices,
                    "answer_label": it.answer_label, "rationale_choices": it.rationale_choices,
                    "rationale_label": it.rationale_label}, [(key, it.image)])


def _class_folders(name: str) -> Callable[[Path], Iterator[Item]]:
    def items(raw: Path) -> Iterator[Item]:
        _, images = imagefolder.load(raw / "zeroshot" / name)
        for n, it in enumerate(images):
            key = f"{name}/{it.rel_path}"
            yield {"id": str(n), "split": "test", "image": key, "label": it.label}, [(key, it.image)]
    return items


ITEMS: dict[str, Callable[[Path], Iterator[Item]]] = {
    "coco": _coco,
    "flickr30k": _flickr30k,
    "winoground": _winoground,
    "aro_vg_relation": _aro_vg("relation"),
    "aro_vg_attribution": _aro_vg("attribution"),
    "aro_coco_order": _aro_order("coco", "coco_karpathy_test.json"),
    "aro_flickr_order": _aro_order("flickr30k", "flickr30k_test.json"),
    "sugarcrepe": _sugarcrepe,
    "vqa": _vqa,
    "snli_ve": _snli_ve,
    "vcr": _vcr,
    "zeroshot_shapes": _class_folders("shapes"),
    "zeroshot_cifar10": _class_folders("cifar10"),
    "zeroshot_cifar100": _class_folders("cifar100"),
    "zeroshot_colors": _class_folders("colors"),
}
assert set(ITEMS) == set(PREPARED_FROM)
log = logging.getLogger(__name__)


def prepare(dataset: str, raw_root: str | Path, out: str | Path, cfg: dict) -> dict:
    """Build ``out`` (records + shards + index) from ``raw_root/<source>``; ``cfg`` = ``prepare``.

    Returns the summary also written to ``out/summary.json``.
    """
    if dataset not in ITEMS:
        raise ValueError(f"unknown dataset {dataset!r}; known: {', '.join(ITEMS)}")
    raw_root = Path(raw_root)
    for source in PREPARED_FROM[dataset]:
        if not (raw_root / source).is_dir():
            raise MissingInput(f"raw source {raw_root / source} is missing: run the data stage "
                                    f"(synthesize or download) for '{source}' first")
    with atomic_dir(out) as tmp:
        writer = ShardWriter(tmp, float(cfg["shard_size_mb"]), float(cfg["texture_threshold"]))
        records, ids, splits = [], set(), {}
        skipped: dict[str, str] = {}  # record id -> the image that could not be decoded
        for record, images in ITEMS[dataset](raw_root):
            if record["id"] in ids:
                raise InputError(f"{dataset}: duplicate record id {record['id']!r}")
            ids.add(record["id"])
            bad = None
            for key, path in images:
                try:
                    writer.add(key, path.read_bytes())
                except ValueError as e:
                    if not cfg.get("skip_bad_images", False):
                        raise InputError(f"{dataset}: record {record['id']!r}: {e} ({path}); set "
                                         f"prepare.skip_bad_images to leave such records out") from None
                    bad = str(path)
                    log.warning("%s: record %r left out: %s (%s)", dataset, record["id"], e, path)
            if bad is not None:
                skipped[record["id"]] = bad
                continue
            records.append(record)
            splits[record["split"]] = splits.get(record["split"], 0) + 1
        index = writer.close()
        write_jsonl(tmp / RECORDS, records)
        summary = {"dataset": dataset, "records": len(records), "splits": splits,
                   "images": len(index), "shards": writer.shard_count,
                   "image_bytes": int(index["size"].sum()),
                   "domains": {k: int(v) for k, v in index["domain"].value_counts().items()},
                   "skipped_records": len(skipped), "skipped_images": sorted(set(skipped.values())),
                   "skipped_ids": sorted(skipped)}
        (tmp / "summary.json").write_text(dumps_json(summary), encoding="utf-8")
    return summary
