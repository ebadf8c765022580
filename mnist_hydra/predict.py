"""`python -m mnist_hydra.predict run=RUN_DIR images=PATH [output=json]`: classify your own pictures.

PATH is one image file or a folder; from a folder every file Pillow reads as an image (PNG, JPEG,
GIF, WebP, TIFF, BMP...: known by its name ending, else by its first bytes) is read, in name order;
every other entry (a text file, a sub-folder) is reported as skipped. Each picture is made
MNIST-like first (mnist_hydra.preprocess): any size, colour or grayscale, dark ink on light paper
or light on dark, evenly lit or not.

Prints one line per picture: the file, the predicted class, its probability and the top-3
(`top_k=N` for more); `output=json` prints one JSON list instead. A file that cannot be read, or
holds no digit, is reported on stderr, one line each, and the others are still predicted; the exit
code is non-zero only when no picture could be predicted. Nothing is written to disk.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import hydra
import numpy as np
from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from mnist_hydra.config import require_values
from mnist_hydra.console import exit_with, run_app
from mnist_hydra.data import DATASETS
from mnist_hydra.errors import UserError, require
from mnist_hydra.evaluate import EXAMPLES as RUN_EXAMPLE, check_keras_archive, check_run_dir, load_model, read_run_config
from mnist_hydra.preprocess import ImageError, is_image_file, preprocess_file

PROG = "mnist_hydra.predict"
OUTPUTS = ("text", "json")
# What the error for a key without a value suggests.
EXAMPLES = {**RUN_EXAMPLE, "images": "images=my_digits/ (an image file or a folder of them)"}


@dataclass
class PredictConfig:
    """Which model, which pictures, how to print."""

    run: str = MISSING  # the training run's directory: holds model.keras
    images: str = MISSING  # an image file, or a folder of them (any format Pillow reads)
    output: str = "text"  # text: one line per image; json: one JSON list on stdout
    top_k: int = 3  # classes listed per image, most probable first

    def check(self) -> None:
        require(self.output in OUTPUTS, "output", self.output, f"one of {', '.join(OUTPUTS)}")
        require(self.top_k >= 1, "top_k", self.top_k, "an integer >= 1")


def find_images(path: Path) -> tuple[list[Path], list[str]]:
    """`path` itself when it is a file; the images in it, by name, when it is a folder: (images, a message per other entry)."""
    if path.is_file():
        return [path], []
    if not path.is_dir():
        raise UserError(f"images={path}: no such file or folder")
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
        found = f"{len(skipped)} {'entry' if len(skipped) == 1 else 'entries'}, none an image" if skipped else "it is empty"
        raise UserError(f"images={path}: no image in this folder ({found}); "
                        "give PNG, JPEG or any other format Pillow reads")
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


def class_names_of(run_dir: Path, num_classes: int) -> tuple[str, ...]:
    """The class names of the data the run trained on; "0".."n-1" when they cannot be told."""
    try:
        loader = DATASETS.get(read_run_config(run_dir)["data"]["name"])
        names = tuple(loader.args[0].class_names)  # each loader is partial(load_dataset, spec)
    except (UserError, KeyError, AttributeError, IndexError, TypeError):
        names = ()
    return names if len(names) == num_classes else tuple(str(i) for i in range(num_classes))


def predict_images(run_dir: Path, images: Path, top_k: int = 3) -> tuple[list[dict], list[str]]:
    """Classify the picture(s) at `images` with `run_dir`'s model: (one record per image, one message per failure)."""
    model_path = check_run_dir(Path(run_dir))
    check_keras_archive(model_path)  # a damaged model shows before the pictures are read
    paths, skipped = find_images(Path(images))
    files, batch, failures = read_images(paths)
    failures = skipped + failures
    if not files:
        return [], failures
    model = load_model(model_path)  # TensorFlow loads only once there is something to predict
    class_names = class_names_of(Path(run_dir), model.output_shape[-1])
    probabilities = model.predict(batch, batch_size=256, verbose=0)
    return rank(probabilities, files, class_names, top_k), failures


# The command-line app; everything above works without Hydra.

ConfigStore.instance().store(name="predict_schema", node=PredictConfig)


@hydra.main(version_base="1.3", config_path="conf", config_name="predict")
def predict(cfg: DictConfig) -> None:
    """Print the predictions for `cfg.images`; exit 1 when not one image could be predicted."""
    try:
        records = _predict(cfg)
    except UserError as err:  # here, not in run_app: Hydra would first log "Error executing job" on stderr
        exit_with(err, PROG)
    if not records:
        exit_with(UserError("no image could be predicted"), PROG)


def _predict(cfg: DictConfig) -> list[dict]:
    require_values(cfg, EXAMPLES)
    settings = PredictConfig(**OmegaConf.to_container(cfg, resolve=True))
    settings.check()
    records, failures = predict_images(Path(settings.run), Path(settings.images), settings.top_k)
    for message in failures:
        print(f"{PROG}: skipped {message}", file=sys.stderr)
    if settings.output == "json":
        print(json.dumps(records, indent=2))
    else:
        for record in records:
            print(format_line(record))
    return records


def main() -> None:
    """Console entry point: the predict app, with user mistakes as one line."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    run_app(predict, PROG)


if __name__ == "__main__":
    main()
