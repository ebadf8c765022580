"""MNIST and Fashion-MNIST: find a local copy and verify it (data/splits.py splits every data set).

Where the files are looked for:

1. `data.root` set: only that folder, or its subfolder named after the data set (see
   below; a relative path is taken from the directory the run was launched in; Hydra
   does not chdir). Nothing usable there is an error; there is no download.
2. Otherwise, in order, the first usable one of: `$MNIST_HYDRA_DATA`, or its subfolder
   named after the data set; Keras's cache `${KERAS_HOME:-~/.keras}/datasets`
   (Fashion-MNIST in its `fashion-mnist/` subfolder, where Keras puts it); the data
   set's own extra folders (`/usr/share/datasets/fashion-mnist` for Fashion-MNIST). A
   folder whose files fail a check is skipped with a warning.
3. Nothing found and `data.download`: Keras's downloader fetches it into its cache,
   which is then loaded through the same checks.

A data set's subfolder is named after it: `mnist/` for MNIST, `fashion_mnist/` or
`fashion-mnist/` for Fashion-MNIST; so one folder can hold every data set. A folder whose
label files are another known data set's (by checksum) is not a candidate: it is passed
over without a warning, so `MNIST_HYDRA_DATA` pointing at MNIST does not disturb a
Fashion-MNIST run.

A folder holds the four IDX files, each gzip (`NAME.gz`) or plain (`NAME`), or,
for MNIST only, Keras's `mnist.npz`. Checksums are SHA-256s of the decompressed
IDX content, so they hold whatever the compression; `mnist.npz` arrays are
checked as the IDX bytes they would serialise to.
"""

from __future__ import annotations

import importlib
import logging
import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mnist_hydra.data.base import Raw, SplitConfig
from mnist_hydra.data.idx_format import idx_digest, read_idx_with_digest
from mnist_hydra.data.preparation import DIGIT_SHAPE
from mnist_hydra.errors import DataError, one_line

log = logging.getLogger(__name__)

ENV_VAR = "MNIST_HYDRA_DATA"
NUM_CLASSES = 10
# mnist.npz keys, in the order of DatasetSpec.files.
_NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


@dataclass
class DataConfig(SplitConfig):
    """MNIST and Fashion-MNIST: where their IDX files are, and whether to fetch and verify them."""

    root: str | None = (
        None  # folder holding the four IDX files (.gz or plain) or mnist.npz, or a subfolder per data set; null = search (see module docstring)
    )
    download: bool = True  # when no local copy is found, fetch one with Keras's downloader
    verify: bool = True  # check the SHA-256 of each file's decompressed content

    def declared_shape(self) -> tuple[int, int, int]:
        return DIGIT_SHAPE


@dataclass(frozen=True)
class DatasetSpec:
    """One data set's files, checksums and whereabouts."""

    name: str  # registry name, e.g. "fashion_mnist"
    title: str  # shown in messages, e.g. "Fashion-MNIST"
    files: tuple[str, str, str, str]  # IDX names without .gz: train images, train labels, test images, test labels
    sha256: tuple[str, str, str, str]  # SHA-256 of each file's decompressed content, same order
    class_names: tuple[str, ...]  # label index -> name
    keras_loader: str  # module under keras.datasets whose load_data() downloads it
    keras_subdir: str = ""  # folder under Keras's datasets cache where that loader puts it
    npz: str | None = None  # Keras's single-file copy (x_train, y_train, x_test, y_test), if it has one
    search_dirs: tuple[str, ...] = ()  # extra folders to try after $MNIST_HYDRA_DATA and Keras's cache


class _Missing(DataError):
    """A folder without the data set's files: a normal miss while searching, not worth a warning."""


_IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")

MNIST = DatasetSpec(
    name="mnist",
    title="MNIST",
    files=_IDX_FILES,
    sha256=(
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    ),
    class_names=tuple(str(i) for i in range(NUM_CLASSES)),
    keras_loader="mnist",
    npz="mnist.npz",
)

