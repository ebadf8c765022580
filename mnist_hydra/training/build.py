"""The model a run trains: built and compiled from the config, or restored from the newest checkpoint."""

from __future__ import annotations

import logging
import math
from typing import Any

import keras

from mnist_hydra.config import Config
from mnist_hydra.models.augment import augmentation_layers, with_augmentation
from mnist_hydra.models.networks import MODELS
from mnist_hydra.models.optimizers import OPTIMIZERS, fuse_adam_update
from mnist_hydra.training.checkpoints import Checkpoints, TrainingState, restore_random_states
from mnist_hydra.training.init_from import load_weights_from
from mnist_hydra.training.precision import resolve_precision, with_loss_scaling, with_precision

log = logging.getLogger(__name__)


def build_or_restore(
    config: Config,
    strategy: Any,
    checkpoints: Checkpoints | None,
    train_images: int,
    classes: int,
    input_shape: tuple[int, int, int],
) -> tuple[keras.Model, TrainingState]:
    """A compiled model for the data's `input_shape` (height, width, channels) and where its training stands: new,
    or from the newest checkpoint when resuming."""
    latest = checkpoints.latest() if checkpoints else None
    with strategy.scope():  # variables made here are mirrored on every replica
        if latest:
            model_file, state = latest
            model = keras.models.load_model(model_file)  # weights, optimizer state and compile settings
            _fuse(model.optimizer, config, strategy)  # the same update kernel as before the stop: a bit-exact resume
            restore_random_states(model, state.random_states)
            log.info("resuming after epoch %d of %d from %s", state.epoch, config.trainer.whole_epochs, model_file)
            return model, state
        if checkpoints:
            log.info("no checkpoint in %s: starting from the first epoch", checkpoints.folder)
        # The random layers are made before the network's, as a network that made its own did: the same seeds.
        augment = augmentation_layers(config.augment)
        network = MODELS.get(config.model.name)(config.model, input_shape, classes)
        precision = resolve_precision(config.trainer.precision)
        model = with_precision(with_augmentation(network, augment), precision)
        if config.init_from is not None:
            load_weights_from(model, config.init_from)
        steps = math.ceil(train_images / config.trainer.batch_size)  # per epoch; a schedule needs the total
        total = config.trainer.total_steps(steps)
        optimizer = OPTIMIZERS.get(config.optimizer.name)(config.optimizer, total_steps=total)
        _fuse(optimizer, config, strategy)
        model.compile(
            optimizer=with_loss_scaling(optimizer, precision),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
            # Keras's multi-step loop cannot ask a multi-worker iterator whether a batch is left: one step a call.
            steps_per_execution=(
                1
                if config.trainer.strategy == "multi_worker"
                else steps_per_execution(config.trainer.steps_per_execution, steps, total)
            ),
        )
    log.info(
        "model: %s, %d parameters; optimizer: %s lr=%g",
        config.model.name,
        model.count_params(),
        config.optimizer.name,
        config.optimizer.lr,
    )
    return model, TrainingState()


def steps_per_execution(limit: int, steps_per_epoch: int, total_steps: int | None = None) -> int:
    """The largest divisor of `steps_per_epoch` not above `limit`: executions never straddle two epochs.

    Keras runs whole executions, so with 844 steps an epoch and 16 per execution each epoch would take
    848 batches, shifting every later epoch's batches and breaking the (seed, epoch) order a resumed run
    relies on (mnist_hydra.data.pipeline.make_training_dataset). With `total_steps` (a fractional trainer.epochs),
    a divisor of the last epoch's steps as well, so that the run can stop at its last step.
    """
    last = (total_steps or steps_per_epoch) % steps_per_epoch or steps_per_epoch
    both = math.gcd(steps_per_epoch, last)
    chosen = max(d for d in range(1, min(limit, both) + 1) if both % d == 0)
    if chosen != limit:
        log.info(
            "steps per execution: %d (trainer.steps_per_execution=%d; a divisor of the %d steps an epoch%s)",
            chosen,
            limit,
            steps_per_epoch,
            f" and the {last} of the last" if last != steps_per_epoch else "",
        )
    return chosen


def _fuse(optimizer: keras.optimizers.Optimizer, config: Config, strategy: Any) -> None:
    """trainer.fused_adam: Adam's fused update kernel on one replica; a replicated run keeps Keras's step, which
    syncs mirrored state."""
    if config.trainer.fused_adam and strategy.num_replicas_in_sync == 1:
        fuse_adam_update(optimizer)
