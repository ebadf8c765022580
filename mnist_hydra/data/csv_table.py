"""`data=csv`: a CSV file of images, one row each: a label column and the pixel columns.

The pixel count says the images' shape: a square count is a square grey image (784 = 28x28, Kaggle's "Digit
Recognizer" format `label,pixel0,...,pixel783`; 1024 = 32x32; 4096 = 64x64), three times a square a square RGB
image (3072 = 32x32x3, 12288 = 64x64x3). An RGB row is assumed to hold its channels one after another, as the
CIFAR-10 CSV exports do (they are rows of the python version's `data` array): all the red pixels, then all the
green, then all the blue, each row by row. `data.image_size=[H, W]` and `data.channels=1|3` settle a count the
rule reads otherwise (3072 as 48x64 grey) or cannot read (a non-square image); a count that makes no image is
refused in one line that names what would fit. Pixels are 0..255, stored as the model's input without
preprocessing (28x28 grey: white digit on black as in MNIST); a picture given to the trained run (predict,
/predict) is made a digit for 28x28 grey data and is resized to the data's shape for any other.
`data.label_column` names another label column; the other columns, in file order, are the pixels. Labels are
class indices 0, 1, 2, ...: the class count is the largest label plus one, unless `data.classes` names the
classes. The test split is `data.test_split` of each class, held out with a fixed seed.

Columns may be separated by commas, semicolons, tabs or bars (told from the header line). A file whose first
line is numbers has no header: its columns are numbered from 0 (`data.label_column=0` for a label first). Text
that is not UTF-8 is read as Windows' cp1252. Pixels stored from 0 to 1 (binarised, or scaled) are read with
`data.pixel_scale=1`; left at 255, such a file is refused rather than trained to chance.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mnist_hydra.data.base import (
    Raw,
    SplitConfig,
    check_pixel_scale,
    check_test_split,
    class_names_for,
    input_shape,
    label_dtype,
    listed,
    require_classes,
    require_root,
    resolve_path,
    scale_pixels,
    shorten,
    split_raw,
)
from mnist_hydra.data.preparation import (
    CHANNELS,
    DIGIT,
    DIGIT_SHAPE,
    MAX_SIDE,
    MIN_SIDE,
    Preparation,
    Shape,
    describe,
)
from mnist_hydra.errors import DataError, one_line, require

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

PIXELS = DIGIT_SHAPE[0] * DIGIT_SHAPE[1]  # Kaggle's digits: 784 pixel columns
# The separators a header line is searched for, most common first; a whitespace-separated file is read as such.
SEPARATORS = {",": "commas", ";": "semicolons", "\t": "tabs", "|": "bars"}


@dataclass
class CsvConfig(SplitConfig):
    """A CSV file: a label column and the pixel columns (784 in Kaggle's train.csv), the shape told by their count."""

    name: str = "csv"
    root: str | None = None  # the CSV file (plain, or .gz/.zip/.bz2/.xz: pandas reads them)
    label_column: str = "label"  # the column holding the class index of each row
    classes: list[str] | None = None  # class names in label order; null = "0" .. the largest label
    test_split: float = 0.2  # share of each class held out for testing
    pixel_scale: float = 255  # the value of full ink in the file: 255 (8-bit grey, Kaggle's) or 1 (pixels 0..1)
    image_size: list[int] | None = None  # [height, width]; null = told by the pixel count (a square)
    channels: int | None = None  # 1 = grey, 3 = RGB (red, green, blue columns in turn); null = told by the count

    def check(self) -> None:
        super().check()
        require_root(self.root, "your CSV file, e.g. data.root=/path/to/train.csv")
        check_test_split(self.test_split)
        check_pixel_scale(self.pixel_scale)
        size = self.image_size
        require(
            size is None or (len(size) == 2 and all(MIN_SIDE <= side <= MAX_SIDE for side in size)),
            "image_size",
            size,
            f"null (told by the pixel count) or [height, width], each from {MIN_SIDE} to {MAX_SIDE}, e.g. [32, 32]",
        )
        require(
            self.channels is None or self.channels in CHANNELS,
            "channels",
            self.channels,
            "null (told by the pixel count), 1 (grey) or 3 (RGB)",
        )

    def declared_shape(self) -> Shape | None:
        if self.image_size is None or self.channels is None:
            return None  # the file's pixel count tells
        return (int(self.image_size[0]), int(self.image_size[1]), int(self.channels))


def load_csv_dataset(cfg: CsvConfig) -> Raw:
    """The images and labels of the CSV file `cfg.root`, checked, with a test split held out."""
    path = resolve_path(cfg.root)
    given = f"data.root={cfg.root}"
    if not path.is_file():
        what = (
            "is a folder, not a file"
            if path.is_dir()
            else "not a regular file (a device, a pipe or a socket)"
            if path.exists()
            else "no such file"
        )
        raise DataError(
            f"{given}: {path}: {what}; data=csv accepts a CSV file with a '{cfg.label_column}' "
            f"column and pixel columns ({PIXELS} in Kaggle's train.csv)"
        )
    frame = _read(path, given)
    images, labels = _arrays(frame, path, cfg)
    class_names = class_names_for([labels], cfg.classes, str(path))
    require_classes(class_names, f"{given}: {path}")
    labels = labels.astype(label_dtype(len(class_names)))
    checksums = {path.name: _sha256(path)}
    shape = input_shape(images)
    # 28x28 grey rows are MNIST-style digits (Kaggle's); a picture for any other shape is resized to it.
    preparation = DIGIT if shape == DIGIT_SHAPE else Preparation("resize", shape[:2], shape[2])
    raw = split_raw(images, labels, cfg.test_split, class_names, str(path), checksums, preparation)
    log.info(
        "data: %d train + %d test %s images in %d classes from %s (data.test_split=%g of each class held out)",
        len(raw.y_train),
        len(raw.y_test),
        describe(shape),
        len(class_names),
        path,
        cfg.test_split,
    )
    return raw


def _read(path: Path, given: str) -> pd.DataFrame:
    """The CSV as a frame: its separator and header told from its first line, its text UTF-8 or else cp1252."""
    import pandas as pd

    encoding: dict[str, Any] = {"encoding": "utf-8"}  # cp1252 once a read finds text that is not UTF-8

    def read(**options: Any) -> pd.DataFrame:
        try:
            frame: pd.DataFrame = pd.read_csv(path, skipinitialspace=True, low_memory=False, **encoding, **options)
            return frame
        except UnicodeDecodeError as err:
            byte = err.object[err.start]
            if b"\0" in err.object[:65536]:
                raise DataError(f"{given}: {path} is not a text CSV file (it holds NUL bytes: binary data)") from err
            if encoding["encoding"] == "cp1252":
                raise DataError(
                    f"{given}: {path} is text in neither UTF-8 nor cp1252 (byte 0x{byte:02x}); save it as UTF-8"
                ) from err
            log.warning("data: %s is text but not UTF-8 (byte 0x%02x); reading it as cp1252 (Windows)", path, byte)
            encoding["encoding"] = "cp1252"
            return read(**options)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError, OSError, EOFError) as err:
            raise DataError(f"{given}: {path}: cannot read it as CSV: {shorten(one_line(err), 160)}") from err

    header = read(nrows=0)
    options: dict[str, Any] = {}
    columns = [str(c) for c in header.columns]
    if len(columns) == 1:
        line = columns[0]
        counts = {sep: line.count(sep) for sep in SEPARATORS}
        sep = max(counts, key=lambda k: counts[k])
        if counts[sep]:
            options["sep"] = sep
            log.info("data: %s: columns separated by %s", path, SEPARATORS[sep])
        elif len(line.split()) > 1:
            options["sep"] = r"\s+"
            log.info("data: %s: columns separated by spaces", path)
        else:
            raise DataError(
                f"{given}: {path}: its header line '{shorten(line, 60)}' is one column; data=csv reads columns "
                "separated by commas, semicolons, tabs, bars or spaces"
            )
    frame = read(**options)
    names = [str(c) for c in frame.columns]
    numbered = names in ([str(i) for i in range(len(names))], [str(i + 1) for i in range(len(names))])
    if all(_is_number(c) for c in names) and not numbered:
        # The first line is an image (a header of column numbers, as pandas writes one, is a header): read it
        # again as data, with the columns numbered from 0.
        frame = read(**options, header=None)
        frame.columns = [str(i) for i in range(frame.shape[1])]
        frame.attrs["headerless"] = True
    return frame


