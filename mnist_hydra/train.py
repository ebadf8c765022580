"""Fit and score one config, and leave its artifacts in the run directory."""

from __future__ import annotations

import logging
import math
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

import keras
import numpy as np
import tensorflow as tf

from mnist_hydra import artifacts, distribute, plots, report
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
      workdir: the run directory; created if missing. Under trainer.strategy=multi_worker only the chief
        (see `mnist_hydra.distribute.is_chief`) writes there; the other workers train and score alike.
      splits: the data, when the caller has loaded it already; else loaded from `config.data`.
    """
    workdir = Path(workdir)
    if splits is None:
        splits = load_splits(config.data, seed=config.seed)
    set_threads(config.trainer.threads)
    # Before any other op: the multi-worker strategy sets up collective ops as TensorFlow starts.
    strategy, chief = distribute.make_strategy(config.trainer.strategy)
    if chief:
        workdir.mkdir(parents=True, exist_ok=True)
    seed_everything(config.seed, config.trainer.deterministic)
    log.info(
        "data: %s from %s (%d train, %d validation%s, %d test)",
        config.data.name, splits.source, len(splits.y_train), len(splits.y_val),
        " = the test set" if splits.val_is_test else "", len(splits.y_test),
    )
    if config.trainer.strategy != "default":
        log.info("strategy: %s, %d replica(s) in sync, global batch %d; %s", config.trainer.strategy,
                 strategy.num_replicas_in_sync, config.trainer.batch_size,
                 "this process is the chief and writes the artifacts" if chief
                 else "this process is not the chief: it trains and scores but writes no artifacts")

    steps = math.ceil(len(splits.y_train) / config.trainer.batch_size)  # per epoch; a schedule needs the total
    with strategy.scope():  # variables made here are mirrored on every replica
        model = MODELS.get(config.model.name)(config.model, INPUT_SHAPE, len(splits.class_names))
        model.compile(
            optimizer=OPTIMIZERS.get(config.optimizer.name)(config.optimizer, total_steps=steps * config.trainer.epochs),
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
    distribute.average_across_replicas(strategy, model.non_trainable_variables)  # BatchNorm statistics
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
        "strategy": config.trainer.strategy,
        "replicas": int(strategy.num_replicas_in_sync),
        "data_source": splits.source,
        "data_checksums": splits.checksums,
        "history": history,
        "confusion_matrix": matrix.tolist(),
    }
    # Every worker ends with the same weights; comparing this line across the workers' logs shows it.
    log.info("final weights: sha256 %s", distribute.weights_digest(model.get_weights()))
    if chief:
        write_artifacts(workdir, model, metrics, splits, probabilities)
    else:
        # Saving reads every variable; a variable synchronised on read would make that a collective op which
        # every worker must join. So this worker saves too, to a scratch copy that is dropped.
        with tempfile.TemporaryDirectory(prefix="mnist_hydra-worker-") as scratch:
            model.save(Path(scratch) / "model.keras")
    log.info("test accuracy %.4f, test loss %.4f, %.1f s training; %s",
             metrics["test_accuracy"], metrics["test_loss"], train_seconds,
             f"artifacts in {workdir}" if chief else "artifacts left to the chief")
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
    """metrics.json, history.csv, model.keras, the three plots and report.html."""
    predicted = probabilities.argmax(axis=1)
    artifacts.atomic_write(workdir / "model.keras", model.save)
    artifacts.write_history_csv(workdir / "history.csv", {**metrics["history"], "seconds": metrics["epoch_seconds"]})
    plots.plot_training_curves(metrics["history"], workdir / "training_curves.png")
    plots.plot_confusion_matrix(np.asarray(metrics["confusion_matrix"]), splits.class_names,
                                workdir / "confusion_matrix.png")
    plots.plot_misclassified(splits.x_test, splits.y_test, predicted, probabilities.max(axis=1),
                             splits.class_names, workdir / "misclassified.png")
    report.write_run_report(workdir, metrics)
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