# Checksums computed from Debian's dataset-fashion-mnist 0.0~git20200523.55506a9-1.
FASHION_MNIST = DatasetSpec(
    name="fashion_mnist",
    title="Fashion-MNIST",
    files=_IDX_FILES,
    sha256=(
        "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    ),
    class_names=(
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ),
    keras_loader="fashion_mnist",
    keras_subdir="fashion-mnist",
    search_dirs=("/usr/share/datasets/fashion-mnist",),
)


def load_dataset(spec: DatasetSpec, cfg: DataConfig) -> Raw:
    """The whole data set `spec`, found and verified as the module docstring describes."""
    if cfg.root is not None:
        raw = _load_root(spec, Path(cfg.root).expanduser().absolute(), cfg)
        _log_source(raw, cfg.verify)
        return raw

    tried: list[str] = []
    for folder in _candidates(spec):
        found = _try_folder(spec, folder, cfg.verify, tried)
        if found is not None:
            return found
    if not cfg.download:
        tried.append("download: skipped because data.download=false")
    else:
        try:
            download_with_keras(spec)
        except Exception as e:  # whatever the downloader raises offline, the user needs the same advice
            tried.append(
                f"download with keras.datasets.{spec.keras_loader}.load_data(): {one_line(f'{type(e).__name__}: {e}')}"
            )
        else:
            for folder in _keras_caches(spec, after_download=True):
                found = _try_folder(spec, folder, cfg.verify, tried)
                if found is not None:
                    return found
    accepts = "four IDX files or mnist.npz" if spec.npz else "four IDX files"
    raise DataError(
        f"no usable {spec.title} data found; tried: {'; '.join(tried)}. "
        f"Fix: set data.root=/path/to/folder ({accepts}) or the {ENV_VAR} environment variable"
    )


def load_folder(spec: DatasetSpec, folder: Path, verify: bool) -> Raw:
    """The data set `spec` from one folder: four IDX files, else `spec.npz`; DataError if neither is usable."""
    if folder.exists() and not folder.is_dir():
        raise DataError(f"{folder} is a file, not a folder")
    if not folder.is_dir():
        raise _Missing(f"{folder}: no such folder")
    found = [_find_idx(folder, name) for name in spec.files]
    other = _other_dataset(spec, found)
    if other is not None:
        raise _Missing(f"{folder}: holds {other.title} (data={other.name}), not {spec.title}")
    present = [path for path in found if path is not None]
    if len(present) == len(found):
        return _load_idx(spec, present, str(folder), verify)
    npz = folder / spec.npz if spec.npz else None
    if npz is not None and npz.is_file():
        return _load_npz(spec, npz, verify)
    if not any(found):
        raise _Missing(f"{folder}: has no {spec.title} files")
    # A partial set looks intended, so it is an error worth a warning, not a miss.
    missing = ", ".join(f"{name}[.gz]" for name, path in zip(spec.files, found, strict=False) if path is None)
    raise DataError(f"{folder}: incomplete {spec.title} files: lacks {missing}")


def download_with_keras(spec: DatasetSpec) -> None:
    """Fill Keras's cache with `spec` using Keras's own downloader (imports keras, and so TensorFlow)."""
    from mnist_hydra.tf_runtime import import_tensorflow

    import_tensorflow()  # without its start-up chatter
    importlib.import_module(f"keras.datasets.{spec.keras_loader}").load_data()


def _candidates(spec: DatasetSpec) -> list[Path]:
    folders = (
        _with_subfolders(spec, Path(os.environ[ENV_VAR]).expanduser().absolute()) if os.environ.get(ENV_VAR) else []
    )
    folders += _keras_caches(spec, after_download=False)
    folders += [Path(d) for d in spec.search_dirs]
    return list(dict.fromkeys(folders))


def _subfolder_names(spec: DatasetSpec) -> list[str]:
    """The names a folder holding several data sets may give `spec`'s subfolder: fashion_mnist, fashion-mnist."""
    return list(dict.fromkeys([spec.name, spec.name.replace("_", "-")]))


def _with_subfolders(spec: DatasetSpec, root: Path) -> list[Path]:
    """`root`, then those of its subfolders named after `spec` that exist."""
    return [root] + [root / name for name in _subfolder_names(spec) if (root / name).is_dir()]


def _load_root(spec: DatasetSpec, root: Path, cfg: DataConfig) -> Raw:
    """The data set from `data.root`: the folder itself, else its subfolder named after the data set."""
    given = f"data.root={cfg.root}"
    if root.exists() and not root.is_dir():
        hint = f" (its folder: data.root={root.parent})" if root.name in _file_names(spec) else ""
        raise DataError(f"{given}: {root} is a file, not a folder{hint}; accepts a folder holding {_accepts(spec)}")
    misses = []
    for folder in _with_subfolders(spec, root):
        try:
            return load_folder(spec, folder, cfg.verify)
        except _Missing as e:
            misses.append(str(e))
        except DataError as e:
            raise DataError(f"{given}: {e}") from e
    raise DataError(f"{given}: {'; '.join(misses)}; accepts {_accepts(spec)}")


def _file_names(spec: DatasetSpec) -> set[str]:
    """Every name a file of `spec` may have: the IDX files, gzipped or not, and the npz."""
    return {*spec.files, *(f"{name}.gz" for name in spec.files), *([spec.npz] if spec.npz else [])}


def _other_dataset(spec: DatasetSpec, found: Sequence[Path | None]) -> DatasetSpec | None:
    """The other known data set whose label files these are (compared by checksum; they are small), if any."""
    for i in (1, 3):  # train and test labels: 60 kB and 10 kB
        path = found[i]
        if path is None:
            continue
        try:
            digest = read_idx_with_digest(path)[1]
        except DataError:
            continue  # unreadable: load_folder names it
        if digest == spec.sha256[i]:
            return None
        for other in SPECS:
            if other.name != spec.name and digest == other.sha256[i]:
                return other
    return None


def _keras_caches(spec: DatasetSpec, after_download: bool) -> list[Path]:
    home = Path(os.environ.get("KERAS_HOME") or "~/.keras").expanduser()
    homes = [home]
    if after_download:
        # Keras falls back to /tmp/.keras when its home is not writable.
        homes.append(Path("/tmp/.keras"))
    return [h / "datasets" / spec.keras_subdir if spec.keras_subdir else h / "datasets" for h in homes]


def _try_folder(spec: DatasetSpec, folder: Path, verify: bool, tried: list[str]) -> Raw | None:
    try:
        raw = load_folder(spec, folder, verify)
    except _Missing as e:
        tried.append(str(e))
        return None
    except DataError as e:
        log.warning("skipping %s: %s", folder, e)
        tried.append(str(e))
        return None
    _log_source(raw, verify)
    return raw


def _find_idx(folder: Path, name: str) -> Path | None:
    for path in (folder / f"{name}.gz", folder / name):
        if path.is_file():
            return path
    return None


def _load_idx(spec: DatasetSpec, found: Sequence[Path], source: str, verify: bool) -> Raw:
    names = [str(path) for path in found]
    arrays: list[np.ndarray | None] = [None] * 4
    digests: list[str | None] = [None] * 4
    unreadable: dict[int, str] = {}
    for i, path in enumerate(found):
        try:
            arrays[i], digests[i] = read_idx_with_digest(path)
        except DataError as e:
            unreadable[i] = str(e)
    return _verified(spec, names, arrays, digests, source, verify, {**_array_problems(names, arrays), **unreadable})


def _load_npz(spec: DatasetSpec, path: Path, verify: bool) -> Raw:
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = [npz[key] for key in _NPZ_KEYS]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as e:
        raise DataError(f"{path}: unreadable npz: {one_line(f'{type(e).__name__}: {e}')}") from e
    names = [f"{path}[{key}]" for key in _NPZ_KEYS]
    problems = _array_problems(names, arrays)
    # idx_digest needs IDX-storable dtypes, so only arrays that passed the checks are hashed.
    digests = [None if i in problems else idx_digest(a) for i, a in enumerate(arrays)]
    return _verified(spec, names, arrays, digests, str(path), verify, problems)


def _verified(
    spec: DatasetSpec,
    names: list[str],
    arrays: Sequence[np.ndarray | None],
    digests: Sequence[str | None],
    source: str,
    verify: bool,
    problems: dict[int, str],
) -> Raw:
    """The Raw data set, or one DataError naming every file that fails a check (`problems`: file index -> why)."""
    mismatched = [i for i in range(4) if verify and i not in problems and digests[i] != spec.sha256[i]]
    if not problems and not mismatched:
        # Without a problem every file was read and hashed: no None is left.
        x_train, y_train, x_test, y_test = [a for a in arrays if a is not None]
        checksums = {name: d for name, d in zip(spec.files, digests, strict=False) if d is not None}
        return Raw(x_train, y_train, x_test, y_test, class_names=spec.class_names, source=source, checksums=checksums)
    several = len(problems) + len(mismatched) > 1
    for i in mismatched:
        digest = digests[i]
        assert digest is not None  # only a file without a problem is compared
        got, want = (digest[:12] + "...", spec.sha256[i][:12] + "...") if several else (digest, spec.sha256[i])
        problems[i] = f"SHA-256 of the decompressed content is {got}, expected {want}"
    parts = [
        text if text.startswith(f"{names[i]}: ") else f"{names[i]}: {text}" for i, text in sorted(problems.items())
    ]
    message = "; ".join(parts) if len(parts) == 1 else f"{len(parts)} bad {spec.title} files: " + "; ".join(parts)
    if mismatched and len(parts) == 1:
        message += f" for {spec.title}; is it another data set or damaged? (data.verify=false skips this check)"
    elif mismatched:
        message += "; another data set, or damaged? (data.verify=false skips the checksum check)"
    raise DataError(message)


def _array_problems(names: list[str], arrays: Sequence[np.ndarray | None]) -> dict[int, str]:
    """The checks that hold with or without checksums (dtypes, shapes, matching counts, labels in range), per file."""
    problems: dict[int, str] = {}
    for i in (0, 2):
        x_name, (x, y) = names[i], arrays[i : i + 2]
        if x is not None and (x.dtype != np.uint8 or x.ndim != 3 or x.shape[1:] != DIGIT_SHAPE[:2]):
            problems[i] = f"expected uint8 images of shape (n, 28, 28), found {x.dtype} {x.shape}"
        if y is None:
            continue
        if y.dtype != np.uint8 or y.ndim != 1:
            problems[i + 1] = f"expected uint8 labels of shape (n,), found {y.dtype} {y.shape}"
        elif x is not None and i not in problems and len(x) != len(y):
            problems[i + 1] = f"{len(y)} labels for {len(x)} images in {x_name}"
        elif len(y) and y.max() >= NUM_CLASSES:
            problems[i + 1] = f"label {int(y.max())} out of range 0..{NUM_CLASSES - 1}"
    return problems


def _accepts(spec: DatasetSpec) -> str:
    idx = f"the four IDX files ({', '.join(spec.files)}), each .gz or plain"
    return f"{idx}, or {spec.npz}" if spec.npz else idx


def _log_source(raw: Raw, verify: bool) -> None:
    checked = "checksums verified" if verify else "checksums not verified (data.verify=false)"
    log.info("data: %d train + %d test images from %s (%s)", len(raw.y_train), len(raw.y_test), raw.source, checked)


SPECS = (MNIST, FASHION_MNIST)  # the data sets a folder's files are recognised as

# A file's checksum -> the known data set it belongs to, for an IDX set that turns out to be one of them.
KNOWN_FILES = {digest: spec.title for spec in SPECS for digest in spec.sha256}
