"""A generated captioning dataset: scenes of 1-3 coloured shapes in a row or a column, with their captions.

Every scene is a function of (seed, split, index), so the data is reproducible without files. A scene of n
shapes lies along one axis: the image is cut into n equal slots along it and each shape sits, with some
jitter, in its own slot, so the order along the axis is never ambiguous. Captions come from a small grammar
that reads the shapes in that order, left to right or top to bottom:

    a red circle
    a blue square left of a green triangle
    a yellow diamond above a purple cross above an orange circle

Some colour-shape pairs ("red triangle", ...) never occur in the train, val and test splits; the `holdout`
split has at least one of them in every scene, to measure whether a model composes colours and shapes it
has only seen apart.
"""

import hashlib
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from shared.errors import InputError

COLOURS = {
    "red": (225, 45, 45), "green": (45, 185, 65), "blue": (55, 95, 235),
    "yellow": (235, 215, 45), "purple": (155, 65, 205), "orange": (245, 140, 35),
}
SHAPES = ("circle", "square", "triangle", "diamond", "cross")
SIZES = (0.6, 1.0)  # range of radii, as fractions of the largest that fits three slots
RELATIONS = {"row": "left of", "column": "above"}
# One held-out pair per shape, each colour at most once, so every colour and shape is still seen in training.
HOLDOUT_PAIRS = (("red", "triangle"), ("green", "circle"), ("blue", "diamond"), ("yellow", "square"),
                 ("purple", "cross"))
SPLITS = {"train": 20000, "val": 500, "test": 1000, "holdout": 1000}
OBJECT_COUNTS = ((1, 0.2), (2, 0.4), (3, 0.4))  # (shapes in a scene, probability)
BACKGROUND = (20, 20, 20)
SUPERSAMPLE = 4  # shapes are drawn at 4x and averaged down, which smooths their edges


@dataclass(frozen=True)
class Shape:
    """One shape: its words and its place (centre and radius in pixels of the final image)."""

    colour: str
    shape: str
    x: float
    y: float
    radius: float

    @property
    def phrase(self) -> str:
        article = "an" if self.colour[0] in "aeiou" else "a"
        return f"{article} {self.colour} {self.shape}"


@dataclass(frozen=True)
class Scene:
    """Shapes in reading order along `axis` ("row": left to right, "column": top to bottom)."""

    shapes: tuple[Shape, ...]
    axis: str = "row"

    @property
    def caption(self) -> str:
        return f" {RELATIONS[self.axis]} ".join(s.phrase for s in self.shapes)


