"""Classify picture files with a trained run: find them, make each MNIST-like, predict, rank the classes.

A folder gives every file Pillow reads as an image (PNG, JPEG, GIF, WebP, TIFF, BMP...: known by its name
ending, else by its first bytes), in name order; every other entry (a text file, a sub-folder) is reported
as skipped. Each picture is made MNIST-like
first (mnist_hydra.data.digits): any size, colour or grayscale, dark ink on light paper or light on dark.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mnist_hydra.data.digits import preprocess_file
from mnist_hydra.data.image_files import ImageError, is_image_file
from mnist_hydra.errors import UserError
from mnist_hydra.runs import rundir


def find_images(path: Path) -> tuple[list[Path], list[str]]:
    """`path` itself when it is a file; the images in it, by name, when it is a folder: (images, a message per
    other entry)."""
    if path.is_file():
        return [path], []
    if not path.exists():
        raise UserError(f"images={path}: no such file or folder")
    if not path.is_dir():
        raise UserError(
            f"images={path}: not a regular file or a folder (a pipe, socket or device); "
            "give an image file or a folder of them"
        )
    images, skipped = [], []
    for entry in sorted(path.iterdir()):
        if is_image_file(entry):
            images.append(entry)
        elif entry.is_dir():
            skipped.append(f"{entry}: a folder (sub-folders are not searched)")
        elif entry.is_file():
            skipped.append(f"{entry}: not an image (no format Pillow reads)")
        else:
            skipped.append(f"{entry}: not a regular file")
    if not images:
        entries = f"{len(skipped)} entr{'y' if len(skipped) == 1 else 'ies'}"
        found = f"{entries}, none an image" if skipped else "it is empty"
        raise UserError(
            f"images={path}: no image in this folder ({found}); give PNG, JPEG or any other format Pillow reads"
        )
    return images, skipped


def read_images(paths: Sequence[Path]) -> tuple[list[Path], np.ndarray, list[str]]:
    """Preprocess every file: (the files that worked, their images (n, 28, 28, 1), a message per failure)."""
    read, images, failures = [], [], []
    for path in paths:
        try:
            images.append(preprocess_file(path))
        except ImageError as err:
            failures.append(str(err))
            continue
        read.append(path)
    stacked = np.stack(images)[..., np.newaxis] if images else np.zeros((0, 28, 28, 1), np.float32)
    return read, stacked, failures


def rank(
    probabilities: np.ndarray, files: Sequence[Path], class_names: Sequence[str], top_k: int
) -> list[dict[str, Any]]:
    """One record per image: file, predicted class and label, its probability, the top_k classes."""
    records = []
    for path, probs in zip(files, np.asarray(probabilities, dtype=np.float64), strict=False):
        order = np.argsort(-probs, kind="stable")[:top_k]
        top = [{"class": class_names[i], "label": int(i), "probability": float(probs[i])} for i in order]
        records.append({"file": str(path), **top[0], "top": top})
    return records


def format_line(record: dict[str, Any]) -> str:
    """`digits/seven.png  7  0.9981  top-3: 7 0.9981, 2 0.0012, 3 0.0004`."""
    top = ", ".join(f"{t['class']} {t['probability']:.4f}" for t in record["top"])
    return f"{record['file']}  {record['class']}  {record['probability']:.4f}  top-{len(record['top'])}: {top}"


def predict_images(run_dir: Path, images: Path, top_k: int = 3) -> tuple[list[dict[str, Any]], list[str]]:
    """Classify the picture(s) at `images` with `run_dir`'s model: (one record per image, one message per failure)."""
    model_path = rundir.require_run(Path(run_dir))
    rundir.check_model_file(model_path)  # a damaged model shows before the pictures are read
    paths, skipped = find_images(Path(images))
    files, batch, failures = read_images(paths)
    failures = skipped + failures
    if not files:
        return [], failures
    model = rundir.load_model(model_path)  # TensorFlow loads only once there is something to predict
    class_names = rundir.class_names(Path(run_dir), model.output_shape[-1])
    probabilities = model.predict(batch, batch_size=256, verbose=0)
    return rank(probabilities, files, class_names, top_k), failures
