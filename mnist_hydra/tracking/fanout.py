"""Every chosen logger behind one object: a logger that fails says so in one warning line and is dropped.

During fit() the loggers' own Keras callbacks run behind `LoggerCallbacks`, which numbers epochs and
steps over the run and lets an epoch through only once its checkpoint is written.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import keras

from mnist_hydra.tracking.base import Logger, RunInfo
from mnist_hydra.tracking.loggers import LOGGERS

log = logging.getLogger(__name__)


class Loggers:
    """Calls each logger in turn; the run goes on whatever they do (a store locked, a server down, a disk full)."""

    def __init__(self, loggers: Mapping[str, Logger]) -> None:
        self.active = dict(loggers)

    def __bool__(self) -> bool:
        return bool(self.active)

    def start(self, info: RunInfo, params: Mapping[str, Any], tags: Mapping[str, str]) -> None:
        for name, logger in list(self.active.items()):
            self.call(name, logger.start, info, params, tags)

    def callback(self, kept: Callable[[], Mapping[str, float] | None]) -> LoggerCallbacks:
        """The loggers' Keras callbacks as one, for fit(); `kept()` gives the figures of the epoch just
        checkpointed (None for one a stop cut short)."""
        return LoggerCallbacks(self, kept)

    def end(self, status: str, metrics: Mapping[str, Any] | None = None) -> None:
        for name, logger in list(self.active.items()):
            self.call(name, logger.end, status, metrics)

    def call(self, name: str, method: Callable[..., Any], *args: Any) -> Any:
        """`method(*args)` of logger `name`; if it raises, one warning line and the logger is dropped."""
        try:
            return method(*args)
        except Exception as err:  # a tracker's trouble of any kind must not cost the run
            logger = self.active.pop(name, None)
            log.warning(
                "%s logger stopped: %s; training and the run directory go on without it",
                name,
                (logger or Logger).explain(err),
            )
            return None


class LoggerCallbacks(keras.callbacks.Callback):  # type: ignore[misc]  # keras ships no types: its classes are Any
    """The active loggers' callbacks in fit(), told epochs and steps over the run from 1, complete epochs only.

    Keras numbers epochs from 0 and steps within each epoch; a logger's files, MLflow steps and TensorBoard
    charts number them as the run does, so a resumed run continues its lines instead of restarting them.
    An epoch a stop cut short gets no on_epoch_end; a logger that keeps its steps until the epoch ends
    drops them at the next on_epoch_begin or at its end().
    """

    def __init__(self, loggers: Loggers, kept: Callable[[], Mapping[str, float] | None]) -> None:
        super().__init__()
        self.loggers, self.kept = loggers, kept
        built = {name: loggers.call(name, logger.callback) for name, logger in list(loggers.active.items())}
        self.callbacks = {name: callback for name, callback in built.items() if callback is not None}
        self._first_step = 0

    def set_model(self, model: Any) -> None:
        super().set_model(model)
        self._each("set_model", model)

    def set_params(self, params: dict[str, Any]) -> None:
        super().set_params(params)
        self._each("set_params", params)

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._each("on_train_begin", logs)

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._first_step = epoch * self._steps
        self._each("on_epoch_begin", epoch + 1, logs)

    def on_train_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self._each("on_train_batch_begin", self._step(batch), logs)

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self._each("on_train_batch_end", self._step(batch), logs)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        figures = self.kept()
        if figures is not None:
            self._each("on_epoch_end", epoch + 1, dict(figures))

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        self._each("on_train_end", logs)

    def _step(self, batch: int) -> int:
        # Keras calls the batch hooks once per trainer.steps_per_execution steps: begin with the call's first
        # step, end with its last (the epoch's last call may be shorter).
        return self._first_step + min(batch + 1, self._steps or batch + 1)

    @property
    def _steps(self) -> int:
        return int((self.params or {}).get("steps") or 0)  # per epoch

    def _each(self, hook: str, *args: Any) -> None:
        for name, callback in self.callbacks.items():
            if name in self.loggers.active:  # not one dropped after a failure
                self.loggers.call(name, getattr(callback, hook), *args)


def open_loggers(configs: Mapping[str, Any]) -> Loggers:
    """The loggers chosen in the config's `logger` group (name -> typed config), in name order."""
    return Loggers({name: LOGGERS.get(name)(configs[name]) for name in sorted(configs)})
