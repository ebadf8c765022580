"""Adam's fused update kernel: Keras's formula, the saved model still plain Keras, other optimizers untouched."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from mnist_hydra.models.optimizers import fuse_adam_update  # noqa: E402


def _train(optimizer: keras.optimizers.Optimizer) -> tuple[list[np.ndarray], keras.Model]:
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((20,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(3)])
    model.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = np.random.default_rng(1).normal(size=(256, 20)).astype("float32")
    y = (x[:, 0] > 0).astype("int32") + (x[:, 1] > 0)
    model.fit(x, y, epochs=3, batch_size=32, verbose=0, shuffle=False)
    return model.get_weights(), model


@pytest.mark.parametrize(
    "make",
    [lambda: keras.optimizers.Adam(1e-2), lambda: keras.optimizers.AdamW(1e-2, weight_decay=0.01)],
    ids=["adam", "adamw"],
)
def test_fused_step_follows_keras_adam_to_float32_rounding(make):
    plain, _ = _train(make())
    fused, _ = _train(fuse_adam_update(make()))
    gaps = [float(np.abs(a - b).max()) for a, b in zip(plain, fused, strict=False)]
    # Not bit for bit (1 - beta_1 is rounded differently), but 24 steps later still within float32 noise...
    assert max(gaps) < 1e-5, gaps
    # ...and the fused kernel really ran: Keras's own ops would have given the very same bits.
    assert max(gaps) > 0


def test_fused_model_saves_as_plain_keras_adam(tmp_path):
    _, model = _train(fuse_adam_update(keras.optimizers.Adam(1e-2)))
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")  # no mnist_hydra class needed to load it
    assert type(loaded.optimizer) is keras.optimizers.Adam
    assert int(loaded.optimizer.iterations.numpy()) == 24


@pytest.mark.parametrize(
    "make", [lambda: keras.optimizers.SGD(0.1), lambda: keras.optimizers.Adam(amsgrad=True)], ids=["sgd", "amsgrad"]
)
def test_other_optimizers_keep_their_own_step(make):
    optimizer = make()
    fuse_adam_update(optimizer)
    assert "update_step" not in vars(optimizer)


def test_fused_step_reaches_the_optimizer_inside_loss_scaling():
    inner = keras.optimizers.Adam()
    fuse_adam_update(keras.optimizers.LossScaleOptimizer(inner))
    assert "update_step" in vars(inner)
