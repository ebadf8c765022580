"""Every data option's images split into train, validation and test: a seeded validation share (or fold) of the
training set, then the limits; and the checks that refuse a split that would leave nothing to train or score on."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from mnist_hydra.data.base import Raw, SplitConfig, printable
from mnist_hydra.data.datasets import DATASETS
from mnist_hydra.errors import DataError, one_line


@dataclass(frozen=True)
class Splits:
    """Train/val/test arrays: images uint8 (n, 28, 28), labels (n,) from 0 to len(class_names) - 1."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    source: str  # folder or file the arrays were read from
    checksums: dict[str, str]  # IDX file name -> SHA-256 of its content
    val_is_test: bool  # True when val_split=0 made the test set double as validation
    # Which images of the data set's training file train and validate, in order (val: empty when val_is_test).
    train_indices: np.ndarray | None = None
    val_indices: np.ndarray | None = None


def load_splits(cfg: SplitConfig, seed: int) -> Splits:
    """Load `cfg.name` and split it: a seeded validation share (or fold) of the training set, then the limits.

    Every data option passes here, so here is where a split that would leave training or scoring with no image
    is refused (one DataError line, before anything of a run is written), and images that are not on the
    0..255 scale the model reads.
    """
    raw = _read(cfg)
    _require_test_images(raw, cfg)
    _require_grey_levels(raw, cfg)
    order = np.random.default_rng(seed).permutation(len(raw.y_train))
    if cfg.folds is not None:
        # The same seed gives the same K folds in every job, so fold=0..K-1 partition the data.
        parts = np.array_split(order, cfg.folds)
        val = parts[cfg.fold]
        train = np.concatenate(parts[: cfg.fold] + parts[cfg.fold + 1 :])
    else:
        n_val = round(len(order) * cfg.val_split)
        val, train = order[:n_val], order[n_val:]
    train = train[: cfg.train_limit]
    x_test, y_test = raw.x_test[: cfg.test_limit], raw.y_test[: cfg.test_limit]
    val_is_test = cfg.folds is None and cfg.val_split == 0
    _require_train_and_val(cfg, len(order), len(train), len(val), val_is_test)
    if val_is_test:
        x_val, y_val = x_test, y_test
    else:
        x_val, y_val = raw.x_train[val], raw.y_train[val]
    return Splits(
        x_train=raw.x_train[train],
        y_train=raw.y_train[train],
        x_val=x_val,
        y_val=y_val,
        x_test=x_test,
        y_test=y_test,
        class_names=raw.class_names,
        source=raw.source,
        checksums=raw.checksums,
        val_is_test=val_is_test,
        train_indices=train,
        val_indices=val[:0] if val_is_test else val,
    )


def _read(cfg: SplitConfig) -> Raw:
    """The registered loader's Raw; an OSError that escapes a loader is a file it could not read."""
    try:
        return DATASETS.get(cfg.name)(cfg)
    except OSError as err:
        # Told apart here from a path that cannot be written (the run directory): loaders only read.
        where = printable(os.fsdecode(err.filename)) if err.filename is not None else "a file"
        raise DataError(f"data={cfg.name}: cannot read {where}: {err.strerror or one_line(err)}") from err


def _require_test_images(raw: Raw, cfg: SplitConfig) -> None:
    """DataError for a data set whose test split has no image: the run could train but never be scored."""
    if len(raw.y_test):
        return
    if raw.held_out is not None:
        why = (
            f"data.test_split={raw.held_out:g} of each class holds out no image, since a class gives the test "
            f"split one only from 2 images up ({len(raw.y_train)} images in {len(raw.class_names)} classes); "
            "add images"
        )
    else:
        why = f"it holds {len(raw.y_train)} training images and not one test image that could be read; add test images"
    raise DataError(f"data={cfg.name}: {raw.source}: the test split is empty: {why}")


def _require_grey_levels(raw: Raw, cfg: SplitConfig) -> None:
    """DataError for images whose largest pixel is 0 or 1: binarised or 0..1 pixels train to chance as 0..255."""
    largest = max((int(x.max()) for x in (raw.x_train, raw.x_test) if x.size), default=255)
    if largest > 1:
        return
    if getattr(cfg, "pixel_scale", 255) != 255:
        fix = "are the images blank?"
    elif hasattr(cfg, "pixel_scale"):
        fix = "set data.pixel_scale=1 if the file holds pixels from 0 to 1 (binarised, or scaled)"
    else:
        fix = "give 8-bit grey levels"
    raise DataError(
        f"data={cfg.name}: {raw.source}: the largest pixel is {largest}, but pixels are read as grey "
        f"levels from 0 to 255 (the images would look black and train to chance); {fix}"
    )


def _require_train_and_val(cfg: SplitConfig, n: int, n_train: int, n_val: int, val_is_test: bool) -> None:
    """DataError for a split that leaves no image to train on, or none to validate on."""
    if cfg.folds is not None and n < cfg.folds:
        raise DataError(
            f"data.folds={cfg.folds} needs at least {cfg.folds} training images, one a fold, and there are {n}; "
            + (f"choose data.folds={n} or fewer" if n >= 2 else "add images")
        )
    if n_train == 0:
        raise DataError(
            f"no training images are left: data.val_split={cfg.val_split} holds out all {n_val} of them; "
            "lower data.val_split"
        )
    if n_val == 0 and not val_is_test and n < 2:
        raise DataError(
            "the validation split is empty: one training image cannot be split for validation; add images, "
            "or set data.val_split=0 to validate on the test split"
        )
    if n_val == 0 and not val_is_test:
        raise DataError(
            f"the validation split is empty: data.val_split={cfg.val_split} of {n} training images rounds to "
            f"none; raise it to data.val_split={1 / n:.3g} or more, or set data.val_split=0 to validate on "
            "the test split"
        )
