"""The synthetic world: deterministic, true to its scenes, and readable by the real-format loaders."""

from __future__ import annotations

import json
import re
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from pipeline_steps.data import aro, coco, snli_ve, sugarcrepe, vcr, vqa, winoground
from pipeline_steps.data.grammar import (PLACES, SUGARCREPE_CATEGORIES, WINOGROUND_KINDS, captions,
                                         flickr_captions, snli_hypotheses, sugarcrepe_pair, winoground_pair)
from pipeline_steps.data.scenes import COLORS, NUMBER_WORDS, PLURAL, RELATIONS, make_scene, render
from pipeline_steps.seeding import rng_for
from pipeline_steps.data.synthetic import SOURCES, synthesize
from pipeline_steps.io import tree_digest

# --- an independent reader of the caption grammar, to check that captions are true -----------------
PHRASE = r"an? (?:(small|large) )?(\w+) (\w+)"
RELATION_CAPTION = re.compile(rf"^{PHRASE} ({'|'.join(RELATIONS)}) {PHRASE}$")


def find(scene, color, shape, size=None):
    matches = [o for o in scene.objects if o.color == color and o.shape == shape
               and (size is None or o.size == size)]
    return matches[0] if matches else None


def describes(caption: str, scene) -> bool:
    """True when a '<phrase> <relation> <phrase>' caption is correct for the scene."""
    m = RELATION_CAPTION.match(caption)
    assert m, f"not a relation caption: {caption!r}"
    size1, color1, shape1, rel, size2, color2, shape2 = m.groups()
    first, second = find(scene, color1, shape1, size1), find(scene, color2, shape2, size2)
    return bool(first and second and scene.relation_holds(first, rel, second))


def test_same_seed_gives_same_bytes_and_another_seed_differs(tmp_path, small_world):
    cfg, root = small_world
    for source in SOURCES:
        again = synthesize(source, cfg, tmp_path / "again" / source)
        assert tree_digest(again) == tree_digest(root / source), source
    other = synthesize("winoground", {**cfg, "seed": cfg["seed"] + 1}, tmp_path / "other")
    assert tree_digest(other) != tree_digest(root / "winoground")


@pytest.mark.parametrize("light", [(1.0, 1.0, 1.0), (1.0, 0.75, 0.5)])
def test_scene_rendering_shows_each_object_in_its_colour_under_its_domains_light(light):
    seen = Counter()
    for i in range(40):
        scene = make_scene(3, "check", i)
        seen[scene.domain] += 1
        pixels = np.asarray(render(scene, 64, 3, light))
        # the light scales each channel of the textured domain only: under a warm one, its yellow is
        # another colour than the plain domain's yellow
        scale = np.array(light) if scene.domain == "textured" else np.ones(3)
        for obj in scene.objects:
            cx, cy = int((obj.cell[0] + 0.5) * 64 / 3), int((obj.cell[1] + 0.5) * 64 / 3)
            expected = np.floor(np.array(COLORS[obj.color]) * scale)
            assert np.abs(pixels[cy, cx].astype(int) - expected).max() <= 1, (scene, obj)
    assert seen["plain"] > 0 and seen["textured"] > 0


@pytest.mark.parametrize("kind", list(WINOGROUND_KINDS))
def test_winoground_pairs_swap_word_order_and_match_their_images(kind):
    for i in range(60):
        c0, c1, scene0, scene1 = winoground_pair(kind, make_scene(0, "wino-test", i))
        assert c0 != c1
        # a bag-of-words model sees the two captions as identical, so it cannot beat chance
        assert Counter(c0.split()) == Counter(c1.split())
        if kind == "relation_and_attribute":
            continue  # a two-predicate caption; its images are checked in the next test
        assert describes(c0, scene0) and describes(c1, scene1)
        assert not describes(c1, scene0) and not describes(c0, scene1)


def test_two_predicate_winoground_pairs_are_true_only_for_their_image():
    pattern = re.compile(r"^the (\w+) is (.+) the (\w+) and the (\w+) is (\w+)$")

    def holds(caption, scene):
        s1, rel, s2, s3, color = pattern.match(caption).groups()
        objs = {o.shape: o for o in (scene.a, scene.b)}
        return scene.relation_holds(objs[s1], rel, objs[s2]) and objs[s3].color == color

    for i in range(60):
        c0, c1, scene0, scene1 = winoground_pair("relation_and_attribute", make_scene(0, "wino-both", i))
        assert holds(c0, scene0) and holds(c1, scene1)
        assert not holds(c1, scene0) and not holds(c0, scene1)


