"""What every data set shares: the split settings of its schema, the arrays a loader returns, class names.

A loader takes its schema (a SplitConfig subclass) and returns Raw: uint8 images (n, height, width) when grey or
(n, height, width, channels), integer labels 0..len(class_names)-1, the class names, and how a picture file is
made such an image (its Preparation: MNIST-style digits unless the loader says otherwise). The images' shape is
the data's word on the model's input: the model is built for it and the run records it. The class count is read from the data and flows down from here
(the model's last layer, the metrics, the report, serving), never assumed to be ten.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mnist_hydra.data.preparation import DIGIT, Preparation, Shape
from mnist_hydra.errors import DataError, require

log = logging.getLogger(__name__)

# The held-out test split of a data set that ships none: the same images whatever the run's seed, so runs with
# different seeds (and a sweep's jobs) are scored on one test set.
HOLDOUT_SEED = 0


@dataclass
class SplitConfig:
    """The keys every data option has: how its training set is split and cut."""

    name: str = "mnist"  # registered data set: mnist, fashion_mnist, folder, csv, idx
    val_split: float = 0.1  # share of the training set held out (seeded) for validation; 0 = validate on the test set
    train_limit: int | None = None  # train on only this many images (after the split); null = all
    test_limit: int | None = None  # score only this many test images; null = all
    folds: int | None = None  # k-fold cross-validation: K seeded folds of the training set; null = use val_split
    fold: int = 0  # with folds: which fold (0..K-1) validates; the other K-1 train

    def declared_shape(self) -> Shape | None:
        """(height, width, channels) of the images these settings give, when known before reading them; None when
        only the data can tell (the model is then checked against it once it is read)."""
        return None

    def check(self) -> None:
        """Raise FieldError for a value out of range; keys are relative to the `data` group."""
        require(0 <= self.val_split < 1, "val_split", self.val_split, "a share in [0, 1)")
        for key in ("train_limit", "test_limit"):
            value = getattr(self, key)
            require(value is None or value >= 1, key, value, "null (all) or a count >= 1")
        require(self.folds is None or self.folds >= 2, "folds", self.folds, "null or a fold count >= 2")
        if self.folds is None:
            require(self.fold == 0, "fold", self.fold, "0 unless data.folds=K is set (then 0..K-1)")
        else:
            require(0 <= self.fold < self.folds, "fold", self.fold, f"a fold index from 0 to {self.folds - 1}")


def check_test_split(value: float) -> None:
    """FieldError unless `value` is a share of each class that leaves some for training."""
    require(0 < value < 1, "test_split", value, "a share in (0, 1): part of each class is held out for testing")


@dataclass(frozen=True)
class Raw:
    """A whole data set as stored: train and test arrays, where they came from, their content digests."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    source: str  # folder or file the arrays were read from
    checksums: dict[str, str]  # file name -> SHA-256 of its content (or of the folder's listing)
    held_out: float | None = None  # the share of each class held out as the test split; None: a test set of its own
    preparation: Preparation = DIGIT  # how a picture file is made one of these images (predict, serving)


def input_shape(images: np.ndarray) -> Shape:
    """(height, width, channels) of the images in `images`, (n, height, width) grey or (n, height, width, channels)."""
    height, width = images.shape[1:3]
    return (int(height), int(width), int(images.shape[3]) if images.ndim == 4 else 1)


def require_root(root: str | None, accepts: str) -> None:
    """FieldError unless `root` names something: your own data has no place to be searched for."""
    require(root is not None and bool(str(root).strip()), "root", root, accepts)


def resolve_path(value: str | None) -> Path:
    """`data.root` as an absolute path (relative to the launch directory: Hydra does not chdir)."""
    return Path(os.path.expanduser(str(value))).absolute()


def require_folder(root: Path, given: str, accepts: str) -> None:
    """DataError unless `root` is a folder: `given` is how the user named it, `accepts` what the option takes."""
    if not root.is_dir():
        what = "is a file, not a folder" if root.exists() else "no such folder"
        raise DataError(f"{given}: {root}: {what}; {accepts}")


