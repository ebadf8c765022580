"""The augment group: Keras's random layers at the model's input, on in training only, none by default."""

from __future__ import annotations

import numpy as np
import pytest

from mnist_hydra.config import validate
from mnist_hydra.errors import FieldError
from mnist_hydra.models.augment import AugmentConfig, augmentation_layers, with_augmentation
from mnist_hydra.models.networks import MODELS, CNNConfig, DeepCNNConfig, ResNetConfig
from tests.conftest import CONF_DIR

LAYERS = ["RandomFlip", "RandomTranslation", "RandomRotation", "RandomZoom", "RandomContrast"]


def test_the_group_holds_none_digits_and_photos():
    assert {p.stem for p in (CONF_DIR / "augment").glob("*.yaml")} == {"none", "digits", "photos"}


def test_the_default_is_none_and_adds_no_layer(compose_config):
    config = validate(compose_config())
    assert config.augment == AugmentConfig(name="none") and not config.augment.active
    assert augmentation_layers(config.augment) == []
    network = MODELS.get("cnn")(CNNConfig(), (28, 28, 1), 10)
    assert with_augmentation(network, []) is network


@pytest.mark.parametrize(
    "option, layers",
    [
        ("digits", ["RandomTranslation", "RandomRotation"]),
        ("photos", ["RandomFlip", "RandomTranslation", "RandomZoom", "RandomContrast"]),
    ],
)
def test_each_preset_builds_its_layers(compose_config, option, layers):
    config = validate(compose_config(f"augment={option}"))
    assert config.augment.name == option
    assert [type(layer).__name__ for layer in augmentation_layers(config.augment)] == layers


def test_every_key_reaches_its_layer(compose_config):
    config = validate(
        compose_config(
            "augment.flip=vertical",
            "augment.shift=0.2",
            "augment.rotation=30",
            "augment.zoom=0.3",
            "augment.contrast=0.4",
            "augment.fill_mode=nearest",
        )
    )
    flip, shift, rotation, zoom, contrast = augmentation_layers(config.augment)
    assert [type(layer).__name__ for layer in (flip, shift, rotation, zoom, contrast)] == LAYERS
    assert flip.mode == "vertical"
    assert (shift.height_factor, shift.width_factor, shift.fill_mode) == (0.2, 0.2, "nearest")
    assert rotation.factor == pytest.approx((-30 / 360, 30 / 360))
    assert zoom.height_factor == 0.3 and tuple(contrast.value_range) == (0.0, 1.0)


def test_a_sequential_network_gets_the_layers_at_its_top_level():
    stack = augmentation_layers(AugmentConfig(shift=0.1, rotation=10))
    network = MODELS.get("cnn_deep")(DeepCNNConfig(), (28, 28, 1), 10)
    model = with_augmentation(network, stack)
    assert [type(layer).__name__ for layer in model.layers[:3]] == ["RandomTranslation", "RandomRotation", "Conv2D"]
    assert model.name == "cnn_deep" and model.count_params() == network.count_params()


def test_a_functional_network_is_called_after_the_layers():
    network = MODELS.get("resnet")(ResNetConfig(width=4, depth=1, stages=2), (32, 32, 3), 5)
    model = with_augmentation(network, augmentation_layers(AugmentConfig(flip="horizontal", contrast=0.2)))
    assert [type(layer).__name__ for layer in model.layers] == ["RandomFlip", "RandomContrast", "Functional"]
    assert model(np.zeros((2, 32, 32, 3), "float32")).shape == (2, 5)


def test_layers_are_identity_at_inference_and_random_in_training():
    import keras

    keras.utils.set_random_seed(1)
    stack = augmentation_layers(
        AugmentConfig(flip="horizontal", shift=0.2, rotation=20, zoom=0.2, contrast=0.3, fill_mode="reflect")
    )
    augment = keras.Sequential([keras.Input((32, 32, 3)), *stack])
    x = np.random.default_rng(0).uniform(0, 1, (4, 32, 32, 3)).astype("float32")
    np.testing.assert_array_equal(np.asarray(augment(x, training=False)), x)
    changed = np.asarray(augment(x, training=True))
    assert not np.allclose(changed, x)
    assert changed.min() >= -1e-6 and changed.max() <= 1 + 1e-6  # contrast knows the input is on [0, 1]


def test_best_composes_the_digit_augmentation_it_always_had(compose_config):
    config = validate(compose_config("+experiment=best"))
    assert (config.augment.shift, config.augment.rotation, config.augment.zoom) == (0.1, 10, 0)
    assert (config.augment.flip, config.augment.fill_mode) == ("none", "constant")


@pytest.mark.parametrize(
    "override",
    [
        "augment.rotation=400",
        "augment.rotation=-5",
        "augment.zoom=-0.1",
        "augment.shift=0.8",
        "augment.contrast=1.5",
        "augment.flip=diagonal",
        "augment.fill_mode=mirror",
    ],
)
def test_nonsense_values_name_their_key(compose_config, override):
    key, _, value = override.partition("=")
    with pytest.raises(FieldError, match=rf"^{key}={value}(\.0)? is not allowed: expected "):
        validate(compose_config(override))
