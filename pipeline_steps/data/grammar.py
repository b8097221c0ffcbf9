"""Language of the synthetic world: captions, hard negatives, questions and hypotheses for a scene.

Every text here is derived from a :class:`~pipeline_steps.data.scenes.Scene`, so its truth is known.
Hard negatives reorder the words of a true caption wherever the benchmark allows it (Winoground,
ARO VG-R/VG-A, SugarCrepe swap-*): a bag-of-words model cannot tell such a pair apart.
"""

from __future__ import annotations

import numpy as np

from .scenes import (COLORS, NUMBER_WORDS, OPPOSITE, PLURAL, RELATIONS, SHAPES, Obj, Scene,
                     with_article)


def relation_caption(first: Obj, relation: str, second: Obj, with_size: bool = False) -> str:
    return f"{first.phrase(with_size)} {relation} {second.phrase(with_size)}"


def object_list(objects, with_size: bool = False) -> str:
    """'a red square, a blue circle and a green star'."""
    return ", ".join(o.phrase(with_size) for o in objects[:-1]) + f" and {objects[-1].phrase(with_size)}"


def captions(scene: Scene, rng: np.random.Generator, n: int | None = 5) -> list[str]:
    """``n`` different true captions of the scene, COCO style (``None``: every one, shuffled)."""
    a, b, rel = scene.a, scene.b, scene.relation
    pool = [
        relation_caption(a, rel, b),
        relation_caption(b, OPPOSITE[rel], a),
        relation_caption(a, rel, b, with_size=True),
        f"there is {a.phrase()} and {b.phrase()}",
        f"the {a.color} {a.shape} is {rel} the {b.color} {b.shape}",
        f"a picture of {a.phrase(True)} {rel} {b.phrase(True)}",
    ]
    if scene.extras:
        pool.append(object_list(scene.objects))
    order = rng.permutation(len(pool))
    return [pool[i] for i in order[:n]]


# where an object sits in the 3x3 grid: (column, row), row 0 at the top
PLACES = {(0, 0): "in the top left corner", (1, 0): "at the top", (2, 0): "in the top right corner",
          (0, 1): "on the left", (1, 1): "in the middle", (2, 1): "on the right",
          (0, 2): "in the bottom left corner", (1, 2): "at the bottom", (2, 2): "in the bottom right corner"}


def flickr_captions(scene: Scene, rng: np.random.Generator, n: int = 5) -> list[str]:
    """``n`` different true captions of the scene, Flickr30k style: COCO's kinds and more, which the
    CLIP's pretraining corpus has and the student's does not: where each object is in the picture,
    how many of a shape there are, every object's size, the background."""
    pool = captions(scene, rng, n=None)
    pool += [f"{o.phrase(True)} {PLACES[o.cell]}" for o in scene.objects]
    for shape in sorted({o.shape for o in scene.objects}):
        count = scene.count(shape)
        pool.append(f"there {'are' if count > 1 else 'is'} {NUMBER_WORDS[count]} "
                    f"{PLURAL[shape] if count > 1 else shape}")
    pool.append(object_list(scene.objects, with_size=True))
    background = "a striped" if scene.domain == "textured" else "a plain"
    pool.append(f"{scene.a.phrase()} and {scene.b.phrase()} on {background} background")
    order = rng.permutation(len(pool))
    return [pool[i] for i in order[:n]]


# --- Winoground: two captions with the same words in a different order -----------------------------

WINOGROUND_KINDS = {
    # kind: (tag, collapsed_tag, num_main_preds)
    "noun_phrase_swap": ("Noun", "Object", 1),
    "color_swap": ("Adjective-Color", "Relation", 1),
    "size_swap": ("Adjective-Size", "Relation", 1),
    "relation_and_attribute": ("Relation-Spatial", "Both", 2),
}


def winoground_pair(kind: str, scene: Scene) -> tuple[str, str, Scene, Scene]:
    """(caption_0, caption_1, scene_0, scene_1): caption_k describes scene_k and not the other.

    scene_0 is ``scene``, adjusted where the swap needs it (a size swap needs two sizes).
    Both captions hold the same multiset of words.
    """
    c0, c1, scene1 = _winoground_pair(kind, scene)
    return c0, c1, (scene if kind != "size_swap" else _distinct_sizes(scene)), scene1