@pytest.mark.parametrize("category", SUGARCREPE_CATEGORIES)
def test_sugarcrepe_negatives_are_false_and_positives_true(category):
    for i in range(60):
        scene = make_scene(0, "sc-test", i)
        positive, negative = sugarcrepe_pair(category, scene, rng_for(0, "t", i))
        assert describes(positive, scene)
        if category == "add_obj":
            added = re.search(r" and an? (\w+) (\w+)$", negative).groups()
            assert find(scene, *added) is None
        else:
            assert not describes(negative, scene), (category, negative)
        if category.startswith("swap"):
            assert Counter(positive.split()) == Counter(negative.split())


def test_flickr_captions_are_true_and_say_more_than_cocos():
    """The CLIP's corpus (Flickr30k's captions) holds kinds of statement COCO's never make: where an
    object is, how many of a shape, the background; each is true of its scene."""
    place = re.compile(rf"^an? (small|large) (\w+) (\w+) ({'|'.join(PLACES.values())})$")
    count = re.compile(r"^there (?:is|are) (\w+) (\w+)$")
    kinds, coco_words, flickr_words = Counter(), set(), set()
    for i in range(60):
        scene = make_scene(0, "flickr30k", i)
        coco_words |= {w for c in captions(scene, rng_for(0, "c", i)) for w in c.split()}
        for caption in flickr_captions(scene, rng_for(0, "f", i)):
            flickr_words |= set(caption.split())
            if m := place.match(caption):
                size, color, shape, where = m.groups()
                obj = find(scene, color, shape, size)
                assert obj is not None and PLACES[obj.cell] == where, (caption, scene)
                kinds["place"] += 1
            elif m := count.match(caption):
                number, noun = m.groups()
                shape = noun if noun in PLURAL else next(s for s, p in PLURAL.items() if p == noun)
                assert NUMBER_WORDS[scene.count(shape)] == number, (caption, scene)
                kinds["count"] += 1
            elif caption.endswith("background"):
                assert ("striped" in caption) == (scene.domain == "textured"), (caption, scene)
                kinds["background"] += 1
    assert min(kinds.values()) >= 5 and len(kinds) == 3
    assert {"corner", "middle", "background", "striped"} <= flickr_words - coco_words


SPATIAL_HYPOTHESIS = re.compile(rf"^(?:an?|the) (\w+) (\w+) (?:is )?({'|'.join(RELATIONS)}) (?:an?|the) (\w+) (\w+)$")


def test_snli_ve_labels_are_in_the_image_not_in_the_hypothesis():
    """Every label's hypotheses have one form and one vocabulary: a text-only model is at chance."""
    def loosely(first, rel, second):
        (x1, y1), (x2, y2) = first.cell, second.cell
        return {"left of": x1 < x2, "right of": x1 > x2, "above": y1 < y2, "below": y1 > y2}[rel]

    by_text_feature = Counter()
    for i in range(600):
        scene = make_scene(0, "snli-test", i)
        hypotheses = snli_hypotheses(scene, rng_for(0, "t", i))
        assert [label for _, label in hypotheses] == ["entailment", "neutral", "contradiction"]
        for hypothesis, label in hypotheses:
            color1, shape1, rel, color2, shape2 = SPATIAL_HYPOTHESIS.match(hypothesis).groups()
            first, second = find(scene, color1, shape1), find(scene, color2, shape2)
            assert first and second, hypothesis  # both objects are in the image, whatever the label
            strict, loose = scene.relation_holds(first, rel, second), loosely(first, rel, second)
            assert {"entailment": strict, "neutral": loose and not strict,
                    "contradiction": not loose}[label], (hypothesis, label, scene)
            by_text_feature[(rel, hypothesis.startswith("the"), label)] += 1
    # the relation word and the sentence form are spread evenly over the labels
    for rel in RELATIONS:
        for form in (True, False):
            counts = [by_text_feature[(rel, form, label)] for label in ("entailment", "neutral", "contradiction")]
            assert max(counts) < 1.6 * min(counts), (rel, form, counts)


def test_winoground_files_round_trip(small_world):
    cfg, root = small_world
    examples = winoground.load(root / "winoground")
    assert len(examples) == cfg["winoground"]["examples"]
    rows = [json.loads(line) for line in (root / "winoground" / "examples.jsonl").open()]
    assert set(rows[0]) == {"id", "caption_0", "caption_1", "image_0", "image_1", "tag",
                            "secondary_tag", "num_main_preds", "collapsed_tag"}
    assert {e.collapsed_tag for e in examples} == {"Object", "Relation", "Both"}
    assert {e.num_main_preds for e in examples} == {1, 2}
    for e in examples:
        assert e.image_0.name == f"ex_{e.id}_img_0.png"
        with Image.open(e.image_0) as im0, Image.open(e.image_1) as im1:
            assert im0.format == "PNG" and im0.size == (cfg["image_size"],) * 2
            assert np.any(np.asarray(im0) != np.asarray(im1))  # the two images differ


