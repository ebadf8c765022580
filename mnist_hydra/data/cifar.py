"""`data=cifar`: CIFAR-10 or CIFAR-100 as its publishers ship it, in the python or the binary version.

`data.root` is the folder an archive from https://www.cs.toronto.edu/~kriz/cifar.html was unpacked into (it
holds `cifar-10-batches-py/`, `cifar-10-batches-bin/`, `cifar-100-python/` or `cifar-100-binary/`), or that
folder itself, told by the files it holds:

- `cifar-10-batches-py/`: `data_batch_1`..`data_batch_5`, `test_batch` (pickled dicts of `data`, a uint8
  (n, 3072) array, and `labels`) and `batches.meta` (`label_names`);
- `cifar-10-batches-bin/`: `data_batch_1.bin`..`data_batch_5.bin`, `test_batch.bin` (records of one label
  byte and 3072 pixel bytes) and `batches.meta.txt` (a class name a line);
- `cifar-100-python/`: `train`, `test` (`data`, `fine_labels`, `coarse_labels`) and `meta`
  (`fine_label_names`, `coarse_label_names`);
- `cifar-100-binary/`: `train.bin`, `test.bin` (records of a coarse and a fine label byte, then 3072 pixel
  bytes), `fine_label_names.txt` and `coarse_label_names.txt`.

A stored image is three 32x32 planes, red, green, blue, each row by row; the loader returns uint8 images of
shape (n, 32, 32, 3), height, width, channels. CIFAR-100 is classified by its 100 fine labels, or by its 20
coarse superclasses with `data.labels=coarse`. The class names come from the meta file. Every file's SHA-256
goes into provenance.json.

The pickles are read by an unpickler that builds NumPy arrays, bytes and plain containers and nothing else: a
file that asks for any other object is refused, never run.
"""

from __future__ import annotations

import codecs
import hashlib
import io
import logging
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mnist_hydra.data.base import (
    Raw,
    SplitConfig,
    class_names_for,
    label_dtype,
    require_classes,
    require_folder,
    require_root,
    resolve_path,
)
from mnist_hydra.data.preparation import Preparation, Shape
from mnist_hydra.errors import DataError, require

log = logging.getLogger(__name__)

URL = "https://www.cs.toronto.edu/~kriz/cifar.html"
SIDE = 32
CHANNELS = 3
# A photo given to a CIFAR run (predict, /predict) is made what CIFAR's images are: 32x32 RGB, the whole
# photo cropped to a square first.
PREPARATION = Preparation("resize", (SIDE, SIDE), CHANNELS)
PIXELS = SIDE * SIDE * CHANNELS  # 3072 bytes an image: the red plane, the green, the blue
LABELS = ("fine", "coarse")


@dataclass(frozen=True)
class Layout:
    """One of the four ways CIFAR is shipped: its folder's name and the files it holds."""

    folder: str  # the name the archive unpacks to
    title: str  # as the log and the errors say it
    train: tuple[str, ...]  # the training batches, in order
    test: str
    meta: tuple[str, ...]  # the class-name files (CIFAR-100 binary: fine first, then coarse)
    binary: bool
    label_bytes: int = 1  # binary records: bytes before the pixels (CIFAR-100: coarse, then fine)

    @property
    def files(self) -> tuple[str, ...]:
        return (*self.train, self.test, *self.meta)

    @property
    def hundred(self) -> bool:
        return self.folder.startswith("cifar-100")


LAYOUTS = (
    Layout(
        "cifar-10-batches-py",
        "CIFAR-10 (python version)",
        tuple(f"data_batch_{i}" for i in range(1, 6)),
        "test_batch",
        ("batches.meta",),
        binary=False,
    ),
    Layout(
        "cifar-10-batches-bin",
        "CIFAR-10 (binary version)",
        tuple(f"data_batch_{i}.bin" for i in range(1, 6)),
        "test_batch.bin",
        ("batches.meta.txt",),
        binary=True,
    ),
    Layout("cifar-100-python", "CIFAR-100 (python version)", ("train",), "test", ("meta",), binary=False),
    Layout(
        "cifar-100-binary",
        "CIFAR-100 (binary version)",
        ("train.bin",),
        "test.bin",
        ("fine_label_names.txt", "coarse_label_names.txt"),
        binary=True,
        label_bytes=2,
    ),
)
FOLDERS = ", ".join(f"{layout.folder}/" for layout in LAYOUTS)