def _distinct_sizes(scene: Scene) -> Scene:
    if scene.a.size != scene.b.size:
        return scene
    return _replace(scene, b=_resized(scene.b, "small" if scene.a.size == "large" else "large"))


def _winoground_pair(kind: str, scene: Scene) -> tuple[str, str, Scene]:
    a, b, rel = scene.a, scene.b, scene.relation
    if kind == "noun_phrase_swap":
        # "a red square left of a blue circle" / "a blue circle left of a red square"
        swapped = _replace(scene, a=_moved(b, a.cell), b=_moved(a, b.cell))
        return relation_caption(a, rel, b), relation_caption(b, rel, a), swapped
    if kind == "color_swap":
        swapped = _replace(scene, a=_recolored(a, b.color), b=_recolored(b, a.color))
        return relation_caption(a, rel, b), relation_caption(swapped.a, rel, swapped.b), swapped
    if kind == "size_swap":
        scene = _distinct_sizes(scene)  # the swap must change the image
        a, b = scene.a, scene.b
        swapped = _replace(scene, a=_resized(a, b.size), b=_resized(b, a.size))
        return (relation_caption(a, rel, b, True), relation_caption(swapped.a, rel, swapped.b, True),
                swapped)
    if kind == "relation_and_attribute":
        # two predicates: "the square is left of the circle and the circle is red" /
        # "the circle is left of the square and the circle is red" (the objects trade places)
        swapped = _replace(scene, a=_moved(b, a.cell), b=_moved(a, b.cell))
        c0 = f"the {a.shape} is {rel} the {b.shape} and the {b.shape} is {b.color}"
        c1 = f"the {b.shape} is {rel} the {a.shape} and the {b.shape} is {b.color}"
        return c0, c1, swapped
    raise ValueError(f"unknown Winoground kind {kind!r}")


def _replace(scene: Scene, **changes) -> Scene:
    from dataclasses import replace

    return replace(scene, **changes)


def _moved(obj: Obj, cell: tuple[int, int]) -> Obj:
    return Obj(obj.color, obj.shape, obj.size, cell)


def _recolored(obj: Obj, color: str) -> Obj:
    return Obj(color, obj.shape, obj.size, obj.cell)


def _resized(obj: Obj, size: str) -> Obj:
    return Obj(obj.color, obj.shape, size, obj.cell)


# --- ARO ---------------------------------------------------------------------------------------------

def aro_relation(scene: Scene) -> tuple[str, str]:
    """(true_caption, false_caption) in VG-Relation style: the objects swap around the relation."""
    a, b, rel = scene.a, scene.b, scene.relation
    true = f"the {a.color} {a.shape} is {rel} the {b.color} {b.shape}"
    false = f"the {b.color} {b.shape} is {rel} the {a.color} {a.shape}"
    return true, false


def aro_attribution(scene: Scene) -> tuple[str, str]:
    """(true_caption, false_caption) in VG-Attribution style: the attributes swap objects."""
    a, b = scene.a, scene.b
    return (f"the {a.color} {a.shape} and the {b.color} {b.shape}",
            f"the {b.color} {a.shape} and the {a.color} {b.shape}")


# --- SugarCrepe: seven kinds of hard negative ----------------------------------------------------------

SUGARCREPE_CATEGORIES = ("add_att", "add_obj", "replace_att", "replace_obj", "replace_rel",
                         "swap_att", "swap_obj")


