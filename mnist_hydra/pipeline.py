"""tf.data input pipelines: images stay uint8 in memory and become floats one batch at a time."""

from __future__ import annotations

from typing import Optional

import numpy as np
import tensorflow as tf


def scale_images(images: tf.Tensor) -> tf.Tensor:
    """uint8 (..., 28, 28) -> float32 (..., 28, 28, 1) in [0, 1]: the model's input."""
    return tf.cast(images, tf.float32)[..., tf.newaxis] / 255.0


def make_dataset(
    images: np.ndarray, labels: np.ndarray, batch_size: int, shuffle_seed: Optional[int] = None
) -> tf.data.Dataset:
    """Batches of (scaled images, labels); reshuffled each epoch from `shuffle_seed` when given."""
    dataset = tf.data.Dataset.from_tensor_slices((images, labels))
    if shuffle_seed is not None:
        dataset = dataset.shuffle(len(images), seed=shuffle_seed, reshuffle_each_iteration=True)
    # Scaling whole batches is one op per batch instead of one per image.
    dataset = dataset.batch(batch_size).map(
        lambda x, y: (scale_images(x), y), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    )
    options = tf.data.Options()
    # In-memory arrays have no files to split between the workers of a multi-worker run (AUTO would warn and
    # fall back): each worker reads the same seeded order and keeps its own share of every global batch.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options).prefetch(tf.data.AUTOTUNE)
