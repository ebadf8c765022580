"""TensorBoard: event files in the run directory, read with `tensorboard --logdir RUN_OR_SWEEP_DIR`.

RUN/tensorboard/train       epoch_loss, epoch_accuracy, epoch_learning_rate per epoch; batch_loss every
                            `update_freq` steps
RUN/tensorboard/validation  epoch_loss, epoch_accuracy per epoch (beside train's, in one chart each)
RUN/tensorboard             test/accuracy, test/loss, the kept epoch, the confusion matrix and misclassified
                            images, and the HParams plugin's record of the run's config, so that a
                            sweep's jobs line up in one HParams table
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mnist_hydra.errors import require
from mnist_hydra.extras import require_extra
from mnist_hydra.tracking.base import LOGGERS, Logger, RunInfo, plain_value

FOLDER = "tensorboard"
IMAGES = ("confusion_matrix.png", "misclassified.png")


@dataclass
class TensorBoardConfig:
    """Event files in the run directory's tensorboard/ folder."""

    update_freq: int = (
        100  # steps between points of the training loss (at most one per call of trainer.steps_per_execution)
    )

    def check(self) -> None:
        require_extra("tensorboard", "logger=tensorboard")
        require(self.update_freq >= 1, "update_freq", self.update_freq, "a number of steps >= 1")


class TensorBoardLogger(Logger):
    """Writes a run's figures with tf.summary, one writer per TensorBoard run (train, validation, the run)."""

    name = "tensorboard"

    def __init__(self, config: TensorBoardConfig) -> None:
        self.config = config
        self.step_every = config.update_freq
        self._writers: dict[str, Any] = {}
        self._steps: list[tuple[int, float]] = []  # the epoch in progress: written once it is complete

    def start(self, info: RunInfo, params: Mapping[str, Any], tags: Mapping[str, str]) -> None:
        import tensorflow as tf
        from tensorboard.plugins.hparams import api as hp

        folder = Path(info.run_dir) / FOLDER
        self._writers = {part: tf.summary.create_file_writer(str(folder / part)) for part in ("train", "validation")}
        self._writers["run"] = tf.summary.create_file_writer(str(folder))
        if info.resumed and _has_events(folder):
            return  # the first start wrote the HParams record; a second would make two sessions of one run
        hparams = {key: plain_value(value) for key, value in params.items()}
        with self._writers["run"].as_default():
            # No hparams_config: without one, TensorBoard works out the table from every run's record, so it
            # knows which hyperparameters differ between a sweep's jobs, and takes every scalar as a metric.
            hp.hparams(hparams, trial_id=info.name, start_time_secs=time.time())
        self._writers["run"].flush()

    def log_step(self, step: int, metrics: Mapping[str, float]) -> None:
        if "loss" in metrics:
            self._steps.append((step, float(metrics["loss"])))

    def discard_steps(self) -> None:
        self._steps.clear()

    def log_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        import tensorflow as tf

        with self._writers["train"].as_default():
            for step, loss in self._steps:
                tf.summary.scalar("batch_loss", loss, step=step)
            for key, value in metrics.items():
                if not key.startswith("val_"):
                    tf.summary.scalar(f"epoch_{key}", value, step=epoch)
        with self._writers["validation"].as_default():
            for key, value in metrics.items():
                if key.startswith("val_"):
                    tf.summary.scalar(f"epoch_{key[4:]}", value, step=epoch)
        self._steps.clear()
        for writer in self._writers.values():
            writer.flush()  # a run stopped later keeps every complete epoch on disk

    def log_test(self, metrics: Mapping[str, Any]) -> None:
        import tensorflow as tf

        step = int(metrics.get("epochs_run", 0))
        with self._writers["run"].as_default():
            tf.summary.scalar("test/accuracy", metrics["test_accuracy"], step=step)
            tf.summary.scalar("test/loss", metrics["test_loss"], step=step)
            for key in ("best_val_accuracy", "kept_epoch", "epochs_run"):
                if metrics.get(key) is not None:
                    tf.summary.scalar(f"final/{key}", metrics[key], step=step)
        self._writers["run"].flush()

    def log_artifacts(self, run_dir: Path) -> None:
        import tensorflow as tf

        with self._writers["run"].as_default():
            for name in IMAGES:
                path = Path(run_dir) / name
                if path.is_file():
                    image = tf.io.decode_png(tf.io.read_file(str(path)), channels=3)
                    tf.summary.image(path.stem, image[tf.newaxis], step=0)
        self._writers["run"].flush()

    def end(self, status: str) -> None:
        self._steps.clear()
        writers, self._writers = self._writers, {}
        for writer in writers.values():
            writer.close()


def _has_events(folder: Path) -> bool:
    return any(folder.glob("events.out.tfevents.*"))


def build(config: TensorBoardConfig) -> TensorBoardLogger:
    """A TensorBoard logger for `config`."""
    return TensorBoardLogger(config)


LOGGERS.register("tensorboard", schema=TensorBoardConfig)(build)
