"""`data=folder`: a folder of images, one subfolder per class (the ImageFolder layout), as a data set.

    root/                      or    root/train/3/a.png ...   root/test/3/z.png ...
      3/a.png, 3/b.jpg, ...
      7/c.png, ...

Class names are the subfolders' names, sorted (`data.classes=[...]` fixes the order, or picks some of them).
A class folder may hold subfolders of its own; hidden files and folders (".name") are passed over. Every file
Pillow reads is an image, in any size, colour or grey: each goes through
`mnist_hydra.data.preparation.prepare_file` by `data.preprocess` (`digit`: made an MNIST-style 28x28 digit;
`resize`: kept as a picture, at `data.image_size` and `data.channels`), the very function `mnist_hydra.predict`
and `/predict` use, so a model trained here reads a photo the way it was trained. With `train/` and `test/` folders at the top they are the
two splits; otherwise `data.test_split` of each class is held out for testing (the same images whatever the
run's seed).

A file that is not an image (a README, Thumbs.db) is left out, and so is an image that cannot be decoded (a
truncated JPEG, a blank page, a link to nowhere): one warning line counts and names them. A file name that is
not UTF-8 is read like any other, and printed with \\xNN escapes. A class left with no image, or a
folder without class subfolders, is an error.

Decoding is the slow part (about a millisecond an image), so the decoded uint8 arrays are kept in a cache
folder, keyed by the folder's listing (every file's path, size and modification time), by the preprocessing
settings (preprocess, image size, channels, background, fit) and by the preprocessing code itself: a second run, or every job of a sweep, reads the cache instead.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import logging
import multiprocessing
import os
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mnist_hydra.data.base import (
    Raw,
    SplitConfig,
    check_test_split,
    label_dtype,
    listed,
    printable,
    require_classes,
    require_folder,
    require_root,
    resolve_path,
    shorten,
    split_raw,
)
from mnist_hydra.data.preparation import CHANNELS, FITS, MAX_SIDE, MIN_SIDE, PREPROCESS, Preparation
from mnist_hydra.errors import DataError, OutputError, UserError, one_line, require

log = logging.getLogger(__name__)

CACHE_ENV = "MNIST_HYDRA_CACHE"
SPLIT_FOLDERS = ("train", "test")
# Below this many images, starting worker processes costs more than it saves.
PARALLEL_FROM = 2000
MIN_CHUNK = 256  # images a worker decodes per task: fewer round trips, still several tasks per worker
CACHE_FORMAT = 1  # bump when what the cache holds changes


@dataclass
class FolderConfig(SplitConfig):
    """A folder of images, one subfolder per class."""

    name: str = "folder"
    root: str | None = None  # the folder: one subfolder per class, or train/ and test/ each holding them
    classes: list[str] | None = None  # class names in label order (subfolder names); null = every subfolder, sorted
    test_split: float = 0.2  # share of each class held out for testing when the folder has no train/ and test/
    cache: bool = True  # keep the decoded images for the next run (see cache_dir)
    cache_dir: str | None = (
        None  # null = $MNIST_HYDRA_CACHE, else $XDG_CACHE_HOME/mnist_hydra, else ~/.cache/mnist_hydra
    )
    workers: int | None = None  # processes that decode images; null = one per core
    # How each image becomes the model's input. digit: digits and handwriting, made MNIST-style (ink found,
    # cropped, centred in 28x28 grey); resize: anything else (photos, drawings, scans), kept as a picture at
    # image_size and channels. digit is the default: it is what MNIST-trained habits and the draw page expect.
    preprocess: str = "digit"  # digit | resize
    image_size: list[int] | None = None  # [height, width] in pixels; null = [28, 28] (digit allows only that)
    channels: int = 1  # 1 = grey, 3 = colour (RGB; resize only)
    background: str = "white"  # resize: the colour transparency is flattened onto and pad fills with (a Pillow colour)
    fit: str = "crop"  # resize: crop (the middle, to image_size's aspect ratio) | pad (with background), then resize

    def check(self) -> None:
        super().check()
        self.preparation()
        require_root(self.root, "the folder of your images, e.g. data.root=/path/to/images (one subfolder per class)")
        check_test_split(self.test_split)
        require(
            self.workers is None or self.workers >= 1, "workers", self.workers, "null (one per core) or a count >= 1"
        )
        require(
            self.classes is None or len(self.classes) >= 2,
            "classes",
            self.classes,
            "null (every subfolder) or a list of at least two subfolder names",
        )

    def declared_shape(self) -> tuple[int, int, int]:
        return self.preparation().shape

    def preparation(self) -> Preparation:
        """The preprocessing these settings ask for; FieldError for one the chosen preprocess cannot do."""
        require(self.preprocess in PREPROCESS, "preprocess", self.preprocess, "digit (digits, handwriting) or resize")
        size = self.image_size
        sides = f"[height, width], each from {MIN_SIDE} to {MAX_SIDE} pixels, e.g. [32, 32]"
        require(
            size is None or (len(size) == 2 and all(MIN_SIDE <= side <= MAX_SIDE for side in size)),
            "image_size",
            size,
            sides,
        )
        require(self.channels in CHANNELS, "channels", self.channels, "1 (grey) or 3 (colour, RGB)")
        if self.preprocess == "digit":
            digit = "[28, 28] (null) with data.preprocess=digit; set data.preprocess=resize for another size"
            require(size is None or tuple(size) == (28, 28), "image_size", size, digit)
            require(
                self.channels == 1,
                "channels",
                self.channels,
                "1 with data.preprocess=digit (digits are grey); set data.preprocess=resize for colour",
            )
            return Preparation()
        require(self.fit in FITS, "fit", self.fit, "crop (the middle, to the aspect ratio) or pad (with background)")
        from PIL import ImageColor

        try:
            ImageColor.getrgb(self.background)
        except ValueError:
            require(False, "background", self.background, "a colour name or #rrggbb, e.g. white, black, #808080")
        height, width = size or (28, 28)
        return Preparation("resize", (int(height), int(width)), self.channels, self.background, self.fit)


@dataclass(frozen=True)
class Listing:
    """The image files of one split, with their labels, in a fixed order."""

    files: tuple[Path, ...]
    labels: np.ndarray
    ignored: tuple[Path, ...]  # files that are no image by their name or first bytes


def load_folder_dataset(cfg: FolderConfig) -> Raw:
    """The data set in `cfg.root`: decoded (or read from the cache), split, with the subfolders as classes."""
    root = resolve_path(cfg.root)
    given = f"data.root={cfg.root}"
    require_folder(
        root,
        given,
        "data=folder accepts a folder with one subfolder of images per class (or train/ and test/ "
        "folders holding them)",
    )
    split_layout = all((root / name).is_dir() for name in SPLIT_FOLDERS)
    top = root / "train" if split_layout else root
    class_names = _class_names(top, cfg.classes, given)
    listings = {"train": _list(top, class_names, given)}
    if split_layout:
        listings["test"] = _list(root / "test", class_names, given, test=True)
    _say_ignored([path for listing in listings.values() for path in listing.ignored], root)

    prep = cfg.preparation()
    key = _fingerprint(listings, class_names, prep)
    arrays = _decode_cached(key, listings, cfg, given, class_names, prep)
    fingerprint = {"listing_sha256": key}
    if split_layout:
        (x_train, y_train), (x_test, y_test) = arrays["train"], arrays["test"]
        raw = Raw(x_train, y_train, x_test, y_test, class_names, str(root), fingerprint, preparation=prep)
    else:
        raw = split_raw(*arrays["train"], cfg.test_split, class_names, str(root), fingerprint, prep)
    log.info(
        "data: %d train + %d test images in %d classes from %s%s",
        len(raw.y_train),
        len(raw.y_test),
        len(class_names),
        root,
        "" if split_layout else f" (data.test_split={cfg.test_split:g} of each class held out)",
    )
    return raw


def _class_names(top: Path, classes: Sequence[str] | None, given: str) -> tuple[str, ...]:
    """The classes: `classes` as given (each must be a subfolder), else every subfolder's name, sorted."""
    folders = sorted(entry.name for entry in os.scandir(top) if entry.is_dir() and not entry.name.startswith("."))
    if not folders:
        from mnist_hydra.data.image_files import image_suffixes

        suffixes = image_suffixes()
        images = sum(1 for entry in os.scandir(top) if entry.is_file() and Path(entry.name).suffix.lower() in suffixes)
        held = f" (it holds {images} image files directly)" if images else ""
        raise DataError(
            f"{given}: {top} has no class subfolders{held}; data=folder expects one subfolder per "
            f"class, named after it, e.g. {top}/cat/1.png and {top}/dog/2.png"
        )
    if classes is None:
        require_classes(folders, f"{given}: {top}")
        return tuple(folders)
    names = tuple(str(c) for c in classes)
    missing = [name for name in names if name not in folders]
    if missing:
        raise DataError(
            f"data.classes names {listed(missing)}, which {top} has no subfolder for; "
            f"its subfolders: {listed(folders, 10)}"
        )
    if len(set(names)) != len(names):
        raise DataError(f"data.classes={list(names)} names a class twice; each subfolder once, in label order")
    left_out = [name for name in folders if name not in names]
    if left_out:
        log.info("data: leaving out the subfolders not in data.classes: %s", listed(left_out, 10))
    return names


