"""DATASETS: the registry of every data option's loader (MNIST, Fashion-MNIST, an image folder, a CSV of pixels,
any IDX set), and the class names a registered data set has."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from mnist_hydra.data import csv_table, idx_set
from mnist_hydra.data import folder as image_folder
from mnist_hydra.data.base import Raw
from mnist_hydra.data.mnist import FASHION_MNIST, KNOWN_FILES, MNIST, DataConfig, DatasetSpec, load_dataset
from mnist_hydra.registry import Registry

# Each loader takes its own schema (a SplitConfig) and returns the whole data set.
DATASETS: Registry[Callable[[Any], Raw]] = Registry("dataset")
DATASETS.register("mnist", schema=DataConfig)(functools.partial(load_dataset, MNIST))
DATASETS.register("fashion_mnist", schema=DataConfig)(functools.partial(load_dataset, FASHION_MNIST))
# Your own data: a folder of images, a CSV of pixels, any IDX set.
DATASETS.register("folder", schema=image_folder.FolderConfig)(image_folder.load_folder_dataset)
DATASETS.register("csv", schema=csv_table.CsvConfig)(csv_table.load_csv_dataset)
# Any IDX set is taken on its own word; one whose files are MNIST's or Fashion-MNIST's is said to be.
DATASETS.register("idx", schema=idx_set.IdxConfig)(functools.partial(idx_set.load_idx_dataset, known=KNOWN_FILES))


def class_names_of(name: str) -> tuple[str, ...]:
    """The class names of registered data set `name`; () for one registered without a DatasetSpec (a plugin's)."""
    loader = DATASETS.get(name)
    spec = loader.args[0] if isinstance(loader, functools.partial) and loader.args else None
    return tuple(spec.class_names) if isinstance(spec, DatasetSpec) else ()
