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
from typing import TYPE_CHECKING, Any

from mnist_hydra.errors import require
from mnist_hydra.extras import require_extra
from mnist_hydra.tracking.base import LOGGERS, Logger, RunInfo, plain_value

if TYPE_CHECKING:
    import keras

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


@LOGGERS.register("tensorboard", schema=TensorBoardConfig)
class TensorBoardLogger(Logger):
    """Writes a run's figures with tf.summary, one writer per TensorBoard run (train, validation, the run).

    Not keras.callbacks.TensorBoard: it counts steps per fit() call from 0 (one per steps_per_execution
    call), so a resumed run would restart its lines; it writes a cut epoch's figures; and it reads the
    learning rate after the plateau schedule has cut it.
    """

    config: TensorBoardConfig

    def __init__(self, config: TensorBoardConfig) -> None:
        super().__init__(config)
        self._writers: dict[str, Any] = {}
        self._steps: list[tuple[int, float]] = []  # the epoch in progress: written once it is complete
        self._before = 0  # the step before the steps Keras is running now
        self._run_dir = Path()

    def start(self, info: RunInfo, params: Mapping[str, Any], tags: Mapping[str, str]) -> None:
        import tensorflow as tf
        from tensorboard.plugins.hparams import api as hp

        self._run_dir = Path(info.run_dir)
        folder = self._run_dir / FOLDER
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

    def callback(self) -> keras.callbacks.Callback:
        import keras

        return keras.callbacks.LambdaCallback(
            on_epoch_begin=lambda epoch, logs: self._steps.clear(),  # a cut epoch's steps: trained again on resume
            on_train_batch_begin=self._begin_steps,
            on_train_batch_end=self._end_steps,
            on_epoch_end=self._write_epoch,
        )

    def _begin_steps(self, first: int, logs: Mapping[str, Any] | None) -> None:
        self._before = first - 1

    def _end_steps(self, last: int, logs: Mapping[str, Any] | None) -> None:
        # Keras reports once per trainer.steps_per_execution steps: a point on the first report at or after
        # each multiple of update_freq.
        every = self.config.update_freq
        if logs and "loss" in logs and last // every > self._before // every:
            self._steps.append((last, float(logs["loss"])))

    def _write_epoch(self, epoch: int, logs: Mapping[str, float]) -> None:
        import tensorflow as tf

        with self._writers["train"].as_default():
            for step, loss in self._steps:
                tf.summary.scalar("batch_loss", loss, step=step)
            for key, value in logs.items():
                if not key.startswith("val_"):
                    tf.summary.scalar(f"epoch_{key}", value, step=epoch)
        with self._writers["validation"].as_default():
            for key, value in logs.items():
                if key.startswith("val_"):
                    tf.summary.scalar(f"epoch_{key[4:]}", value, step=epoch)
        self._steps.clear()
        for writer in self._writers.values():
            writer.flush()  # a run stopped later keeps every complete epoch on disk

    def end(self, status: str, metrics: Mapping[str, Any] | None) -> None:
        self._steps.clear()
        if metrics is not None:
            self._write_final(metrics)
        writers, self._writers = self._writers, {}
        for writer in writers.values():
            writer.close()

    def _write_final(self, metrics: Mapping[str, Any]) -> None:
        """The test scores and final figures, and the confusion matrix and misclassified digits as images."""
        import tensorflow as tf

        step = int(metrics.get("epochs_run", 0))
        with self._writers["run"].as_default():
            tf.summary.scalar("test/accuracy", metrics["test_accuracy"], step=step)
            tf.summary.scalar("test/loss", metrics["test_loss"], step=step)
            for key in ("best_val_accuracy", "kept_epoch", "epochs_run"):
                if metrics.get(key) is not None:
                    tf.summary.scalar(f"final/{key}", metrics[key], step=step)
            for name in IMAGES:
                path = self._run_dir / name
                if path.is_file():
                    image = tf.io.decode_png(tf.io.read_file(str(path)), channels=3)
                    tf.summary.image(path.stem, image[tf.newaxis], step=0)
        self._writers["run"].flush()


def _has_events(folder: Path) -> bool:
    return any(folder.glob("events.out.tfevents.*"))
