"""Reading a picture file: which files are images (by name, else by their first bytes), and any image Pillow
decodes as a grayscale array, read safely (no hang on a file that never answers, no decompression bomb, one
line for a file that is not an image).

`read_image` gives the grayscale array for a file (a path or a binary stream) of any size and colour mode;
transparent pixels become the background. An image of more than `max_pixels` pixels (by default Pillow's
decompression-bomb limit) is refused before it is decoded.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from mnist_hydra.errors import UserError, one_line


class ImageError(UserError):
    """A file that is not a readable image, or an image without a digit in it."""

    exit_code = 1


def image_suffixes() -> frozenset[str]:
    """The file name endings of every format Pillow can decode (.png, .jpg, .gif, .webp, .tif, .bmp...)."""
    return frozenset(
        suffix
        for suffix, name in Image.registered_extensions().items()
        if name in Image.OPEN and not _is_stub(Image.OPEN[name][0])
    )


def _is_stub(factory: object) -> bool:
    """A plugin that recognises a format but needs a handler to decode it (HDF5, GRIB, BUFR, WMF)."""
    return isinstance(factory, type) and issubclass(factory, ImageFile.StubImageFile)


def is_image_file(path: Path) -> bool:
    """Whether `path` is a regular file that Pillow recognises as an image, by its name or else its first bytes."""
    if not path.is_file():
        return False
    if path.suffix.lower() in image_suffixes():
        return True
    try:
        stream = _open_nonblocking(path)
    except OSError:
        return False
    try:
        with stream, Image.open(stream):  # reads the header only
            return True
    except Exception:  # Pillow raises UnidentifiedImageError, OSError, SyntaxError... for what it cannot read
        return False


def _open_nonblocking(path: str | os.PathLike[str]) -> BinaryIO:
    """`path` opened for reading without blocking: some "regular" files never answer a read (/proc/kmsg waits for
    the next kernel message), and an image must not hang the command that reads it."""
    return os.fdopen(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb")


def read_image(
    source: str | os.PathLike[str] | BinaryIO,
    name: str | None = None,
    max_pixels: int | None = None,
    convert: Callable[[Image.Image], np.ndarray] | None = None,
) -> np.ndarray:
    """A PNG, JPEG (any format Pillow reads) as grayscale (h, w) in [0, 255]: `to_grayscale`'s array, or
    `convert`'s array of the decoded image (its EXIF orientation applied).

    `source` is a path or a binary stream; `name` is what errors call it (default: the path).
    More than `max_pixels` pixels (default and at most Pillow's MAX_IMAGE_PIXELS) is an ImageError.
    """
    name = str(source) if name is None else name
    limit = Image.MAX_IMAGE_PIXELS if max_pixels is None else min(max_pixels, Image.MAX_IMAGE_PIXELS or max_pixels)
    try:
        stream = _open_nonblocking(source) if isinstance(source, (str, os.PathLike)) else contextlib.nullcontext(source)
        with stream as opened:
            if isinstance(opened, io.BufferedReader) and not opened.peek(1):
                raise ImageError(f"{name}: not a readable image (empty, or nothing to read without waiting)")
            with warnings.catch_warnings():
                # Between Pillow's limit and twice it, Image.open warns and goes on: the limit below refuses it.
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                image = Image.open(opened)
            with image:
                width, height = image.size
                if width == 0 or height == 0:
                    raise ImageError(f"{name}: the image is empty ({width}x{height} pixels)")
                if limit and width * height > limit:
                    raise _too_large(name, width, height, limit)
                ImageOps.exif_transpose(image, in_place=True)  # phone photos are stored sideways with a rotation tag
                return (convert or to_grayscale)(image)
    except ImageError:
        raise
    except FileNotFoundError:
        raise ImageError(f"{name}: no such file") from None
    except Image.DecompressionBombError as err:  # over twice Pillow's limit: refused inside Image.open
        size = re.search(r"(\d+) pixels", str(err))
        raise ImageError(
            f"{name}: refused, {size.group(1) if size else 'too many'} pixels is over the limit of "
            f"{limit} (a decompression bomb?)"
        ) from None
    except UnidentifiedImageError:
        raise ImageError(
            f"{name}: not a readable image (no format Pillow knows, or a broken or zero-size image)"
        ) from None
    except Exception as err:  # Pillow raises OSError, SyntaxError, ValueError, zlib errors... for broken files
        raise ImageError(f"{name}: not a readable image ({one_line(err)})") from None


def _too_large(name: str, width: int, height: int, limit: int) -> ImageError:
    return ImageError(
        f"{name}: refused, {width}x{height} = {width * height} pixels is over the limit of {limit} "
        "(a decompression bomb?); send a smaller picture"
    )


def to_grayscale(image: Image.Image) -> np.ndarray:
    """Any Pillow image as luminance in [0, 255], uint8 from an 8-bit image and float32 from a 16-bit or
    transparent one; transparency flattened onto a contrasting background."""
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
    return np.asarray(image if image.mode == "L" else image.convert("L"))
