"""`python -m mnist_hydra.evaluate run=RUN_DIR [data=OPTION] [data.KEY=VALUE]`: score a trained model again.

Loads RUN_DIR/model.keras and scores a test set with it; the evaluation is written to
RUN_DIR/evaluate/YYYY-MM-DD_HH-MM-SS.ffffff/ (`hydra.run.dir=PATH` picks another place, e.g. for
a run directory you cannot write to).

Which test set:

- by default the run's own data config (RUN_DIR/.hydra/config.yaml): the same images the run
  was scored on, `data.test_limit` included;
- `data.KEY=VALUE` changes one field of it, e.g. `data.test_limit=null` for the whole test set
  or `data.root=PATH` when the data has moved;
- `data=OPTION` (`mnist`, `fashion_mnist`) takes that option's config instead, whole.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import time
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import hydra
import numpy as np
import pandas as pd
import yaml
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from omegaconf import MISSING, DictConfig, OmegaConf

from mnist_hydra import artifacts, plots
from mnist_hydra.config import require_values, store_schemas
from mnist_hydra.console import exit_with, run_app
from mnist_hydra.data import DATASETS, DataConfig, load_splits
from mnist_hydra.errors import ConfigError, FieldError, UserError, require

log = logging.getLogger("mnist_hydra.evaluate")  # not __main__ under python -m

PROG = "mnist_hydra.evaluate"
# What the error for a key without a value suggests.
EXAMPLES = {"run": "run=outputs/2026-11-24/13-20-02.850171 (a run directory of python -m mnist_hydra)"}
# Room an evaluation needs: two PNGs, a CSV and metrics.json.
EVALUATION_BYTES = 5_000_000


@dataclass
class EvaluateConfig:
    """What to evaluate and on which data."""

    run: str = MISSING  # the training run's directory: holds model.keras and .hydra/config.yaml
    data: Any = MISSING  # data option; used whole only when picked with data=OPTION, else only its overridden keys
    batch_size: int = 256  # images per prediction step

    def check(self) -> None:
        require(self.batch_size >= 1, "batch_size", self.batch_size, "an integer >= 1")


def evaluate_run(run_dir: Path, data: DataConfig, workdir: Path, batch_size: int = 256,
                 record: Optional[dict[str, Any]] = None) -> dict[str, Any]:
    """Score `run_dir`'s model.keras on `data`'s test set; write metrics.json, per_class.csv and plots in `workdir`.

    Args:
      run_dir: a training run's directory (it holds model.keras).
      data: the data config whose test set is scored.
      workdir: where the evaluation's files go; created if missing.
      batch_size: images per prediction step.
      record: extra entries for metrics.json (e.g. the command's overrides).
    """
    run_dir, workdir = Path(run_dir), Path(workdir)
    model_path = check_run_dir(run_dir)
    check_keras_archive(model_path)  # a damaged model shows before the data is read
    workdir.mkdir(parents=True, exist_ok=True)
    artifacts.check_writable(workdir, EVALUATION_BYTES)
    # The seed only picks the validation split, which is not scored; the test set is the first test_limit images.
    splits = load_splits(data, seed=0)  # a data mistake shows before TensorFlow's import
    model = load_model(model_path)
    num_classes = len(splits.class_names)
    if tuple(model.input_shape[1:]) != (28, 28, 1) or model.output_shape[-1] != num_classes:
        raise UserError(f"{model_path} maps {model.input_shape[1:]} to {model.output_shape[-1]} classes; "
                        f"{data.name} needs (28, 28, 1) to {num_classes} classes")

    start = time.perf_counter()
    images = splits.x_test[..., np.newaxis].astype(np.float32) / 255.0  # as the training pipeline scales them
    probabilities = np.asarray(model.predict(images, batch_size=batch_size, verbose=0))
    predicted = probabilities.argmax(axis=1)
    matrix = artifacts.confusion_matrix(splits.y_test, predicted, num_classes)
    scores = per_class_scores(matrix, splits.class_names)
    n = len(splits.y_test)
    metrics = {
        "status": "completed",
        "accuracy": float(np.mean(predicted == splits.y_test)) if n else float("nan"),
        "loss": cross_entropy(probabilities, splits.y_test),
        "n": n,
        "macro_precision": float(scores["precision"].mean()),
        "macro_recall": float(scores["recall"].mean()),
        "macro_f1": float(scores["f1"].mean()),
        "seconds": time.perf_counter() - start,
        "run": str(run_dir.absolute()),
        "model": str(model_path.absolute()),
        "run_test_accuracy": artifacts.read_json(run_dir / "metrics.json").get("test_accuracy"),
        "data": dataclasses.asdict(data),
        "data_source": splits.source,
        "data_checksums": splits.checksums,
        **(record or {}),
        "class_names": list(splits.class_names),
        "confusion_matrix": matrix.tolist(),
    }
    artifacts.write_csv(workdir / "per_class.csv", scores)
    plots.plot_confusion_matrix(matrix, splits.class_names, workdir / "confusion_matrix.png",
                                title=f"Confusion matrix: {data.name} test set ({n} images)")
    plots.plot_misclassified(splits.x_test, splits.y_test, predicted, probabilities.max(axis=1),
                             splits.class_names, workdir / "misclassified.png")
    artifacts.write_json(workdir / "metrics.json", metrics)  # last: marks a complete evaluation
    log.info("accuracy %.4f, loss %.4f on %d %s test images; evaluation in %s",
             metrics["accuracy"], metrics["loss"], n, data.name, workdir)
    return metrics


def check_run_dir(run_dir: Path) -> Path:
    """The run's model.keras; UserError naming the path when `run_dir` is not a finished run."""
    if not run_dir.is_dir():
        raise UserError(f"run={run_dir}: no such directory; give a run directory of python -m mnist_hydra, "
                        "e.g. run=outputs/2026-11-24/13-20-02.850171")
    model_path = run_dir / "model.keras"
    if not model_path.is_file():
        status = artifacts.read_json(run_dir / "metrics.json").get("status")
        why = f" (the run {status})" if status and status != "completed" else ""
        raise UserError(f"run={run_dir}: no model.keras in it{why}; give a run directory of python -m mnist_hydra "
                        "(a sweep's runs are its numbered sub-directories)")
    return model_path


def read_run_config(run_dir: Path) -> dict[str, Any]:
    """The run's composed config: .hydra/config.yaml, else the validated config in provenance.json."""
    hydra_config = run_dir / ".hydra" / "config.yaml"
    provenance = run_dir / "provenance.json"
    try:
        if hydra_config.is_file():
            config = yaml.safe_load(hydra_config.read_text(encoding="utf-8"))
        elif provenance.is_file():
            config = json.loads(provenance.read_text(encoding="utf-8"))["config"]
        else:
            raise UserError(f"run={run_dir}: has neither {hydra_config.relative_to(run_dir)} nor provenance.json, "
                            "so its data config is unknown; pick the data with data=OPTION")
    except (OSError, ValueError, KeyError, yaml.YAMLError) as err:
        raise UserError(f"run={run_dir}: cannot read its config: {' '.join(str(err).split())}") from err
    if not isinstance(config, dict) or not isinstance(config.get("data"), dict):
        raise UserError(f"run={run_dir}: its config has no data section; pick the data with data=OPTION")
    return config


def typed_data_config(values: dict[str, Any]) -> DataConfig:
    """A data config dict as its registered schema, range-checked; errors name the `data.` key."""
    name = values.get("name")
    if name not in DATASETS:
        raise ConfigError(f"data.name={name} is not a registered dataset; registered: {', '.join(DATASETS.names())}")
    schema = DATASETS.schema(name)
    known = {f.name for f in dataclasses.fields(schema)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"data.{unknown[0]} is not a config key; data accepts: {', '.join(sorted(known))}")
    typed = schema(**values)
    try:
        typed.check()
    except FieldError as err:
        err.key = f"data.{err.key}"
        raise
    return typed


def per_class_scores(matrix: np.ndarray, class_names: Sequence[str]) -> pd.DataFrame:
    """Precision, recall, F1 and support per class from a confusion matrix (rows true, columns predicted).

    Undefined ratios are NaN: precision of a class never predicted, recall and F1 of a class absent
    from the labels and never predicted.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    tp = np.diag(matrix)
    predicted, support = matrix.sum(axis=0), matrix.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, np.nan)
        recall = np.where(support > 0, tp / support, np.nan)
        denominator = predicted + support  # 2TP + FP + FN
        f1 = np.where(denominator > 0, 2 * tp / denominator, np.nan)
    return pd.DataFrame({"class": list(class_names), "precision": precision, "recall": recall, "f1": f1,
                         "support": support.astype(np.int64)})


def cross_entropy(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """Mean sparse categorical cross-entropy, clipped as Keras clips it."""
    if len(labels) == 0:
        return float("nan")
    picked = probabilities[np.arange(len(labels)), np.asarray(labels, dtype=np.int64)]
    return float(-np.mean(np.log(np.clip(picked, 1e-7, 1.0))))


def load_model(path: Path):
    """A saved Keras model, for inference (no optimizer); UserError naming the file if it cannot be read."""
    path = Path(path)
    check_keras_archive(path)  # before TensorFlow's import, which takes seconds
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    try:
        return keras.models.load_model(path, compile=False)
    except Exception as err:  # a model from an incompatible Keras, weights that do not fit the config
        raise UserError(f"{path}: damaged or not a Keras model, it cannot be loaded: "
                        f"{' '.join(str(err).split())[:300]}") from err


# What Keras 3 writes into a .keras file (a zip archive).
KERAS_ARCHIVE_MEMBERS = ("metadata.json", "config.json", "model.weights.h5")


def check_keras_archive(path: Path) -> None:
    """UserError naming `path` unless it is a readable zip archive holding what Keras saves, each member intact."""
    try:
        with open(path, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            if not zipfile.is_zipfile(file):
                what = "an empty file" if size == 0 else f"{size} bytes that are not a zip archive"
                raise UserError(f"{path}: damaged or not a Keras archive: {what} (a .keras file is a zip archive); "
                                "train the run again or restore the file")
            with zipfile.ZipFile(file) as archive:
                missing = [name for name in KERAS_ARCHIVE_MEMBERS if name not in archive.namelist()]
                if missing:
                    raise UserError(f"{path}: damaged or not a Keras archive: the zip archive lacks {', '.join(missing)}")
                broken = archive.testzip()  # reads every member against its CRC: a few MB, milliseconds
                if broken is not None:
                    raise UserError(f"{path}: damaged Keras archive: {broken} fails its CRC check; "
                                    "train the run again or restore the file")
    except OSError as err:
        raise UserError(f"{path}: cannot read the model: {err.strerror or err}") from err
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, ValueError) as err:  # cut short, garbled
        raise UserError(f"{path}: damaged Keras archive: {' '.join(str(err).split()) or type(err).__name__}") from err


# The command-line app; everything above works without Hydra.

def _evaluation_dir(stamp: str, *, _root_: DictConfig) -> str:
    """hydra.run.dir: RUN/evaluate/STAMP, after checking RUN, so a mistyped path leaves no directories."""
    if OmegaConf.is_missing(_root_, "run"):  # not require_values: that would resolve hydra.run.dir, i.e. this
        raise ConfigError(f"run has no value: set it on the command line, e.g. {EXAMPLES['run']}")
    run_dir = Path(str(_root_.run))
    check_run_dir(run_dir)
    return str(run_dir / "evaluate" / stamp)


store_schemas()
ConfigStore.instance().store(name="evaluate_schema", node=EvaluateConfig)
OmegaConf.register_new_resolver("mnist_hydra.evaluation_dir", _evaluation_dir, replace=True)


@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate")
def evaluate(cfg: DictConfig) -> None:
    """Evaluate `cfg.run` in Hydra's run directory and print the accuracy and where the files are."""
    workdir = Path(HydraConfig.get().runtime.output_dir)
    try:
        metrics = _evaluate(cfg, workdir)
    except UserError as err:
        _discard_unused(workdir)
        exit_with(err, PROG)
    print(f"accuracy {metrics['accuracy']:.4f} (loss {metrics['loss']:.4f}) on {metrics['n']} "
          f"{metrics['data']['name']} test images; evaluation directory: {workdir}")


def _evaluate(cfg: DictConfig, workdir: Path) -> dict[str, Any]:
    require_values(cfg, EXAMPLES)
    settings = EvaluateConfig(run=cfg.run, data=None, batch_size=cfg.batch_size)
    settings.check()
    run_dir = Path(settings.run)
    check_run_dir(run_dir)
    overrides = list(HydraConfig.get().overrides.task)
    data = typed_data_config(_chosen_data(cfg, run_dir, overrides))
    return evaluate_run(run_dir, data, workdir, batch_size=settings.batch_size, record={"overrides": overrides})


def _chosen_data(cfg: DictConfig, run_dir: Path, overrides: list[str]) -> dict[str, Any]:
    """The data config to score: see the module docstring."""
    keys = [item.split("=", 1)[0].lstrip("+~") for item in overrides]
    composed = OmegaConf.to_container(cfg.data, resolve=True)
    if "data" in keys:
        return composed
    values = dict(read_run_config(run_dir)["data"])
    # Unless picked with data=OPTION, the composed data option only gives `data.KEY=VALUE` a typed home.
    for key in keys:
        field = key[len("data."):] if key.startswith("data.") else None
        if field in composed:
            values[field] = composed[field]
    return values


def _discard_unused(workdir: Path) -> None:
    """Remove an evaluation directory holding only the job log, and RUN/evaluate/ if that leaves it empty."""
    if workdir.is_dir() and {p.name for p in workdir.iterdir()} <= {f"{HydraConfig.get().job.name}.log"}:
        shutil.rmtree(workdir)
        if workdir.parent.name == "evaluate" and not any(workdir.parent.iterdir()):
            workdir.parent.rmdir()


def main() -> None:
    """Console entry point: the evaluate app, with user mistakes as one line."""
    run_app(evaluate, PROG)


if __name__ == "__main__":
    main()
