"""tf.data input pipelines: images stay uint8 in memory and become floats one batch at a time."""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def scale_images(images: tf.Tensor) -> tf.Tensor:
    """A batch of uint8 images, (n, height, width) grey or (n, height, width, channels), as float32
    (n, height, width, channels) in [0, 1]: the model's input."""
    scaled = tf.cast(images, tf.float32)
    return (scaled[..., tf.newaxis] if images.shape.rank == 3 else scaled) / 255.0


def make_dataset(images: np.ndarray, labels: np.ndarray, batch_size: int) -> tf.data.Dataset:
    """Batches of (scaled images, labels) in their stored order: for validation, testing and prediction."""
    dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(batch_size)
    return _finish(dataset.map(_scale_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True))


def make_training_dataset(
    images: np.ndarray, labels: np.ndarray, batch_size: int, seed: int, first_epoch: int, epochs: int
) -> tf.data.Dataset:
    """Epochs `first_epoch` to `epochs - 1` back to back, each in its own order, seeded by (seed, epoch).

    Fit it with steps_per_epoch = ceil(len(images) / batch_size). Each epoch's order depends on its
    number alone, not on how many epochs this process has read before, so a run resumed at epoch k
    sees the same batches as one that never stopped.
    """
    images_t, labels_t = tf.constant(images), tf.constant(labels)
    count = len(images)

    def epoch_batches(epoch: tf.Tensor) -> tf.data.Dataset:
        order = tf.random.experimental.stateless_shuffle(
            tf.range(count, dtype=tf.int64), seed=tf.stack([tf.constant(seed, tf.int64), epoch])
        )
        return tf.data.Dataset.from_tensor_slices(order).batch(batch_size)

    batches = tf.data.Dataset.range(first_epoch, epochs).flat_map(epoch_batches)
    # Gathering one batch of indices is one op per batch, and keeps the copy in memory uint8.
    dataset = batches.map(
        lambda index: _scale_batch(tf.gather(images_t, index), tf.gather(labels_t, index)),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    return _finish(dataset)


def _scale_batch(images: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    return scale_images(images), labels


def _finish(dataset: tf.data.Dataset) -> tf.data.Dataset:
    options = tf.data.Options()
    # No autotuning: its optimisation thread sleeps between passes for a period that doubles up to a minute, and
    # destroying the iterator (when fit, evaluate or predict returns) waited for that sleep to end: 1-10 s after
    # predict, and 24-40 s of idle process after the last epoch in 6 of 9 benchmark runs. The AUTOTUNE values in
    # map and prefetch then mean one call per core and a small fixed buffer, ahead of a step that takes far longer.
    options.autotune.enabled = False
    # In-memory arrays have no files to split between the workers of a multi-worker run (AUTO would warn and
    # fall back): each worker reads the same seeded order and keeps its own share of every global batch.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options).prefetch(tf.data.AUTOTUNE)
