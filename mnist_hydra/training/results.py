"""A run's results in its directory: model.keras, history.csv, the plots, report.html and metrics.json (last), and
the record of a run that stopped without them."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keras
import numpy as np

from mnist_hydra.data.splits import Splits
from mnist_hydra.errors import OutputError
from mnist_hydra.runs import artifacts, html_report, plots
from mnist_hydra.training.checkpoints import TrainingState


def record_stop(workdir: Path | None, record: dict[str, Any]) -> None:
    """metrics.json of a run that stopped without its results (failed, interrupted); nothing off the chief."""
    if workdir is not None:
        artifacts.write_json(workdir / "metrics.json", record)


@contextlib.contextmanager
def resumable_if_unwritable(workdir: Path | None, state: TrainingState) -> Iterator[None]:
    """A run file that cannot be written (a full disk, mid-run): the checkpoint of the last complete epoch
    stands, so the one-line error says so and how to go on, and metrics.json records it if it still fits."""
    try:
        yield
    except OutputError as err:
        if workdir is None:
            raise
        where = f"the checkpoint of epoch {state.epoch} is kept" if state.epoch else "no epoch was complete"
        message = f"{err}; {where}: make room, then continue with resume={workdir}"
        with contextlib.suppress(OutputError):
            record_stop(workdir, {"status": "failed", "error": message, "epochs_run": state.epoch})
        raise OutputError(message) from err


def write_results(
    workdir: Path, model: keras.Model, metrics: dict[str, Any], splits: Splits, probabilities: np.ndarray
) -> None:
    """metrics.json, history.csv, model.keras, the three plots and report.html."""
    artifacts.discard_temp_files(workdir)  # a writer killed here before: this run holds the directory's lock
    artifacts.atomic_write(workdir / "model.keras", model.save)
    artifacts.write_history_csv(workdir / "history.csv", {**metrics["history"], "seconds": metrics["epoch_seconds"]})
    plots.plot_training_curves(metrics["history"], workdir / "training_curves.png")
    plots.plot_test_results(
        workdir,
        np.asarray(metrics["confusion_matrix"]),
        splits.x_test,
        splits.y_test,
        probabilities,
        splits.class_names,
    )
    html_report.write_run_report(workdir, metrics)
    # Last: a complete metrics.json marks a complete run directory.
    artifacts.write_json(workdir / "metrics.json", metrics)
