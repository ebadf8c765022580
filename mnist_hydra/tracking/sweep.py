"""A sweep in the trackers: what a logger keeps for a whole sweep (MLflow's parent run), opened once in the sweep's
own process before any job starts, and closed after the sweep summary.

Opening it there, not in the jobs, means parallel jobs (hydra/launcher=joblib) never race to create a
store (mlflow #4123). Each logger says through `Logger.open_sweep` and `Logger.close_sweep` whether it
keeps anything at the sweep level (TensorBoard needs nothing: `tensorboard --logdir SWEEP_DIR` finds every
job's event files); what one opened is recorded under its name in SWEEP_DIR/tracking.json, which is how
the end of the sweep finds it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mnist_hydra.tracking.base import RunInfo, read_record
from mnist_hydra.tracking.loggers import LOGGERS

log = logging.getLogger(__name__)


def open_sweep(
    loggers: Mapping[str, Any],
    sweep_dir: Path,
    launch_dir: Path,
    app: str,
    overrides: Sequence[str],
    git_commit: str | None,
) -> None:
    """Open the sweep in each chosen logger (name -> typed config) that keeps one; a failure is one warning line."""
    sweep = RunInfo(
        run_dir=Path(sweep_dir), launch_dir=Path(launch_dir), app=app, overrides=list(overrides), git_commit=git_commit
    )
    for name in sorted(loggers):
        logger = LOGGERS.get(name)
        try:
            logger.open_sweep(loggers[name], sweep)
        except Exception as err:  # the jobs will try on their own; the sweep goes on
            log.warning("%s logger: no sweep run: %s; the jobs are logged without a parent", name, logger.explain(err))


def close_sweep(sweep_dir: Path, statuses: Sequence[str], best_val_accuracy: float | None) -> None:
    """End the sweep in each logger that opened it, with the job counts and the best validation accuracy."""
    completed = sum(status == "completed" for status in statuses)
    pruned = sum(status == "pruned" for status in statuses)
    metrics: dict[str, float] = {
        "jobs": len(statuses),
        "jobs_completed": completed,
        "jobs_failed": len(statuses) - completed - pruned,
    }
    if pruned:  # a search's trials that its pruner stopped: neither completed nor failed
        metrics["jobs_pruned"] = pruned
    if best_val_accuracy is not None:
        metrics["best_val_accuracy"] = best_val_accuracy
    _close(sweep_dir, "completed" if completed else "failed", metrics, "was not closed")


def interrupt_sweep(sweep_dir: Path) -> None:
    """End the sweep as interrupted: the user stopped it (resume=SWEEP_DIR reopens it)."""
    _close(sweep_dir, "interrupted", {}, "was not marked killed")


def _close(sweep_dir: Path, status: str, metrics: Mapping[str, float], failed: str) -> None:
    for name in read_record(sweep_dir):
        if name not in LOGGERS:
            continue  # a record of a logger that is not installed now: nothing here can close it
        logger = LOGGERS.get(name)
        try:
            logger.close_sweep(Path(sweep_dir), status, metrics)
        except Exception as err:
            log.warning("%s logger: the sweep run %s: %s", name, failed, logger.explain(err))
