"""`data=idx`: any four-file IDX set of 28x28 images (EMNIST, KMNIST, QMNIST, MNIST itself) as a data set.

The folder `data.root` holds a training and a test pair of images and labels, each `.gz` or plain, named as
their publishers name them: a file is told by the words in its name (`train`; `test` or `t10k`; `images` or
`idx3`; `labels` or `idx1`/`idx2`). A folder holding several sets (EMNIST's `gzip/` holds six) is narrowed
with `data.prefix=emnist-balanced`. The class count comes from the labels; the class names, in this order,
from `data.classes`, a `classes.txt` in the folder (one name per line, in label order), EMNIST's
`*-mapping.txt` (label and character code per line), or else the label numbers.

EMNIST stores each image transposed; `data.transpose` (by default: when the files are named `emnist-*`)
turns them upright, as the model should learn them. QMNIST's extended labels (`idx2-int`, eight columns)
give the class in their first column. Only MNIST's and Fashion-MNIST's checksums are known: another set is
taken on its own word, and each file's SHA-256 goes into provenance.json.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mnist_hydra.data.base import (
    IMAGE_SHAPE,
    Raw,
    SplitConfig,
    check_pixel_scale,
    class_names_for,
    label_dtype,
    require_classes,
    require_folder,
    require_root,
    resolve_path,
    scale_pixels,
)
from mnist_hydra.data.idx_format import read_idx_with_digest
from mnist_hydra.errors import DataError

log = logging.getLogger(__name__)

ROLES = ("train images", "train labels", "test images", "test labels")
CLASSES_FILE = "classes.txt"


@dataclass
class IdxConfig(SplitConfig):
    """A folder holding four IDX files: train and test images and labels."""

    name: str = "idx"
    root: str | None = None  # the folder with the four IDX files (.gz or plain)
    prefix: str | None = (
        None  # with several sets in the folder, the one whose files start with this, e.g. emnist-letters
    )
    classes: list[str] | None = (
        None  # class names in label order; null = classes.txt, EMNIST's mapping, or the label numbers
    )
    transpose: bool | None = None  # store-to-upright transpose of every image; null = for EMNIST's files (emnist-*)
    pixel_scale: float = 255  # the value of full ink in the image files: 255 (8-bit grey) or 1 (binarised, 0..1)

    def check(self) -> None:
        super().check()
        require_root(self.root, "the folder of your four IDX files, e.g. data.root=/path/to/emnist")
        check_pixel_scale(self.pixel_scale)


def load_idx_dataset(cfg: IdxConfig, known: Mapping[str, str] | None = None) -> Raw:
    """The IDX set in `cfg.root`, checked; `known` maps a file content's SHA-256 to the data set it belongs to."""
    root = resolve_path(cfg.root)
    given = f"data.root={cfg.root}"
    require_folder(
        root, given, "data=idx accepts a folder with four IDX files (train and test images and labels, .gz or plain)"
    )
    files = find_files(root, cfg.prefix, given)
    arrays, digests = [], {}
    for path in files:
        array, digests[path.name] = read_idx_with_digest(path)
        arrays.append(array)
    x_train, y_train, x_test, y_test = _checked(files, arrays)
    if cfg.pixel_scale != 255:
        for path, x in ((files[0], x_train), (files[2], x_test)):
            if len(x) and x.max() > cfg.pixel_scale:
                raise DataError(
                    f"{path}: pixel {int(x.max())} is over data.pixel_scale={cfg.pixel_scale:g}, the value of "
                    "full ink; data.pixel_scale=255 reads 8-bit grey levels"
                )
        x_train, x_test = scale_pixels(x_train, cfg.pixel_scale), scale_pixels(x_test, cfg.pixel_scale)
    if cfg.transpose if cfg.transpose is not None else files[0].name.lower().startswith("emnist"):
        x_train, x_test = (
            np.ascontiguousarray(x_train.transpose(0, 2, 1)),
            np.ascontiguousarray(x_test.transpose(0, 2, 1)),
        )
        log.info(
            "data: images transposed to stand upright (EMNIST stores them transposed; data.transpose=false "
            "keeps them as stored)"
        )
    names, named_by = _given_names(root, files, cfg.classes)
    class_names = class_names_for([y_train, y_test], names, str(root), named_by)
    require_classes(class_names, f"{given}: {root}")
    dtype = label_dtype(len(class_names))
    matches = sorted({known[d] for d in digests.values() if known and d in known})
    log.info(
        "data: %d train + %d test images in %d classes from %s%s",
        len(y_train),
        len(y_test),
        len(class_names),
        root,
        f" (checksums: {', '.join(matches)}'s files)" if matches else " (checksums recorded in provenance.json)",
    )
    return Raw(x_train, y_train.astype(dtype), x_test, y_test.astype(dtype), class_names, str(root), digests)


