"""Pruning: after each complete epoch, tell the search's trial the validation figure and stop if its pruner says so.

The trial is anything with Optuna's Trial methods (report, should_prune, set_user_attr): the library takes it
as a plain object and knows no sweeper.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from mnist_hydra.training.epoch_decisions import Stopping, Watch

if TYPE_CHECKING:
    import keras

log = logging.getLogger(__name__)

PRUNED_AT = "pruned_at_epoch"  # the trial's user attribute that tells the sweeper (mnist_hydra.search.trials)


class PruneTrial(Stopping):
    """Reports `monitor` to `trial` after each complete epoch (as step = epoch); ends training when it is pruned."""

    key = "prune"

    def __init__(self, trial: Any, monitor: str = "val_accuracy") -> None:
        super().__init__(Watch(monitor, "max"))
        self.trial = trial

    def after_epoch(self, epoch: int, logs: Mapping[str, float], model: keras.Model) -> None:
        super().after_epoch(epoch, logs, model)
        self.trial.report(float(logs[self.watch.monitor]), step=epoch)
        if self.trial.should_prune():
            self.trial.set_user_attr(PRUNED_AT, epoch)
            self.stop(epoch, model)
            log.info(
                "trial %s pruned after epoch %d: %s %.4f is behind the other trials at this epoch",
                getattr(self.trial, "number", "?"),
                epoch,
                self.watch.monitor,
                float(logs[self.watch.monitor]),
            )
