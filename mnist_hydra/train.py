"""Fit and score one config, and leave its artifacts in the run directory."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Optional

import keras
import numpy as np
import tensorflow as tf

from mnist_hydra import artifacts, plots
from mnist_hydra.config import Config
from mnist_hydra.data import Splits, load_splits
from mnist_hydra.models import MODELS
from mnist_hydra.optimizers import OPTIMIZERS
from mnist_hydra.pipeline import make_dataset

log = logging.getLogger(__name__)

INPUT_SHAPE = (28, 28, 1)


def train_and_evaluate(config: Config, workdir: Path, splits: Optional[Splits] = None) -> dict[str, Any]:
    """Train `config` (validated, typed), score the test set once, write artifacts; return the metrics.

    Args:
      config: the run's config, as `mnist_hydra.config.validate` returns it.
      workdir: the run directory; created if missing.
      splits: the data, when the caller has loaded it already; else loaded from `config.data`.
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    if splits is None:
        splits = load_splits(config.data, seed=config.seed)
    set_threads(config.trainer.threads)
    seed_everything(config.seed, config.trainer.deterministic)
    log.info(
        "data: %s from %s (%d train, %d validation%s, %d test)",
        config.data.name, splits.source, len(splits.y_train), len(splits.y_val),
        " = the test set" if splits.val_is_test else "", len(splits.y_test),
    )

    model = MODELS.get(config.model.name)(config.model, INPUT_SHAPE, len(splits.class_names))
    model.compile(
        optimizer=OPTIMIZERS.get(config.optimizer.name)(config.optimizer),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    log.info("model: %s, %d parameters; optimizer: %s lr=%g", config.model.name,
             model.count_params(), config.optimizer.name, config.optimizer.lr)

    batch = config.trainer.batch_size
    timer = EpochLog(config.trainer.epochs)
    start = time.perf_counter()
    fit = model.fit(
        make_dataset(splits.x_train, splits.y_train, batch, shuffle_seed=config.seed),
        validation_data=make_dataset(splits.x_val, splits.y_val, batch),
        epochs=config.trainer.epochs,
        verbose=config.trainer.verbose,
        callbacks=[timer],
        shuffle=False,  # the dataset reshuffles itself each epoch, from the seed
    )
    train_seconds = time.perf_counter() - start
    history = {key: [float(v) for v in values] for key, values in fit.history.items()}

    probabilities = model.predict(make_dataset(splits.x_test, splits.y_test, batch), verbose=0)
    predicted = probabilities.argmax(axis=1)
    matrix = artifacts.confusion_matrix(splits.y_test, predicted, len(splits.class_names))
    val_accuracy = history["val_accuracy"]
    metrics = {
        "status": "completed",
        "test_accuracy": float(np.mean(predicted == splits.y_test)),
        "test_loss": cross_entropy(probabilities, splits.y_test),
        "val_accuracy": val_accuracy[-1],
        "val_loss": history["val_loss"][-1],
        "best_val_accuracy": max(val_accuracy),
        "best_epoch": int(np.argmax(val_accuracy)) + 1,
        "epochs_run": len(val_accuracy),
        "train_seconds": train_seconds,
        "epoch_seconds": timer.seconds,
        "params": int(model.count_params()),
        "train_images": len(splits.y_train),
        "val_images": len(splits.y_val),
        "test_images": len(splits.y_test),
        "val_is_test": splits.val_is_test,
        "seed": config.seed,
        "data_source": splits.source,
        "data_checksums": splits.checksums,
        "history": history,
        "confusion_matrix": matrix.tolist(),
    }
    write_artifacts(workdir, model, metrics, splits, probabilities)
    log.info("test accuracy %.4f, test loss %.4f, %.1f s training; artifacts in %s",
             metrics["test_accuracy"], metrics["test_loss"], train_seconds, workdir)
    return metrics


def seed_everything(seed: int, deterministic: bool) -> None:
    """Fresh Keras state and seeded RNGs, so each job of a one-process sweep starts the same way."""
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)  # Python, NumPy and TensorFlow
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def set_threads(threads: Optional[int]) -> None:
    """Cap TensorFlow's thread pools, so parallel jobs share the machine instead of oversubscribing it."""
    count = threads or 0  # 0 lets TensorFlow use every core
    try:
        tf.config.threading.set_intra_op_parallelism_threads(count)
        tf.config.threading.set_inter_op_parallelism_threads(count)
    except RuntimeError:
        # The pools are fixed once TensorFlow has run an op: a later job in the same process keeps them.
        current = tf.config.threading.get_intra_op_parallelism_threads()
        if current != count:
            log.warning("trainer.threads=%s cannot take effect: TensorFlow already runs with %s in this process",
                        threads, current or "all cores")


def cross_entropy(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """Mean sparse categorical cross-entropy, clipped as Keras clips it."""
    picked = probabilities[np.arange(len(labels)), labels.astype(np.int64)]
    return float(-np.mean(np.log(np.clip(picked, 1e-7, 1.0))))


def write_artifacts(workdir: Path, model: keras.Model, metrics: dict[str, Any], splits: Splits,
                    probabilities: np.ndarray) -> None:
    """metrics.json, history.csv, model.keras and the three plots."""
    predicted = probabilities.argmax(axis=1)
    artifacts.atomic_write(workdir / "model.keras", model.save)
    artifacts.write_history_csv(workdir / "history.csv", {**metrics["history"], "seconds": metrics["epoch_seconds"]})
    plots.plot_training_curves(metrics["history"], workdir / "training_curves.png")
    plots.plot_confusion_matrix(np.asarray(metrics["confusion_matrix"]), splits.class_names,
                                workdir / "confusion_matrix.png")
    plots.plot_misclassified(splits.x_test, splits.y_test, predicted, probabilities.max(axis=1),
                             splits.class_names, workdir / "misclassified.png")
    # Last: a complete metrics.json marks a complete run directory.
    artifacts.write_json(workdir / "metrics.json", metrics)


class EpochLog(keras.callbacks.Callback):
    """Logs each epoch's figures to the job log and keeps its wall time."""

    def __init__(self, epochs: int) -> None:
        super().__init__()
        self.epochs = epochs
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch: int, logs: Optional[dict] = None) -> None:
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
        self.seconds.append(time.perf_counter() - self._start)
        figures = ", ".join(f"{k} {v:.4f}" for k, v in (logs or {}).items())
        log.info("epoch %d/%d: %s (%.1f s)", epoch + 1, self.epochs, figures, self.seconds[-1])
