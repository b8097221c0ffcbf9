"""The synthetic world: every dataset of the two papers, generated in its real, native layout.

``synthesize(source, cfg, out)`` writes one *raw source* (what a download and extraction of the real
data would leave on disk) into ``out``:

============  =====================================================================================
source        files (as in the real release)
============  =====================================================================================
coco          ``train2017/``, ``val2017/``, ``train2014/``, ``val2014/`` JPEGs;
              ``annotations/captions_{train,val}2017.json``; ``coco_karpathy_test.json`` (BLIP)
flickr30k     ``flickr30k-images/<id>.jpg``; ``results_20130124.token``; ``flickr30k_test.json``
winoground    ``examples.jsonl`` + ``images/<ex_N_img_K>.png``
aro           ``visual_genome_relation.json``, ``visual_genome_attribution.json``, ``images/``
sugarcrepe    ``data/<category>.json`` (7 files; images are COCO val2017)
vqa           ``v2_OpenEnded_mscoco_{train2014,val2014}_questions.json``,
              ``v2_mscoco_{train2014,val2014}_annotations.json`` (images are COCO 2014)
snli_ve       ``snli_ve_{train,dev,test}.jsonl`` (images are Flickr30k)
vcr           ``{train,val,test}.jsonl`` + ``vcr1images/<movie dir>/<image>.{jpg,json}``
zeroshot      ``<dataset>/<class>/<image>.png`` class folders (the ImageNet/CIFAR folder layout):
              ``shapes`` (one class per shape) and ``colors`` (one class per colour)
============  =====================================================================================

Sources that refer to another source's images (sugarcrepe, vqa, snli_ve, ARO's order sets) derive
the same scenes from ``(seed, image set, index)``, so they never read each other's files.
Generation is deterministic: the same configuration gives the same bytes.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from ..errors import ParamsError
from ..io import atomic_dir, dumps_json, write_jsonl
from ..seeding import rng_for
from . import grammar
from .registry import RAW_SOURCES
from .scenes import (COLORS, SHAPES, Scene, encode, make_scene, object_box, render,
                     single_object_scene)

# every raw source of the registry has a synthetic writer (test_synthetic checks each one)
SOURCES = RAW_SOURCES

# The keys of the ``synthetic`` params section that each source reads (besides seed, image size and the
# textured domain's light): a change elsewhere does not regenerate it.
SOURCE_KEYS = {
    source: ("seed", "image_size", "textured_light", *keys)
    for source, keys in {
        "coco": ("coco",), "flickr30k": ("flickr30k",), "winoground": ("winoground",),
        "aro": ("aro",), "sugarcrepe": ("coco", "sugarcrepe"), "vqa": ("coco", "vqa"),
        "snli_ve": ("flickr30k", "snli_ve"), "vcr": ("vcr",), "zeroshot": ("zeroshot",),
    }.items()
}

# Image-id offsets keep ids of different COCO image sets apart.
COCO_ID_BASE = {"train2014": 100_000, "val2014": 200_000, "train2017": 300_000, "val2017": 400_000}
FLICKR_ID_BASE = 1_000_000_000


def coco_image_id(image_set: str, index: int) -> int:
    return COCO_ID_BASE[image_set] + index


def coco_file_name(image_set: str, image_id: int) -> str:
    if image_set.endswith("2014"):
        return f"COCO_{image_set}_{image_id:012d}.jpg"
    return f"{image_id:012d}.jpg"


def flickr_image_id(index: int) -> int:
    return FLICKR_ID_BASE + 7 * index


class _Writer:
    """Shared state of one source's generation: seed, image size, the textured domain's light, output root."""

    def __init__(self, cfg: dict, root: Path):
        self.cfg = cfg
        self.seed = int(cfg["seed"])
        self.size = int(cfg["image_size"])
        self.light = tuple(float(v) for v in cfg["textured_light"])
        self.root = root

    def rng(self, *parts: object):
        return rng_for(self.seed, *parts)

    def scene(self, image_set: str, index: int, domain: str | None = None) -> Scene:
        return make_scene(self.seed, image_set, index, domain)

    def image(self, rel_path: str, scene: Scene, fmt: str = "jpg") -> None:
        path = self.root / rel_path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(encode(render(scene, self.size, self.seed, self.light), fmt))

    def json(self, rel_path: str, obj: Any) -> None:
        path = self.root / rel_path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dumps_json(obj), encoding="utf-8")

    def jsonl(self, rel_path: str, rows: list[dict]) -> None:
        path = self.root / rel_path
        path.parent.mkdir(parents=True, exist_ok=True)
        write_jsonl(path, rows)


COCO_INFO = {"description": "Synthetic COCO-format captions (pipeline synthetic world)",
             "version": "1.0", "year": 2017, "contributor": "pipeline_steps", "url": "",
             "date_created": "2017/09/01"}
COCO_LICENSES = [{"id": 1, "name": "Attribution License",
                  "url": "http://creativecommons.org/licenses/by/2.0/"}]


def write_coco(w: _Writer) -> None:
    sizes = w.cfg["coco"]
    for image_set in ("train2017", "val2017", "train2014", "val2014"):
        images, annotations = [], []
        for i in range(int(sizes[image_set])):
            image_id = coco_image_id(image_set, i)
            scene = w.scene(image_set, i)
            name = coco_file_name(image_set, image_id)
            w.image(f"{image_set}/{name}", scene)
            images.append({"license": 1, "file_name": name, "height": w.size, "width": w.size,
                           "coco_url": f"http://images.cocodataset.org/{image_set}/{name}",
                           "flickr_url": "", "date_captured": "2013-11-14 16:28:13",
                           "id": image_id})
            for k, caption in enumerate(grammar.captions(scene, w.rng("coco-captions", image_set, i))):
                annotations.append({"image_id": image_id, "id": image_id * 10 + k,
                                    "caption": caption})
        if image_set.endswith("2017"):
            w.json(f"annotations/captions_{image_set}.json",
                   {"info": COCO_INFO, "licenses": COCO_LICENSES, "images": images,
                    "annotations": annotations})
    # BLIP/LAVIS Karpathy test file: the first images of val2014, five captions each.
    karpathy = []
    for i in range(int(sizes["karpathy_test"])):
        image_id = coco_image_id("val2014", i)
        caps = grammar.captions(w.scene("val2014", i), w.rng("coco-captions", "val2014", i))
        karpathy.append({"image": f"val2014/{coco_file_name('val2014', image_id)}",
                         "caption": caps})
    w.json("coco_karpathy_test.json", karpathy)


def write_flickr30k(w: _Writer) -> None:
    sizes = w.cfg["flickr30k"]
    token_lines, test = [], []
    for i in range(int(sizes["images"])):
        image_id = flickr_image_id(i)
        scene = w.scene("flickr30k", i)
        w.image(f"flickr30k-images/{image_id}.jpg", scene)
        caps = grammar.flickr_captions(scene, w.rng("flickr-captions", i))
        token_lines += [f"{image_id}.jpg#{k}\t{c}" for k, c in enumerate(caps)]
        if i < int(sizes["test"]):
            test.append({"image": f"flickr30k-images/{image_id}.jpg", "caption": caps})
    (w.root / "results_20130124.token").write_text("\n".join(token_lines) + "\n", encoding="utf-8")
    w.json("flickr30k_test.json", test)


def write_winoground(w: _Writer) -> None:
    kinds = list(grammar.WINOGROUND_KINDS)
    rows = []
    for i in range(int(w.cfg["winoground"]["examples"])):
        kind = kinds[i % len(kinds)]
        caption_0, caption_1, scene0, scene1 = grammar.winoground_pair(kind, w.scene("winoground", i))
        tag, collapsed, preds = grammar.WINOGROUND_KINDS[kind]
        for k, scene in enumerate((scene0, scene1)):
            # the second image keeps the first one's texture seed: only the content differs
            w.image(f"images/ex_{i}_img_{k}.png", scene, fmt="png")
        rows.append({"id": i, "caption_0": caption_0, "caption_1": caption_1, "tag": tag,
                     "secondary_tag": "Symbolic" if i % 10 == 9 else "", "num_main_preds": preds,
                     "collapsed_tag": collapsed, "image_0": f"ex_{i}_img_0",
                     "image_1": f"ex_{i}_img_1"})
    w.jsonl("examples.jsonl", rows)


def _union_box(scene: Scene, size: int) -> tuple[int, int, int, int]:
    boxes = [object_box(o, size) for o in (scene.a, scene.b)]
    x1 = max(0, int(min(b[0] for b in boxes)) - 2)
    y1 = max(0, int(min(b[1] for b in boxes)) - 2)
    x2 = min(size, int(max(b[2] for b in boxes)) + 2)
    y2 = min(size, int(max(b[3] for b in boxes)) + 2)
    return x1, y1, x2 - x1, y2 - y1


def write_aro(w: _Writer) -> None:
    relation, attribution = [], []
    for kind, n in (("relation", w.cfg["aro"]["relation"]), ("attribution", w.cfg["aro"]["attribution"])):
        for i in range(int(n)):
            scene = w.scene(f"vg-{kind}", i)
            image_id = 2_300_000 + (0 if kind == "relation" else 500_000) + i
            w.image(f"images/{image_id}.jpg", scene)
            x, y, bw, bh = _union_box(scene, w.size)
            record = {"image_id": str(image_id), "image_path": f"{image_id}.jpg",
                      "bbox_x": x, "bbox_y": y, "bbox_w": bw, "bbox_h": bh}
            if kind == "relation":
                true, false = grammar.aro_relation(scene)
                relation.append({**record, "relation_name": scene.relation,
                                 "true_caption": true, "false_caption": false})
            else:
                true, false = grammar.aro_attribution(scene)
                attribution.append({**record, "attributes": [scene.a.color, scene.b.color],
                                    "obj1_name": scene.a.shape, "obj2_name": scene.b.shape,
                                    "true_caption": true, "false_caption": false})
    w.json("visual_genome_relation.json", relation)
    w.json("visual_genome_attribution.json", attribution)


def write_sugarcrepe(w: _Writer) -> None:
    n_images = int(w.cfg["coco"]["val2017"])
    per_category = int(w.cfg["sugarcrepe"]["per_category"])
    for c, category in enumerate(grammar.SUGARCREPE_CATEGORIES):
        data = {}
        for k in range(per_category):
            index = (k * 7 + c) % n_images
            scene = w.scene("val2017", index)
            caption, negative = grammar.sugarcrepe_pair(category, scene,
                                                        w.rng("sugarcrepe", category, k))
            data[str(k)] = {"filename": coco_file_name("val2017", coco_image_id("val2017", index)),
                            "caption": caption, "negative_caption": negative}
        w.json(f"data/{category}.json", data)


def write_vqa(w: _Writer) -> None:
    per_image = int(w.cfg["vqa"]["questions_per_image"])
    noise = float(w.cfg["vqa"]["answer_noise"])
    for image_set in ("train2014", "val2014"):
        questions, annotations = [], []
        for i in range(int(w.cfg["coco"][image_set])):
            image_id = coco_image_id(image_set, i)
            qs = grammar.vqa_questions(w.scene(image_set, i), w.rng("vqa", image_set, i), per_image)
            for k, q in enumerate(qs):
                question_id = image_id * 1000 + k
                questions.append({"image_id": image_id, "question": q["question"],
                                  "question_id": question_id})
                human = grammar.vqa_human_answers(q["answer"], q["answer_type"],
                                                  w.rng("vqa-answers", question_id), noise)
                annotations.append({
                    "question_id": question_id, "image_id": image_id,
                    "question_type": q["question_type"], "answer_type": q["answer_type"],
                    "multiple_choice_answer": Counter(human).most_common(1)[0][0],
                    "answers": [{"answer": a, "answer_confidence": "yes" if a == q["answer"] else "maybe",
                                 "answer_id": j + 1} for j, a in enumerate(human)]})
        header = {"info": {"description": "Synthetic VQA v2-format data", "version": "2.0"},
                  "license": {"name": "Creative Commons Attribution 4.0 International License",
                              "url": "http://creativecommons.org/licenses/by/4.0/"},
                  "data_subtype": image_set}
        w.json(f"v2_OpenEnded_mscoco_{image_set}_questions.json",
               {**header, "task_type": "Open-Ended", "data_type": "mscoco", "questions": questions})
        w.json(f"v2_mscoco_{image_set}_annotations.json",
               {**header, "data_type": "mscoco", "annotations": annotations})


def write_snli_ve(w: _Writer) -> None:
    n_images = int(w.cfg["flickr30k"]["images"])
    n_dev, n_test = int(w.cfg["snli_ve"]["dev_images"]), int(w.cfg["snli_ve"]["test_images"])
    if n_dev + n_test >= n_images:
        raise ParamsError("synthetic.snli_ve: dev_images + test_images must be below "
                         "synthetic.flickr30k.images")
    # SNLI-VE splits are disjoint by image: test first, then dev, the rest train.
    splits = {"test": range(0, n_test), "dev": range(n_test, n_test + n_dev),
              "train": range(n_test + n_dev, n_images)}
    for split, indices in splits.items():
        rows = []
        for i in indices:
            image_id = flickr_image_id(i)
            scene = w.scene("flickr30k", i)
            rng = w.rng("snli-ve", i)
            premise = grammar.flickr_captions(scene, w.rng("flickr-captions", i))[0]
            for hyp, label in grammar.snli_hypotheses(scene, rng):
                code = label[0]
                rows.append({"Flickr30K_ID": str(image_id), "annotator_labels": [label],
                             "captionID": f"{image_id}.jpg#0", "gold_label": label,
                             "pairID": f"{image_id}.jpg#0r1{code}", "sentence1": premise,
                             "sentence2": hyp})
        w.jsonl(f"snli_ve_{split}.jsonl", rows)


MOVIE_WORDS = ("RED", "RIVER", "NIGHT", "CITY", "STAR", "HOUSE", "GARDEN", "TRAIN", "WINTER",
               "ISLAND", "DOCTOR", "LETTER")


def vcr_movies(w: _Writer) -> list[tuple[str, str, str]]:
    """(movie, image directory, domain) per movie; lsmdc movies are plain, movieclips textured."""
    movies = []
    for m in range(int(w.cfg["vcr"]["movies"])):
        n = len(MOVIE_WORDS)
        title = f"{MOVIE_WORDS[m % n]}_{MOVIE_WORDS[(m * 5 + 7) % n]}"
        if m % 2 == 0:
            movie = f"{3000 + m:04d}_{title}"
            movies.append((movie, f"lsmdc_{movie}", "plain"))
        else:
            movie = f"The_{title.title()}_{m}"
            movies.append((movie, f"movieclips_{movie}", "textured"))
    return movies


def write_vcr(w: _Writer) -> None:
    movies = vcr_movies(w)
    counter = 0
    for split in ("train", "val", "test"):
        rows = []
        for i in range(int(w.cfg["vcr"][split])):
            rng = w.rng("vcr", split, i)
            movie, folder, domain = movies[int(rng.integers(len(movies)))]
            scene = w.scene(f"vcr-{split}", i, domain=domain)
            stamp = f"00.{counter // 60 % 60:02d}.{counter % 60:02d}.000-00.{counter // 60 % 60:02d}.{counter % 60:02d}.500"
            stem = f"{folder}/{movie}_{stamp}@{i % 7}"
            counter += 1
            w.image(f"vcr1images/{stem}.jpg", scene)
            boxes = [object_box(o, w.size) for o in scene.objects]
            w.json(f"vcr1images/{stem}.json", {
                "boxes": [b + [1.0] for b in boxes],
                "segms": [[[[b[0], b[1]], [b[2], b[1]], [b[2], b[3]], [b[0], b[3]]]] for b in boxes],
                "width": w.size, "height": w.size, "names": [o.shape for o in scene.objects]})
            item = grammar.vcr_question(scene, rng)
            row = {"movie": movie, "objects": [o.shape for o in scene.objects],
                   "interesting_scores": [0], "answer_likelihood": "likely",
                   "img_fn": f"{stem}.jpg", "metadata_fn": f"{stem}.json",
                   "question": item["question"], "answer_choices": item["answer_choices"],
                   "rationale_choices": item["rationale_choices"],
                   "img_id": f"{split}-{i}", "question_number": 0, "annot_id": f"{split}-{i}",
                   "match_fold": f"{split}-{i % 3}", "match_index": i}
            if split != "test":  # the real test file has its labels removed
                row.update(answer_label=item["answer_label"],
                           rationale_label=item["rationale_label"])
            rows.append(row)
        w.jsonl(f"{split}.jsonl", rows)


def write_zeroshot(w: _Writer) -> None:
    """Single-object images in class folders; each image shows exactly one class of each task."""
    n = int(w.cfg["zeroshot"]["images_per_class"])
    for i in range(n * len(SHAPES) * len(COLORS)):
        color, shape = list(COLORS)[i % len(COLORS)], SHAPES[(i // len(COLORS)) % len(SHAPES)]
        scene = single_object_scene(w.seed, "zeroshot", i, color, shape)
        if i < n * len(SHAPES):
            w.image(f"shapes/{shape}/{i:05d}.png", scene, fmt="png")
        if i < n * len(COLORS):
            w.image(f"colors/{color}/{i:05d}.png", scene, fmt="png")


WRITERS = {"coco": write_coco, "flickr30k": write_flickr30k, "winoground": write_winoground,
           "aro": write_aro, "sugarcrepe": write_sugarcrepe, "vqa": write_vqa,
           "snli_ve": write_snli_ve, "vcr": write_vcr, "zeroshot": write_zeroshot}


def synthesize(source: str, cfg: dict, out: str | Path) -> Path:
    """Write raw source ``source`` into ``out`` atomically; ``cfg`` is the ``synthetic`` section."""
    if source not in WRITERS:
        raise ValueError(f"unknown synthetic source {source!r}; known: {', '.join(SOURCES)}")
    out = Path(out)
    with atomic_dir(out) as tmp:
        WRITERS[source](_Writer(cfg, tmp))
        (tmp / "SYNTHETIC.json").write_text(
            dumps_json({"source": source, "generator": "pipeline_steps.data.synthetic",
                        "config": cfg}), encoding="utf-8")
    return out