def sugarcrepe_pair(category: str, scene: Scene, rng: np.random.Generator) -> tuple[str, str]:
    """(caption, negative_caption); the negative is false for the scene."""
    a, b, rel = scene.a, scene.b, scene.relation
    positive = relation_caption(a, rel, b)
    if category == "add_att":
        wrong_size = "small" if a.size == "large" else "large"
        return positive, f"a {wrong_size} {a.color} {a.shape} {rel} {b.phrase()}"
    if category == "add_obj":
        absent = [(c, s) for c in COLORS for s in SHAPES if not scene.has(c, s)]
        color, shape = absent[int(rng.integers(len(absent)))]
        return positive, f"{positive} and {with_article(color + ' ' + shape)}"
    if category == "replace_att":
        colors = [c for c in COLORS if c not in (a.color, b.color)]
        color = colors[int(rng.integers(len(colors)))]
        return positive, relation_caption(_recolored(a, color), rel, b)
    if category == "replace_obj":
        shapes = [s for s in SHAPES if s not in (a.shape, b.shape)]
        shape = shapes[int(rng.integers(len(shapes)))]
        return positive, relation_caption(Obj(a.color, shape, a.size, a.cell), rel, b)
    if category == "replace_rel":
        wrong = [r for r in RELATIONS if r != rel]
        return positive, relation_caption(a, wrong[int(rng.integers(len(wrong)))], b)
    if category == "swap_att":
        return positive, relation_caption(_recolored(a, b.color), rel, _recolored(b, a.color))
    if category == "swap_obj":
        return positive, (f"{with_article(a.color + ' ' + b.shape)} {rel} "
                          f"{with_article(b.color + ' ' + a.shape)}")
    raise ValueError(f"unknown SugarCrepe category {category!r}")


# --- VQA v2 ----------------------------------------------------------------------------------------------

def vqa_questions(scene: Scene, rng: np.random.Generator, n: int) -> list[dict]:
    """``n`` questions with their true answer, VQA v2 question_type and answer_type."""
    a, b = scene.a, scene.b
    candidates = []
    rel = list(RELATIONS)[int(rng.integers(len(RELATIONS)))]
    holds = scene.relation_holds(a, rel, b)
    candidates.append((f"Is the {a.color} {a.shape} {rel} the {b.color} {b.shape}?",
                       "yes" if holds else "no", "is the", "yes/no"))
    color, shape = (list(COLORS)[int(rng.integers(len(COLORS)))],
                    SHAPES[int(rng.integers(len(SHAPES)))])
    candidates.append((f"Is there {with_article(color + ' ' + shape)}?", "yes" if scene.has(color, shape) else "no",
                       "is there a", "yes/no"))
    count_shape = [o.shape for o in scene.objects][int(rng.integers(len(scene.objects)))]
    candidates.append((f"How many {PLURAL[count_shape]} are there?", str(scene.count(count_shape)),
                       "how many", "number"))
    target = a if rng.random() < 0.5 else b
    if scene.count(target.shape) == 1:
        candidates.append((f"What color is the {target.shape}?", target.color,
                           "what color is the", "other"))
    candidates.append((f"What shape is {scene.relation} the {b.color} {b.shape}?", a.shape,
                       "what shape is", "other"))
    order = rng.permutation(len(candidates))
    return [dict(zip(("question", "answer", "question_type", "answer_type"), candidates[i]))
            for i in order[:n]]


ANSWER_ALTERNATIVES = {
    "yes/no": ["yes", "no"],
    "number": [str(k) for k in range(1, 5)],
    "other": list(COLORS) + list(SHAPES),
}


def vqa_human_answers(answer: str, answer_type: str, rng: np.random.Generator,
                      noise: float) -> list[str]:
    """Ten annotator answers: the true one, each replaced by a plausible wrong one with p=noise."""
    alternatives = [x for x in ANSWER_ALTERNATIVES[answer_type] if x != answer]
    return [alternatives[int(rng.integers(len(alternatives)))] if rng.random() < noise else answer
            for _ in range(10)]


# --- SNLI-VE ---------------------------------------------------------------------------------------------

def loosely_holds(first: Obj, relation: str, second: Obj) -> bool:
    """``first <relation> second`` read loosely: only the order along the relation's axis counts
    ("left of" is true of anything further left, in any row)."""
    (x1, y1), (x2, y2) = first.cell, second.cell
    return {"left of": x1 < x2, "right of": x1 > x2, "above": y1 < y2, "below": y1 > y2}[relation]


