"""Drawings the user labels on the page, saved as a folder of images per class (`serve.collect_dir`).

Each saved image is the 28x28 image the model saw: the upload after the preprocessing of /predict
(mnist_hydra.data.digits), as a uint8 grayscale PNG, white digit on black as MNIST's. It goes to
COLLECT_DIR/<class folder>/<UTC time>.png, the layout of torchvision's ImageFolder (one subfolder per class,
named after it), which `python -m mnist_hydra data=folder data.root=COLLECT_DIR` trains on.

A class's folder is its name made safe for a file system (`folder_name`): "/", "\\" and control characters
become "-" ("T-shirt/top" -> "T-shirt-top"), and a name that is empty or only dots gets a "_" in front.

A save never overwrites a file: the PNG is written to a temporary file in COLLECT_DIR, then hard-linked to its
name, which fails if the name exists; the next free name (TIME-1.png, TIME-2.png, ...) is tried then. Two saves
in the same microsecond, from two requests or two server processes, are both kept, and no reader sees a
half-written PNG (where the file system has no hard links, an empty file holds the name for a moment).
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import io
import json
import os
import re
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from mnist_hydra.data.digits import FIELD
from mnist_hydra.errors import UserError
from mnist_hydra.serving.inputs import InputError

KEY = "serve.collect_dir"
UNSAFE = re.compile(r"[/\\\x00-\x1f\x7f]")
# os.link's errors on a file system without hard links (some FUSE and network mounts, FAT): reserve the name with
# O_EXCL and rename onto it instead.
NO_HARD_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK, errno.ENOSYS}


def folder_name(class_name: str) -> str:
    """The folder a class's images go to: its name with "/", "\\" and control characters as "-"."""
    name = UNSAFE.sub("-", class_name)
    return f"_{name}" if not name.strip(".") else name


def prepare_collect_dir(path: str | os.PathLike[str]) -> Path:
    """`path` made absolute, created if missing; UserError naming serve.collect_dir unless it is a writable folder."""
    folder = Path(path).expanduser().absolute()
    hint = "give a folder to save the labelled drawings in (it is created if missing), or serve.collect_dir=null"
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{KEY}={path}: a file, not a folder; {hint}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"{KEY}={path}: cannot create it ({err.strerror or err}); {hint}") from None
    try:  # os.access says yes to root for a read-only mount: try it
        descriptor, probe = tempfile.mkstemp(dir=folder, prefix=".collect-probe-")
        os.close(descriptor)
        os.unlink(probe)
    except OSError as err:
        raise UserError(f"{KEY}={path}: cannot write in it ({err.strerror or err}); {hint}") from None
    return folder


class Collector:
    """Saves labelled 28x28 images under `root`, one folder per class of `class_names`."""

    def __init__(self, root: str | os.PathLike[str], class_names: Sequence[str]) -> None:
        self.root = prepare_collect_dir(root)
        self.class_names = tuple(class_names)
        self.folders = tuple(folder_name(name) for name in self.class_names)
        self.now: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(
            datetime.timezone.utc
        )  # the files' names (a test stops it)

    def label(self, value: Any) -> int:
        """The class index that `value` names (a class name, or an index as a number or text); InputError if none."""
        names = self.class_names
        if isinstance(value, str):
            text = value.strip()
            for name in (value, text):  # a name first: an index is read only from what names no class
                if name in names:
                    return names.index(name)
            if text.isascii() and text.isdigit() and int(text) < len(names):  # not '²', which int() refuses
                return int(text)
        elif isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(names):
            return value
        shown = ", ".join(names[:12]) + (f", ... ({len(names)} in all)" if len(names) > 12 else "")
        raise InputError(
            422,
            f"label {json.dumps(value)[:80]} is not a class of this model; "
            f"send a class name ({shown}) or an index 0..{len(names) - 1}",
        )

    def save(self, image: np.ndarray, label: int) -> Path:
        """Write `image` (28x28 in [0, 1]) as ROOT/<class folder>/<UTC time>.png; its path relative to ROOT."""
        pixels = np.round(np.clip(np.asarray(image, np.float32).reshape(FIELD, FIELD), 0, 1) * 255).astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels, mode="L").save(buffer, "PNG")
        folder = self.root / self.folders[label]
        stem = self.now().strftime("%Y-%m-%dT%H-%M-%S.%fZ")
        try:
            folder.mkdir(exist_ok=True)
            descriptor, temporary = tempfile.mkstemp(dir=self.root, prefix=".collect-", suffix=".png.tmp")
            try:
                with os.fdopen(descriptor, "wb") as file:
                    file.write(buffer.getvalue())
                    file.flush()
                    os.fsync(file.fileno())
                return _place(Path(temporary), folder, stem).relative_to(self.root)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(temporary)
        except OSError as err:  # the server's disk, not the request: the prediction API goes on working
            status = 507 if err.errno in (errno.ENOSPC, errno.EDQUOT) else 503
            raise InputError(
                status, f"cannot save the drawing in {folder} ({err.strerror or err}); check {KEY}={self.root}"
            ) from None


def _place(temporary: Path, folder: Path, stem: str) -> Path:
    """Give `temporary` the first free name STEM.png, STEM-1.png, ... in `folder`, never replacing a file."""
    for n in range(10_000):
        target = folder / (f"{stem}.png" if n == 0 else f"{stem}-{n}.png")
        try:
            os.link(temporary, target)
            return target
        except FileExistsError:
            continue
        except OSError as err:
            if err.errno not in NO_HARD_LINKS:
                raise
        try:  # no hard links here: reserve the name, then rename onto the reservation (ours alone)
            os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        except FileExistsError:
            continue
        os.replace(temporary, target)
        return target
    raise OSError(errno.EEXIST, f"10000 files named {stem}*.png already")