@dataclass
class CifarConfig(SplitConfig):
    """CIFAR-10 or CIFAR-100, python or binary version, unpacked under `root`."""

    name: str = "cifar"
    root: str | None = None  # the folder holding cifar-10-batches-py/ (or -bin/, cifar-100-python/, -binary/), or it
    labels: str = "fine"  # CIFAR-100's labels: fine (100 classes) or coarse (20 superclasses); CIFAR-10 has one kind

    def check(self) -> None:
        super().check()
        require_root(self.root, f"the folder you unpacked CIFAR into, e.g. data.root=/path/to/data (holding {FOLDERS})")
        require(self.labels in LABELS, "labels", self.labels, "fine (CIFAR-100's 100 classes) or coarse (its 20)")

    def declared_shape(self) -> Shape:
        return PREPARATION.shape


def load_cifar_dataset(cfg: CifarConfig) -> Raw:
    """CIFAR-10 or CIFAR-100 under `cfg.root`: uint8 (n, 32, 32, 3) images, labels and class names."""
    root = resolve_path(cfg.root)
    given = f"data.root={cfg.root}"
    require_folder(root, given, f"data=cifar reads {FOLDERS} unpacked from the archives at {URL}")
    folder, layout = find_layout(root, given)
    if cfg.labels == "coarse" and not layout.hundred:
        raise DataError(
            f"data.labels=coarse: {folder} is {layout.title}, which has one kind of labels; coarse names "
            "CIFAR-100's 20 superclasses (data.labels=fine reads CIFAR-10)"
        )
    checksums: dict[str, str] = {}

    def read(name: str) -> bytes:
        content = (folder / name).read_bytes()
        checksums[name] = hashlib.sha256(content).hexdigest()
        return content

    batches = [_read_batch(folder / name, read(name), layout, cfg.labels) for name in (*layout.train, layout.test)]
    names, named_by = _class_names(folder, layout, cfg.labels, read)
    x_train = np.concatenate([x for x, _ in batches[:-1]])
    y_train = np.concatenate([y for _, y in batches[:-1]])
    x_test, y_test = batches[-1]
    class_names = class_names_for([y_train, y_test], names, str(folder), named_by)
    require_classes(class_names, f"{given}: {folder}")
    dtype = label_dtype(len(class_names))
    log.info(
        "data: %s, %d train + %d test images in %d classes from %s",
        layout.title,
        len(y_train),
        len(y_test),
        len(class_names),
        folder,
    )
    return Raw(
        x_train,
        y_train.astype(dtype),
        x_test,
        y_test.astype(dtype),
        class_names,
        str(folder),
        checksums,
        preparation=PREPARATION,
    )


def find_layout(root: Path, given: str) -> tuple[Path, Layout]:
    """The folder holding a CIFAR set (`root` or one of its subfolders by the archives' names) and its layout;
    DataError for none, for several, or for a set with a file missing."""
    own = [layout for layout in LAYOUTS if any((root / name).is_file() for name in layout.files)]
    if own:
        if len(own) > 1:
            raise DataError(
                f"{given}: {root} holds files of {' and '.join(layout.title for layout in own)}; keep one set "
                "a folder, as the archives unpack"
            )
        return _complete(root, own[0], given), own[0]
    found = [layout for layout in LAYOUTS if (root / layout.folder).is_dir()]
    if not found:
        raise DataError(
            f"{given}: {root} holds no CIFAR data: none of {FOLDERS} nor their files; download the python or "
            f"binary version from {URL} and unpack it there"
        )
    if len(found) > 1:
        raise DataError(
            f"{given}: {root} holds {', '.join(layout.folder for layout in found)}; point data.root at the one "
            f"to train on, e.g. data.root={root / found[0].folder}"
        )
    return _complete(root / found[0].folder, found[0], given), found[0]


def _complete(folder: Path, layout: Layout, given: str) -> Path:
    missing = [name for name in layout.files if not (folder / name).is_file()]
    if missing:
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise DataError(
            f"{given}: {folder} ({layout.title}) has no {shown}; it holds {_span(layout)}: unpack the archive "
            f"from {URL} again"
        )
    return folder


def _span(layout: Layout) -> str:
    train = f"{layout.train[0]}..{layout.train[-1]}" if len(layout.train) > 1 else layout.train[0]
    return ", ".join((train, layout.test, *layout.meta))