def _spatial_hypothesis(first: Obj, relation: str, second: Obj, rng: np.random.Generator) -> str:
    if rng.random() < 0.5:
        return relation_caption(first, relation, second)
    return f"the {first.color} {first.shape} is {relation} the {second.color} {second.shape}"


def snli_hypotheses(scene: Scene, rng: np.random.Generator) -> list[tuple[str, str]]:
    """One (hypothesis, gold_label) per label, all of one form: "the X is <relation> the Y".

    - entailment: true of the two main objects, which share a row or a column (strictly true);
    - neutral: a main object and an extra one, which share neither, with the order along the
      relation's axis right: true read loosely, false read strictly, so the image does not settle it;
    - contradiction: false in both readings, of either pair.

    Every label uses the same words and the same kinds of object, so the hypothesis alone says nothing
    of its label: a model must find both objects in the image.
    """
    a, b, rel = scene.a, scene.b, scene.relation
    relations = list(RELATIONS)
    first, second = (a, b) if rng.random() < 0.5 else (b, a)
    true_rel = rel if first is a else OPPOSITE[rel]
    entail = _spatial_hypothesis(first, true_rel, second, rng)
    # an unaligned pair that shares neither colour nor shape where the scene has one, as the two
    # main objects never do (a shared word would tell an extra object from the text)
    pairs = [(m, e) for m in (a, b) for e in scene.extras]
    distinct = [(m, e) for m, e in pairs if m.color != e.color and m.shape != e.shape]
    main, extra = (distinct or pairs)[int(rng.integers(len(distinct or pairs)))]
    p, q = (main, extra) if rng.random() < 0.5 else (extra, main)
    loose = [r for r in relations if loosely_holds(p, r, q)]
    neutral = _spatial_hypothesis(p, loose[int(rng.integers(len(loose)))], q, rng)
    if rng.random() < 0.5:  # the aligned pair, any relation but the true one
        wrong = [r for r in relations if not scene.relation_holds(first, r, second)]
        contra = _spatial_hypothesis(first, wrong[int(rng.integers(len(wrong)))], second, rng)
    else:  # the unaligned pair, a relation whose order is wrong
        wrong = [r for r in relations if not loosely_holds(p, r, q)]
        contra = _spatial_hypothesis(p, wrong[int(rng.integers(len(wrong)))], q, rng)
    return [(entail, "entailment"), (neutral, "neutral"), (contra, "contradiction")]


# --- VCR: questions whose answers and rationales refer to objects by tag ---------------------------------

COLOR_REASONS = {"red": "a ripe tomato", "green": "fresh grass", "blue": "a clear sky",
                 "yellow": "a banana", "purple": "a plum", "orange": "an orange"}


def vcr_question(scene: Scene, rng: np.random.Generator) -> dict:
    """A VCR item: question, 4 answer and 4 rationale choices (token lists), correct indices.

    Object tags are index lists into ``objects`` (the shapes of ``scene.objects`` in order), as in
    the real VCR files.
    """
    if rng.random() < 0.5:
        relations = list(RELATIONS)
        question = ["Where", "is", [0], "relative", "to", [1], "?"]
        answers = [[[0], "is", *r.split(), [1], "."] for r in relations]
        rationales = [[[1], "is", *OPPOSITE[r].split(), [0], "."] for r in relations]
        correct = relations.index(scene.relation)
    else:
        colors = [scene.a.color] + [c for c in COLORS if c != scene.a.color][:3]
        question = ["What", "color", "is", [0], "?"]
        answers = [[[0], "is", c, "."] for c in colors]
        rationales = [[[0], "has", "the", "color", "of", *COLOR_REASONS[c].split(), "."]
                      for c in colors]
        correct = 0
    answer_order = rng.permutation(4)
    rationale_order = rng.permutation(4)
    return {
        "question": question,
        "answer_choices": [answers[i] for i in answer_order],
        "answer_label": int(np.flatnonzero(answer_order == correct)[0]),
        "rationale_choices": [rationales[i] for i in rationale_order],
        "rationale_label": int(np.flatnonzero(rationale_order == correct)[0]),
    }