def allowed_pairs(split: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(pairs every shape may use, pairs of which each scene must hold at least one) for a split."""
    every = [(c, s) for c in COLOURS for s in SHAPES]
    if split == "holdout":
        return every, list(HOLDOUT_PAIRS)
    return [p for p in every if p not in HOLDOUT_PAIRS], []


def sample_scene(rng: np.random.Generator, img_size: int, pairs, required=()) -> Scene:
    """A random scene; with `required`, one of its shapes (at a random place in the order) is such a pair."""
    counts, probs = zip(*OBJECT_COUNTS)
    n = int(rng.choice(counts, p=probs))
    axis = "row" if rng.random() < 0.5 else "column"
    chosen = [pairs[rng.integers(len(pairs))] for _ in range(n)]
    if required:
        chosen[rng.integers(n)] = required[rng.integers(len(required))]
    slot = img_size / n  # length of each shape's slot along the axis
    # Sizes are absolute: the largest radius fits the narrowest slot (of the most shapes) with a pixel to
    # spare, whatever the number of shapes in this scene.
    largest = img_size / (2 * max(counts)) - 1.0
    cross_base = None
    shapes = []
    for i, (colour, shape) in enumerate(chosen):
        radius = largest * rng.uniform(*SIZES)
        along = slot * i + slot / 2 + rng.uniform(-1, 1) * (slot / 2 - radius - 0.5)
        if cross_base is None:  # the shapes share a line across the axis, each jittered off it a little
            cross_base = rng.uniform(largest + 1, img_size - largest - 1)
        jitter = min(slot / 8, img_size / 2 - radius - abs(cross_base - img_size / 2))
        cross = cross_base + rng.uniform(-1, 1) * max(jitter, 0.0) if n > 1 else \
            rng.uniform(radius + 1, img_size - radius - 1)
        x, y = (along, cross) if axis == "row" else (cross, along)
        shapes.append(Shape(colour, shape, float(x), float(y), float(radius)))
    return Scene(tuple(shapes), axis)


def _outline(shape: str, x: float, y: float, r: float) -> list[tuple[float, float]]:
    """Polygon corners (or the bounding box of a circle) of a shape of radius r centred at (x, y)."""
    if shape == "circle":
        return [(x - r, y - r), (x + r, y + r)]
    if shape == "square":
        h = r * 0.85  # a little inside the radius, so squares and circles cover similar areas
        return [(x - h, y - h), (x + h, y - h), (x + h, y + h), (x - h, y + h)]
    if shape == "triangle":  # pointing up, corners on the circle of radius r
        return [(x, y - r), (x + r * 0.866, y + r * 0.5), (x - r * 0.866, y + r * 0.5)]
    if shape == "diamond":
        return [(x, y - r), (x + r, y), (x, y + r), (x - r, y)]
    if shape == "cross":
        a, b = r, r * 0.33
        corners = [(-b, -a), (b, -a), (b, -b), (a, -b), (a, b), (b, b), (b, a), (-b, a), (-b, b), (-a, b),
                   (-a, -b), (-b, -b)]
        return [(x + dx, y + dy) for dx, dy in corners]
    raise InputError(f"unknown shape {shape!r}; use one of {', '.join(SHAPES)}")


def render(scene: Scene, img_size: int) -> Image.Image:
    """The scene as an RGB image of img_size x img_size pixels, shapes on a dark background."""
    big = img_size * SUPERSAMPLE
    image = Image.new("RGB", (big, big), BACKGROUND)
    draw = ImageDraw.Draw(image)
    for s in scene.shapes:
        points = [(px * SUPERSAMPLE, py * SUPERSAMPLE) for px, py in _outline(s.shape, s.x, s.y, s.radius)]
        if s.shape == "circle":
            draw.ellipse(points, fill=COLOURS[s.colour])
        else:
            draw.polygon(points, fill=COLOURS[s.colour])
    return image.reduce(SUPERSAMPLE)


def _split_seed(seed: int, split: str) -> int:
    digest = hashlib.sha256(f"shapes/{seed}/{split}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


class ShapesDataset:
    """A split of generated scenes: `dataset[i]` is (PIL RGB image, caption).

    split: train | val | test | holdout; size: number of scenes (default SPLITS[split]); seed: the data seed
    (different seeds give different scenes). Images are rendered on first use and kept.
    """

    def __init__(self, split: str = "train", size: int | None = None, seed: int = 0, img_size: int = 48):
        if split not in SPLITS:
            raise InputError(f"unknown shapes split {split!r}; use one of {', '.join(SPLITS)}")
        if img_size < 12:
            raise InputError(f"img_size {img_size} is too small to draw three shapes; use 12 or more")
        self.split, self.img_size, self.seed = split, img_size, seed
        rng = np.random.default_rng(_split_seed(seed, split))
        pairs, required = allowed_pairs(split)
        n = SPLITS[split] if size is None else size
        self.scenes = [sample_scene(rng, img_size, pairs, required) for _ in range(n)]
        self.captions = [scene.caption for scene in self.scenes]
        self._images: dict[int, Image.Image] = {}

    def __len__(self) -> int:
        return len(self.scenes)

    def __getitem__(self, index: int) -> tuple[Image.Image, str]:
        if index not in self._images:
            self._images[index] = render(self.scenes[index], self.img_size)
        return self._images[index], self.captions[index]


def vocabulary_words() -> list[str]:
    """Every word the grammar can produce, in a fixed order."""
    words = ["a", "an", *COLOURS, *SHAPES]
    for relation in RELATIONS.values():
        words += [w for w in relation.split() if w not in words]
    return words
