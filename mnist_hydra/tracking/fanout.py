"""Every chosen logger behind one object: a logger that fails says so in one warning line and is dropped."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mnist_hydra.tracking.base import Logger, RunInfo
from mnist_hydra.tracking.catalog import LOGGERS

log = logging.getLogger(__name__)


class Loggers:
    """Calls each logger in turn; the run goes on whatever they do (a store locked, a server down, a disk full)."""

    def __init__(self, loggers: list[Logger]) -> None:
        self.active = list(loggers)

    def __bool__(self) -> bool:
        return bool(self.active)

    def start(self, info: RunInfo, params: Mapping[str, Any], tags: Mapping[str, str]) -> None:
        self._each("start", info, params, tags)

    def log_step(self, step: int, metrics: Mapping[str, float]) -> None:
        self._each("log_step", step, metrics)

    def discard_steps(self) -> None:
        self._each("discard_steps")

    def log_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        self._each("log_epoch", epoch, metrics)

    def log_test(self, metrics: Mapping[str, Any]) -> None:
        self._each("log_test", metrics)

    def log_artifacts(self, run_dir: Path) -> None:
        self._each("log_artifacts", run_dir)

    def end(self, status: str) -> None:
        self._each("end", status)

    def _each(self, method: str, *args: Any) -> None:
        for logger in list(self.active):
            try:
                getattr(logger, method)(*args)
            except Exception as err:  # a tracker's trouble of any kind must not cost the run
                self.active.remove(logger)
                log.warning(
                    "%s logger stopped: %s; training and the run directory go on without it",
                    logger.name,
                    logger.explain(err),
                )


def open_loggers(configs: Mapping[str, Any]) -> Loggers:
    """The loggers chosen in the config's `logger` group (name -> typed config), in name order."""
    return Loggers([LOGGERS.get(name)(configs[name]) for name in sorted(configs)])
