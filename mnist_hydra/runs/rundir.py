"""What a run directory is: find and check one, read its config, metrics and model; list runs; tell a sweep.

A run directory holds Hydra's `.hydra/` (config.yaml, overrides.yaml), our provenance.json,
metrics.json (written last: it marks a finished run, or records why it stopped), model.keras and
the plots. A sweep directory holds one numbered job directory per job (each a run directory) and,
for the basic sweeper, Hydra's multirun.yaml. Every app asks this module rather than the files.
"""

from __future__ import annotations

import json
import os
import re
import zipfile
import zlib
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from mnist_hydra.errors import DataError, UserError, one_line
from mnist_hydra.runs.artifacts import read_json

if TYPE_CHECKING:
    from mnist_hydra.data.preparation import Preparation

SAVED_CONFIG = Path(".hydra") / "config.yaml"
OVERRIDES = Path(".hydra") / "overrides.yaml"
SWEEP_RECORD = "multirun.yaml"
MODEL = "model.keras"
METRICS = "metrics.json"
FINISHED = ("completed", "pruned")  # a metrics.json that ends a run: a pruned trial of a search stopped on purpose
CHECKPOINTS = "checkpoints"
RUN_EXAMPLE = "run=outputs/2026-11-24/13-20-02.850171 (a run directory of python -m mnist_hydra)"
# outputs/2026-11-24/13-20-02.850171 and multirun/DATE/TIME/N: Hydra's run and sweep directory names.
STAMP = re.compile(r"(\d{4}-\d{2}-\d{2})/(\d{2}-\d{2}-\d{2})(\.\d+)?")


def holds_run(folder: Path) -> bool:
    """True when `folder` holds what a run made: metrics (complete, stopped or failed), a model or checkpoints.

    A directory with only Hydra's start-up files (.hydra/, the log) holds no run: a start that failed.
    """
    folder = Path(folder)
    return any((folder / name).exists() for name in (METRICS, MODEL, CHECKPOINTS))


def require_run(run_dir: Path, key: str = "run") -> Path:
    """The run's model.keras; UserError naming `key` and the path when `run_dir` is not a finished run."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        what = "is a file, not a directory" if run_dir.exists() else "no such directory"
        raise UserError(
            f"{key}={run_dir}: {what}; give a run directory of python -m mnist_hydra, "
            f"e.g. {key}=outputs/2026-11-24/13-20-02.850171"
        )
    model_path = run_dir / MODEL
    if not model_path.is_file():
        status = read_metrics(run_dir).get("status")
        why = f" (the run {status})" if status and status != "completed" else ""
        hint = " (a sweep's runs are its numbered sub-directories)" if is_sweep(run_dir) else ""
        raise UserError(
            f"{key}={run_dir}: no {MODEL} in it{why}; give the directory of a finished run of "
            f"python -m mnist_hydra{hint}"
        )
    return model_path


def load_model(path: Path) -> Any:
    """A saved Keras model, for inference (no optimizer); DataError naming the file if it cannot be read."""
    path = Path(path)
    check_model_file(path)  # before TensorFlow's import, which takes seconds; Keras says "File not found" for any
    from mnist_hydra.tf_runtime import import_tensorflow  # non-zip file

    import_tensorflow()
    import keras

    try:
        return keras.models.load_model(path, compile=False)
    except Exception as err:  # a model from an incompatible Keras, weights that do not fit the config
        # Keras's first sentence says what failed; the rest is advice on its own API (and the object's config).
        what = one_line(err).split(". ")[0][:160]
        raise DataError(f"{path}: damaged or not a Keras model, it cannot be loaded: {what}") from err


# What Keras 3 writes into a .keras file (a zip archive).
KERAS_ARCHIVE_MEMBERS = ("metadata.json", "config.json", "model.weights.h5")


def check_model_file(path: Path) -> None:
    """DataError naming `path` unless it is a readable zip archive holding what Keras saves, each member intact."""
    try:
        with open(path, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            if not zipfile.is_zipfile(file):
                what = "an empty file" if size == 0 else f"{size} bytes that are not a zip archive"
                raise DataError(
                    f"{path}: damaged or not a Keras archive: {what} (a .keras file is a zip archive); "
                    "train the run again or restore the file"
                )
            with zipfile.ZipFile(file) as archive:
                missing = [name for name in KERAS_ARCHIVE_MEMBERS if name not in archive.namelist()]
                if missing:
                    raise DataError(
                        f"{path}: damaged or not a Keras archive: the zip archive lacks {', '.join(missing)}"
                    )
                broken = archive.testzip()  # reads every member against its CRC: a few MB, milliseconds
                if broken is not None:
                    raise DataError(
                        f"{path}: damaged Keras archive: {broken} fails its CRC check; "
                        "train the run again or restore the file"
                    )
                wrong = _wrong_member(archive)
                if wrong:
                    raise DataError(f"{path}: damaged or not a Keras archive: {wrong}")
    except OSError as err:
        raise DataError(f"{path}: cannot read the model: {err.strerror or err}") from err
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, ValueError) as err:  # cut short, garbled
        raise DataError(f"{path}: damaged Keras archive: {one_line(err)}") from err


HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def _wrong_member(archive: zipfile.ZipFile) -> str | None:
    """What is wrong with the archive's members, read as Keras would read them (their JSON and the weights' HDF5
    signature), or None: a garbled file is named here, not after TensorFlow's import."""
    for name in ("metadata.json", "config.json"):
        try:
            value = json.loads(archive.read(name))
        except ValueError as err:  # not UTF-8, or not JSON
            return f"{name} is not JSON ({one_line(err)[:120]})"
        if not isinstance(value, dict):
            return f"{name} holds a JSON {type(value).__name__}, not the object Keras writes"
    with archive.open("model.weights.h5") as weights:
        head = weights.read(len(HDF5_SIGNATURE))
    if head != HDF5_SIGNATURE:  # h5py writes the signature first: Keras's files have no user block before it
        return "model.weights.h5 is not an HDF5 file"
    return None


