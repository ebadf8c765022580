"""Synthetic "photos" of real MNIST digits: upscaled, on uneven paper, noisy, JPEG-compressed; truth known.

Each photo is drawn from one 28x28 test digit, whose grey levels are the ink's coverage:

- the digit is enlarged (bicubic) to fill 45-85% of a 150-300 px canvas, somewhere off-centre;
- the paper's brightness varies: flat, a linear gradient in any direction (among them the 200->150
  left-to-right case), a radial vignette, or a soft shadow across one side;
- dark ink on light paper, or (one in four) light chalk on a dark board: both polarities;
- a slight blur (focus), Gaussian sensor noise, sometimes a colour cast, then JPEG at quality 35-90.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

BACKGROUNDS = ("flat", "linear", "shade_200_150", "radial", "shadow")


@dataclass(frozen=True)
class Photo:
    """One synthetic photo: the JPEG's bytes, the digit's label, and how it was made."""

    jpeg: bytes
    label: int
    background: str  # one of BACKGROUNDS
    polarity: str  # "ink" (dark on light) or "chalk" (light on dark)


def paper(kind: str, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """Paper brightness in [0, 255] (float64, h x w) for a light background of the given kind."""
    ys, xs = np.mgrid[0:height, 0:width] / max(height, width)
    if kind == "flat":
        return np.full((height, width), rng.uniform(150, 250))
    if kind == "shade_200_150":  # a photo shaded from 200 on the left to 150 on the right
        return 200 - 50 * xs / xs.max()
    if kind == "linear":
        angle = rng.uniform(0, 2 * np.pi)
        ramp = np.cos(angle) * xs + np.sin(angle) * ys
        ramp = (ramp - ramp.min()) / max(np.ptp(ramp), 1e-9)
        high = rng.uniform(190, 250)
        return high - rng.uniform(40, 90) * ramp
    if kind == "radial":
        cy, cx = rng.uniform(0.3, 0.7, size=2)
        r = np.hypot(ys - cy, xs - cx)
        return rng.uniform(200, 250) - rng.uniform(50, 90) * (r / r.max()) ** 2
    if kind == "shadow":  # a soft-edged shadow (a hand, the phone) over part of the page
        angle = rng.uniform(0, 2 * np.pi)
        edge = np.cos(angle) * (xs - 0.5) + np.sin(angle) * (ys - 0.5) - rng.uniform(-0.3, 0.1)
        cover = 1 / (1 + np.exp(-edge / 0.06))
        high = rng.uniform(200, 250)
        return high - rng.uniform(40, 70) * cover
    raise ValueError(f"unknown background {kind!r}; known: {', '.join(BACKGROUNDS)}")


def render(digit: np.ndarray, background: str, polarity: str, rng: np.random.Generator) -> Image.Image:
    """The 28x28 uint8 `digit` as a photo (RGB), before JPEG compression."""
    height, width = (int(v) for v in rng.integers(150, 301, size=2))
    size = int(min(height, width) * rng.uniform(0.45, 0.85))
    coverage = np.asarray(Image.fromarray(digit).resize((size, size), Image.Resampling.BICUBIC), np.float64) / 255
    ink_map = np.zeros((height, width))
    top, left = int(rng.integers(0, height - size + 1)), int(rng.integers(0, width - size + 1))
    ink_map[top : top + size, left : left + size] = np.clip(coverage, 0, 1)

    # Brightness is reflectance times light: the ink, the board and the chalk are shaded as the paper is.
    light = paper(background, height, width, rng)
    if polarity == "ink":
        gray = light * (1 - ink_map * rng.uniform(0.7, 0.95))
    else:
        board, chalk = rng.uniform(0.15, 0.35), rng.uniform(0.8, 0.97)
        gray = light * (board + (chalk - board) * ink_map)
    image = Image.fromarray(np.clip(gray, 0, 255).astype(np.uint8))
    image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.2)))
    gray = np.asarray(image, np.float64) + rng.normal(0, rng.uniform(2, 10), (height, width))
    tint = rng.uniform(0.85, 1.0, size=3) if rng.random() < 0.4 else np.ones(3)
    rgb = np.clip(gray[..., None] * tint, 0, 255).astype(np.uint8)
    return Image.fromarray(rgb, "RGB")


def make_photos(digits: np.ndarray, labels: np.ndarray, seed: int = 0) -> list[Photo]:
    """One photo per digit, backgrounds taken in turn, every fourth one chalk on a board."""
    rng = np.random.default_rng(seed)
    photos = []
    for i, (digit, label) in enumerate(zip(digits, labels, strict=False)):
        background = BACKGROUNDS[i % len(BACKGROUNDS)]
        polarity = "chalk" if i % 4 == 3 else "ink"
        buffer = io.BytesIO()
        render(digit, background, polarity, rng).save(buffer, "JPEG", quality=int(rng.integers(35, 91)))
        photos.append(Photo(buffer.getvalue(), int(label), background, polarity))
    return photos


def clean(digit: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """The digit enlarged, pure black on white paper, off-centre on a bigger canvas: no noise, no shading."""
    size = int(rng.integers(120, 260))
    ink = Image.fromarray(255 - digit).resize((size, size), Image.Resampling.BICUBIC)
    canvas = Image.new("L", (size + int(rng.integers(40, 300)), size + int(rng.integers(40, 300))), 255)
    canvas.paste(ink, (int(rng.integers(0, canvas.width - size + 1)), int(rng.integers(0, canvas.height - size + 1))))
    return canvas
