"""Colour test sets made from real grey images: MNIST and Fashion-MNIST as RGB JPEGs in class folders.

No colour image set exists on these machines, so the tests and benchmarks/bench_colour.py build their own from
the 28x28 grey sources, written as `root/<class>/<i>.jpg` (or `root/train/...` and `root/test/...`):

- `tinted`: each picture enlarged to 7/8 of the chosen side, its ink painted in a random colour over a random
  background (a flat colour, or a gradient between two), placed at a random spot inside a random border (the
  eighth left over). Every colour and the picture's place are drawn independently of the label: they carry no
  label information, only the shape does. As in the sources (light strokes and clothes on black), the picture
  is the lighter part: its colour's luminance exceeds both ends of the background's by at least MIN_CONTRAST,
  so a grey copy still shows the shape.
- `colour_only`: two classes that differ in hue alone. A random source picture (any label) is painted in a red
  (class "red") or a green (class "green") of the same luminance (Pillow's "L", ITU-R 601-2:
  L = 0.299 R + 0.587 G + 0.114 B), at a brightness drawn alike for both classes, on a grey background drawn
  alike too: a grey conversion makes the two classes one distribution, so only colour can tell them apart.

The JPEGs are written at quality 95 without chroma subsampling (4:4:4): the colour survives at full resolution.
Everything is drawn from `numpy.random.default_rng(seed)`: the same seed gives the same files.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from mnist_hydra.data.idx_format import read_idx

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
# Fashion-MNIST's classes in label order, as folder names (no "/").
FASHION_CLASSES = (
    "t-shirt",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle-boot",
)
MNIST_CLASSES = tuple(str(d) for d in range(10))
LUMA = np.array([0.299, 0.587, 0.114])  # Pillow's RGB -> L weights (ITU-R 601-2)
MIN_CONTRAST = 70.0  # luminance by which the ink is lighter than either end of the background
QUALITY = 95
# The colour-only classes: a green and a red of exactly equal luminance (98.438), kept off 0 and 255 so that no
# channel clips in the JPEG round trip (clipping would shift one class's luminance).
COLOUR_ONLY = {"green": (55, 129, 55), "red": (212, 50, 50)}


def source_dir(source: str) -> Path:
    """The IDX folder of `source`: "mnist" ($MNIST_HYDRA_DATA) or "fashion" (Debian's dataset-fashion-mnist)."""
    if source == "fashion":
        return FASHION_DIR
    if source == "mnist":
        value = os.environ.get("MNIST_HYDRA_DATA")
        if not value:
            raise FileNotFoundError("MNIST_HYDRA_DATA is not set: it names the MNIST folder")
        return Path(value)
    raise ValueError(f"source={source!r}: expected mnist or fashion")


def class_names(source: str) -> tuple[str, ...]:
    return FASHION_CLASSES if source == "fashion" else MNIST_CLASSES


def read_source(source: str, split: str = "train", count: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The first `count` (all when None) grey 28x28 images and labels of `source`'s split ("train" or "test")."""
    folder, prefix = source_dir(source), "train" if split == "train" else "t10k"
    images = read_idx(folder / f"{prefix}-images-idx3-ubyte.gz")[:count]
    labels = read_idx(folder / f"{prefix}-labels-idx1-ubyte.gz")[:count]
    return images, labels


def luminance(rgb: Sequence[float] | np.ndarray) -> np.ndarray:
    return np.asarray(rgb, np.float64) @ LUMA


def _enlarged(grey: np.ndarray, side: int) -> np.ndarray:
    """The 28x28 uint8 picture as ink coverage in [0, 1], `side` x `side` (bilinear)."""
    image = Image.fromarray(grey).resize((side, side), Image.Resampling.BILINEAR)
    return np.asarray(image, np.float64)[..., None] / 255


def _colours(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ink, background start, background end): uniform RGB colours, drawn again together until the ink is
    lighter than both ends of the background by MIN_CONTRAST of luminance."""
    while True:
        ink, start, end = rng.uniform(0, 255, (3, 3))
        if rng.random() < 0.5:
            end = start  # a flat background
        if luminance(ink) - max(luminance(start), luminance(end)) >= MIN_CONTRAST:
            return ink, start, end


def tinted(grey: np.ndarray, side: int, rng: np.random.Generator) -> np.ndarray:
    """One 28x28 uint8 grey picture as a `side` x `side` RGB uint8 picture with a random tint and background,
    placed at a random spot inside a random border, none of them depending on what it shows.

    The picture keeps one scale (7/8 of the side: 28 pixels of 32, 56 of 64, no detail lost at 32) and the
    border fills the eighth left over, split at random between the sides: it moves the picture, never shrinks it.
    """
    ink, start, end = _colours(rng)
    inner = side * 7 // 8
    top, left = rng.integers(0, side - inner + 1, 2)
    border = rng.uniform(0, 255, 3)
    angle = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0:inner, 0:inner] / max(inner - 1, 1) - 0.5
    ramp = np.clip(np.cos(angle) * xs + np.sin(angle) * ys + 0.5, 0, 1)[..., None]
    background = start + (end - start) * ramp
    coverage = _enlarged(grey, inner)
    picture = np.empty((side, side, 3))
    picture[:] = border
    picture[top : top + inner, left : left + inner] = background * (1 - coverage) + ink * coverage
    picture += rng.normal(0, 3, picture.shape)  # a little sensor noise
    return np.clip(np.rint(picture), 0, 255).astype(np.uint8)


def colour_only(grey: np.ndarray, label: int, side: int, rng: np.random.Generator) -> np.ndarray:
    """One grey picture painted in class `label`'s colour (0: green, 1: red; equal luminance) on a grey background;
    brightness and background are drawn alike for both classes."""
    colour = np.array(list(COLOUR_ONLY.values())[label], np.float64)
    ink = colour * rng.uniform(0.6, 1.05)  # the brightness of the light: the same range for both classes
    paper = rng.uniform(170, 250)
    coverage = _enlarged(grey, side)
    picture = paper * (1 - coverage) + ink * coverage
    return np.clip(np.rint(picture), 0, 255).astype(np.uint8)


def write_jpegs(root: Path, pictures: np.ndarray, labels: np.ndarray, names: Sequence[str]) -> list[Path]:
    """`pictures` (n, h, w, 3) uint8 as root/<names[label]>/<i>.jpg; the paths, in order."""
    for name in names:
        (root / name).mkdir(parents=True, exist_ok=True)
    paths = []
    for i, (picture, label) in enumerate(zip(pictures, labels, strict=True)):
        path = root / names[int(label)] / f"{i:05d}.jpg"
        Image.fromarray(picture, "RGB").save(path, quality=QUALITY, subsampling=0)
        paths.append(path)
    return paths


def tinted_pictures(grey: np.ndarray, side: int, seed: int) -> np.ndarray:
    """Every picture of `grey` (n, 28, 28) tinted (see `tinted`): (n, side, side, 3) uint8."""
    rng = np.random.default_rng(seed)
    return np.stack([tinted(image, side, rng) for image in grey]) if len(grey) else np.zeros((0, side, side, 3))


def write_tinted(
    root: Path, source: str, side: int, train: int | None, test: int | None = None, seed: int = 0
) -> dict[str, np.ndarray]:
    """`source`'s first `train` training pictures (all when None), tinted, as root/<class>/<i>.jpg; with `test`,
    as root/train/<class>/... and its first `test` test pictures as root/test/<class>/... (the loader takes
    those as the two splits). Returns each split's labels."""
    names, written = class_names(source), {}
    splits = {"train": train} if test is None else {"train": train, "test": test}
    for number, (split, count) in enumerate(splits.items()):
        grey, labels = read_source(source, split, count)
        pictures = tinted_pictures(grey, side, seed + 1000 * number)
        write_jpegs(root if test is None else root / split, pictures, labels, names)
        written[split] = labels
    return written


def write_colour_only(root: Path, count: int, side: int = 32, seed: int = 0, source: str = "mnist") -> np.ndarray:
    """`count` colour-only pictures (half each class, shapes from `source`'s training set) as root/green/... and
    root/red/...; their labels (0: green, 1: red, the folders' sorted order)."""
    rng = np.random.default_rng(seed)
    grey, _ = read_source(source, "train", count)
    labels = np.arange(count) % 2
    rng.shuffle(labels)
    pictures = np.stack([colour_only(image, int(label), side, rng) for image, label in zip(grey, labels, strict=True)])
    write_jpegs(root, pictures, labels, tuple(COLOUR_ONLY))
    return labels
