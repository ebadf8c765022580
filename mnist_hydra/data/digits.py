"""Turn a photo or drawing of one digit into an MNIST-style 28x28 image (numpy and Pillow only).

MNIST's digits were made this way, and a model trained on them expects it: white ink on black,
the digit's bounding box scaled to fit 20x20 keeping its aspect ratio, then placed in a 28x28
field so that its centre of mass sits in the middle.

`to_mnist` does that to any grayscale array:

1. Tell the ink from the paper: the marks are the minority, so dark ink is what lies further
   below the median brightness than anything lies above it (and chalk the other way round).
2. Estimate the paper's brightness at every pixel, as photos are unevenly lit (a gradient, a
   vignette, a shadow): on a small copy of the image, a grey-level closing (for light ink an
   opening) with a window of 30% of the image's side wipes out the strokes, which are thinner
   than that, and keeps the shading, which is broader; smoothed and scaled back up. A drawing
   canvas or a screenshot, where at least half the pixels share one exact value, has that value
   as its paper and the minority as its ink, and skips steps 1 and 2; step 3 then works on the
   bounding box of what differs from the paper, in float32, and counts the rest as zeros: a drawing
   then costs a fraction of a photo, with the same 28x28 images to the last bit as without the box.
3. Subtract it, divide by it (light falls on ink and paper alike, so the ink's contrast relative
   to its paper is the same in the shade as in the light), stretch the strongest ink to 1, and
   drop what falls below Otsu's threshold (at least `NOISE`): paper grain, JPEG blocks, what is
   left of a shadow's edge.
   Measured with benchmarks/bench_photos.py on 2,000 MNIST test digits photographed on shaded,
   noisy, JPEG-compressed paper (tests/photos.py), by a model that reads the original 28x28
   digits 95.7% right: 52.3% with the simplest rule (the border's median as the paper, `NOISE`
   as the threshold), 65.5% with the paper estimate alone, 92.6% with Otsu alone (on the median
   as a flat paper level), 94.9% with both.
4. Crop to the ink's bounding box. A stroke that would come out thinner than MNIST's after
   scaling (a fine pen on a large canvas) is first thickened.
5. Fit into 20x20 keeping the aspect ratio; centre by centre of mass in 28x28.

`preprocess_file` (the predict command) and `preprocess_bytes` (the HTTP API's uploads) are the same
steps from a path and from bytes, after image_files.read_image has made the file a grayscale array.
"""

from __future__ import annotations

import io
import math
import os
from typing import BinaryIO

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image, ImageFilter

from mnist_hydra.data.image_files import ImageError, read_image

# Side of an MNIST image, in pixels: data/preparation.py's DIGIT_SHAPE, which imports this module where a
# picture is read (so not the other way round).
FIELD = 28
BOX = 20  # side of the box the digit is fitted into
NOISE = 0.2  # ink fainter than this share of the strongest ink is background, whatever Otsu says
MIN_CONTRAST = 0.1  # an image whose ink differs from its background by less than this is blank
STROKE = 2.5  # stroke width, in pixels of the 20x20 box, that a too-thin stroke is widened to
PAPER_SIZE = 64  # the paper's brightness is estimated on a copy at most this many pixels on a side
PAPER_REACH = 0.3  # the closing that wipes the marks off the paper spans this share of the image's longer side
TAILS = (0.5, 0.05)  # percent of pixels at each extreme compared with the median to tell dark ink from light
DARKEST_PAPER = 0.1  # a darker background (a black canvas, a blackboard) counts as this bright, of 1
MIN_STROKE = 1.2  # strokes thinner than this in the 20x20 box get widened (thinner than 99% of MNIST's)


def preprocess_file(path: str | os.PathLike[str], max_pixels: int | None = None) -> np.ndarray:
    """The image in `path` as the model's input: float32 (28, 28) in [0, 1], white digit on black."""
    return preprocess_source(path, str(path), max_pixels)


def preprocess_bytes(data: bytes, name: str = "upload", max_pixels: int | None = None) -> np.ndarray:
    """The same as `preprocess_file`, for an image file's content; errors start with `name`."""
    if not data:
        raise ImageError(f"{name}: the file is empty (0 bytes), no image in it")
    return preprocess_source(io.BytesIO(data), name, max_pixels)


def preprocess_source(source: str | os.PathLike[str] | BinaryIO, name: str, max_pixels: int | None) -> np.ndarray:
    """`preprocess_file` of a path or a binary stream; errors start with `name`."""
    gray = read_image(source, name, max_pixels)
    try:
        return to_mnist(gray)
    except ImageError as err:
        raise ImageError(f"{name}: {err}") from None


def to_mnist(gray: np.ndarray) -> np.ndarray:
    """A grayscale image (h, w) in [0, 255] holding one digit -> float32 (28, 28) in [0, 1], MNIST-style."""
    ink = _ink(np.asarray(gray))
    crop = _crop(ink)
    crop = _thicken(crop)
    small = _fit(crop, BOX)
    return _centre(small, FIELD)