def _list(top: Path, class_names: Sequence[str], given: str, test: bool = False) -> Listing:
    """Every image file under each class folder of `top`, sorted, with its class index."""
    from mnist_hydra.data.image_files import image_suffixes, is_image_file

    suffixes = image_suffixes()  # once: Pillow's registry is walked anew on each call
    files: list[Path] = []
    labels: list[int] = []
    ignored: list[Path] = []
    for label, name in enumerate(class_names):
        folder = top / name
        if not folder.is_dir():  # only a test/ folder can lack a class: train/'s subfolders are the classes
            raise DataError(
                f"{given}: {folder}: no such folder; {top} needs a subfolder for every class of "
                f"{top.parent / 'train'} ({listed(class_names)})"
            )
        found = 0
        for path in _walk(folder):
            if path.suffix.lower() in suffixes or is_image_file(path):
                files.append(path)
                labels.append(label)
                found += 1
            else:
                ignored.append(path)
        if not found:
            raise DataError(
                f"{given}: class folder {folder} holds no image file; put the images of class "
                f"'{name}' there (any format Pillow reads: .png, .jpg, .bmp, ...)"
                + ("" if test else ", or leave the class out with data.classes=[...]")
            )
    return Listing(tuple(files), np.asarray(labels, dtype=label_dtype(len(class_names))), tuple(ignored))