def _is_number(text: Any) -> bool:
    try:
        float(str(text))
    except ValueError:
        return False
    return True


def pixel_shape(count: int, image_size: list[int] | None = None, channels: int | None = None) -> Shape | None:
    """The image shape (height, width, channels) of `count` pixel columns, within the keys that are set; None for
    none. Without image_size the image is square: grey (a square count) or RGB (three times a square)."""
    kinds = list(CHANNELS) if channels is None else [channels]
    if image_size is not None:
        height, width = (int(side) for side in image_size)
        return next(((height, width, c) for c in kinds if height * width * c == count), None)
    for c in kinds:
        side = math.isqrt(count // c)
        if count % c == 0 and side * side * c == count and MIN_SIDE <= side <= MAX_SIDE:
            return (side, side, c)
    return None


def _shape(count: int, path: Path, cfg: CsvConfig) -> Shape:
    """`pixel_shape` of the file's pixel columns; DataError naming the count and what would fit."""
    shape = pixel_shape(count, cfg.image_size, cfg.channels)
    if shape is not None:
        return shape
    beside = f"{count} pixel columns beside '{shorten(cfg.label_column)}'"
    if cfg.image_size is None and cfg.channels is None:
        raise DataError(
            f"{path}: {beside} is not an image: expected {PIXELS} (28x28) or another square (1024 = 32x32, "
            "4096 = 64x64, ...), or 3 squares for RGB (3072 = 32x32x3), or set data.image_size and data.channels"
        )
    keys = " ".join(
        f"data.{key}={value}".replace(" ", "")
        for key, value in (("image_size", cfg.image_size), ("channels", cfg.channels))
        if value is not None
    )
    if cfg.image_size is not None:
        height, width = cfg.image_size
        kinds = list(CHANNELS) if cfg.channels is None else [cfg.channels]
        need = " or ".join(f"{height * width * c} ({height}x{width}x{c})" for c in kinds)
    else:
        c = cfg.channels or 1
        need = ("a square" if c == 1 else f"{c} times a square") + f" (e.g. {32 * 32 * c} = 32x32x{c})"
    raise DataError(f"{path}: {beside} do not make {keys} images: they need {need} pixel columns")


def _arrays(frame: pd.DataFrame, path: Path, cfg: CsvConfig) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images (n, height, width) grey or (n, height, width, 3) RGB, int64 labels (n,)); DataError naming
    the first bad column, row or cell."""
    label_column, scale = cfg.label_column, cfg.pixel_scale
    columns = [str(c) for c in frame.columns]
    if label_column not in columns:
        if frame.attrs.get("headerless"):
            raise DataError(
                f"{path}: has no header line (its first line is numbers), so its {len(columns)} columns are "
                f"numbered from 0; name the label column by its number, e.g. data.label_column=0 for the first"
            )
        if pixel_shape(len(columns), cfg.image_size, cfg.channels) is not None:
            raise DataError(
                f"{path}: no '{shorten(label_column)}' column: its {len(columns)} columns are pixels only (images "
                "without labels, like Kaggle's test.csv), which cannot be trained on; give a CSV with a "
                "label column, or name it with data.label_column=NAME"
            )
        raise DataError(
            f"{path}: no '{shorten(label_column)}' column (its columns: {listed(columns)}); name the label "
            "column with data.label_column=NAME"
        )
    pixel_columns = [c for c in frame.columns if str(c) != label_column]
    height, width, channels = _shape(len(pixel_columns), path, cfg)
    if frame.empty:
        raise DataError(f"{path}: has a header but no rows; expected one row per image")
    labels = _integers(frame[[label_column]], path, "label", "labels are class indices 0, 1, 2, ...")
    pixels = _numbers(frame[pixel_columns], path)
    bad = np.argwhere((pixels < 0) | (pixels > scale))
    if len(bad):
        row, col = bad[0]
        raise DataError(
            f"{path}: row {row + 2}, column '{shorten(pixel_columns[col])}': pixel {pixels[row, col]:g} is outside "
            f"0..{scale:g} ({len(bad)} such cells); pixels run from 0 to data.pixel_scale={scale:g}"
            + ("" if scale == 255 else ", or to 255 with data.pixel_scale=255")
        )
    largest = pixels.max()
    if scale == 255 and largest <= 1:
        raise DataError(
            f"{path}: the largest pixel is {largest:g}: pixels from 0 to 1 (binarised, or scaled), not grey levels "
            "0..255, which would train to chance; set data.pixel_scale=1 to read 1 as full ink"
        )
    if scale == 255:
        cell = np.argwhere(pixels != np.round(pixels))
        if len(cell):
            row, col = cell[0]
            raise DataError(
                f"{path}: row {row + 2}, column '{shorten(pixel_columns[col])}': {pixels[row, col]:g} is not an "
                f"integer pixel; with data.pixel_scale=255 pixels are integers from 0 to 255 (pixels that run "
                "to another value: data.pixel_scale=THAT)"
            )
    if labels.max() >= 2**31:
        raise DataError(f"{path}: label {labels.max():g} is too large; labels are class indices 0, 1, 2, ...")
    images = scale_pixels(pixels, scale)
    if channels == 1:
        images = images.reshape(-1, height, width)
    else:  # the channels' planes one after another (CIFAR's layout), made height, width, channels
        images = images.reshape(-1, channels, height, width).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels.reshape(-1).astype(np.int64)


def _numbers(frame: pd.DataFrame, path: Path) -> np.ndarray:
    """The pixel columns as float64; DataError naming the first cell that is no number."""
    for name in frame.columns:
        found = _first_bad_cell(frame[name], np.isfinite, _is_finite)
        if found is None:
            continue
        row, text = found
        shown = "an empty cell" if isinstance(text, float) and np.isnan(text) else repr(shorten(str(text)))
        raise DataError(
            f"{path}: row {row + 2}, column '{shorten(str(name))}': {shown} is not a number; pixels are "
            "grey levels from 0 to data.pixel_scale (255)"
        )
    return frame.to_numpy(dtype=np.float64)


def _first_bad_cell(
    values: pd.Series, column_ok: Callable[[np.ndarray], np.ndarray], cell_ok: Callable[[Any], bool]
) -> tuple[int, Any] | None:
    """The first cell of a column that is not acceptable, as (row counted from 0, its content); None when all are.

    A numeric column is judged at once by `column_ok` on its values as floats (an empty cell is NaN); a column
    of text, cell by cell by `cell_ok`.
    """
    if values.dtype.kind in "iufb":
        bad = np.flatnonzero(~column_ok(values.to_numpy(dtype=float, na_value=np.nan)))
        return (int(bad[0]), values.iloc[int(bad[0])]) if len(bad) else None
    return next(((row, text) for row, text in enumerate(values) if not cell_ok(text)), None)


def _is_finite(text: Any) -> bool:
    try:
        return bool(np.isfinite(float(text)))
    except (TypeError, ValueError, OverflowError):
        return False


def _integers(frame: pd.DataFrame, path: Path, what: str, accepted: str) -> np.ndarray:
    """The columns' integers, as float64 (integral floats such as 3.0 count too); DataError naming the first cell that is no integer.

    Rows are numbered as in an editor: the header is line 1, the first image line 2.
    """
    for name in frame.columns:
        if frame[name].dtype.kind in "iu":
            continue
        found = _first_bad_cell(frame[name], lambda v: np.isfinite(v) & (v == np.round(v)), _is_integer)
        if found is None:
            continue
        row, text = found
        if isinstance(text, (float, np.floating)):
            shown = "an empty cell" if np.isnan(text) else f"{text:g}"
        else:
            shown = repr(shorten(str(text)))
        raise DataError(
            f"{path}: row {row + 2}, column '{shorten(str(name))}': {shown} is not an integer {what}; {accepted}"
        )
    # float64 holds every integer a CSV of pixels or labels has exactly, and a range check needs no overflow.
    return frame.to_numpy(dtype=np.float64)


def _is_integer(text: Any) -> bool:
    try:
        return float(text) == int(float(text))
    except (TypeError, ValueError, OverflowError):
        return False


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
