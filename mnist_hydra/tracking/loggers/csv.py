"""CSV: the figures of each epoch as a row of RUN/epochs.csv, written as the epoch ends (Keras's CSVLogger).

history.csv holds the same figures once the run is over; this file grows while it trains (`tail -f`), keeps
the epochs of a run that was stopped, and gains the rest when the run is resumed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mnist_hydra.errors import require
from mnist_hydra.tracking.base import LOGGERS, Logger, RunInfo

if TYPE_CHECKING:
    import keras

RESERVED = ("history.csv",)  # the run's own CSV, written when it ends


@dataclass
class CsvConfig:
    """A CSV file of the epochs' figures in the run directory."""

    filename: str = "epochs.csv"  # a file name in the run directory: epoch, then accuracy, learning_rate, loss, ...

    def check(self) -> None:
        require(
            Path(self.filename).name == self.filename
            and self.filename.endswith(".csv")
            and self.filename not in RESERVED,
            "filename",
            self.filename,
            f"a file name ending in .csv, without a folder, other than {', '.join(RESERVED)}",
        )


@LOGGERS.register("csv", schema=CsvConfig)
class CsvLogger(Logger):
    """keras.callbacks.CSVLogger on the run directory's file; a resumed run appends to it."""

    config: CsvConfig

    def __init__(self, config: CsvConfig) -> None:
        super().__init__(config)
        self.path, self.resumed = Path(config.filename), False
        self.writer: Any = None

    def start(self, info: RunInfo, params: Mapping[str, Any], tags: Mapping[str, str]) -> None:
        self.path, self.resumed = Path(info.run_dir) / self.config.filename, info.resumed

    def callback(self) -> keras.callbacks.Callback:
        import keras

        self.writer = keras.callbacks.CSVLogger(str(self.path), append=self.resumed)
        return self.writer

    def end(self, status: str, metrics: Mapping[str, Any] | None) -> None:
        if self.writer is not None:
            self.writer.on_train_end()  # closes the file, also after a fit() that a second Ctrl-C cut short