def test_aro_files_round_trip(small_world):
    cfg, root = small_world
    rel = aro.load_vg(root / "aro", "relation")
    att = aro.load_vg(root / "aro", "attribution")
    assert len(rel) == cfg["aro"]["relation"] and len(att) == cfg["aro"]["attribution"]
    for item in rel + att:
        assert Counter(item.true_caption.split()) == Counter(item.false_caption.split())
        assert item.true_caption != item.false_caption
        x, y, w, h = item.bbox
        assert 0 <= x and 0 <= y and x + w <= cfg["image_size"] and y + h <= cfg["image_size"]
    assert all(it.relation_name in RELATIONS for it in rel)
    assert all(it.attributes[0] in COLORS and it.attributes[1] in COLORS for it in att)
    for name, folder in (("coco_karpathy_test.json", "coco"), ("flickr30k_test.json", "flickr30k")):
        order = coco.load_karpathy_blip(root / folder / name, root / folder)
        assert order and all(len(it.captions) == 5 for it in order)


def test_coco_and_sugarcrepe_round_trip(small_world):
    cfg, root = small_world
    caps = coco.load_captions(root / "coco/annotations/captions_train2017.json", root / "coco/train2017")
    assert len(caps) == 5 * cfg["coco"]["train2017"]
    assert len({c.image_id for c in caps}) == cfg["coco"]["train2017"]
    assert caps[0].file_name == f"{caps[0].image_id:012d}.jpg"
    items = sugarcrepe.load(root / "sugarcrepe", root / "coco/val2017")
    assert Counter(i.category for i in items) == {c: cfg["sugarcrepe"]["per_category"]
                                                  for c in SUGARCREPE_CATEGORIES}
    data = json.loads((root / "sugarcrepe/data/swap_att.json").read_text())
    assert set(data) == {str(k) for k in range(cfg["sugarcrepe"]["per_category"])}
    tokens = coco.load_flickr_tokens(root / "flickr30k/results_20130124.token")
    assert len(tokens) == cfg["flickr30k"]["images"] and all(len(v) == 5 for v in tokens.values())


def test_vqa_files_round_trip(small_world):
    cfg, root = small_world
    qs = vqa.load(root / "vqa", "train2014", root / "coco/train2014")
    assert len(qs) == cfg["coco"]["train2014"] * cfg["vqa"]["questions_per_image"]
    assert {q.answer_type for q in qs} == {"yes/no", "number", "other"}
    for q in qs:
        assert len(q.answers) == 10
        assert q.multiple_choice_answer == Counter(q.answers).most_common(1)[0][0]
        assert q.question.endswith("?") and q.question[0].isupper()
    # some annotators disagree, so the soft VQA scores are not all 0/1
    assert any(len(set(q.answers)) > 1 for q in qs)


def test_snli_ve_files_round_trip(small_world):
    cfg, root = small_world
    by_split = {s: snli_ve.load(root / "snli_ve", s, root / "flickr30k/flickr30k-images")
                for s in snli_ve.SPLITS}
    images = {s: {it.image_id for it in items} for s, items in by_split.items()}
    assert len(images["test"]) == cfg["snli_ve"]["test_images"]
    assert not images["train"] & images["test"] and not images["dev"] & images["test"]
    assert Counter(it.label for it in by_split["train"]) == {
        label: len(images["train"]) for label in snli_ve.LABELS}


def test_vcr_files_round_trip(small_world):
    cfg, root = small_world
    train, test = vcr.load(root / "vcr", "train"), vcr.load(root / "vcr", "test")
    assert len(train) == cfg["vcr"]["train"]
    assert all(it.answer_label is None and it.rationale_label is None for it in test)
    assert {it.source for it in train} == {"lsmdc", "movieclips"}
    for it in train:
        assert it.img_fn.startswith(f"{it.source}_{it.movie}/")
        assert len(it.boxes) == len(it.objects) and all(len(b) == 5 for b in it.boxes)
        assert any(isinstance(tok, list) for tok in it.question)
        assert 0 <= it.answer_label < 4 and 0 <= it.rationale_label < 4
    assert len({it.movie for it in train}) > 2
