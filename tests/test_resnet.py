"""model=resnet: a small residual network that builds from the data's shape and learns colour images."""

from __future__ import annotations

import numpy as np
import pytest

from mnist_hydra.errors import FieldError
from mnist_hydra.models.networks import MODELS, ResNetConfig


@pytest.mark.parametrize("shape", [(32, 32, 3), (64, 64, 3), (28, 28, 1)])
def test_resnet_builds_from_the_shape_it_is_given(shape):
    model = MODELS.get("resnet")(ResNetConfig(), shape, 7)
    assert tuple(model.input_shape[1:]) == shape
    probabilities = np.asarray(model(np.zeros((1, *shape), dtype="float32")))
    assert probabilities.shape == (1, 7)
    np.testing.assert_allclose(probabilities.sum(), 1.0, rtol=1e-5)


def test_the_default_is_resnet20_with_274042_parameters(compose_config):
    from mnist_hydra.config import validate

    config = validate(compose_config("model=resnet"))
    assert config.model == ResNetConfig(name="resnet", width=16, depth=3, stages=3, dropout=0.0)
    model = MODELS.get("resnet")(config.model, (32, 32, 3), 10)
    assert model.count_params() == 274_042
    # 1 stem conv + 3 stages x 3 blocks x 2 convs + 1 dense = ResNet-20's 20 weighted layers (+ 2 projections).
    names = [type(layer).__name__ for layer in model.layers]
    assert names.count("Conv2D") == 1 + 3 * 3 * 2 + 2
    assert names.count("Add") == 9 and names[-2:] == ["GlobalAveragePooling2D", "Dense"]


def test_width_and_depth_set_the_size():
    small = MODELS.get("resnet")(ResNetConfig(width=8, depth=1, stages=2), (32, 32, 3), 10)
    names = [type(layer).__name__ for layer in small.layers]
    assert names.count("Add") == 2 and small.output_shape == (None, 10)
    assert (
        small.count_params()
        < MODELS.get("resnet")(ResNetConfig(width=8, depth=2, stages=2), (32, 32, 3), 10).count_params()
    )


def test_too_many_stages_for_the_image_is_one_line():
    ResNetConfig(stages=4).check_shape((8, 8, 3))  # 8 -> 4 -> 2 -> 1 px
    with pytest.raises(FieldError, match=r"at most 4 stages, for the data's 8x8 .*images, each after the first"):
        ResNetConfig(stages=5).check_shape((8, 8, 3))


@pytest.mark.parametrize("field, value", [("width", 0), ("depth", 0), ("stages", 0), ("stages", 6), ("dropout", 1.0)])
def test_out_of_range_settings_name_their_key(field, value):
    with pytest.raises(FieldError, match=rf"^{field}={value} is not allowed"):
        ResNetConfig(**{field: value}).check()


def test_two_epochs_learn_classes_told_by_colour():
    """Each class a colour, on noise and at random brightness: a learnable set a broken network cannot fit."""
    import keras

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    colours = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0]], np.float32)
    labels = rng.integers(0, len(colours), 512)
    brightness = rng.uniform(0.5, 1.0, (512, 1, 1, 1)).astype(np.float32)
    images = colours[labels][:, None, None, :] * brightness + rng.normal(0, 0.1, (512, 32, 32, 3)).astype(np.float32)
    model = MODELS.get("resnet")(ResNetConfig(width=8, depth=1, stages=2), (32, 32, 3), len(colours))
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(images, labels, batch_size=32, epochs=2, verbose=0)
    test_labels = rng.integers(0, len(colours), 200)
    test = colours[test_labels][:, None, None, :] * 0.75 + rng.normal(0, 0.1, (200, 32, 32, 3)).astype(np.float32)
    _, accuracy = model.evaluate(test, test_labels, verbose=0)
    assert accuracy >= 0.95
