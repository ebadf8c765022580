"""Why a fit stopped before its last epoch: early stopping and a reached target are logged; a divergence or a
signal is recorded in metrics.json and raised (TrainingDiverged, Interrupted)."""

from __future__ import annotations

import logging
from pathlib import Path

from mnist_hydra.config import Config
from mnist_hydra.errors import Interrupted, TrainingDiverged
from mnist_hydra.training.checkpoints import TrainingState
from mnist_hydra.training.epoch_decisions import Control, EarlyStopping, StopAtTarget, find
from mnist_hydra.training.results import record_stop

log = logging.getLogger(__name__)


def explain_stop(
    config: Config,
    controls: list[Control],
    state: TrainingState,
    workdir: Path | None,
    diverged_at: str | None,
    signum: int | None,
) -> None:
    """Log an early stop or a reached target; for a divergence (`diverged_at`: where) or a signal (`signum`),
    write the failure record to `workdir` (the chief's; None elsewhere) and raise."""
    epochs = config.trainer.whole_epochs
    stopping = find(controls, EarlyStopping)
    if stopping is not None and stopping.stopped_epoch is not None:
        log.info(
            "early stopping after epoch %d: %s has not improved on %.4f (epoch %d) for %d epoch(s)",
            stopping.stopped_epoch,
            stopping.watch.monitor,
            stopping.watch.best,
            stopping.watch.best_epoch,
            stopping.watch.wait,
        )
    target = find(controls, StopAtTarget)
    if target is not None and target.stopped_epoch is not None:
        log.info(
            "stopped at target after epoch %d: %s %.4f reached trainer.stop_at=%s",
            target.stopped_epoch,
            target.watch.monitor,
            state.history[target.watch.monitor][target.stopped_epoch - 1],
            config.trainer.stop_at,
        )
    if diverged_at:
        error = (
            f"training diverged at {diverged_at}; try a lower optimizer.lr "
            f"(this run: optimizer.lr={config.optimizer.lr:g})"
        )
        record_stop(workdir, {"status": "failed", "error": error, "epochs_run": state.epoch})
        raise TrainingDiverged(error)
    if signum is not None:
        stop = Interrupted(signum, state.epoch, epochs)
        record_stop(
            workdir,
            {
                "status": "interrupted",
                "signal": stop.signal_name,
                "epochs_run": state.epoch,
                "epochs": epochs,
                "history": state.history,
            },
        )
        raise stop