def _ink(gray: np.ndarray) -> np.ndarray:
    """Ink strength in [0, 1] on a zero background, against the paper's own (possibly uneven) brightness.

    On a flat paper (a canvas) it is that of the marks' bounding box only: the rest is all zeros, which
    Otsu's threshold still counts.
    """
    if gray.ndim != 2 or min(gray.shape) < 1:
        raise ImageError(f"expected a 2-D grayscale image, got shape {gray.shape}")
    flat = _flat_paper(gray)
    cut_off = 0  # paper pixels left out around the marks
    if flat is not None:  # only the marks' bounding box goes on, in float32
        level, dark = flat
        marks = _around_marks(gray, level)
        cut_off = gray.size - marks.size
        g, paper = _unit(marks), _unit(level)
    else:
        g = _unit(gray)
        dark = _dark_ink(g)
        paper = _paper(g, dark)
    ink: np.ndarray = np.subtract(paper, g, out=g) if dark else np.subtract(g, paper, out=g)
    if float(ink.max()) < MIN_CONTRAST:
        raise ImageError("no digit found: the image is blank or has no contrast")
    # Light falls on ink and paper alike, so the ink's contrast relative to its paper's brightness is
    # the same in the shade as in the light.
    np.maximum(ink, 0.0, out=ink)
    ink /= np.maximum(paper, np.float32(DARKEST_PAPER))
    ink /= ink.max()
    sample = _sample(ink)
    ink[ink < max(NOISE, _otsu(sample, zeros=cut_off * sample.size / ink.size))] = 0.0
    return ink


def _unit(values: np.ndarray | np.generic) -> np.ndarray:
    """[0, 255] as float32 in [0, 1], a new array (float32: a phone photo has 12 million pixels)."""
    unit: np.ndarray = np.divide(values, np.float32(255), dtype=np.float32)
    return unit


def _sample(image: np.ndarray, pixels: int = 1_000_000) -> np.ndarray:
    """Every n-th pixel of each n-th row, about `pixels` of them: enough for a histogram's shape."""
    step = max(1, math.ceil(math.sqrt(image.size / pixels)))
    return image[::step, ::step]


def _dark_ink(g: np.ndarray) -> bool:
    """Whether the marks are darker than the paper: the darkest pixels lie further below the median than
    the brightest lie above it. Looked at from the 0.5% at each end down to the single darkest and
    brightest pixel, for a digit that covers less than 0.5% of the picture."""
    sample = _sample(g)
    # One partition of the sample for all five order statistics.
    median, *tails = np.percentile(sample, [50, *TAILS, *(100 - t for t in TAILS)])
    lows = [*tails[: len(TAILS)], g.min()]
    highs = [*tails[len(TAILS) :], g.max()]
    for low, high in zip(lows, highs, strict=False):
        below, above = median - low, high - median
        if max(below, above) >= MIN_CONTRAST and max(below, above) > 1.25 * min(below, above):
            return bool(below > above)
    return bool(median > 0.5)  # no clear tail: light paper means dark ink


def _flat_paper(g: np.ndarray) -> tuple[np.generic, bool] | None:
    """The paper's brightness, and whether the ink is dark, when the paper is one exact value; else None.

    That is a drawing canvas or a screenshot: at least half the pixels share the brightest value (dark ink on
    it) or the darkest (light ink), which no photo's grain and shading does. The marks are then what differs
    from that value, and the closing in `_paper` would find the same value everywhere a stroke is thinner than
    its reach; skipping it and `_dark_ink` takes two thirds off the time of a 280x280 drawing.
    """
    sample = _sample(g)
    for level, dark in ((sample.max(), True), (sample.min(), False)):
        if np.count_nonzero(sample == level) * 2 >= sample.size:
            return level, dark
    return None


def _around_marks(g: np.ndarray, paper: np.generic) -> np.ndarray:
    """The bounding box of the pixels that differ from a flat paper's value (the whole image if none does)."""
    return g[_bounding_box(g != paper)]


