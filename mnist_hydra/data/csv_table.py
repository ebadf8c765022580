"""`data=csv`: a CSV file of 28x28 images, one row each: a label column and 784 pixel columns.

This is the Kaggle "Digit Recognizer" format (`label,pixel0,...,pixel783`, row-major, 0..255, white digit on
black as in MNIST): the pixels are the model's input as they stand, without preprocessing. `data.label_column`
names another label column; the other 784 columns, in file order, are the pixels. Labels are class indices
0, 1, 2, ...: the class count is the largest label plus one, unless `data.classes` names the classes. The test
split is `data.test_split` of each class, held out with a fixed seed.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mnist_hydra.data.base import (
    IMAGE_SHAPE,
    Raw,
    SplitConfig,
    check_test_split,
    class_names_for,
    label_dtype,
    require_classes,
    require_root,
    resolve_path,
    split_raw,
)
from mnist_hydra.errors import DataError, one_line

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

PIXELS = IMAGE_SHAPE[0] * IMAGE_SHAPE[1]


@dataclass
class CsvConfig(SplitConfig):
    """A CSV file: a label column and 784 pixel columns (Kaggle's train.csv)."""

    name: str = "csv"
    root: str | None = None  # the CSV file (plain, or .gz/.zip/.bz2/.xz: pandas reads them)
    label_column: str = "label"  # the column holding the class index of each row
    classes: list[str] | None = None  # class names in label order; null = "0" .. the largest label
    test_split: float = 0.2  # share of each class held out for testing

    def check(self) -> None:
        super().check()
        require_root(self.root, "your CSV file, e.g. data.root=/path/to/train.csv")
        check_test_split(self.test_split)


def load_csv_dataset(cfg: CsvConfig) -> Raw:
    """The images and labels of the CSV file `cfg.root`, checked, with a test split held out."""
    path = resolve_path(cfg.root)
    given = f"data.root={cfg.root}"
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "no such file"
        raise DataError(
            f"{given}: {path}: {what}; data=csv accepts a CSV file with a '{cfg.label_column}' "
            f"column and {PIXELS} pixel columns (Kaggle's train.csv)"
        )
    frame = _read(path, given)
    images, labels = _arrays(frame, path, cfg.label_column)
    class_names = class_names_for([labels], cfg.classes, str(path))
    require_classes(class_names, f"{given}: {path}")
    labels = labels.astype(label_dtype(len(class_names)))
    checksums = {path.name: _sha256(path)}
    raw = split_raw(images, labels, cfg.test_split, class_names, str(path), checksums)
    log.info(
        "data: %d train + %d test images in %d classes from %s (data.test_split=%g of each class held out)",
        len(raw.y_train),
        len(raw.y_test),
        len(class_names),
        path,
        cfg.test_split,
    )
    return raw


def _read(path: Path, given: str) -> pd.DataFrame:
    import pandas as pd

    try:
        return pd.read_csv(path, skipinitialspace=True, low_memory=False)
    except UnicodeDecodeError as err:
        raise DataError(f"{given}: {path} is not a text CSV file ({one_line(err)[:120]})") from err
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError, OSError, EOFError) as err:
        raise DataError(f"{given}: {path}: cannot read it as CSV: {one_line(err)[:300]}") from err


def _arrays(frame: pd.DataFrame, path: Path, label_column: str) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images (n, 28, 28), int64 labels (n,)); DataError naming the first bad column, row or cell."""
    columns = [str(c) for c in frame.columns]
    if label_column not in columns:
        if len(columns) == PIXELS:
            raise DataError(
                f"{path}: no '{label_column}' column: its {PIXELS} columns are pixels only (images "
                "without labels, like Kaggle's test.csv), which cannot be trained on; give a CSV with a "
                "label column, or name it with data.label_column=NAME"
            )
        raise DataError(
            f"{path}: no '{label_column}' column (its columns: {_shown(columns)}); name the label "
            "column with data.label_column=NAME"
        )
    pixel_columns = [c for c in frame.columns if str(c) != label_column]
    if len(pixel_columns) != PIXELS:
        raise DataError(
            f"{path}: {len(pixel_columns)} pixel columns beside '{label_column}'; expected {PIXELS} "
            "(28x28 images, one row each: label,pixel0,...,pixel783)"
        )
    if frame.empty:
        raise DataError(f"{path}: has a header but no rows; expected one row per image")
    labels = _integers(frame[[label_column]], path, "label", "labels are class indices 0, 1, 2, ...")
    pixels = _integers(frame[pixel_columns], path, "pixel", "pixels are integers from 0 to 255")
    bad = np.argwhere((pixels < 0) | (pixels > 255))
    if len(bad):
        row, col = bad[0]
        raise DataError(
            f"{path}: row {row + 2}, column '{pixel_columns[col]}': pixel {pixels[row, col]:g} is outside "
            f"0..255 ({len(bad)} such cells); pixels are 8-bit grey levels"
        )
    if labels.max() >= 2**31:
        raise DataError(f"{path}: label {labels.max():g} is too large; labels are class indices 0, 1, 2, ...")
    return pixels.astype(np.uint8).reshape(-1, *IMAGE_SHAPE), labels.reshape(-1).astype(np.int64)


def _integers(frame: pd.DataFrame, path: Path, what: str, accepted: str) -> np.ndarray:
    """The columns' integers, as float64 (integral floats such as 3.0 count too); DataError naming the first cell that is no integer.

    Rows are numbered as in an editor: the header is line 1, the first image line 2.
    """
    for _col, name in enumerate(frame.columns):
        values = frame[name]
        if values.dtype.kind in "iu":
            continue
        numbers = values.to_numpy(dtype=float, na_value=np.nan) if values.dtype.kind in "fb" else None
        if numbers is not None:
            bad = np.flatnonzero(~np.isfinite(numbers) | (numbers != np.round(numbers)))
            if not len(bad):
                continue
            row, text = int(bad[0]), values.iloc[int(bad[0])]
        else:
            row, text = next(((r, t) for r, t in enumerate(values) if not _is_integer(t)), (-1, None))
            if row < 0:
                continue
        if isinstance(text, (float, np.floating)):
            shown = "an empty cell" if np.isnan(text) else f"{text:g}"
        else:
            shown = repr(str(text))
        raise DataError(f"{path}: row {row + 2}, column '{name}': {shown} is not an integer {what}; {accepted}")
    # float64 holds every integer a CSV of pixels or labels has exactly, and a range check needs no overflow.
    return frame.to_numpy(dtype=np.float64)


def _is_integer(text: Any) -> bool:
    try:
        return float(text) == int(float(text))
    except (TypeError, ValueError, OverflowError):
        return False


def _shown(columns: list[str]) -> str:
    return ", ".join(columns[:5]) + (f", ... ({len(columns)} in all)" if len(columns) > 5 else "")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
