"""A sweep in the trackers: MLflow's parent run, opened once in the sweep's own process before any job starts.

Opening it there, not in the jobs, means parallel jobs (hydra/launcher=joblib) never race to create the
SQLite store or the experiment (mlflow #4123); each job finds the parent's id in SWEEP_DIR/tracking.json
and files its own run as a child. TensorBoard needs nothing at the sweep level: `tensorboard --logdir
SWEEP_DIR` finds every job's event files.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence


from mnist_hydra.tracking.base import RECORD

log = logging.getLogger(__name__)


def open_sweep(loggers: Mapping[str, Any], sweep_dir: Path, launch_dir: Path, app: str, overrides: Sequence[str],
               git_commit: Optional[str]) -> None:
    """Open the sweep's parent run in each tracker that has one (MLflow); a failure is one warning line."""
    if "mlflow" not in loggers:
        return
    from mnist_hydra.tracking.mlflow_logger import explain, open_sweep_run

    try:
        open_sweep_run(loggers["mlflow"], sweep_dir, launch_dir, app, list(overrides), git_commit)
    except Exception as err:  # the jobs will try on their own; the sweep goes on
        log.warning("mlflow logger: no sweep run: %s; the jobs are logged without a parent", explain(err))


def close_sweep(sweep_dir: Path, statuses: Sequence[str], best_val_accuracy: Optional[float]) -> None:
    """End the sweep's parent run with the job counts, the best validation accuracy and the sweep's files."""
    if not (Path(sweep_dir) / RECORD).is_file():
        return
    from mnist_hydra.tracking.mlflow_logger import close_sweep_run, explain

    completed = sum(status == "completed" for status in statuses)
    pruned = sum(status == "pruned" for status in statuses)
    metrics = {"jobs": len(statuses), "jobs_completed": completed, "jobs_failed": len(statuses) - completed - pruned}
    if pruned:  # a search's trials that its pruner stopped: neither completed nor failed
        metrics["jobs_pruned"] = pruned
    if best_val_accuracy is not None:
        metrics["best_val_accuracy"] = best_val_accuracy
    try:
        close_sweep_run(sweep_dir, "completed" if completed else "failed", metrics)
    except Exception as err:
        log.warning("mlflow logger: the sweep run was not closed: %s", explain(err))


def interrupt_sweep(sweep_dir: Path) -> None:
    """Mark the sweep's parent run KILLED: the user stopped the sweep (resume=SWEEP_DIR reopens it)."""
    if not (Path(sweep_dir) / RECORD).is_file():
        return
    from mnist_hydra.tracking.mlflow_logger import close_sweep_run, explain

    try:
        close_sweep_run(sweep_dir, "interrupted", {})
    except Exception as err:
        log.warning("mlflow logger: the sweep run was not marked killed: %s", explain(err))
