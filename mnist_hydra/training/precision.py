"""Mixed precision (trainer.precision): the model's per-layer compute dtype, and loss scaling for float16."""

from __future__ import annotations

import keras


def with_precision(model: keras.Model, precision: str) -> keras.Model:
    """`model` itself for float32; for a mixed policy, a copy whose layers compute in it, all but the output layer.

    The output layer stays float32, as the Keras mixed-precision guide advises: its softmax is where
    bf16's 8-bit mantissa would blur probabilities near 0 and 1, and it costs next to nothing. The copy
    starts from the same weights, so a mixed run and a float32 run begin at the same point. No global
    policy is set, so nothing carries over to a later job in the same process.
    """
    if precision == "float32":
        return model
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
    return keras.optimizers.LossScaleOptimizer(optimizer)
