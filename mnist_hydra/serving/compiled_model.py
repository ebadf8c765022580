"""A run's model, loaded once and called through one compiled TensorFlow function."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mnist_hydra.data.digits import FIELD
from mnist_hydra.errors import UserError
from mnist_hydra.runs.rundir import class_names, load_model, require_run
from mnist_hydra.serving.served_run import read_served_run

INPUT_SHAPE = (FIELD, FIELD, 1)
# Batches are padded to the next of these sizes (then to a multiple of the largest): TensorFlow's
# oneDNN kernels are built once per input shape, and a first call with a new shape takes 30-100 ms.
# With a handful of shapes, all built at start-up, no request pays for that.
BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Predictor:
    """Probabilities for batches of 28x28 images from a run's model.keras.

    The model is called through one concrete `tf.function` (traced once, batch dimension free): no
    retracing and no Keras `predict` loop per call. Batches are zero-padded to BUCKETS sizes.
    """

    def __init__(self, run_dir: str | os.PathLike[str], threads: int | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.model_path = require_run(self.run_dir)  # a wrong path fails before TensorFlow loads
        if threads is not None:
            _limit_threads(threads)
        model = load_model(self.model_path)
        if tuple(model.input_shape[1:]) != INPUT_SHAPE or len(model.output_shape) != 2:
            raise UserError(
                f"run={self.run_dir}: its model maps {model.input_shape[1:]} to {model.output_shape[1:]}; "
                f"serving needs a classifier of {INPUT_SHAPE} images"
            )
        import tensorflow as tf

        self.num_classes = int(model.output_shape[-1])
        self.class_names: tuple[str, ...] = tuple(class_names(self.run_dir, self.num_classes))
        self.info: dict[str, Any] = {
            **read_served_run(self.run_dir, self.model_path),
            "params": int(model.count_params()),
            "class_names": list(self.class_names),
        }
        spec = tf.TensorSpec((None, *INPUT_SHAPE), tf.float32, name="images")
        self._call = tf.function(
            lambda images: model(images, training=False), input_signature=[spec]
        ).get_concrete_function()
        self._model = model  # the concrete function holds the variables weakly
        self._tf = tf
        for size in BUCKETS:  # build every shape's kernels now
            self.predict(np.zeros((size, FIELD, FIELD), np.float32))

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Probabilities float32 (n, classes) for float32 images (n, 28, 28) in [0, 1]."""
        images = np.asarray(images, dtype=np.float32).reshape(-1, *INPUT_SHAPE)
        n = len(images)
        size = next((b for b in BUCKETS if b >= n), -(-n // BUCKETS[-1]) * BUCKETS[-1])
        batch = np.zeros((size, *INPUT_SHAPE), np.float32)
        batch[:n] = images
        return np.asarray(self._call(self._tf.constant(batch)), dtype=np.float32)[:n]


def _limit_threads(threads: int) -> None:
    """TensorFlow's intra- and inter-op pools at `threads` each: a model call of a few milliseconds gains
    little from more, and idle pool threads spin, taking CPU the server's event loop needs."""
    from mnist_hydra.tf_runtime import import_tensorflow

    tf = import_tensorflow()  # a worker process's first import: without TensorFlow's start-up lines

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:  # TensorFlow already ran something in this process (a test): keep its pools
        pass


def describe(probabilities: np.ndarray, class_names: Sequence[str], top_k: int) -> dict[str, Any]:
    """One image's prediction: label, class name, its probability, every probability, the top_k classes."""
    probs = [float(p) for p in probabilities]
    order = np.argsort(-np.asarray(probabilities), kind="stable")[:top_k]
    top = [{"label": int(i), "class_name": class_names[i], "probability": probs[i]} for i in order]
    return {**top[0], "probabilities": probs, "top_k": top}
