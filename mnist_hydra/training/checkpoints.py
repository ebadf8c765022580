"""Per-epoch checkpoints in a run directory, so an interrupted run continues from its last complete epoch.

checkpoints/epoch-NNNN.keras holds the model with its optimizer state (Keras saves both);
checkpoints/checkpoint.json names the newest complete one and carries the history so far. Both are
written atomically and the pointer last, so a crash at any moment leaves the previous checkpoint
readable: a SIGKILL loses at most the epoch in progress.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from mnist_hydra.runs import artifacts
from mnist_hydra.errors import UserError

if TYPE_CHECKING:
    import keras

log = logging.getLogger(__name__)

FOLDER = "checkpoints"
POINTER = "checkpoint.json"


@dataclass
class TrainingState:
    """Where training stands after `epoch` complete epochs."""

    epoch: int = 0
    history: dict[str, list[float]] = field(default_factory=dict)  # Keras's per-epoch logs
    epoch_seconds: list[float] = field(default_factory=list)


class Checkpoints:
    """The checkpoints of one run directory."""

    def __init__(self, workdir: Path) -> None:
        self.folder = Path(workdir) / FOLDER

    def save(self, model: keras.Model, state: TrainingState) -> None:
        """Write the model after `state.epoch` epochs, point at it, then drop older checkpoints."""
        self.folder.mkdir(exist_ok=True)
        name = f"epoch-{state.epoch:04d}.keras"
        artifacts.atomic_write(self.folder / name, model.save)
        artifacts.write_json(self.folder / POINTER, {"file": name, "epoch": state.epoch,
                                                     "history": state.history,
                                                     "epoch_seconds": state.epoch_seconds})
        for old in self.folder.iterdir():  # older epochs, and temp files a killed writer left
            if old.name not in (name, POINTER):
                old.unlink(missing_ok=True)

    def latest(self) -> Optional[tuple[Path, TrainingState]]:
        """The newest complete checkpoint's model file and state, or None when there is none."""
        pointer = self.folder / POINTER
        if not pointer.is_file():
            return None
        try:
            record = json.loads(pointer.read_text(encoding="utf-8"))
            model_file = self.folder / record["file"]
            state = TrainingState(int(record["epoch"]), record["history"], record["epoch_seconds"])
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise UserError(f"cannot resume from {pointer}: it is unreadable ({err}); "
                            f"delete the {self.folder} folder to start the run over") from err
        if not model_file.is_file():
            raise UserError(f"cannot resume from {pointer}: it names {model_file.name}, which is missing; "
                            f"delete the {self.folder} folder to start the run over")
        return model_file, state

    def remove(self) -> None:
        """Drop the checkpoints once the run is complete: model.keras holds the final model."""
        if self.folder.is_dir():
            for path in self.folder.iterdir():
                path.unlink(missing_ok=True)
            self.folder.rmdir()
