"""Mixed precision (trainer.precision): auto's choice, the model's per-layer compute dtype, loss scaling for float16."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import keras

# Keras is imported where a model is made mixed: reading the CPU's flags (the benchmarks do) needs no TensorFlow.
log = logging.getLogger(__name__)

# CPU flags (Linux's names) of bf16 arithmetic in hardware, the faster first.
BF16_CPU_FLAGS = (("amx_bf16", "AMX-BF16"), ("avx512_bf16", "AVX-512-BF16"))
CPU_INFO = Path("/proc/cpuinfo")


def resolve_precision(precision: str) -> str:
    """trainer.precision as set; for auto, mixed_bfloat16 where the hardware computes in bf16 (a GPU of compute
    capability 8.0 or later, a CPU with AMX-BF16 or AVX-512-BF16) and float32 elsewhere, where bf16 is emulated
    and slower than float32 (docs/performance.md)."""
    if precision != "auto":
        return precision
    device = bf16_device()
    chosen = "mixed_bfloat16" if device else "float32"
    log.info("precision: auto chose %s (%s)", chosen, device or "no bf16 arithmetic in this CPU or a GPU")
    return chosen


def bf16_device() -> str | None:
    """What computes bf16 in hardware here ("GPU ...", "AMX-BF16", ...), or None."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:  # TensorFlow runs on the GPU then: its capability decides
        details = tf.config.experimental.get_device_details(gpus[0])
        capability = details.get("compute_capability") or (0, 0)
        return f"GPU {details.get('device_name', gpus[0].name)}" if tuple(capability) >= (8, 0) else None
    flags = cpu_flags()
    return next((name for flag, name in BF16_CPU_FLAGS if flag in flags), None)


def cpu_flags() -> set[str]:
    """The CPU's feature flags as Linux lists them; none known elsewhere (auto then keeps float32)."""
    try:
        text = CPU_INFO.read_text(encoding="ascii", errors="replace")
    except OSError:
        return set()
    line = next((line for line in text.splitlines() if line.startswith("flags")), "")
    return set(line.partition(":")[2].split())


def with_precision(model: keras.Model, precision: str) -> keras.Model:
    """`model` itself for float32; for a mixed policy, a copy whose layers compute in it, all but the output layer.

    The output layer stays float32, as the Keras mixed-precision guide advises: its softmax is where
    bf16's 8-bit mantissa would blur probabilities near 0 and 1, and it costs next to nothing. The copy
    starts from the same weights, so a mixed run and a float32 run begin at the same point. No global
    policy is set, so nothing carries over to a later job in the same process.
    """
    if precision == "float32":
        return model
    import keras

    output = model.layers[-1]

    def clone(layer: keras.layers.Layer) -> keras.layers.Layer:
        dtype = "float32" if layer is output else precision
        return layer.__class__.from_config({**layer.get_config(), "dtype": dtype})

    mixed = keras.models.clone_model(model, clone_function=clone)
    mixed.set_weights(model.get_weights())
    return mixed


def with_loss_scaling(optimizer: keras.optimizers.Optimizer, precision: str) -> keras.optimizers.Optimizer:
    """For mixed_float16, `optimizer` inside Keras's dynamic LossScaleOptimizer; otherwise `optimizer` itself.

    float16's 5-bit exponent flushes small gradients to zero, so the loss is scaled up before the backward
    pass and the gradients down after it (bf16 has float32's exponent and needs none). Keras's compile() only
    does this when the *model's* policy is mixed_float16; with_precision sets the policy per layer and leaves
    the model's float32, so it is done here. The wrapper is saved with the model: a resumed run keeps its scale.
    """
    if precision != "mixed_float16":
        return optimizer
    import keras

    return keras.optimizers.LossScaleOptimizer(optimizer)
