"""Turn a photo or drawing of one digit into an MNIST-style 28x28 image (numpy and Pillow only).

MNIST's digits were made this way, and a model trained on them expects it: white ink on black,
the digit's bounding box scaled to fit 20x20 keeping its aspect ratio, then placed in a 28x28
field so that its centre of mass sits in the middle.

`to_mnist` does that to any grayscale array:

1. Light background (the median of the border pixels is light): invert, so the ink is bright.
2. Subtract the background level (paper is rarely pure white), stretch the brightest ink to 1
   and drop what is fainter than `NOISE` of it (paper grain, JPEG ringing).
3. Crop to the ink's bounding box. A stroke that would come out thinner than MNIST's after
   scaling (a fine pen on a large canvas) is first thickened.
4. Fit into 20x20 keeping the aspect ratio; centre by centre of mass in 28x28.

`read_image` gives that grayscale array for a file (a path or a binary stream) of any size and
colour mode; transparent pixels become the background. `preprocess_file` (the predict command)
and `preprocess_bytes` (the HTTP API's uploads) are the same steps from a path and from bytes.
An image of more than `max_pixels` pixels (by default Pillow's decompression-bomb limit) is refused
before it is decoded.
"""

from __future__ import annotations

import io
import math
import os
import re
from typing import BinaryIO, Optional

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from mnist_hydra.errors import UserError

FIELD = 28  # side of an MNIST image, in pixels
BOX = 20  # side of the box the digit is fitted into
NOISE = 0.2  # ink fainter than this share of the strongest ink is background
MIN_CONTRAST = 0.1  # an image whose ink differs from its background by less than this is blank
STROKE = 2.5  # stroke width, in pixels of the 20x20 box, that a too-thin stroke is widened to
MIN_STROKE = 1.2  # strokes thinner than this in the 20x20 box get widened (thinner than 99% of MNIST's)


class ImageError(UserError):
    """A file that is not a readable image, or an image without a digit in it."""


def preprocess_file(path: str | os.PathLike, max_pixels: Optional[int] = None) -> np.ndarray:
    """The image in `path` as the model's input: float32 (28, 28) in [0, 1], white digit on black."""
    return _preprocess(path, str(path), max_pixels)


def preprocess_bytes(data: bytes, name: str = "upload", max_pixels: Optional[int] = None) -> np.ndarray:
    """The same as `preprocess_file`, for an image file's content; errors start with `name`."""
    if not data:
        raise ImageError(f"{name}: the file is empty (0 bytes), no image in it")
    return _preprocess(io.BytesIO(data), name, max_pixels)


def _preprocess(source: str | os.PathLike | BinaryIO, name: str, max_pixels: Optional[int]) -> np.ndarray:
    gray = read_image(source, name, max_pixels)
    try:
        return to_mnist(gray)
    except ImageError as err:
        raise ImageError(f"{name}: {err}") from None


def read_image(source: str | os.PathLike | BinaryIO, name: Optional[str] = None,
               max_pixels: Optional[int] = None) -> np.ndarray:
    """A PNG, JPEG (any format Pillow reads) as grayscale float32 (h, w) in [0, 255].

    `source` is a path or a binary stream; `name` is what errors call it (default: the path).
    More than `max_pixels` pixels (default and at most Pillow's MAX_IMAGE_PIXELS) is an ImageError.
    """
    name = str(source) if name is None else name
    limit = Image.MAX_IMAGE_PIXELS if max_pixels is None else min(max_pixels, Image.MAX_IMAGE_PIXELS or max_pixels)
    try:
        with Image.open(source) as image:
            width, height = image.size
            if width == 0 or height == 0:
                raise ImageError(f"{name}: the image is empty ({width}x{height} pixels)")
            if limit and width * height > limit:
                raise _too_large(name, width, height, limit)
            image = ImageOps.exif_transpose(image)  # phone photos are stored sideways with a rotation tag
            return to_grayscale(image)
    except ImageError:
        raise
    except FileNotFoundError:
        raise ImageError(f"{name}: no such file") from None
    except Image.DecompressionBombError as err:  # over twice Pillow's limit: refused inside Image.open
        size = re.search(r"(\d+) pixels", str(err))
        raise ImageError(f"{name}: refused, {size.group(1) if size else 'too many'} pixels is over the limit of "
                         f"{limit} (a decompression bomb?)") from None
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not a readable image (no format Pillow knows, or a broken or zero-size image)") from None
    except Exception as err:  # Pillow raises OSError, SyntaxError, ValueError, zlib errors... for broken files
        reason = " ".join(str(err).split()) or type(err).__name__
        raise ImageError(f"{name}: not a readable image ({reason})") from None


