"""Whether an export computes what model.keras computes: the same class per image, probabilities within a
tolerance, the same class names."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from mnist_hydra.export.formats import ExportError
from mnist_hydra.export.latency import compiled, latency
from mnist_hydra.export.runtimes import Runtime

if TYPE_CHECKING:
    import keras

# The largest absolute difference of a class probability between an export and model.keras.
# float32: the same arithmetic in another order (observed: under 2e-6). mixed_bfloat16: the original
# computes in bf16 (8-bit mantissa, relative error 2^-8 per operation), the export in float32
# (observed: under 7e-3 on MNIST's test set); near-ties closer than the tolerance may change class.
TOLERANCES = {"float32": 1e-4, "mixed_bfloat16": 2e-2}
BATCH = 256  # images per call when comparing


def compare(
    model: keras.Model, runtime: Runtime, images: np.ndarray, precision: str, names: list[str] | None = None
) -> dict[str, Any]:
    """model.keras and the export on the same images: classes, probability differences, latency; and the class
    names the export carries against the run's `names`."""
    reference = np.asarray(model.predict(images, batch_size=BATCH, verbose=0), dtype=np.float64)
    exported = np.concatenate(
        [np.asarray(runtime.predict(images[i : i + BATCH]), dtype=np.float64) for i in range(0, len(images), BATCH)]
    )
    tolerance = TOLERANCES[precision]
    if exported.shape != reference.shape:
        raise ExportError(f"the export returns shape {exported.shape[1:]} per batch, model.keras {reference.shape[1:]}")
    same = reference.argmax(axis=1) == exported.argmax(axis=1)
    top_two = np.sort(reference, axis=1)[:, -2:]
    near_ties = (top_two[:, 1] - top_two[:, 0]) <= tolerance
    # float32: every image must keep its class. bf16: a near tie in the original may flip.
    class_ok = bool(same.all()) if precision == "float32" else bool(same[~near_ties].all())
    difference = float(np.abs(reference - exported).max()) if len(images) else 0.0
    names_ok = runtime.class_names is None or names is None or list(runtime.class_names) == list(names)
    return {
        "runtime": runtime.name,
        "runtime_version": runtime.version,
        "precision": precision,
        "images": int(len(images)),
        "same_class": int(same.sum()),
        "different_class": int((~same).sum()),
        "max_abs_probability_difference": difference,
        "tolerance": tolerance,
        "passed": class_ok and difference <= tolerance and names_ok,
        "class_names": names,
        "class_names_match": names_ok,
        "latency_ms": latency(runtime.predict, images[:1]),
        "keras_latency_ms": latency(compiled(model), images[:1]),
    }


def mismatch_words(record: dict[str, Any]) -> str:
    """'3 of 1000 images change class, max |probability difference| 0.41 > 1e-04'."""
    parts = []
    if record["different_class"]:
        parts.append(f"{record['different_class']} of {record['images']} images change class")
    if not record.get("class_names_match", True):
        parts.append("its class names are not the run's")
    difference, tolerance = record["max_abs_probability_difference"], record["tolerance"]
    if np.isnan(difference):
        parts.append("it computes NaN probabilities")
    else:
        parts.append(
            f"max |probability difference| {difference:.2g} {'>' if difference > tolerance else '<='} {tolerance:.0e}"
        )
    return ", ".join(parts)
