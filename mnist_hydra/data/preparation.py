"""How a picture file becomes the model's input, the one way for training and for use: `digit` or `resize`.

- `digit` (mnist_hydra.data.digits): find the ink, crop it, fit 20x20, centre it in 28x28 grey, as MNIST's digits
  were made. For digits and handwriting.
- `resize`: the picture as it is, at the run's size and colour: its EXIF orientation applied, transparency
  flattened onto `background`, converted to RGB (channels=3) or grey (channels=1), then fitted to
  `image_size` by `fit`: `crop` (cut the middle to the target's aspect ratio, then resize) or `pad` (add
  `background` around it to that aspect ratio, then resize), as Keras's image_dataset_from_directory does with
  crop_to_aspect_ratio and pad_to_aspect_ratio. For anything else.

A run records its Preparation in metrics.json (`Preparation.record`), and predict, /predict and export read it
back (`Preparation.from_record`): an upload is made the model's input exactly as the training images were. A
run without the record is an MNIST-style run of 28x28 grey digits.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np

if TYPE_CHECKING:
    from PIL import Image

# Pillow is imported where a picture is read: validating a config needs this module, not an image library.
PREPROCESS = ("digit", "resize")
FITS = ("crop", "pad")
CHANNELS = (1, 3)
MIN_SIDE = 8  # a smaller image leaves a network nothing to find (and a 2x2 pool of a 3x3 conv no pixel)
MAX_SIDE = 1024  # beyond this the decoded arrays of a folder outgrow memory long before they help
DIGIT_SHAPE = (28, 28, 1)  # an MNIST digit: 28x28 grey (mnist_hydra.data.digits makes them)

Shape = tuple[int, int, int]


@dataclass(frozen=True)
class Preparation:
    """The preprocessing a run's images were made with, and so the shape (height, width, channels) they have."""

    preprocess: str = "digit"  # digit | resize
    image_size: tuple[int, int] = DIGIT_SHAPE[:2]  # (height, width), pixels
    channels: int = 1  # 1 = grey, 3 = RGB
    background: str = "white"  # resize: the colour transparency is flattened onto, and pad fills with
    fit: str = "crop"  # resize: crop | pad, to the aspect ratio of image_size

    @property
    def shape(self) -> Shape:
        """(height, width, channels) of the images this preparation makes."""
        return (self.image_size[0], self.image_size[1], self.channels)

    def record(self) -> dict[str, Any]:
        """The preparation as metrics.json records it."""
        if self.preprocess == "digit":
            return {"preprocess": "digit"}
        return {
            "preprocess": "resize",
            "image_size": list(self.image_size),
            "channels": self.channels,
            "background": self.background,
            "fit": self.fit,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any] | None) -> Preparation:
        """A run's recorded preparation; none recorded (a run from before the record) is the digit one."""
        if not record or record.get("preprocess", "digit") == "digit":
            return DIGIT
        height, width = (int(side) for side in record["image_size"])
        return cls(
            "resize",
            (height, width),
            int(record["channels"]),
            str(record.get("background", "white")),
            str(record.get("fit", "crop")),
        )


DIGIT = Preparation()


def describe(shape: Shape) -> str:
    """'28x28 grey' or '32x32 RGB': an image shape in words, for messages."""
    height, width, channels = shape
    return f"{height}x{width} " + {1: "grey", 3: "RGB"}.get(channels, f"{channels}-channel")


def prepare_file(path: str | os.PathLike[str], prep: Preparation, max_pixels: int | None = None) -> np.ndarray:
    """The image in `path` as the model's input: float32 (height, width, channels) in [0, 1]."""
    return _prepare(path, str(path), prep, max_pixels)


def prepare_bytes(data: bytes, prep: Preparation, name: str = "upload", max_pixels: int | None = None) -> np.ndarray:
    """The same as `prepare_file`, for an image file's content; errors start with `name`."""
    from mnist_hydra.data.image_files import ImageError

    if not data:
        raise ImageError(f"{name}: the file is empty (0 bytes), no image in it")
    return _prepare(io.BytesIO(data), name, prep, max_pixels)


def _prepare(
    source: str | os.PathLike[str] | BinaryIO, name: str, prep: Preparation, max_pixels: int | None
) -> np.ndarray:
    from mnist_hydra.data.digits import preprocess_source
    from mnist_hydra.data.image_files import read_image

    if prep.preprocess == "digit":
        digit: np.ndarray = preprocess_source(source, name, max_pixels)[..., np.newaxis]
        return digit
    array = read_image(source, name, max_pixels, convert=lambda image: fit_picture(image, prep))
    scaled: np.ndarray = array.astype(np.float32) / np.float32(255)
    return scaled


def fit_picture(image: Image.Image, prep: Preparation) -> np.ndarray:
    """A Pillow image (EXIF orientation applied) as uint8 (height, width, channels) by `prep`'s resize rule."""
    from PIL import Image, ImageColor

    from mnist_hydra.data.image_files import to_grayscale

    background = ImageColor.getrgb(prep.background)[:3]
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):  # 16-bit and float grey: Pillow's "L" would clip them
        image = Image.fromarray(np.rint(to_grayscale(image)).astype(np.uint8))
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info:
        canvas = Image.new("RGBA", image.size, (*background, 255))
        canvas.alpha_composite(image.convert("RGBA"))
        image = canvas
    image = image.convert("RGB" if prep.channels == 3 else "L")  # CMYK, P, YCbCr... made RGB or grey here
    height, width = prep.image_size
    image = _to_aspect(image, width / height, prep.fit, background if prep.channels == 3 else _grey(background))
    image = image.resize((width, height), Image.Resampling.BILINEAR)
    array = np.asarray(image, dtype=np.uint8)
    return array if prep.channels == 3 else array[..., np.newaxis]


def _grey(rgb: tuple[int, ...]) -> int:
    """An RGB colour's luminance, as Pillow's "L" conversion computes it."""
    from PIL import Image

    return int(Image.new("RGB", (1, 1), tuple(rgb)).convert("L").getpixel((0, 0)))  # type: ignore[arg-type]


def _to_aspect(image: Image.Image, ratio: float, fit: str, fill: int | tuple[int, ...]) -> Image.Image:
    """`image` cut (crop) or extended (pad) around its middle to width / height = `ratio`."""
    from PIL import Image

    width, height = image.size
    if abs(width / height - ratio) < 1e-9:
        return image
    if fit == "crop":
        w, h = (round(height * ratio), height) if width / height > ratio else (width, round(width / ratio))
        w, h = max(w, 1), max(h, 1)
        left, top = (width - w) // 2, (height - h) // 2
        return image.crop((left, top, left + w, top + h))
    w, h = (width, round(width / ratio)) if width / height > ratio else (round(height * ratio), height)
    canvas = Image.new(image.mode, (w, h), fill)
    canvas.paste(image, ((w - width) // 2, (h - height) // 2))
    return canvas
