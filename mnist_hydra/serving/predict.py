"""Classify picture files with a trained run: find them, make each MNIST-like, predict, rank the classes.

A folder is read for its image files (not its sub-folders), in name order. Each picture is made MNIST-like
first (mnist_hydra.data.preprocess): any size, colour or grayscale, dark ink on light paper or light on dark.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mnist_hydra.data.preprocess import ImageError, preprocess_file
from mnist_hydra.errors import UserError
from mnist_hydra.runs import rundir

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")  # what a folder is searched for; a file named alone may be any format


def find_images(path: Path) -> list[Path]:
    """`path` itself when it is a file; the image files in it, by name, when it is a folder."""
    if path.is_file():
        return [path]
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not found:
            raise UserError(f"images={path}: no {', '.join(IMAGE_SUFFIXES)} files in this folder")
        return found
    raise UserError(f"images={path}: no such file or folder")


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


def rank(probabilities: np.ndarray, files: Sequence[Path], class_names: Sequence[str], top_k: int) -> list[dict]:
    """One record per image: file, predicted class and label, its probability, the top_k classes."""
    records = []
    for path, probs in zip(files, np.asarray(probabilities, dtype=np.float64)):
        order = np.argsort(-probs, kind="stable")[:top_k]
        top = [{"class": class_names[i], "label": int(i), "probability": float(probs[i])} for i in order]
        records.append({"file": str(path), **top[0], "top": top})
    return records


def format_line(record: dict[str, Any]) -> str:
    """`digits/seven.png  7  0.9981  top-3: 7 0.9981, 2 0.0012, 3 0.0004`."""
    top = ", ".join(f"{t['class']} {t['probability']:.4f}" for t in record["top"])
    return f"{record['file']}  {record['class']}  {record['probability']:.4f}  top-{len(record['top'])}: {top}"


def predict_images(run_dir: Path, images: Path, top_k: int = 3) -> tuple[list[dict], list[str]]:
    """Classify the picture(s) at `images` with `run_dir`'s model: (one record per image, one message per failure)."""
    model_path = rundir.require_run(Path(run_dir))
    files, batch, failures = read_images(find_images(Path(images)))
    if not files:
        return [], failures
    model = rundir.load_model(model_path)  # TensorFlow loads only once there is something to predict
    class_names = rundir.class_names(Path(run_dir), model.output_shape[-1])
    probabilities = model.predict(batch, batch_size=256, verbose=0)
    return rank(probabilities, files, class_names, top_k), failures
