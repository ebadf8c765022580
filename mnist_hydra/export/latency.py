"""Single-image latency: of an export in its runtime, and of model.keras as the server calls it."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import keras

LATENCY_CALLS = 200  # single-image calls timed, after a warm-up
WARM_UP_CALLS = 20


def compiled(model: keras.Model) -> Callable[[np.ndarray], np.ndarray]:
    """model.keras as the server calls it: one concrete tf.function."""
    import tensorflow as tf

    spec = tf.TensorSpec((None, 28, 28, 1), tf.float32)
    call = tf.function(lambda x: model(x, training=False), input_signature=[spec]).get_concrete_function()
    return lambda x: call(tf.constant(x)).numpy()


def latency(predict: Callable[[np.ndarray], np.ndarray], image: np.ndarray) -> dict[str, float]:
    """Median and 99th percentile of single-image calls, in milliseconds."""
    if not len(image):
        return {"median": float("nan"), "p99": float("nan")}
    for _ in range(WARM_UP_CALLS):
        predict(image)
    times = []
    for _ in range(LATENCY_CALLS):
        start = time.perf_counter()
        predict(image)
        times.append(time.perf_counter() - start)
    return {"median": round(float(np.median(times)) * 1e3, 4), "p99": round(float(np.percentile(times, 99)) * 1e3, 4)}
