"""Scenes of the synthetic world: coloured shapes in spatial relations, rendered to small images.

A scene is a pure function of ``(seed, image_set, index)``, so every dataset writer that refers to
the same image (COCO captions, VQA questions, SugarCrepe negatives, ...) sees the same scene without
reading another writer's files.  Each scene has two *main* objects ``a`` and ``b`` in a spatial
relation (``a <relation> b``) and one or two *extra* objects, which make counting questions and
"add object" negatives meaningful.  Objects differ in colour, shape and size; main objects never
share a colour or a shape, so a caption that swaps them describes a different image.

Two visual domains exist: ``plain`` (a flat background) and ``textured`` (stripes plus pixel noise,
optionally the whole picture under a coloured light, ``synthetic.textured_light``).  A warm light
changes how colours look (yellow looks orange, orange looks red), so a model that has seen only plain
images must learn the textured domain's colours again (bench/README.md).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from ..seeding import rng_for

COLORS = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (230, 200, 30),
    "purple": (140, 50, 180),
    "orange": (240, 130, 20),
}
SHAPES = ("square", "circle", "triangle", "star", "cross")
SIZES = ("small", "large")
# relation -> (dx, dy) grid step that places b relative to a
RELATIONS = {"left of": (1, 0), "right of": (-1, 0), "above": (0, 1), "below": (0, -1)}
OPPOSITE = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}
DOMAINS = ("plain", "textured")
NEUTRAL_LIGHT = (1.0, 1.0, 1.0)
PLURAL = {"square": "squares", "circle": "circles", "triangle": "triangles", "star": "stars",
          "cross": "crosses"}
NUMBER_WORDS = {0: "zero", 1: "one", 2: "two", 3: "three", 4: "four"}


@dataclass(frozen=True)
class Obj:
    color: str
    shape: str
    size: str
    cell: tuple[int, int]  # (column, row) in a 3x3 grid

    def phrase(self, with_size: bool = False) -> str:
        """'a red square' or 'a large red square'."""
        return with_article(" ".join(([self.size] if with_size else []) + [self.color, self.shape]))


def with_article(words: str) -> str:
    """'an orange star', 'a red square'."""
    return ("an " if words[0] in "aeiou" else "a ") + words


@dataclass(frozen=True)
class Scene:
    key: str
    domain: str
    background: tuple[int, int, int]
    a: Obj
    b: Obj | None  # None in single-object scenes (zero-shot classification images)
    relation: str
    extras: tuple[Obj, ...]

    @property
    def objects(self) -> tuple[Obj, ...]:
        return tuple(o for o in (self.a, self.b) if o is not None) + self.extras

    def count(self, shape: str) -> int:
        return sum(o.shape == shape for o in self.objects)

    def has(self, color: str, shape: str) -> bool:
        return any(o.color == color and o.shape == shape for o in self.objects)

    def relation_holds(self, first: Obj, relation: str, second: Obj) -> bool:
        """True when ``first <relation> second`` is a correct description of the layout."""
        (x1, y1), (x2, y2) = first.cell, second.cell
        return {"left of": x1 < x2 and y1 == y2, "right of": x1 > x2 and y1 == y2,
                "above": y1 < y2 and x1 == x2, "below": y1 > y2 and x1 == x2}[relation]


def make_scene(seed: int, image_set: str, index: int, domain: str | None = None) -> Scene:
    """The scene shown by image ``index`` of ``image_set``; ``domain`` None draws one at random."""
    rng = rng_for(seed, "scene", image_set, index)
    if domain is None:
        domain = DOMAINS[int(rng.integers(len(DOMAINS)))]
    colors = list(COLORS)
    c_a, c_b = rng.choice(len(colors), size=2, replace=False)
    s_a, s_b = rng.choice(len(SHAPES), size=2, replace=False)
    relation = list(RELATIONS)[int(rng.integers(len(RELATIONS)))]
    dx, dy = RELATIONS[relation]
    # Place a so that b = a + 2*(dx, dy)... stays inside the 3x3 grid (a gap cell keeps them apart).
    if dx:
        cell_a = (0 if dx > 0 else 2, int(rng.integers(3)))
        cell_b = (cell_a[0] + 2 * dx, cell_a[1])
    else:
        cell_a = (int(rng.integers(3)), 0 if dy > 0 else 2)
        cell_b = (cell_a[0], cell_a[1] + 2 * dy)
    a = Obj(colors[c_a], SHAPES[s_a], SIZES[int(rng.integers(2))], cell_a)
    b = Obj(colors[c_b], SHAPES[s_b], SIZES[int(rng.integers(2))], cell_b)
    # Extras sit in free cells of rows/columns the main objects do not use, so every relation
    # stated about a and b stays the only one of its kind.
    free = [(x, y) for x in range(3) for y in range(3)
            if (x, y) not in (cell_a, cell_b) and (x != cell_a[0] and y != cell_a[1])
            and (x != cell_b[0] and y != cell_b[1])]
    extras: list[Obj] = []
    # at least one: every scene then has a pair of objects in neither the same row nor the same column
    # (SNLI-VE's neutral hypotheses are about such a pair)
    n_extra = max(1, int(rng.integers(3)))
    for cell_index in rng.permutation(len(free))[:n_extra]:
        while True:
            color = colors[int(rng.integers(len(colors)))]
            shape = SHAPES[int(rng.integers(len(SHAPES)))]
            if (color, shape) not in {(o.color, o.shape) for o in (a, b, *extras)}:
                break
        extras.append(Obj(color, shape, "small", free[int(cell_index)]))
    background = tuple(int(v) for v in rng.integers(150, 240, size=3))
    return Scene(f"{image_set}/{index}", domain, background, a, b, relation, tuple(extras))


def single_object_scene(seed: int, image_set: str, index: int, color: str, shape: str) -> Scene:
    """One object of the given colour and shape at a random cell: a zero-shot classification image."""
    rng = rng_for(seed, "single", image_set, index)
    domain = DOMAINS[int(rng.integers(len(DOMAINS)))]
    cell = (int(rng.integers(3)), int(rng.integers(3)))
    obj = Obj(color, shape, SIZES[int(rng.integers(2))], cell)
    background = tuple(int(v) for v in rng.integers(150, 240, size=3))
    return Scene(f"{image_set}/{index}", domain, background, obj, None, "", ())


def _shape_points(shape: str, cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    if shape == "triangle":
        return [(cx, cy - r), (cx + r, cy + r), (cx - r, cy + r)]
    if shape == "star":
        angles = np.arange(10) * np.pi / 5 - np.pi / 2
        radii = np.where(np.arange(10) % 2 == 0, r, r * 0.45)
        return [(cx + rr * np.cos(t), cy + rr * np.sin(t)) for t, rr in zip(angles, radii)]
    w = r * 0.38  # cross: a 12-point polygon
    return [(cx - w, cy - r), (cx + w, cy - r), (cx + w, cy - w), (cx + r, cy - w), (cx + r, cy + w),
            (cx + w, cy + w), (cx + w, cy + r), (cx - w, cy + r), (cx - w, cy + w), (cx - r, cy + w),
            (cx - r, cy - w), (cx - w, cy - w)]


def render(scene: Scene, size: int, seed: int, textured_light: tuple[float, ...] = NEUTRAL_LIGHT) -> Image.Image:
    """Draw the scene as an RGB image of ``size`` x ``size`` pixels.

    A textured scene's picture is then lit by ``textured_light``: its R, G and B scaled.  Stripes and
    noise alone hide neither an object's colour nor its place; a light changes the colours themselves.
    """
    img = np.empty((size, size, 3), dtype=np.uint8)
    img[:] = scene.background
    if scene.domain == "textured":
        rng = rng_for(seed, "texture", scene.key)
        period = int(rng.integers(3, 7))
        stripes = ((np.arange(size)[:, None] + np.arange(size)[None, :]) // period) % 2
        shade = np.where(stripes[..., None] == 1, -45, 25)
        noise = rng.integers(-25, 26, size=(size, size, 3))
        img = np.clip(img.astype(np.int16) + shade + noise, 0, 255).astype(np.uint8)
    image = Image.fromarray(img, "RGB")
    draw = ImageDraw.Draw(image)
    cell = size / 3
    for obj in scene.objects:
        cx, cy = (obj.cell[0] + 0.5) * cell, (obj.cell[1] + 0.5) * cell
        r = cell * (0.42 if obj.size == "large" else 0.26)
        fill = COLORS[obj.color]
        if obj.shape == "square":
            draw.rectangle([cx - r, cy - r, cx + r, cy + r], fill=fill)
        elif obj.shape == "circle":
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
        else:
            draw.polygon(_shape_points(obj.shape, cx, cy, r), fill=fill)
    if scene.domain == "textured" and tuple(textured_light) != NEUTRAL_LIGHT:
        img = np.asarray(image).astype(np.float32) * np.array(textured_light, dtype=np.float32)
        image = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")
    return image


def encode(image: Image.Image, fmt: str) -> bytes:
    """PNG or JPEG bytes; both encoders are deterministic for the same pixels."""
    buf = io.BytesIO()
    if fmt == "png":
        image.save(buf, format="PNG", optimize=False)
    else:
        image.save(buf, format="JPEG", quality=92)
    return buf.getvalue()


def object_box(obj: Obj, size: int) -> list[float]:
    """[x1, y1, x2, y2] of an object in pixels."""
    cell = size / 3
    cx, cy = (obj.cell[0] + 0.5) * cell, (obj.cell[1] + 0.5) * cell
    r = cell * (0.42 if obj.size == "large" else 0.26)
    return [round(cx - r, 1), round(cy - r, 1), round(cx + r, 1), round(cy + r, 1)]
