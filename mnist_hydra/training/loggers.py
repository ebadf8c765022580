"""The experiment trackers of config.logger over one training run: started before it, ended with how it ended."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from mnist_hydra.config import Config
from mnist_hydra.tracking.base import RunInfo, run_params, run_tags
from mnist_hydra.tracking.fanout import Loggers, open_loggers


@dataclass
class TrackedRun:
    """The loggers of a run in progress; the body sets `metrics` once the run has them."""

    loggers: Loggers
    metrics: dict[str, Any] = field(default_factory=dict)


@contextlib.contextmanager
def tracked_run(config: Config, info: RunInfo, chief: bool) -> Iterator[TrackedRun]:
    """The loggers of `config.logger` (the chief's only, as only it writes the run directory), started with the
    run's info, params and tags; they end the run as interrupted (SIGINT, SIGTERM), failed (any other
    exception) or with the status of the metrics the body set (completed, or pruned)."""
    loggers = open_loggers(config.logger) if chief else Loggers({})
    loggers.start(info, run_params(config), run_tags(info))
    run = TrackedRun(loggers)
    try:
        yield run
    except KeyboardInterrupt:  # Interrupted included: SIGINT or SIGTERM
        loggers.end("interrupted")
        raise
    except BaseException:
        loggers.end("failed")
        raise
    loggers.end(run.metrics["status"], run.metrics)
