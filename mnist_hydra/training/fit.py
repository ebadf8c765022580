"""The fit: model.fit from where training stands to the last epoch, with the callbacks that checkpoint, log and stop it."""

from __future__ import annotations

import logging
import math
import signal
import sys
from pathlib import Path

import keras

from mnist_hydra.config import Config
from mnist_hydra.data.pipeline import make_dataset, make_training_dataset
from mnist_hydra.data.splits import Splits
from mnist_hydra.tracking.fanout import Loggers
from mnist_hydra.training.callbacks import (
    CheckpointEachEpoch,
    EpochLog,
    ProgressBar,
    StopAfterSteps,
    StopOnDivergence,
    StopOnRequest,
    terminals_show_no_file_only,
)
from mnist_hydra.training.checkpoints import Checkpoints, TrainingState
from mnist_hydra.training.epoch_decisions import Control
from mnist_hydra.training.signals import stop_on_signals
from mnist_hydra.training.stop_reasons import explain_stop

log = logging.getLogger(__name__)

DIVERGENCE_FACTOR = 100  # a loss this many times a uniform guess's ends training as diverged


def fit(
    config: Config,
    model: keras.Model,
    splits: Splits,
    checkpoints: Checkpoints,
    state: TrainingState,
    workdir: Path | None,
    controls: list[Control],
    loggers: Loggers,
) -> None:
    """Train from `state.epoch` to the last epoch (or an early stop), checkpointing each; then say why it stopped
    (mnist_hydra.training.stop_reasons), raising for a divergence or a signal. `workdir` (chief only) gets
    a failure record."""
    epochs, batch = config.trainer.whole_epochs, config.trainer.batch_size
    if state.epoch >= epochs or any(getattr(c, "stopped_epoch", None) is not None for c in controls):
        return  # stopped (or pruned) after the last epoch's checkpoint, before its artifacts were written
    # A uniform guess scores ln(classes) (2.3 for ten); a hundred times that is a run that has blown up.
    diverged = StopOnDivergence(limit=DIVERGENCE_FACTOR * math.log(len(splits.class_names)))
    steps = math.ceil(len(splits.y_train) / batch)
    verbose = verbosity(config.trainer.verbose)
    with stop_on_signals() as request, terminals_show_no_file_only():
        stopped = lambda: request.signum or diverged.where  # noqa: E731
        timer = EpochLog(epochs, stopped, file_only=verbose == 1)
        saver = CheckpointEachEpoch(checkpoints, state, timer, stopped=stopped, controls=controls)
        # The loggers after the saver: they hear of an epoch once its checkpoint is written.
        callbacks = [
            timer,
            diverged,
            StopOnRequest(request),
            saver,
            loggers.callback(lambda: saver.kept),
            ProgressBar(stopped),
        ]
        total = config.trainer.total_steps(steps)
        if total < epochs * steps:  # a fractional trainer.epochs: the last epoch ends at the run's last step
            callbacks.insert(0, StopAfterSteps(steps, total))
        try:
            model.fit(
                make_training_dataset(splits.x_train, splits.y_train, batch, config.seed, state.epoch, epochs),
                steps_per_epoch=steps,
                validation_data=make_dataset(splits.x_val, splits.y_val, config.trainer.eval_batch_size or batch),
                initial_epoch=state.epoch,
                epochs=epochs,
                verbose=verbose,
                callbacks=callbacks,
                shuffle=False,  # the dataset orders each epoch itself, from the seed
            )
        except KeyboardInterrupt:
            # A second Ctrl-C: no clean point to stop at, but the last complete epoch's checkpoint stands.
            request.signum = signal.SIGINT
            log.warning("stopped at once by a second Ctrl-C; the checkpoint of epoch %d is kept", state.epoch)
    explain_stop(config, controls, state, workdir, diverged_at=diverged.where, signum=request.signum)


def verbosity(verbose: int | None) -> int:
    """Keras's verbose: as set, or (null) a progress bar on a terminal, and nothing of Keras's elsewhere: in a log
    file, a pipe or CI the epoch's log line (EpochLog) is then the one line it prints, with no bar redraws."""
    if verbose is not None:
        return verbose
    return 1 if sys.stdout.isatty() else 0