def read_config(run_dir: Path) -> dict[str, Any]:
    """The run's composed config: .hydra/config.yaml, else the validated config in provenance.json."""
    run_dir = Path(run_dir)
    hydra_config, provenance = run_dir / SAVED_CONFIG, run_dir / "provenance.json"
    try:
        if hydra_config.is_file():
            config = yaml.safe_load(hydra_config.read_text(encoding="utf-8"))
        elif provenance.is_file():
            config = read_json(provenance)["config"]
        else:
            raise UserError(
                f"run={run_dir}: has neither {SAVED_CONFIG} nor provenance.json, "
                "so its data config is unknown; pick the data with data=OPTION"
            )
    except (OSError, ValueError, KeyError, yaml.YAMLError) as err:
        raise UserError(f"run={run_dir}: cannot read its config: {one_line(err)}") from err
    if not isinstance(config, dict) or not isinstance(config.get("data"), dict):
        raise UserError(f"run={run_dir}: its config has no data section; pick the data with data=OPTION")
    return config


def read_metrics(run_dir: Path) -> dict[str, Any]:
    """The run's metrics.json; {} when it has none (not finished, or killed)."""
    return read_json(Path(run_dir) / METRICS)


def completed_metrics(run_dir: Path) -> dict[str, Any] | None:
    """metrics.json of a run that finished (a search's pruned trial included), or None."""
    metrics = read_metrics(run_dir)
    return metrics if metrics.get("status") in FINISHED else None


def preparation(run_dir: Path) -> Preparation:
    """How the run's data was made from picture files, so an upload is made the same: as its metrics.json
    recorded it; a run without the record trained on 28x28 grey digits."""
    from mnist_hydra.data.preparation import Preparation

    record = read_metrics(run_dir).get("preprocessing")
    return Preparation.from_record(record if isinstance(record, dict) else None)


def input_shape(run_dir: Path) -> tuple[int, int, int]:
    """(height, width, channels) of the images the run's model takes, as its metrics.json recorded them."""
    recorded = read_metrics(run_dir).get("input_shape")
    if isinstance(recorded, list) and len(recorded) == 3 and all(isinstance(side, int) for side in recorded):
        return (recorded[0], recorded[1], recorded[2])
    return preparation(run_dir).shape


