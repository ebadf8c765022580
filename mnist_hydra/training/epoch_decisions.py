"""Decisions between epochs: stop early, stop at a target, remember the best epoch, cut the learning rate on a plateau.

Not Keras's EarlyStopping, ModelCheckpoint(save_best_only) or ReduceLROnPlateau: their state is in no checkpoint
(on_train_begin resets it), so a resumed run would diverge from an unbroken one. Each control's `state()` goes into
every complete epoch's checkpoint instead.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import keras


class Watch:
    """The best value so far of one per-epoch figure, the epoch it came from, and the epochs since."""

    def __init__(self, monitor: str, direction: str, min_delta: float = 0.0) -> None:
        self.monitor, self.direction, self.min_delta = monitor, direction, min_delta
        self.best: float | None = None
        self.best_epoch = 0
        self.wait = 0  # complete epochs since the last improvement

    def update(self, epoch: int, logs: Mapping[str, float]) -> bool:
        """Take epoch `epoch`'s figures (epochs count from 1); True when the figure improved by more than min_delta."""
        value = float(logs[self.monitor])
        sign = 1.0 if self.direction == "max" else -1.0
        if math.isfinite(value) and (self.best is None or sign * (value - self.best) > self.min_delta):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            return True
        self.wait += 1
        return False

    def state(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait}

    def restore(self, state: Mapping[str, Any]) -> None:
        self.best, self.best_epoch, self.wait = state["best"], int(state["best_epoch"]), int(state["wait"])


class Control:
    """One decision taken after each complete epoch, with the state a checkpoint keeps."""

    key = "control"

    def __init__(self, watch: Watch) -> None:
        self.watch = watch

    def after_epoch(self, epoch: int, logs: Mapping[str, float], model: keras.Model) -> None:
        self.watch.update(epoch, logs)

    def state(self) -> dict[str, Any]:
        return {"watch": self.watch.state()}

    def restore(self, state: Mapping[str, Any]) -> None:
        self.watch.restore(state["watch"])


class Stopping(Control):
    """A control that may end training: the epoch it did so is part of its state."""

    def __init__(self, watch: Watch) -> None:
        super().__init__(watch)
        self.stopped_epoch: int | None = None

    def stop(self, epoch: int, model: keras.Model) -> None:
        self.stopped_epoch = epoch
        model.stop_training = True

    def state(self) -> dict[str, Any]:
        return {**super().state(), "stopped_epoch": self.stopped_epoch}

    def restore(self, state: Mapping[str, Any]) -> None:
        super().restore(state)
        self.stopped_epoch = state.get("stopped_epoch")


class EarlyStopping(Stopping):
    """Ends training once the monitored figure has not improved for `patience` epochs in a row (as Keras counts)."""

    key = "early_stopping"

    def __init__(self, monitor: str, direction: str, patience: int, min_delta: float) -> None:
        super().__init__(Watch(monitor, direction, min_delta))
        self.patience = patience

    def after_epoch(self, epoch: int, logs: Mapping[str, float], model: keras.Model) -> None:
        if not self.watch.update(epoch, logs) and self.watch.wait >= self.patience:
            self.stop(epoch, model)


class StopAtTarget(Stopping):
    """Ends training after the first epoch whose validation figure reaches `target` (trainer.stop_at).

    `direction` max: the figure at or above the target (an accuracy); min: at or below it (a loss).
    """

    key = "stop_at"

    def __init__(self, monitor: str, direction: str, target: float) -> None:
        super().__init__(Watch(monitor, direction))
        self.target = target

    def after_epoch(self, epoch: int, logs: Mapping[str, float], model: keras.Model) -> None:
        self.watch.update(epoch, logs)
        value = float(logs[self.watch.monitor])
        reached = value >= self.target if self.watch.direction == "max" else value <= self.target
        if reached and self.stopped_epoch is None:
            self.stop(epoch, model)  # the epoch that reached the target


class KeepBest(Control):
    """Remembers the best epoch by the monitored figure (ties: the earlier); `improved` says the last one was it."""

    key = "keep_best"

    def __init__(self, monitor: str, direction: str) -> None:
        super().__init__(Watch(monitor, direction))
        self.improved = False

    def after_epoch(self, epoch: int, logs: Mapping[str, float], model: keras.Model) -> None:
        self.improved = self.watch.update(epoch, logs)

    @property
    def best_epoch(self) -> int:
        return self.watch.best_epoch


class ReduceOnPlateau(Control):
    """Multiplies the learning rate by `factor` (not below `min_lr`) after `patience` epochs without a better val_loss.

    Keras's ReduceLROnPlateau rule with no cooldown; the lr itself lives in the optimizer, which every
    checkpoint saves, so only the counter and the best value are kept here.
    """

    key = "plateau"

    def __init__(self, factor: float, patience: int, min_lr: float, min_delta: float) -> None:
        super().__init__(Watch("val_loss", "min", min_delta))
        self.factor, self.patience, self.min_lr = factor, patience, min_lr
        self.cuts: list[int] = []  # the epochs after which the lr was cut

    def after_epoch(self, epoch: int, logs: Mapping[str, float], model: keras.Model) -> None:
        if self.watch.update(epoch, logs) or self.watch.wait < self.patience:
            return
        old = learning_rate(model)
        if old > self.min_lr:
            model.optimizer.learning_rate = max(old * self.factor, self.min_lr)  # assigns the optimizer's variable
            self.cuts.append(epoch)
            self.watch.wait = 0

    def state(self) -> dict[str, Any]:
        return {**super().state(), "cuts": self.cuts}

    def restore(self, state: Mapping[str, Any]) -> None:
        super().restore(state)
        self.cuts = list(state.get("cuts", []))


def learning_rate(model: keras.Model) -> float:
    """The optimizer's learning rate now (a schedule's value at the current step)."""
    import keras

    return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))


def make_controls(trainer: Any, optimizer: Any) -> list[Control]:
    """The controls a config asks for: early stopping, stop_at, keep=best, the plateau schedule (in that order)."""
    controls: list[Control] = []
    stopping = trainer.stopping
    if stopping is not None:
        controls.append(EarlyStopping(stopping.monitor, stopping.direction, stopping.patience, stopping.min_delta))
    if trainer.target is not None:
        controls.append(StopAtTarget(*trainer.target))
    if trainer.keep == "best":
        controls.append(KeepBest(*trainer.best_monitor))
    if optimizer.schedule == "plateau":
        controls.append(
            ReduceOnPlateau(
                optimizer.plateau_factor, optimizer.plateau_patience, optimizer.min_lr, optimizer.plateau_min_delta
            )
        )
    return controls


def find(controls: list[Control], kind: type) -> Any:
    """The control of class `kind` in `controls`, or None."""
    return next((c for c in controls if isinstance(c, kind)), None)
