"""What every experiment logger does, the facts about a run it is told, and the LOGGERS registry.

A logger mirrors a run into a tracker (TensorBoard, MLflow, a CSV file). It is one module of
mnist_hydra/tracking/loggers/ (every module there is imported, so it registers itself) plus its YAML
option conf/logger/NAME.yaml. The run directory stays the record: it is written whatever the loggers
do, and `mnist_hydra.tracking.fanout.Loggers` turns a logger's failure into one warning line.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mnist_hydra.registry import Registry

if TYPE_CHECKING:
    import keras

# Where a logger keeps what it needs to continue a resumed run or sweep (e.g. the MLflow run id), in the run
# or sweep directory, under the logger's registered name.
RECORD = "tracking.json"
WARNING_LIMIT = 300  # characters of a tracker's error kept in the warning line


@dataclass
class RunInfo:
    """Facts about a run that are not in its config: where it is, how it was launched, what it resumes.

    For a sweep (`Logger.open_sweep`) the same facts describe the sweep: `run_dir` is the sweep directory.
    """

    run_dir: Path  # the run directory; the loggers' own files go in it too
    launch_dir: Path = field(default_factory=Path.cwd)  # where the command was typed: the default MLflow store
    app: str = "mnist_hydra"  # the app's name: the default MLflow experiment
    overrides: list[str] = field(default_factory=list)  # the command line's overrides, as typed
    git_commit: str | None = None  # the project's commit, when it runs from a git checkout
    job: str | None = None  # the job's number in a sweep; None for a single run
    sweep_dir: Path | None = None  # the sweep directory, for a job of a sweep
    resumed: bool = False  # True when this start continues a stopped run

    @property
    def name(self) -> str:
        """A short name for the run: `job N` in a sweep, else the run directory's name."""
        return f"job {self.job}" if self.job is not None else Path(self.run_dir).name


class Logger(abc.ABC):
    """One tracker's view of a run: opened before training, a Keras callback during fit(), closed after.

    Register the class with its config's schema: `@LOGGERS.register("NAME", schema=NameConfig)`; it is built as
    `cls(config)`. Any method may raise: `Loggers` reports the failure in one line and drops the logger.
    """

    def __init__(self, config: Any) -> None:
        self.config = config

    @abc.abstractmethod
    def start(self, info: RunInfo, params: Mapping[str, Any], tags: Mapping[str, str]) -> None:
        """Open (or, for a resumed run, reopen) the run; `params` is the flattened config."""

    @abc.abstractmethod
    def callback(self) -> keras.callbacks.Callback:
        """The Keras callback that records training, given the run's epochs and steps as `Loggers` numbers them.

        It hears of complete epochs only, once each is checkpointed, numbered over the run from 1 (as
        history.csv numbers them), with the epoch's own `learning_rate` in `logs`; `on_train_batch_end` gets
        the step over the run, from 1. An epoch a stop cut short begins but never ends: a resumed run trains
        it again. Import Keras inside this method, so the registry stays free of TensorFlow.
        """

    @abc.abstractmethod
    def end(self, status: str, metrics: Mapping[str, Any] | None) -> None:
        """Close the run as `status`: completed, pruned (a search stopped it), failed or interrupted.

        `metrics` is the run's final metrics.json (test scores, kept epoch, best validation score) once the
        run directory is complete, with its plots, report and model; None when the run failed or was stopped.
        """

    @classmethod
    def explain(cls, err: BaseException) -> str:
        """What went wrong, in a few words for the one warning line."""
        return short_error(err)

    @classmethod  # noqa: B027 (optional, as most trackers keep nothing per sweep)
    def open_sweep(cls, config: Any, sweep: RunInfo) -> None:
        """Open what the tracker keeps for a whole sweep, in the sweep's own process before any job starts.

        What it opens it records in SWEEP_DIR/tracking.json under its name (`write_record`): that is how the
        sweep's end finds it and calls `close_sweep`, and how the jobs find it.
        """

    @classmethod  # noqa: B027 (optional, with open_sweep)
    def close_sweep(cls, sweep_dir: Path, status: str, metrics: Mapping[str, float]) -> None:
        """End what `open_sweep` opened as `status`, with the sweep's figures (job counts, best score)."""


LOGGERS: Registry[type[Logger]] = Registry("logger")


def short_error(err: BaseException) -> str:
    """An exception as one short line: its type and its text, cut short."""
    text = " ".join(str(err).split())
    if len(text) > WARNING_LIMIT:
        text = text[:WARNING_LIMIT] + "..."
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def flatten(config: Any, prefix: str = "") -> dict[str, Any]:
    """A config (dataclasses, dicts) as one level of dotted keys: {"optimizer.lr": 0.001, ...}."""
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        config = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
    if not isinstance(config, Mapping):
        return {prefix.rstrip("."): config}
    flat: dict[str, Any] = {}
    for key, value in config.items():
        # An empty group (no logger chosen) stays a key, so every run of a sweep has the same columns.
        flat.update(flatten(value, f"{prefix}{key}.") or {f"{prefix}{key}": None})
    return flat


def plain_value(value: Any) -> bool | int | float | str:
    """A config value as a tracker takes it: numbers, booleans and strings stay, the rest becomes text."""
    if value is None:
        return "null"
    if isinstance(value, (bool, int, float, str)):
        return value
    return str(list(value)) if isinstance(value, (list, tuple)) else str(value)


def run_params(config: Any) -> dict[str, Any]:
    """What a tracker records as the run's hyperparameters: the flattened config, without the loggers' settings."""
    return {key: value for key, value in flatten(config).items() if key.split(".", 1)[0] != "logger"}


def run_tags(info: RunInfo) -> dict[str, str]:
    """What a tracker files the run under besides its config: overrides, run directory, git commit, job."""
    tags = {"overrides": " ".join(info.overrides), "run_dir": str(Path(info.run_dir).resolve())}
    if info.git_commit:
        tags["git_commit"] = info.git_commit
    if info.job is not None:
        tags["job"] = str(info.job)
    return tags


def read_record(folder: Path) -> dict[str, Any]:
    """FOLDER/tracking.json: what the trackers keep to continue a run or a sweep ({} when there is none)."""
    from mnist_hydra.runs.artifacts import read_json  # pandas with it: not on the config's start-up path

    return read_json(Path(folder) / RECORD)


def write_record(folder: Path, tracker: str, entry: Mapping[str, Any]) -> None:
    """Set `tracker`'s entry of FOLDER/tracking.json, written atomically."""
    from mnist_hydra.runs.artifacts import write_json

    write_json(Path(folder) / RECORD, {**read_record(folder), tracker: dict(entry)})
