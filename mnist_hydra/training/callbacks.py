"""The Keras callbacks of the fit loop: epoch log, per-epoch checkpoint (with the between-epoch controls),
stop after a step count, stop on request, stop on divergence.

A stop (a signal, or a loss that is no longer a number or has blown up) only asks Keras to end fit after
the current step; the epoch in progress is dropped and the last complete epoch's checkpoint is what
remains, so a resumed run continues exactly from it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import keras

from mnist_hydra.training.checkpoints import Checkpoints, TrainingState
from mnist_hydra.training.epoch_decisions import Control, KeepBest, find, learning_rate
from mnist_hydra.training.signals import StopRequest

log = logging.getLogger(__name__)


class EpochLog(keras.callbacks.Callback):  # type: ignore[misc]  # keras ships no types: its classes are Any
    """Logs each epoch's figures to the job log and keeps its wall time; an epoch a stop cut short is logged
    as dropped, without figures, since nothing of it is kept.

    `file_only`: Keras's progress bar shows the figures on the terminal, so the line goes to the log file alone
    (see `terminals_show_no_file_only`); in a pipe or a log it is the one line an epoch prints.
    """

    def __init__(self, epochs: int, stopped: Callable[[], Any] = lambda: None, file_only: bool = False) -> None:
        super().__init__()
        self.epochs, self.stopped = epochs, stopped
        self.extra = {FILE_ONLY: file_only}
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.seconds.append(time.perf_counter() - self._start)
        if self.stopped():
            log.warning(
                "epoch %d/%d dropped: training stopped before it ended, so its figures are not kept",
                epoch + 1,
                self.epochs,
            )
            return
        figures = ", ".join(f"{k} {v:.4f}" for k, v in (logs or {}).items())
        log.info("epoch %d/%d: %s (%.1f s)", epoch + 1, self.epochs, figures, self.seconds[-1], extra=self.extra)


FILE_ONLY = "mnist_hydra_file_only"  # a log record's attribute: keep it off the terminal


@contextlib.contextmanager
def terminals_show_no_file_only() -> Iterator[None]:
    """Meanwhile, the root logger's handlers that write to a terminal drop the records marked FILE_ONLY."""

    def keep(record: logging.LogRecord) -> bool:
        return not getattr(record, FILE_ONLY, False)

    handlers = [
        h
        for h in logging.getLogger().handlers
        if isinstance(h, logging.StreamHandler)
        and not isinstance(h, logging.FileHandler)
        and _isatty(getattr(h, "stream", None))
    ]
    for handler in handlers:
        handler.addFilter(keep)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(keep)


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream is not None and stream.isatty())
    except (AttributeError, ValueError, OSError):  # a closed or odd stream
        return False


class ProgressBar(keras.callbacks.ProgbarLogger):  # type: ignore[misc]  # keras ships no types: its classes are Any
    """Keras's progress bar (or line per epoch), except that an epoch a stop cut short ends in a line saying it
    was dropped, not in figures that would look like a finished epoch's."""

    def __init__(self, stopped: Callable[[], Any]) -> None:
        super().__init__()
        self.stopped = stopped

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if not self.stopped():
            super().on_epoch_end(epoch, logs)
        elif self.verbose:
            # verbose 1 leaves the bar's line open: end it first.
            print(
                f"{chr(10) if self.verbose == 1 else ''}epoch {epoch + 1}/{self.epochs} dropped: training stopped "
                "before it ended",
                flush=True,
            )


class CheckpointEachEpoch(keras.callbacks.Callback):  # type: ignore[misc]  # keras ships no types: its classes are Any
    """After each complete epoch: add its figures to the state, let the controls decide, checkpoint, then log.

    An epoch cut short by a stop request or a non-finite loss is not complete: Keras still validates
    and ends it, but nothing of it is kept. The controls (early stopping, keep=best, the plateau schedule)
    see complete epochs only, and their state goes into the checkpoint. `kept` holds the figures of the epoch
    just checkpointed, its learning rate included (None for a cut epoch): the loggers hear of an epoch from it,
    once its checkpoint is on disk, so a resumed run never logs an epoch twice.
    """

    def __init__(
        self,
        checkpoints: Checkpoints,
        state: TrainingState,
        timer: EpochLog,
        stopped: Callable[[], Any],
        controls: Sequence[Control] = (),
    ) -> None:
        super().__init__()
        self.checkpoints, self.state, self.timer, self.stopped = checkpoints, state, timer, stopped
        self.controls = list(controls)
        self.kept: dict[str, float] | None = None

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.kept = None
        if self.stopped():
            return
        figures = {key: float(value) for key, value in (logs or {}).items()}
        # The epoch's state is built aside and kept only once its checkpoint is written: if the save fails (a full
        # disk), the state stays at the last saved epoch, so the run says, and resumes from, the truth.
        done = dataclasses.replace(
            self.state,
            epoch=epoch + 1,
            history={key: list(values) for key, values in self.state.history.items()},
            epoch_seconds=[*self.state.epoch_seconds, self.timer.seconds[-1]],
        )
        for key, value in figures.items():
            done.history.setdefault(key, []).append(value)
        lr = learning_rate(self.model)  # the epoch's own, before a plateau cut
        for control in self.controls:
            control.after_epoch(done.epoch, figures, self.model)
        done.controls = {control.key: control.state() for control in self.controls}
        keep = find(self.controls, KeepBest)
        self.checkpoints.save(self.model, done, best=keep is not None and keep.improved)
        vars(self.state).update(vars(done))
        self.kept = {**figures, "learning_rate": lr}


class StopAfterSteps(keras.callbacks.Callback):  # type: ignore[misc]  # keras ships no types: its classes are Any
    """Ends fit() once the run has taken `total` steps (counted over the run, from 1): a fractional
    trainer.epochs cuts its last epoch short, which is then validated and kept like any other."""

    def __init__(self, steps_per_epoch: int, total: int) -> None:
        super().__init__()
        self.steps_per_epoch, self.total = steps_per_epoch, total
        self._epoch = 0

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._epoch = epoch

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        # Keras reports once per call of steps_per_execution steps, with `batch` the call's last step.
        if self._epoch * self.steps_per_epoch + batch + 1 >= self.total:
            self.model.stop_training = True


class StopOnRequest(keras.callbacks.Callback):  # type: ignore[misc]  # keras ships no types: its classes are Any
    """Ends fit() after the step in which a stop was asked for."""

    def __init__(self, request: StopRequest) -> None:
        super().__init__()
        self.request = request

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if self.request.signum is not None:
            self.model.stop_training = True


class StopOnDivergence(keras.callbacks.Callback):  # type: ignore[misc]  # keras ships no types: its classes are Any
    """Ends fit() at the first step whose running loss is NaN, infinite or above `limit`, and says where.

    Keras computes the cross-entropy of a softmax output from its logits, unclipped, so a run that blows
    up (optimizer.lr=1e6) can show a finite loss of 1e20 and never reach NaN: hence the limit as well.
    """

    def __init__(self, limit: float) -> None:
        super().__init__()
        self.limit = limit
        self.where: str | None = None
        self._epoch = 0

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._epoch = epoch

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        loss = (logs or {}).get("loss")
        if loss is None or self.where is not None:
            return
        loss = float(loss)
        if not math.isfinite(loss) or loss > self.limit:
            self.where = f"epoch {self._epoch + 1}, step {batch + 1}: loss {loss:.3g}"
            self.model.stop_training = True
