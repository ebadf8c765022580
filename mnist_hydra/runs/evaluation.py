"""Score a finished run's model.keras again, on its own test set or another, and write the evaluation's files."""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from mnist_hydra.data.base import SplitConfig
from mnist_hydra.data.splits import load_splits
from mnist_hydra.errors import UserError
from mnist_hydra.runs import artifacts, plots, rundir
from mnist_hydra.runs.metrics import confusion_matrix, cross_entropy, per_class_scores

log = logging.getLogger(__name__)

# Room an evaluation needs: two PNGs, a CSV and metrics.json.
EVALUATION_BYTES = 5_000_000


def evaluate_run(
    run_dir: Path, data: SplitConfig, workdir: Path, batch_size: int = 256, record: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Score `run_dir`'s model.keras on `data`'s test set; write metrics.json, per_class.csv and plots in `workdir`.

    Args:
      run_dir: a training run's directory (it holds model.keras).
      data: the data config whose test set is scored.
      workdir: where the evaluation's files go; created if missing.
      batch_size: images per prediction step.
      record: extra entries for metrics.json (e.g. the command's overrides).
    """
    run_dir, workdir = Path(run_dir), Path(workdir)
    model_path = rundir.require_run(run_dir)
    rundir.check_model_file(model_path)  # a damaged model shows before the data is read
    workdir.mkdir(parents=True, exist_ok=True)
    artifacts.check_writable(workdir, EVALUATION_BYTES)
    # The seed only picks the validation split, which is not scored; the test set is the first test_limit images.
    splits = load_splits(data, seed=0)  # a data mistake shows before TensorFlow's import
    model = rundir.load_model(model_path)
    num_classes = len(splits.class_names)
    shape = splits.input_shape
    if tuple(model.input_shape[1:]) != shape or model.output_shape[-1] != num_classes:
        raise UserError(
            f"{model_path} maps {model.input_shape[1:]} to {model.output_shape[-1]} classes; "
            f"{data.name} needs {shape} to {num_classes} classes"
        )
    trained, named = rundir.class_names(run_dir, num_classes), tuple(splits.class_names)
    # The same count in another order, or other classes (Fashion-MNIST for a digit model), would score every image
    # against a class the model never learned. Labels that are only numbers (a CSV or IDX set without names) are
    # taken to be the run's.
    if named != trained and named != tuple(str(i) for i in range(num_classes)):
        fix = "give data.classes=[...] in the run's order" if hasattr(data, "classes") else "evaluate on its data"
        raise UserError(
            f"data={data.name}: its classes ({', '.join(named)}) are not those the run was trained on "
            f"({', '.join(trained)}), in that order; {fix}"
        )
    from mnist_hydra.data.pipeline import make_dataset

    start = time.perf_counter()
    probabilities = np.asarray(model.predict(make_dataset(splits.x_test, splits.y_test, batch_size), verbose=0))
    predicted = probabilities.argmax(axis=1)
    matrix = confusion_matrix(splits.y_test, predicted, num_classes)
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
        "run_test_accuracy": rundir.read_metrics(run_dir).get("test_accuracy"),
        "data": dataclasses.asdict(data),
        "data_source": splits.source,
        "data_checksums": splits.checksums,
        **(record or {}),
        "class_names": list(splits.class_names),
        "confusion_matrix": matrix.tolist(),
    }
    artifacts.write_csv(workdir / "per_class.csv", scores)
    plots.plot_test_results(
        workdir,
        matrix,
        splits.x_test,
        splits.y_test,
        probabilities,
        splits.class_names,
        title=f"Confusion matrix: {data.name} test set ({n} images)",
    )
    artifacts.write_json(workdir / "metrics.json", metrics)  # last: marks a complete evaluation
    log.info(
        "accuracy %.4f, loss %.4f on %d %s test images; evaluation in %s",
        metrics["accuracy"],
        metrics["loss"],
        n,
        data.name,
        workdir,
    )
    return metrics