def _too_large(name: str, width: int, height: int, limit: int) -> ImageError:
    return ImageError(f"{name}: refused, {width}x{height} = {width * height} pixels is over the limit of {limit} "
                      "(a decompression bomb?); send a smaller picture")


def to_grayscale(image: Image.Image) -> np.ndarray:
    """Any Pillow image as float32 luminance in [0, 255]; transparency flattened onto a contrasting background."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16-bit PNGs: Pillow's "L" conversion would clip them
        return np.clip(np.asarray(image, dtype=np.float64) * (255 / 65535), 0, 255).astype(np.float32)
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info:
        pair = np.asarray(image.convert("RGBA").convert("LA"), dtype=np.float64)
        gray, alpha = pair[..., 0], pair[..., 1] / 255
        if alpha.min() < 1:
            # Drawn on a transparent canvas: the ink is whatever is opaque. Flatten it onto white when the
            # ink is dark and onto black when it is light, so that it stays visible.
            ink = np.average(gray, weights=alpha) if alpha.sum() > 0 else 0.0
            background = 255.0 if ink < 128 else 0.0
            gray = gray * alpha + background * (1 - alpha)
        return gray.astype(np.float32)
    return np.asarray(image.convert("L"), dtype=np.float32)


def to_mnist(gray: np.ndarray) -> np.ndarray:
    """A grayscale image (h, w) in [0, 255] holding one digit -> float32 (28, 28) in [0, 1], MNIST-style."""
    ink = _ink(np.asarray(gray))
    crop = _crop(ink)
    crop = _thicken(crop)
    small = _fit(crop, BOX)
    return _centre(small, FIELD)


def _ink(gray: np.ndarray) -> np.ndarray:
    """Ink strength in [0, 1] on a zero background, from the border's brightness, over a part of the
    image that holds all the ink (float64, whatever the input's type)."""
    if gray.ndim != 2 or min(gray.shape) < 1:
        raise ImageError(f"expected a 2-D grayscale image, got shape {gray.shape}")
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]]).astype(np.float64) / 255.0
    dark_on_light = bool(np.median(border) > 0.5)
    if dark_on_light:
        border = 1.0 - border
    background = float(np.median(border))
    scale = max(1.0 - background, 1e-6)
    # The strongest ink, from the extreme gray value: the steps below are monotonic, so this is the
    # maximum they would give over the whole image, without computing them over the whole image.
    extreme = float(gray.min() if dark_on_light else gray.max()) / 255.0
    peak = max((1.0 - extreme if dark_on_light else extreme) - background, 0.0) / scale
    if peak < MIN_CONTRAST:
        raise ImageError("no digit found: the image is blank or has no contrast")
    region = _inked_region(gray, dark_on_light, background + NOISE * peak * scale)
    g = np.asarray(region, dtype=np.float64) / 255.0
    if dark_on_light:
        g = 1.0 - g
    ink = np.clip(g - background, 0.0, None) / scale
    ink /= peak
    ink[ink < NOISE] = 0.0
    return ink