def class_names_for(
    labels: Sequence[np.ndarray], given: Sequence[str] | None, where: str, named_by: str = "data.classes"
) -> tuple[str, ...]:
    """The class names: `given` (one per label, in label order), else "0".."max label"; DataError for a label
    outside them or below 0. A class without any image is said in one warning line: the model gets an output
    for a class it never sees (EMNIST letters' unused label 0)."""
    found = [np.asarray(y) for y in labels if len(y)]
    low = min((int(y.min()) for y in found), default=0)
    high = max((int(y.max()) for y in found), default=-1)
    if low < 0:
        raise DataError(f"{where}: label {low} is negative; labels are class indices 0, 1, 2, ...")
    present = {int(p) for p in np.unique(np.concatenate(found))} if found else set()
    if given is None:
        empty = high + 1 - len(present)
        if empty > len(present):
            raise DataError(
                f"{where}: labels run up to {high}, which makes {high + 1} classes, {empty} of them "
                f"without an image; is label {high} a mistake? Labels are class indices 0, 1, 2, ..., "
                f"or name the classes with {named_by}=[...]"
            )
        names = tuple(str(i) for i in range(high + 1))
    else:
        names = tuple(str(name) for name in given)
        if len(set(names)) != len(names):
            twice = sorted({n for n in names if names.count(n) > 1})
            raise DataError(f"{named_by}: names a class twice ({listed(twice)}); each class once, in label order")
        if high >= len(names):
            raise DataError(
                f"{where}: label {high} is out of range for the {len(names)} classes of {named_by} "
                f"(labels 0..{len(names) - 1})"
            )
    missing = [i for i in range(len(names)) if i not in present]
    if missing and found:
        log.warning(
            "data: %d of the %d classes have no image (label %s%s); the model still gets an output for each",
            len(missing),
            len(names),
            listed([f"{i} '{names[i]}'" if names[i] != str(i) else str(i) for i in missing]),
            f", named by {named_by}" if given is not None else "",
        )
    return names


def require_classes(names: Sequence[str], where: str) -> None:
    """DataError unless there are at least two classes: one class leaves nothing to tell apart."""
    if len(names) < 2:
        got = f"only one class ({shorten(names[0])})" if names else "no class"
        raise DataError(f"{where}: {got}; a classifier needs at least two classes")


def holdout(labels: np.ndarray, share: float, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) indices: `share` of each class held out, seeded by HOLDOUT_SEED; every class keeps at least
    one training image, and one with two or more images gives the test split at least one."""
    rng = np.random.default_rng(HOLDOUT_SEED)
    train, test = [], []
    for label in range(num_classes):
        members = rng.permutation(np.flatnonzero(labels == label))
        n_test = min(max(round(len(members) * share), 1 if len(members) > 1 else 0), max(len(members) - 1, 0))
        test.append(members[:n_test])
        train.append(members[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def split_raw(
    images: np.ndarray,
    labels: np.ndarray,
    share: float,
    class_names: tuple[str, ...],
    source: str,
    checksums: dict[str, str],
    preparation: Preparation = DIGIT,
) -> Raw:
    """A data set without a test split of its own, with `share` of each class held out for testing."""
    train, test = holdout(labels, share, len(class_names))
    return Raw(
        images[train], labels[train], images[test], labels[test], class_names, source, checksums, share, preparation
    )


def label_dtype(num_classes: int) -> np.dtype:
    """uint8 labels where they fit (MNIST's own), else uint16 (more than 256 classes)."""
    return np.dtype(np.uint8 if num_classes <= 256 else np.uint16)


def scale_pixels(values: np.ndarray, scale: float) -> np.ndarray:
    """Pixels stored on 0..`scale` (full ink = `scale`) as the 8-bit grey levels 0..255 the model is trained on."""
    if scale == 255:
        return values.astype(np.uint8)
    return np.rint(values.astype(np.float64) * (255 / scale)).astype(np.uint8)


def check_pixel_scale(value: float) -> None:
    """FieldError unless `value` is a usable value of full ink."""
    require(0 < value <= 65535, "pixel_scale", value, "the value of full ink in the file: 255 (8-bit grey) or 1 (0..1)")


def printable(text: str) -> str:
    """`text` safe to print and log: a file name's bytes that are not UTF-8 shown as \\xNN escapes."""
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a lone surrogate that is no escaped byte
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def shorten(text: str, limit: int = 40) -> str:
    """`text` whole when short, else cut at a word's end (or at `limit`) with "..." so a message stays one line."""
    text = printable(" ".join(str(text).split()))
    if len(text) <= limit:
        return text
    cut = text[: limit - 3]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit // 2 else cut) + "..."


def listed(names: Sequence[object], shown: int = 5) -> str:
    """A few names, each kept short, then "... and N more": a list that cannot outgrow an error line."""
    parts = [shorten(str(n), 40) for n in names[:shown]]
    more = len(names) - shown
    return ", ".join(parts) + (f", ... and {more} more" if more > 0 else "")
