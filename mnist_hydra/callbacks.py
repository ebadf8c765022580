"""Hydra callbacks of mnist_hydra (named in conf/config.yaml under hydra.callbacks)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger(__name__)


class SummarizeSweep(Callback):
    """At the end of a multirun: the sweep table, plot, report.html and best run, from every job's files."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from mnist_hydra.report import write_sweep_report
        from mnist_hydra.sweep import report, summarize_sweep

        from mnist_hydra.tracking.sweep import close_sweep

        sweep_dir = Path(config.hydra.sweep.dir)
        try:
            summary = summarize_sweep(sweep_dir)
        except FileNotFoundError as err:  # e.g. every job was killed before Hydra wrote its directory
            log.error("no sweep summary: %s", err)
            close_sweep(sweep_dir, [], None)
            return
        write_sweep_report(sweep_dir, summary)
        print(report(summary, sweep_dir))
        best = summary.best
        close_sweep(sweep_dir, summary.table["status"].tolist(), None if best is None else float(best["val_accuracy"]))


class TrackSweep(Callback):
    """Before a multirun's first job: the sweep's parent run in MLflow (when logger has mlflow), made once here."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from mnist_hydra.config import validate_loggers

        loggers = validate_loggers(config.get("logger"))  # a bad setting stops the sweep before any job
        if not loggers:
            return
        from mnist_hydra.provenance import PROJECT_DIR, git_state
        from mnist_hydra.tracking.sweep import open_sweep

        commit = (git_state(PROJECT_DIR) or {}).get("commit")
        open_sweep(loggers, Path(config.hydra.sweep.dir), Path.cwd(), config.hydra.help.app_name,
                   list(config.hydra.overrides.task), commit)