def find_files(root: Path, prefix: str | None, given: str) -> list[Path]:
    """The four files, in ROLES order; DataError naming what is missing or which files compete for a role."""
    candidates: dict[str, list[Path]] = {role: [] for role in ROLES}
    for path in sorted(root.iterdir()):
        if not path.is_file() or (prefix and not path.name.startswith(prefix)):
            continue
        role = role_of(path.name)
        if role is not None:
            candidates[role].append(path)
    chosen = []
    for role, paths in candidates.items():
        paths = _prefer_gz(paths)
        if not paths:
            named = f" whose name starts with {prefix}" if prefix else ""
            raise DataError(
                f"{given}: {root} has no {role} file{named}; data=idx needs four IDX files named like "
                "train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and "
                "t10k-labels-idx1-ubyte (.gz or plain)"
            )
        if len(paths) > 1:
            sets = sorted({p.name.split(role.split()[0])[0].rstrip("-_") or "(no prefix)" for p in paths})
            raise DataError(
                f"{given}: {root} holds several {role} files ({', '.join(p.name for p in paths)}); "
                f"pick one set with data.prefix=NAME, e.g. data.prefix={sets[0]}"
            )
        chosen.append(paths[0])
    return chosen


def role_of(name: str) -> str | None:
    """'train images', 'test labels', ... for an IDX file's name; None for a name that says neither."""
    words = set(re.split(r"[^a-z0-9]+", name.lower().removesuffix(".gz")))
    split = "train" if "train" in words else "test" if words & {"test", "t10k"} else None
    kind = "images" if words & {"images", "idx3"} else "labels" if words & {"labels", "idx1", "idx2"} else None
    if split is None or kind is None or (words & {"images", "idx3"} and words & {"labels", "idx1", "idx2"}):
        return None
    return f"{split} {kind}"


def _prefer_gz(paths: list[Path]) -> list[Path]:
    """One file per name: NAME.gz over a plain NAME beside it (MNIST's folders hold both; reading the .gz checks
    that the plain twin holds the same data)."""
    gz = {p.name.removesuffix(".gz") for p in paths if p.name.endswith(".gz")}
    return [p for p in paths if p.name.endswith(".gz") or p.name not in gz]


def _checked(files: list[Path], arrays: list[np.ndarray]) -> tuple[np.ndarray, ...]:
    """The arrays as (images, labels, images, labels); DataError for a wrong shape, type or count."""
    out: list[np.ndarray] = []
    for i in (0, 2):
        x, y = arrays[i], arrays[i + 1]
        if x.dtype != np.uint8 or x.ndim != 3 or x.shape[1:] != IMAGE_SHAPE:
            raise DataError(
                f"{files[i]}: expected uint8 images of shape (n, 28, 28), found {x.dtype} {x.shape}; "
                "other sizes: data=folder resizes images of any size"
            )
        if y.ndim == 2 and y.shape[1] >= 1:  # QMNIST's extended labels: the class, then its provenance
            y = y[:, 0]
        if y.ndim != 1 or y.dtype.kind not in "iu":
            raise DataError(f"{files[i + 1]}: expected integer labels of shape (n,), found {y.dtype} {y.shape}")
        if len(x) != len(y):
            raise DataError(
                f"{files[i + 1]}: {len(y)} labels for the {len(x)} images of {files[i].name}; the counts must agree"
            )
        out += [x, y.astype(np.int64)]
    return tuple(out)


def _given_names(root: Path, files: list[Path], classes: list[str] | None) -> tuple[list[str] | None, str]:
    """Class names from data.classes, classes.txt, or EMNIST's mapping file, and where they came from."""
    if classes is not None:
        return [str(c) for c in classes], "data.classes"
    listed = root / CLASSES_FILE
    if listed.is_file():
        names = [line.strip() for line in _read_text(listed).splitlines()]
        while names and not names[-1]:
            names.pop()
        if not names or "" in names:
            raise DataError(f"{listed}: expected one class name per line, in label order, with no blank line")
        return names, str(listed)
    prefix = files[0].name.split("train")[0].rstrip("-_")
    mapping = root / f"{prefix}-mapping.txt"
    if prefix and mapping.is_file():
        return _read_mapping(mapping), str(mapping)
    return None, "data.classes"


def _read_mapping(path: Path) -> list[str]:
    """EMNIST's `label code [code ...]` lines as class names: the character (or characters) of each label."""
    entries: dict[int, str] = {}
    for number, line in enumerate(_read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            label, *codes = (int(word) for word in line.split())
            entries[label] = "".join(chr(code) for code in codes) or str(label)
        except (ValueError, OverflowError):
            raise DataError(f"{path}: line {number}: {line.strip()!r} is not 'label character-code ...'") from None
    if not entries or min(entries) < 0:
        raise DataError(f"{path}: expected lines of 'label character-code' with labels 0, 1, 2, ...")
    return [entries.get(i, str(i)) for i in range(max(entries) + 1)]


def _read_text(path: Path) -> Any:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: cannot read it as UTF-8 text: {err}") from err
