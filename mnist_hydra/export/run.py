"""One export of a run, or the check of an export made before: the export command's library call."""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from mnist_hydra.export.formats import WRITERS, ExportError, check_format, float32_copy, model_precision, short_reason
from mnist_hydra.export.parity import compare, mismatch_words
from mnist_hydra.export.runtimes import LOADERS, require_runtime
from mnist_hydra.export.staging import files, move_into_place, size, staged
from mnist_hydra.runs.artifacts import read_json, write_json
from mnist_hydra.runs.rundir import class_names, load_model, read_config, require_run

__all__ = ["ExportError", "export_run", "mismatch_words", "summary_lines", "test_images", "verify_export"]


def export_run(run_dir: str | os.PathLike[str], fmt: str, limit: int | None = None) -> dict[str, Any]:
    """Write RUN_DIR/export/<fmt>/, check it against model.keras on the run's test images, and
    return the check's record (also written to export.json there).

    Args:
      run_dir: a training run's directory (it holds model.keras).
      fmt: one of FORMATS.
      limit: compare on only the first `limit` test images (default: the run's test set).
    """
    run_dir = Path(run_dir)
    model_path = require_run(run_dir)
    check_format(fmt)
    require_runtime(fmt)
    images, data_name = test_images(run_dir, limit)
    model = load_model(model_path)
    precision = model_precision(model)
    names = list(class_names(run_dir, int(model.output_shape[-1])))
    export_root = run_dir / "export"
    export_root.mkdir(exist_ok=True)
    with staged(export_root, fmt) as staging:
        started = time.perf_counter()
        WRITERS[fmt](float32_copy(model) if precision != "float32" else model, staging, names)
        seconds = time.perf_counter() - started
        record = compare(model, LOADERS[fmt](staging), images, precision, names)
        record.update(
            format=fmt,
            run=str(run_dir.resolve()),
            data=data_name,
            export_seconds=round(seconds, 2),
            files=files(staging),
            bytes=size(staging),
        )
        write_json(staging / "export.json", record)
        if not record["passed"]:
            raise ExportError(
                f"format={fmt}: the export does not match model.keras ({mismatch_words(record)}); nothing was replaced"
            )
        move_into_place(staging, export_root / fmt)
    record["path"] = str(export_root / fmt)
    return record


def verify_export(run_dir: str | os.PathLike[str], fmt: str, limit: int | None = None) -> dict[str, Any]:
    """Check an existing RUN_DIR/export/<fmt>/ against model.keras again; the record, `passed` saying how it went."""
    run_dir = Path(run_dir)
    model_path = require_run(run_dir)
    check_format(fmt)
    folder = run_dir / "export" / fmt
    if not folder.is_dir():
        raise ExportError(
            f"format={fmt}: {folder} does not exist; export it first with "
            f"python -m mnist_hydra.export run={run_dir} format={fmt}"
        )
    require_runtime(fmt)
    images, data_name = test_images(run_dir, limit)
    model = load_model(model_path)
    try:
        runtime = LOADERS[fmt](folder)
    except Exception as err:  # a truncated or tampered file fails to load: that is a failed check, not a bug
        raise ExportError(f"format={fmt}: {folder} cannot be loaded ({short_reason(err)})") from err
    names = list(class_names(run_dir, int(model.output_shape[-1])))
    recorded = read_json(folder / "export.json").get("class_names")
    if runtime.class_names is None and recorded is not None:  # no names inside the export: those beside it
        runtime = dataclasses.replace(runtime, class_names=recorded)
    record = compare(model, runtime, images, model_precision(model), names)
    record.update(
        format=fmt,
        run=str(run_dir.resolve()),
        data=data_name,
        files=files(folder),
        bytes=size(folder),
        path=str(folder),
    )
    return record


def test_images(run_dir: Path, limit: int | None) -> tuple[np.ndarray, str]:
    """The run's own test images, float32 (n, 28, 28, 1) in [0, 1] as the model was scored on, and the data's name."""
    from mnist_hydra.config import typed_group
    from mnist_hydra.data.splits import load_splits

    data = typed_group("data", dict(read_config(run_dir)["data"]))
    splits = load_splits(data, seed=0)  # the seed picks only the validation split
    x = splits.x_test[:limit] if limit else splits.x_test
    return x[..., np.newaxis].astype(np.float32) / np.float32(255), data.name


def summary_lines(record: dict[str, Any]) -> list[str]:
    """What the export command prints: where, how big, the comparison, the latency."""
    files = ", ".join(f"{name} {size / 1e6:.2f} MB" for name, size in record["files"].items() if size > 100_000)
    verdict = "PASSED" if record["passed"] else "FAILED"
    latency, keras_latency = record["latency_ms"], record["keras_latency_ms"]
    return [
        f"{record['path']}: {record['bytes'] / 1e6:.2f} MB ({files}); {record['runtime']} {record['runtime_version']}",
        f"{record['images']} {record['data']} test images: same class for {record['same_class']} of {record['images']}, "
        f"max |probability difference| {record['max_abs_probability_difference']:.2g} (tolerance "
        f"{record['tolerance']:.0e} for {record['precision']}): {verdict}",
        f"single-image latency: median {latency['median']:.3f} ms, p99 {latency['p99']:.3f} ms "
        f"(model.keras through tf.function: median {keras_latency['median']:.3f} ms)",
    ]
