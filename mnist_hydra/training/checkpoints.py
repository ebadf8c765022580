"""Per-epoch checkpoints in a run directory, so an interrupted run continues from its last complete epoch.

checkpoints/epoch-NNNN.keras holds the model with its optimizer state (Keras saves both);
checkpoints/checkpoint.json names the newest complete one and carries the history so far, the state of
the between-epoch controls (early stopping, keep=best, the plateau schedule: mnist_hydra.training.epoch_decisions),
the random layers' seed generator states (which a .keras file leaves out) and, with keep=best, the file
holding the best epoch's weights (best-epoch-NNNN.weights.h5, named by its epoch so that the pointer and
the file always agree). All are written atomically and the pointer last, so a crash at any moment leaves
the previous checkpoint readable: a SIGKILL loses at most the epoch in progress.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mnist_hydra.errors import UserError
from mnist_hydra.runs import artifacts

if TYPE_CHECKING:
    import keras

log = logging.getLogger(__name__)

FOLDER = "checkpoints"
POINTER = "checkpoint.json"
SEED_STATE = "seed_generator_state"  # Keras's name for a random layer's (seed, draws so far) variable


@dataclass
class TrainingState:
    """Where training stands after `epoch` complete epochs."""

    epoch: int = 0
    history: dict[str, list[float]] = field(default_factory=dict)  # Keras's per-epoch logs
    epoch_seconds: list[float] = field(default_factory=list)
    controls: dict[str, dict[str, Any]] = field(default_factory=dict)  # each control's state, by its key
    best_weights: str | None = None  # keep=best: the file in checkpoints/ with the best epoch's weights
    random_states: dict[str, list[list[int]]] = field(default_factory=dict)  # layer name -> its seed states


class Checkpoints:
    """The checkpoints of one run directory."""

    def __init__(self, workdir: Path) -> None:
        self.folder = Path(workdir) / FOLDER

    def save(self, model: keras.Model, state: TrainingState, best: bool = False) -> None:
        """Write the model after `state.epoch` epochs (and its weights as the best, if `best`), point at it,
        then drop older checkpoints."""
        self.folder.mkdir(exist_ok=True)
        if best:
            state.best_weights = f"best-epoch-{state.epoch:04d}.weights.h5"
            artifacts.atomic_write(self.folder / state.best_weights, lambda tmp: _save_weights(model, tmp))
        name = f"epoch-{state.epoch:04d}.keras"
        artifacts.atomic_write(self.folder / name, model.save)
        artifacts.write_json(
            self.folder / POINTER,
            {
                "file": name,
                "epoch": state.epoch,
                "history": state.history,
                "epoch_seconds": state.epoch_seconds,
                "controls": state.controls,
                "best_weights": state.best_weights,
                "random_states": random_states(model),
            },
        )
        for old in self.folder.iterdir():  # older epochs, and temp files a killed writer left
            if old.name not in (name, POINTER, state.best_weights):
                old.unlink(missing_ok=True)

    def best_weights(self, state: TrainingState) -> Path:
        """The file with the best epoch's weights that `state` names (keep=best)."""
        if state.best_weights is None or not (self.folder / state.best_weights).is_file():
            raise UserError(
                f"{self.folder}: no best-epoch weights file for trainer.keep=best "
                f"(the checkpoint names {state.best_weights}); delete the folder to start the run over"
            )
        return self.folder / state.best_weights

    def latest(self) -> tuple[Path, TrainingState] | None:
        """The newest complete checkpoint's model file and state, or None when there is none."""
        pointer = self.folder / POINTER
        if not pointer.is_file():
            return None
        try:
            record = json.loads(pointer.read_text(encoding="utf-8"))
            model_file = self.folder / record["file"]
            state = TrainingState(
                int(record["epoch"]),
                record["history"],
                record["epoch_seconds"],
                record.get("controls") or {},
                record.get("best_weights"),
                record.get("random_states", {}),
            )
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise UserError(
                f"cannot resume from {pointer}: it is unreadable ({err}); "
                f"delete the {self.folder} folder to start the run over"
            ) from err
        missing = [
            name for name in (model_file.name, state.best_weights) if name and not (self.folder / name).is_file()
        ]
        if missing:
            raise UserError(
                f"cannot resume from {pointer}: it names {missing[0]}, which is missing; "
                f"delete the {self.folder} folder to start the run over"
            )
        return model_file, state

    def remove(self) -> None:
        """Drop the checkpoints once the run is complete: model.keras holds the final model."""
        if self.folder.is_dir():
            for path in self.folder.iterdir():
                path.unlink(missing_ok=True)
            self.folder.rmdir()


def _save_weights(model: keras.Model, tmp: Path) -> None:
    # Keras insists on a name ending in .weights.h5, which the temporary name does not have.
    named = tmp.with_name(f"{tmp.name}.weights.h5")
    try:
        model.save_weights(named)
        os.replace(named, tmp)
    finally:
        named.unlink(missing_ok=True)


def random_states(model: keras.Model) -> dict[str, list[list[int]]]:
    """The seed generator states of each random layer (dropout, augmentation), by layer name."""
    return {
        layer.name: [v.numpy().tolist() for v in _seed_variables(layer)]
        for layer in model.layers
        if _seed_variables(layer)
    }


def restore_random_states(model: keras.Model, states: dict[str, list[list[int]]]) -> None:
    """Put back what `random_states` saved, so a resumed run draws the same dropout masks and augmentations
    as a run that never stopped (a loaded model's random layers otherwise start from fresh seeds)."""
    import numpy as np

    for layer in model.layers:
        for variable, value in zip(_seed_variables(layer), states.get(layer.name, []), strict=False):
            variable.assign(np.asarray(value, dtype=variable.dtype))


def _seed_variables(layer: keras.layers.Layer) -> list[Any]:
    return [v for v in layer.variables if v.name == SEED_STATE]
