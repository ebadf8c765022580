"""Scoring a trained run: the weights it keeps, the test set scored once, and the metrics dict of metrics.json."""

from __future__ import annotations

import logging
from typing import Any

import keras
import numpy as np

from mnist_hydra.config import Config
from mnist_hydra.data.pipeline import make_dataset
from mnist_hydra.data.splits import Splits
from mnist_hydra.runs.metrics import confusion_matrix, cross_entropy
from mnist_hydra.training.checkpoints import Checkpoints, TrainingState
from mnist_hydra.training.epoch_decisions import Control, EarlyStopping, KeepBest, StopAtTarget, find

log = logging.getLogger(__name__)


def keep_chosen_weights(
    model: keras.Model, controls: list[Control], checkpoints: Checkpoints, state: TrainingState, strategy: Any
) -> int:
    """The epoch whose weights the run keeps: the last one, or with trainer.keep=best the best one, loaded into
    `model` from its file (in a fresh or a resumed run alike)."""
    keep = find(controls, KeepBest)
    if keep is None or not keep.best_epoch:
        return state.epoch
    with strategy.scope():
        model.load_weights(checkpoints.best_weights(state))
    log.info("keeping epoch %d's weights: the best %s (%.4f)", keep.best_epoch, keep.watch.monitor, keep.watch.best)
    return int(keep.best_epoch)


def score(
    config: Config,
    model: keras.Model,
    splits: Splits,
    state: TrainingState,
    strategy: Any,
    kept_epoch: int,
    stopping: EarlyStopping | None,
) -> tuple[dict[str, Any], np.ndarray]:
    """Score the test set once: the run's metrics (history included) and the test images' probabilities.

    val_accuracy and val_loss are those of the kept epoch: the last one, or with keep=best the best one.
    """
    test_data = make_dataset(splits.x_test, splits.y_test, config.trainer.eval_batch_size or config.trainer.batch_size)
    probabilities = model.predict(test_data, verbose=0)
    predicted = probabilities.argmax(axis=1)
    matrix = confusion_matrix(splits.y_test, predicted, len(splits.class_names))
    history = state.history
    val_accuracy = history["val_accuracy"]
    return {
        "status": "completed",
        "test_accuracy": float(np.mean(predicted == splits.y_test)),
        "test_loss": cross_entropy(probabilities, splits.y_test),
        "val_accuracy": val_accuracy[kept_epoch - 1],
        "val_loss": history["val_loss"][kept_epoch - 1],
        "best_val_accuracy": max(val_accuracy),
        "best_epoch": int(np.argmax(val_accuracy)) + 1,
        "epochs_run": len(val_accuracy),
        "keep": config.trainer.keep,
        "kept_epoch": kept_epoch,
        "stopped_early": stopping is not None and stopping.stopped_epoch is not None,
        "train_seconds": float(sum(state.epoch_seconds)),
        "epoch_seconds": state.epoch_seconds,
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
        "class_names": list(splits.class_names),
        "history": history,
        "confusion_matrix": matrix.tolist(),
    }, probabilities


def target_record(stop_at: str | None, target: StopAtTarget | None, state: TrainingState) -> dict[str, Any]:
    """metrics.json's trainer.stop_at figures: the target, the epoch that reached it and the training seconds
    to the end of that epoch (its validation included); both null when it was never reached. Nothing when off."""
    if stop_at is None or target is None:
        return {}
    epoch = target.stopped_epoch
    return {
        "stop_at": stop_at,
        "stop_at_epoch": epoch,
        "stop_at_seconds": None if epoch is None else float(sum(state.epoch_seconds[:epoch])),
    }