def _walk(folder: Path) -> list[Path]:
    """The files below `folder`, in sorted order, leaving out hidden files and folders."""
    found = []
    for parent, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [Path(parent) / n for n in sorted(names) if not n.startswith(".")]
    return found


def _say_ignored(ignored: Sequence[Path], root: Path) -> None:
    if ignored:
        shown = listed([str(p.relative_to(root)) for p in ignored], 3)
        log.info("data: left out %d file(s) that are not images: %s", len(ignored), shown)


def _fingerprint(listings: dict[str, Listing], class_names: Sequence[str], prep: Preparation) -> str:
    """SHA-256 of what decoding depends on: each file's path, size and mtime, the classes, the preprocessing
    settings and code."""
    from mnist_hydra.data import digits, image_files, preparation

    # Names as the file system's bytes: a name that is not UTF-8 (os.fsdecode's surrogates) cannot be .encode()d.
    digest = hashlib.sha256(b"format %d\0" % CACHE_FORMAT + b"\0".join(map(os.fsencode, class_names)) + b"\0")
    if prep.preprocess != "digit":  # a digit folder keeps the key (and cache) it had before resize existed
        digest.update(repr(sorted(prep.record().items())).encode() + b"\0")
        digest.update(Path(preparation.__file__).read_bytes())
    for source in (image_files.__file__, digits.__file__):  # reading the file, then making it a digit
        digest.update(Path(source).read_bytes())
    for split, listing in listings.items():
        digest.update(f"\0split {split}\0".encode())
        for path, label in zip(listing.files, listing.labels, strict=False):
            try:
                stat = path.stat()
                state = b"%d\0%d" % (stat.st_size, stat.st_mtime_ns)
            except OSError as err:  # a dangling link, a file gone since the listing: decoding skips it
                state = b"unreadable %d" % (err.errno or 0)
            digest.update(os.fsencode(path) + b"\0" + state + b"\0%d\0" % label)
    return digest.hexdigest()


