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

        sweep_dir = Path(config.hydra.sweep.dir)
        try:
            summary = summarize_sweep(sweep_dir)
        except FileNotFoundError as err:  # e.g. every job was killed before Hydra wrote its directory
            log.error("no sweep summary: %s", err)
            return
        write_sweep_report(sweep_dir, summary)
        print(report(summary, sweep_dir))