def _bounding_box(mask: np.ndarray) -> tuple[slice, slice]:
    """The rows and columns spanned by `mask`'s True pixels; the whole image when there are none."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return slice(None), slice(None)
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def _paper(g: np.ndarray, dark: bool) -> np.ndarray:
    """The paper's brightness at every pixel: the image with its marks closed over, at a coarse scale."""
    h, w = g.shape
    scale = min(1.0, PAPER_SIZE / max(h, w))
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = np.asarray(Image.fromarray(g).resize(size, Image.Resampling.BOX), np.float64)
    k = max(3, round(PAPER_REACH * max(small.shape)) | 1)
    # Pillow's rank filters repeat the edge pixels outward, which for a maximum or a minimum is the same as
    # cutting the window at the edges: a stroke that runs off the edge is no wider.
    image = Image.fromarray(small.astype(np.float32))
    if dark:  # a closing: the brightest within reach, then the darkest of those
        image = image.filter(ImageFilter.MaxFilter(k)).filter(ImageFilter.MinFilter(k))
    else:  # an opening
        image = image.filter(ImageFilter.MinFilter(k)).filter(ImageFilter.MaxFilter(k))
    paper = np.asarray(image, np.float64)
    m = max(3, (k // 2) | 1)
    paper = _box(paper, m) / _box(np.ones_like(paper), m)
    return np.array(Image.fromarray(paper.astype(np.float32)).resize((w, h), Image.Resampling.BILINEAR))


def _box(a: np.ndarray, k: int) -> np.ndarray:
    """Sum over a k x k window (k odd), the window cut at the edges. Not Pillow's BoxBlur: it takes 8-bit images
    only and repeats the edge pixels outward instead."""
    for axis in (0, 1):
        c = np.cumsum(np.pad(a, [(k // 2 + 1, k // 2) if ax == axis else (0, 0) for ax in (0, 1)]), axis=axis)
        a = np.take(c, np.arange(k, c.shape[axis]), axis=axis) - np.take(c, np.arange(0, c.shape[axis] - k), axis=axis)
    return a


_LEVELS = np.arange(256) / 255


def _otsu(ink: np.ndarray, zeros: float = 0.0) -> float:
    """Otsu's threshold on `ink` (in [0, 1], 256 levels) and `zeros` more pixels of 0: the split with most
    between-class variance."""
    levels = np.ascontiguousarray((ink * 255).astype(np.uint8))
    hist = np.asarray(Image.fromarray(levels).histogram(), dtype=np.float64)  # Pillow's: 8x quicker than np.bincount
    hist[0] += zeros
    p = hist / hist.sum()
    omega, mu = np.cumsum(p), np.cumsum(p * _LEVELS)
    spread, weight = (mu[-1] * omega - mu) ** 2, omega * (1 - omega)
    # A split with everything on one side (weight 0) separates nothing: its variance is 0.
    between = np.divide(spread, weight, out=np.zeros_like(spread), where=weight > 0)
    return (int(np.argmax(between)) + 1) / 255  # the darker class is the levels up to argmax, both ends included


def _crop(ink: np.ndarray) -> np.ndarray:
    return ink[_bounding_box(ink > 0)]


def stroke_width(ink: np.ndarray) -> float:
    """Mean stroke width in pixels: twice the inked area over its boundary length (2A/P for long strokes)."""
    mask = ink > 0
    padded = np.zeros((mask.shape[0] + 2, mask.shape[1] + 2), dtype=bool)
    padded[1:-1, 1:-1] = mask
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
    """The maximum of each factor x factor block of `image` (>= 0), the last row and column of blocks cut short.
    Not Pillow's Image.reduce: it averages each block, which fades the fine line this is meant to keep."""
    # A running maximum over the factor x factor strided views: the same result as zero-padding and
    # reshape(...).max(axis=(1, 3)), several times faster. A view that starts further in is a row or a
    # column shorter where the image's side is no multiple of factor: it updates the blocks it reaches.
    pooled: np.ndarray = image[::factor, ::factor].copy()
    for dy in range(factor):
        for dx in range(factor):
            if dy or dx:
                view = image[dy::factor, dx::factor]
                part = pooled[: view.shape[0], : view.shape[1]]
                np.maximum(part, view, out=part)
    return pooled


def _max_filter(image: np.ndarray, size: int) -> np.ndarray:
    """Grayscale dilation by a size x size square, as two 1-D passes (the image is padded by >= size).

    Each pass is the maximum over a sliding window of `size` pixels that wraps around at the edges (the padding
    makes the wrap harmless), from one strided view instead of `size` shifted copies. Not Pillow's MaxFilter and
    MinFilter: they give the same pixels, but take odd sizes only and look at all size x size pixels for each one,
    which made the whole preprocessing of a photo 3 times slower (a 20 x 20 dilation: 38 ms against 2.3 ms).
    """
    low, high = size - size // 2 - 1, size // 2  # the window spans [i - low, i + high]
    for axis in (0, 1):
        wrapped = np.pad(image, [(low, high) if ax == axis else (0, 0) for ax in (0, 1)], mode="wrap")
        image = sliding_window_view(wrapped, size, axis=axis).max(axis=-1)
    return image


def _fit(crop: np.ndarray, box: int) -> np.ndarray:
    """Scale so the longer side is `box` pixels, keeping the aspect ratio; strongest ink back at 1."""
    h, w = crop.shape
    scale = box / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))  # Pillow wants (width, height)
    # Lanczos averages over every source pixel when shrinking (anti-aliasing) and stays sharp when enlarging.
    small: np.ndarray = np.asarray(
        Image.fromarray(crop.astype(np.float32, copy=False)).resize(size, Image.Resampling.LANCZOS)
    )
    small = np.maximum(small, 0.0)  # Lanczos rings slightly below zero beside strokes
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
