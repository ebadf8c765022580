"""What serving uses from the rest of mnist_hydra, imported in this one module.

The run-directory helpers still live in the old flat layout (evaluate.py, predict.py, artifacts.py);
when they move to runs/rundir.py, runs/artifacts.py and data/, only this module changes. The
wrappers import on first use: evaluate.py pulls in matplotlib and pandas (1.5 s), which a server
that only checks its run= before loading the model has no use for.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mnist_hydra.errors import UserError
from mnist_hydra.preprocess import FIELD, ImageError, preprocess_bytes

__all__ = [
    "FIELD", "ImageError", "UserError", "class_names", "load_model", "load_splits", "preprocess_bytes", "read_json",
    "read_run_config", "require_run", "typed_data_config", "write_json",
]


def require_run(run_dir: Path) -> Path:
    """The run's model.keras; UserError naming the path when `run_dir` is not a finished run."""
    from mnist_hydra.evaluate import check_run_dir

    return check_run_dir(Path(run_dir))


def load_model(path: Path):
    """A saved Keras model for inference; UserError naming the file if it cannot be read."""
    from mnist_hydra.evaluate import load_model as load

    return load(Path(path))


def read_run_config(run_dir: Path) -> dict[str, Any]:
    """The run's composed config (.hydra/config.yaml, else provenance.json)."""
    from mnist_hydra.evaluate import read_run_config as read

    return read(Path(run_dir))


def typed_data_config(values: dict[str, Any]):
    """A run's data config as its registered, checked schema."""
    from mnist_hydra.evaluate import typed_data_config as typed

    return typed(values)


def class_names(run_dir: Path, num_classes: int) -> tuple[str, ...]:
    """The class names of the run's data set; "0".."n-1" when they cannot be told."""
    from mnist_hydra.predict import class_names_of

    return class_names_of(Path(run_dir), num_classes)


def load_splits(data, seed: int):
    """The data set's train/val/test arrays."""
    from mnist_hydra.data import load_splits as load

    return load(data, seed)


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object file; {} when missing or unreadable."""
    from mnist_hydra.artifacts import read_json as read

    return read(path)


def write_json(path: Path, obj: Any) -> None:
    """Write JSON atomically."""
    from mnist_hydra.artifacts import write_json as write

    write(path, obj)
