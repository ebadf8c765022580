"""A run's fresh start: Keras's state cleared and every random number generator seeded."""

from __future__ import annotations

import keras
import tensorflow as tf


def seed_everything(seed: int, deterministic: bool) -> None:
    """Fresh Keras state and seeded RNGs, so each job of a one-process sweep starts the same way."""
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)  # Python, NumPy and TensorFlow
    if deterministic:
        tf.config.experimental.enable_op_determinism()