def read_overrides(run_dir: Path) -> list[str]:
    """The command-line overrides the run was started with ([] when Hydra's record is missing)."""
    try:
        overrides = yaml.safe_load((Path(run_dir) / OVERRIDES).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return []
    return [str(o) for o in overrides] if isinstance(overrides, list) else []


def class_names(run_dir: Path, num_classes: int) -> tuple[str, ...]:
    """The class names of the data the run trained on: as its metrics.json recorded them, else those of its
    data option (a built-in data set); "0".."n-1" when neither tells `num_classes` names."""
    from mnist_hydra.data.datasets import class_names_of

    recorded = read_metrics(run_dir).get("class_names")
    if isinstance(recorded, list) and len(recorded) == num_classes:
        return tuple(str(name) for name in recorded)
    try:
        names = class_names_of(read_config(run_dir)["data"]["name"])
    except (UserError, KeyError, TypeError):
        names = ()
    return names if len(names) == num_classes else tuple(str(i) for i in range(num_classes))


def job_dirs(sweep_dir: Path) -> list[Path]:
    """The job directories right below a sweep directory, in job order."""
    jobs = [p.parent.parent for p in Path(sweep_dir).glob(f"*/{OVERRIDES.as_posix()}")]
    return sorted(jobs, key=lambda p: (not p.name.isdigit(), int(p.name) if p.name.isdigit() else 0, p.name))


def is_sweep(folder: Path) -> bool:
    """A sweep directory: Hydra's multirun.yaml (basic sweeper), or job directories right below (Optuna writes
    no multirun.yaml)."""
    folder = Path(folder)
    return (folder / SWEEP_RECORD).is_file() or bool(job_dirs(folder))


def in_sweep(folder: Path) -> bool:
    """True when `folder` is, or would be, one of a sweep's job directories: its parent is a sweep directory
    (Hydra's multirun.yaml, or job directories that Hydra wrote in MULTIRUN mode, as an Optuna search's are)."""
    parent = Path(folder).parent
    if (parent / SWEEP_RECORD).is_file():
        return True
    jobs = job_dirs(parent)
    try:
        record = yaml.safe_load((jobs[0] / ".hydra" / "hydra.yaml").read_text(encoding="utf-8")) if jobs else None
    except (OSError, yaml.YAMLError):
        return False
    return isinstance(record, dict) and str((record.get("hydra") or {}).get("mode")) == "MULTIRUN"


def is_run(folder: Path) -> bool:
    """A run directory: Hydra's saved config or a metrics.json."""
    folder = Path(folder)
    return (folder / SAVED_CONFIG).is_file() or (folder / METRICS).is_file()


def started(run_dir: Path) -> datetime:
    """When a run started: from Hydra's directory name, else from its .hydra/ folder's time."""
    match = STAMP.search(Path(run_dir).as_posix())
    if match:
        return datetime.strptime(match.group(1) + match.group(2) + (match.group(3) or ".0"), "%Y-%m-%d%H-%M-%S.%f")
    return datetime.fromtimestamp((Path(run_dir) / ".hydra").stat().st_mtime)  # a custom hydra.run.dir


def list_runs(folder: Path) -> Any:
    """One row per run directory below `folder` (one that holds .hydra/), newest first, as a DataFrame."""
    import pandas as pd

    rows = []
    for hydra_dir in Path(folder).rglob(".hydra"):
        run = hydra_dir.parent
        metrics = read_metrics(run)
        rows.append(
            {
                "started": started(run),
                "overrides": " ".join(read_overrides(run)) or "(defaults)",
                "status": metrics.get("status", "completed" if metrics else "incomplete"),
                "test_accuracy": metrics.get("test_accuracy"),
                "dir": str(run),
            }
        )
    frame = pd.DataFrame(rows, columns=["started", "overrides", "status", "test_accuracy", "dir"])
    return frame.sort_values("started", ascending=False, kind="stable").reset_index(drop=True)
