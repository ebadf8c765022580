"""TensorFlow's thread pools for one run: how many cores an op may use, and how many ops run side by side."""

from __future__ import annotations

import logging

import tensorflow as tf

log = logging.getLogger(__name__)


def inter_op_threads(setting: int | None, strategy: str) -> int | None:
    """trainer.inter_op_threads as set; null: one op at a time on one device, TensorFlow's own choice otherwise.

    On two cores, two ops side by side that each want both cores mostly spin waiting for each other: one at a
    time took 8% less CPU an epoch for the default config and 20% less for trainer=fastest (measured on a busy
    machine), with the same figures (op determinism). A distributed run keeps TensorFlow's default: its
    collective ops wait on the other replicas and must not hold the only slot.
    """
    if setting is not None:
        return setting
    return 1 if strategy == "default" else None


def set_threads(threads: int | None, inter_op_threads: int | None = None, inter_op_chosen: bool = True) -> None:
    """Cap TensorFlow's thread pools, so parallel jobs share the machine instead of oversubscribing it.

    `inter_op_threads` caps how many ops run side by side (null = `threads`), each op still splitting its work
    over `threads`. Once TensorFlow has run an op the pools are fixed: a later job in the same process warns
    when its own setting cannot take effect, but not about an inter-op count it did not choose
    (`inter_op_chosen=False`: trainer.inter_op_threads=null's one-at-a-time is a speed preference).
    """
    count = threads or 0  # 0 lets TensorFlow use every core
    inter = inter_op_threads or count
    try:
        tf.config.threading.set_intra_op_parallelism_threads(count)
        tf.config.threading.set_inter_op_parallelism_threads(inter)
    except RuntimeError:
        # The pools are fixed once TensorFlow has run an op: a later job in the same process keeps them.
        current = (
            tf.config.threading.get_intra_op_parallelism_threads(),
            tf.config.threading.get_inter_op_parallelism_threads(),
        )
        if current[0] != count or (inter_op_chosen and current[1] != inter):
            log.warning(
                "trainer.threads=%s, trainer.inter_op_threads=%s cannot take effect: TensorFlow already runs "
                "with %s intra-op and %s inter-op threads in this process",
                threads,
                inter_op_threads,
                current[0] or "all cores",
                current[1] or "all cores",
            )
