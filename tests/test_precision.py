"""trainer.precision=mixed_float16 (for GPUs): float16 layers, a float32 output, and dynamic loss scaling."""

from __future__ import annotations

import json

import numpy as np

from mnist_hydra.config import validate

# The MLP on 1,000 images, validated on 600: float16 on a CPU is slow, and any network shows the policies.
TINY = [
    "model=mlp",
    "trainer.epochs=1",
    "trainer.verbose=0",
    "data.train_limit=1000",
    "data.val_split=0.01",
    "data.test_limit=300",
]


def test_loss_scaling_wraps_only_mixed_float16():
    import keras

    from mnist_hydra.training.precision import with_loss_scaling

    for precision in ("float32", "mixed_bfloat16"):
        adam = keras.optimizers.Adam(1e-3)
        assert with_loss_scaling(adam, precision) is adam
    wrapped = with_loss_scaling(keras.optimizers.Adam(1e-3), "mixed_float16")
    assert isinstance(wrapped, keras.optimizers.LossScaleOptimizer)


def test_mixed_float16_trains_and_saves_its_loss_scale(compose_config, mnist_dir, tmp_path):
    """It trains (on a CPU too, where TensorFlow falls back to Eigen's float16 kernels) and model.keras keeps
    the float16 layers, the float32 output layer and the loss-scaling optimizer, so a resume goes on alike."""
    import keras

    from mnist_hydra.training.run import train_and_evaluate

    config = validate(compose_config(*TINY, f"data.root={mnist_dir}", "trainer.precision=mixed_float16"))
    workdir = tmp_path / "run"
    metrics = train_and_evaluate(config, workdir)
    assert metrics["status"] == "completed" and metrics["test_accuracy"] > 0.5
    assert np.isfinite(metrics["history"]["loss"]).all()
    assert json.loads((workdir / "metrics.json").read_text())["status"] == "completed"
    model = keras.models.load_model(workdir / "model.keras")
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert model.layers[0].dtype_policy.name == "mixed_float16"
    assert model.layers[-1].dtype_policy.name == "float32"
    assert model.predict(np.zeros((2, 28, 28, 1), "float32"), verbose=0).dtype == np.float32