def _inked_region(gray: np.ndarray, dark_on_light: bool, cutoff: float) -> np.ndarray:
    """The bounding box of the pixels whose ink level (0 at the paper, 1 at full ink) reaches about
    `cutoff`, with a little slack so that rounding never leaves one out: one comparison per pixel
    instead of the float64 arithmetic, which then runs on the box only."""
    slack = 1e-6
    if dark_on_light:
        mask = gray <= (1.0 - cutoff + slack) * 255.0
    else:
        mask = gray >= (cutoff - slack) * 255.0
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return gray[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def _crop(ink: np.ndarray) -> np.ndarray:
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    return ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def stroke_width(ink: np.ndarray) -> float:
    """Mean stroke width in pixels: twice the inked area over its boundary length (2A/P for long strokes)."""
    mask = ink > 0
    padded = np.pad(mask, 1)
    interior = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    boundary = int((mask & ~interior).sum())
    return 2.0 * float(ink.sum()) / max(boundary, 1)


def _thicken(crop: np.ndarray) -> np.ndarray:
    """Widen strokes that would end up thinner than MNIST's once the crop is scaled into the box."""
    factor = max(crop.shape) // (4 * BOX)
    if factor >= 2:
        # Shrink big crops first, keeping each block's strongest ink, so a fine line survives and the
        # dilation below stays small. At 4x the box size the blockiness averages out in the final resize.
        crop = _max_pool(crop, factor)
    scale = BOX / max(crop.shape)
    width = stroke_width(crop)
    if width * scale >= MIN_STROKE:
        return crop
    size = math.ceil(STROKE / scale - width) + 1  # a size x size max filter widens a stroke by size - 1
    return _crop(_max_filter(np.pad(crop, size), size))


def _max_pool(image: np.ndarray, factor: int) -> np.ndarray:
    h, w = (-(-n // factor) * factor for n in image.shape)
    padded = np.pad(image, ((0, h - image.shape[0]), (0, w - image.shape[1])))
    # A running maximum over the factor x factor strided views: the same result as
    # reshape(...).max(axis=(1, 3)), several times faster.
    pooled = padded[::factor, ::factor].copy()
    for dy in range(factor):
        for dx in range(factor):
            if dy or dx:
                np.maximum(pooled, padded[dy::factor, dx::factor], out=pooled)
    return pooled


def _max_filter(image: np.ndarray, size: int) -> np.ndarray:
    """Grayscale dilation by a size x size square, as two 1-D passes (the image is padded by >= size)."""
    for axis in (0, 1):
        out = image.copy()
        for shift in range(-(size // 2), size - size // 2):
            np.maximum(out, np.roll(image, shift, axis=axis), out=out)
        image = out
    return image


def _fit(crop: np.ndarray, box: int) -> np.ndarray:
    """Scale so the longer side is `box` pixels, keeping the aspect ratio; strongest ink back at 1."""
    h, w = crop.shape
    scale = box / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))  # Pillow wants (width, height)
    # Lanczos averages over every source pixel when shrinking (anti-aliasing) and stays sharp when enlarging.
    small = np.asarray(Image.fromarray(crop.astype(np.float32)).resize(size, Image.Resampling.LANCZOS))
    small = np.clip(small, 0.0, None)  # Lanczos rings slightly below zero beside strokes
    return small / max(float(small.max()), 1e-6)


def _centre(small: np.ndarray, field: int) -> np.ndarray:
    """Place `small` in a field x field image with its centre of mass at the middle (kept inside the field)."""
    h, w = small.shape
    ys, xs = np.indices(small.shape)
    total = small.sum()
    cy, cx = (ys * small).sum() / total, (xs * small).sum() / total
    middle = field / 2  # MNIST's centres of mass average (14.0, 14.0) in row/column index coordinates
    top = min(max(round(middle - cy), 0), field - h)
    left = min(max(round(middle - cx), 0), field - w)
    out = np.zeros((field, field), dtype=np.float32)
    out[top : top + h, left : left + w] = np.clip(small, 0.0, 1.0)
    return out