def _read_batch(path: Path, content: bytes, layout: Layout, labels: str) -> tuple[np.ndarray, np.ndarray]:
    """A batch file's images (n, 32, 32, 3) and labels (n,)."""
    if layout.binary:
        record = layout.label_bytes + PIXELS
        if not content or len(content) % record:
            raise DataError(
                f"{path}: {len(content)} bytes is not a whole number of {record}-byte records "
                f"({layout.label_bytes} label byte{'s' if layout.label_bytes > 1 else ''} and {PIXELS} pixels); "
                f"the file is truncated: unpack the archive from {URL} again"
            )
        rows = np.frombuffer(content, np.uint8).reshape(-1, record)
        # CIFAR-100's records hold the coarse label, then the fine one.
        column = 0 if layout.label_bytes == 1 or labels == "coarse" else 1
        label_array, pixels = rows[:, column].astype(np.int64), rows[:, layout.label_bytes :]
    else:
        batch = _unpickle(path, content)
        key = "labels" if not layout.hundred else f"{labels}_labels"
        data, label_list = batch.get(b"data"), batch.get(key.encode())
        if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != PIXELS:
            shown = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
            raise DataError(f"{path}: its 'data' is {shown}, not uint8 images of {PIXELS} bytes (n, {PIXELS})")
        try:
            label_array = np.asarray(label_list, dtype=np.int64).reshape(-1)
        except (TypeError, ValueError):
            label_array = np.zeros(0, np.int64)
        if label_list is None or len(label_array) != len(data):
            raise DataError(
                f"{path}: its '{key}' holds {len(label_array)} integer labels for its {len(data)} images; "
                "the counts must agree"
            )
        pixels = data
    # Stored as three planes (channels, height, width); the model reads height, width, channels.
    images = np.ascontiguousarray(pixels.reshape(-1, CHANNELS, SIDE, SIDE).transpose(0, 2, 3, 1))
    return images, label_array


def _class_names(folder: Path, layout: Layout, labels: str, read: Callable[[str], bytes]) -> tuple[list[str], str]:
    """The class names, in label order, from the layout's meta file, and that file."""
    if layout.binary:
        name = layout.meta[1] if labels == "coarse" else layout.meta[0]
        path = folder / name
        try:
            text = read(name).decode("utf-8")
        except UnicodeDecodeError as err:
            raise DataError(f"{path}: cannot read it as UTF-8 text: {err}") from err
        names = [line.strip() for line in text.splitlines()]
        while names and not names[-1]:
            names.pop()
        if not names or "" in names:
            raise DataError(f"{path}: expected one class name a line, in label order, with no blank line")
        return names, str(path)
    path = folder / layout.meta[0]
    meta = _unpickle(path, read(layout.meta[0]))
    key = "label_names" if not layout.hundred else f"{labels}_label_names"
    raw = meta.get(key.encode())
    if not isinstance(raw, list) or not raw or not all(isinstance(n, (bytes, str)) for n in raw):
        raise DataError(f"{path}: expected '{key}', a list of class names, in its pickled dict")
    return [n.decode("utf-8", "replace") if isinstance(n, bytes) else n for n in raw], f"{path} ({key})"


# NumPy's array rebuilder, wherever this NumPy keeps it (numpy.core before 2.0, numpy._core since).
_RECONSTRUCT = np.zeros(0).__reduce__()[0]
# What CIFAR's pickles (written by Python 2's cPickle, or by Python 3 with NumPy 1 or 2) ask for: arrays and bytes.
SAFE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): codecs.encode,  # how Python 3 pickles bytes with protocol 2
}


class _ArraysOnly(pickle.Unpickler):
    """An unpickler that builds arrays, bytes, numbers, strings and containers, and refuses anything else."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in SAFE_GLOBALS:
            return SAFE_GLOBALS[module, name]
        raise pickle.UnpicklingError(f"it asks for {module}.{name}, which a CIFAR batch never holds")


def _unpickle(path: Path, content: bytes) -> dict[bytes, Any]:
    """A CIFAR pickle's dict, its keys as bytes; DataError for a truncated or foreign file."""
    try:
        loaded = _ArraysOnly(io.BytesIO(content), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError, AttributeError) as err:
        cut = isinstance(err, EOFError) or "truncated" in str(err)
        why = "it ends early: the file is truncated" if cut else f"not a CIFAR pickle ({err})"
        raise DataError(f"{path}: cannot unpickle it: {why}; unpack the archive from {URL} again") from err
    if not isinstance(loaded, dict):
        raise DataError(f"{path}: holds a pickled {type(loaded).__name__}, not a CIFAR batch's dict")
    return {key.encode() if isinstance(key, str) else key: value for key, value in loaded.items()}