def cache_folder(cfg: FolderConfig) -> Path:
    """Where decoded folders are kept: data.cache_dir, $MNIST_HYDRA_CACHE, $XDG_CACHE_HOME/mnist_hydra, ~/.cache."""
    for value in (cfg.cache_dir, os.environ.get(CACHE_ENV)):
        if value:
            return Path(os.path.expanduser(value)).absolute()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "mnist_hydra"


def _decode_cached(
    key: str,
    listings: dict[str, Listing],
    cfg: FolderConfig,
    given: str,
    class_names: Sequence[str],
    prep: Preparation,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each split's (images, labels), from the cache when the folder is unchanged (`key`), else decoded (and, when
    every class kept an image, cached)."""
    path = cache_folder(cfg) / f"folder-{key[:24]}.npz"
    if cfg.cache:
        cached = _read_cache(path)
        if cached is not None:
            arrays, skipped = cached
            log.info(
                "data: read %d decoded images from the cache %s (the folder is unchanged since)",
                sum(len(y) for _, y in arrays.values()),
                path,
            )
            _say_skipped(skipped)
            return arrays
    arrays, skipped = {}, []
    start = time.perf_counter()
    for split, listing in listings.items():
        images, keep, bad = decode(listing.files, cfg.workers, prep)
        arrays[split] = (images, listing.labels[keep])
        skipped += bad
    count, seconds = sum(len(y) for _, y in arrays.values()), time.perf_counter() - start
    try:
        _require_every_class(arrays["train"][1], class_names, given)
    except DataError:
        _say_skipped(skipped)  # which files were unreadable: why the class has no image left
        raise
    # Said once the cache is written: a cache that cannot be written says so instead.
    kept = _write_cache(path, arrays, skipped) if cfg.cache else False
    log.info(
        "data: decoded %d images in %.1f s (%s)",
        count,
        seconds,
        f"cached in {path}" if kept else "not cached" if cfg.cache else "data.cache=false: not cached",
    )
    _say_skipped(skipped)
    return arrays


def decode(
    files: Sequence[Path], workers: int | None = None, prep: Preparation | None = None
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Preprocess every file by `prep` (default: digits): (uint8 images (n, height, width) when grey, else
    (n, height, width, channels); indices of the files decoded; "file: why" per skipped one).

    Large folders are decoded by `workers` processes (one per core by default), in chunks that keep the order.
    """
    workers = workers or os.cpu_count() or 1
    prep = prep or Preparation()
    images = np.zeros((len(files), *stored_shape(prep)), np.uint8)
    ok = np.zeros(len(files), bool)
    skipped: list[str] = []
    names = [os.fspath(f) for f in files]
    if workers > 1 and len(files) >= PARALLEL_FROM and _can_fork():
        chunk = max(MIN_CHUNK, len(files) // (workers * 8))
        starts = range(0, len(files), chunk)
        context = multiprocessing.get_context("fork")
        with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
            results = pool.map(_decode_chunk, [names[s : s + chunk] for s in starts], [prep] * len(starts))
            for start, (part, part_ok, part_skipped) in zip(starts, results, strict=False):
                images[start : start + len(part)], ok[start : start + len(part)] = part, part_ok
                skipped += part_skipped
    else:
        images[:], ok[:], skipped = _decode_chunk(names, prep)
    return images[ok], np.flatnonzero(ok), skipped


def _can_fork() -> bool:
    """Whether worker processes can be forked safely: a POSIX fork, before TensorFlow is loaded (it runs threads
    that a fork would copy half-way) and while this process runs no other thread.

    Not spawn: a spawned worker imports the caller's main script again (a script without a main guard would run
    twice, and `python -` cannot be imported at all). Otherwise the images are decoded in this process: slower,
    never wrong, and a sweep's later jobs (TensorFlow loaded by then) read the cache its first job wrote anyway.
    """
    return (
        "fork" in multiprocessing.get_all_start_methods()
        and "tensorflow" not in sys.modules
        and threading.active_count() == 1
    )


def stored_shape(prep: Preparation) -> tuple[int, ...]:
    """How one image is kept in memory: (height, width) when grey, as MNIST's arrays, else (height, width, 3)."""
    return prep.shape[:2] if prep.channels == 1 else prep.shape


def _decode_chunk(names: Sequence[str], prep: Preparation) -> tuple[np.ndarray, np.ndarray, list[str]]:
    from mnist_hydra.data.preparation import prepare_file

    shape = stored_shape(prep)
    images = np.zeros((len(names), *shape), np.uint8)
    ok = np.zeros(len(names), bool)
    skipped = []
    for i, name in enumerate(names):
        try:
            images[i] = np.rint(prepare_file(name, prep) * 255).reshape(shape)
            ok[i] = True
        except UserError as err:  # ImageError: unreadable, truncated, blank, too large, a dangling link
            skipped.append(printable(one_line(err)))
    return images, ok, skipped


def _say_skipped(skipped: Sequence[str]) -> None:
    if skipped:
        more = f"; ... and {len(skipped) - 2} more" if len(skipped) > 2 else ""
        shown = "; ".join(shorten(s, 120) for s in skipped[:2]) + more
        log.warning("data: skipped %d image file(s) that could not be read: %s", len(skipped), shown)


def _read_cache(path: Path) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], list[str]] | None:
    """The cached arrays, or None when there are none or they cannot be read (then the folder is decoded)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {
                split: (npz[f"{split}_x"], npz[f"{split}_y"]) for split in ("train", "test") if f"{split}_x" in npz
            }
            skipped = [str(s) for s in npz["skipped"]]
    except Exception as err:  # a damaged cache file costs a decode, never the run
        log.warning("data: ignoring the unreadable cache file %s (%s)", path, one_line(err))
        return None
    return arrays, skipped


def _write_cache(path: Path, arrays: dict[str, tuple[np.ndarray, np.ndarray]], skipped: Sequence[str]) -> bool:
    """Whether the decoded images were kept in `path`; a warning saying why not otherwise."""
    from mnist_hydra.runs.artifacts import atomic_write

    content = {f"{split}_{k}": a for split, (x, y) in arrays.items() for k, a in (("x", x), ("y", y))}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(
            path, lambda tmp: np.savez(tmp, allow_pickle=False, skipped=np.asarray(list(skipped), dtype=str), **content)
        )
    except (OSError, OutputError) as err:  # a read-only home: the run goes on, only the next one decodes again
        log.warning(
            "data: could not cache the decoded images in %s (%s); set data.cache_dir=DIR to keep them",
            path.parent,
            one_line(err),
        )
        return False
    return True


def _require_every_class(labels: np.ndarray, class_names: Sequence[str], given: str) -> None:
    """DataError for a class none of whose images could be read: the model would learn a class it never saw."""
    counts = np.bincount(labels, minlength=len(class_names))
    empty = [name for name, n in zip(class_names, counts, strict=False) if n == 0]
    if empty:
        raise DataError(
            f"{given}: no readable image of class {listed(empty)} is left for training; "
            "add images to its folder, or leave the class out with data.classes=[...]"
        )
