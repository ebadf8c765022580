"""`python -m mnist_hydra.predict run=RUN_DIR images=PATH [output=json]`: classify your own pictures.

PATH is one image file or a folder of them (mnist_hydra.serving.classify_files says which files a folder gives).
Prints one line per picture: the file, the predicted class, its probability and the top-3
(`top_k=N` for more); `output=json` prints one JSON list instead. A file that cannot be read, or
holds no digit, is reported on stderr, one line each, and the others are still predicted; the exit
code is non-zero only when no picture could be predicted. Nothing is written to disk.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from omegaconf import MISSING, DictConfig

from mnist_hydra.apps.app_kinds import hydra_app
from mnist_hydra.errors import DataError, require
from mnist_hydra.runs import rundir

PROG = "mnist_hydra.predict"
OUTPUTS = ("text", "json")
# What the error for a key without a value suggests.
EXAMPLES = {"run": rundir.RUN_EXAMPLE, "images": "images=my_digits/ (an image file or a folder of them)"}


@dataclass
class PredictConfig:
    """Which model, which pictures, how to print."""

    run: str = MISSING  # the training run's directory: holds model.keras
    images: str = MISSING  # an image file, or a folder of image files
    output: str = "text"  # text: one line per image; json: one JSON list on stdout
    top_k: int = 3  # classes listed per image, most probable first

    def check(self) -> None:
        require(self.output in OUTPUTS, "output", self.output, f"one of {', '.join(OUTPUTS)}")
        require(self.top_k >= 1, "top_k", self.top_k, "an integer >= 1")


@hydra_app(PROG, "predict", PredictConfig, EXAMPLES)
def predict(settings: PredictConfig, cfg: DictConfig) -> None:
    """Print the predictions for `settings.images`; exit 1 when not one image could be predicted."""
    from mnist_hydra.serving.classify_files import format_line, predict_images

    records, failures = predict_images(Path(settings.run), Path(settings.images), settings.top_k)
    if not records:  # one error line, naming every file and why, not a line each and then the error
        raise DataError(
            failures[0]
            if len(failures) == 1
            else f"no image could be predicted: {'; '.join(failures) or settings.images}"
        )
    for message in failures:
        print(f"{PROG}: skipped {message}", file=sys.stderr)
    if settings.output == "json":
        print(json.dumps(records, indent=2))
    else:
        for record in records:
            print(format_line(record))


main = predict.main
