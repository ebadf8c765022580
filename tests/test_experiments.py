"""Experiment presets compose and validate; augmentation acts only in training; lr schedules span the run."""

from __future__ import annotations

import numpy as np
import pytest

from mnist_hydra.config import validate
from mnist_hydra.errors import ConfigError, FieldError
from mnist_hydra.models.augment import AugmentConfig, augmentation_layers, with_augmentation
from mnist_hydra.models.networks import MODELS, DeepCNNConfig
from mnist_hydra.models.optimizers import OPTIMIZERS, AdamConfig, AdamWConfig, build_schedule
from tests.conftest import CONF_DIR

EXPERIMENTS = ("best", "fashion", "reference_fast", "seed_reference", "speedrun")
AUGMENTATION = ("RandomTranslation", "RandomRotation", "RandomZoom")


def test_conf_dir_holds_exactly_the_expected_experiments():
    assert {p.stem for p in (CONF_DIR / "experiment").glob("*.yaml")} == set(EXPERIMENTS)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_composes_and_validates(compose_config, name):
    config = validate(compose_config(f"+experiment={name}"))
    assert config.seed == 0


def test_seed_reference_is_the_defaults_validated_on_the_test_set(compose_config):
    reference = validate(compose_config("+experiment=seed_reference"))
    defaults = validate(compose_config())
    assert reference.data.val_split == 0.0
    assert (reference.model, reference.optimizer, reference.trainer) == (
        defaults.model,
        defaults.optimizer,
        defaults.trainer,
    )
    assert reference.model.name == "cnn" and reference.optimizer == AdamConfig(lr=1e-3)
    assert (reference.trainer.epochs, reference.trainer.batch_size) == (10, 64)


def test_best_trains_an_augmented_deep_cnn_with_a_cosine_schedule_and_a_held_out_validation_set(compose_config):
    config = validate(compose_config("+experiment=best"))
    assert config.data.name == "mnist" and config.data.val_split == pytest.approx(0.05)
    assert isinstance(config.model, DeepCNNConfig) and config.model.filters == [16, 32]
    assert (config.augment.name, config.augment.shift, config.augment.rotation, config.augment.zoom) == (
        "digits",
        0.1,
        10,
        0,
    )
    assert (config.model.dropout, config.model.dense_dropout) == (0.0, 0.1)
    assert isinstance(config.optimizer, AdamWConfig) and config.optimizer.lr == pytest.approx(2e-3)
    assert config.optimizer.schedule == "cosine"
    assert (config.trainer.epochs, config.trainer.batch_size) == (10, 128)


def test_fashion_trains_an_augmented_deep_cnn_on_fashion_mnist(compose_config):
    config = validate(compose_config("+experiment=fashion"))
    assert config.data.name == "fashion_mnist"
    assert isinstance(config.model, DeepCNNConfig) and config.model.filters == [32, 64]
    assert (config.augment.shift, config.augment.zoom, config.model.dense_dropout) == (0.1, 0, 0.25)
    assert config.augment.rotation == 0  # clothes are photographed upright
    assert isinstance(config.optimizer, AdamWConfig) and config.optimizer.schedule == "cosine"
    assert (config.trainer.epochs, config.trainer.batch_size) == (10, 128)
    assert config.data.val_split == pytest.approx(0.1)


def test_the_command_line_wins_over_an_experiment(compose_config):
    config = validate(compose_config("+experiment=best", "trainer.epochs=1", "augment.rotation=0"))
    assert (config.trainer.epochs, config.augment.rotation) == (1, 0)


def _layer_types(model) -> list[str]:
    return [type(layer).__name__ for layer in model.layers]


def _augmented_deep_cnn(**augment):
    stack = augmentation_layers(AugmentConfig(**augment))  # made first, as training/build.py makes them
    return with_augmentation(MODELS.get("cnn_deep")(DeepCNNConfig(), (28, 28, 1), 10), stack)


def test_augmentation_layers_are_built_only_when_enabled():
    plain = MODELS.get("cnn_deep")(DeepCNNConfig(), (28, 28, 1), 10)
    assert not set(_layer_types(plain)) & set(AUGMENTATION)
    augmented = _augmented_deep_cnn(shift=0.1, rotation=10, zoom=0.1)
    assert _layer_types(augmented)[:3] == list(AUGMENTATION)
    assert augmented.count_params() == plain.count_params()  # augmentation adds no weights
    shift_only = _augmented_deep_cnn(shift=0.1)
    assert [t for t in _layer_types(shift_only) if t in AUGMENTATION] == ["RandomTranslation"]


def test_augmentation_is_identity_at_inference_and_random_in_training():
    import keras

    model = _augmented_deep_cnn(shift=0.2, rotation=20, zoom=0.2)
    x = np.random.default_rng(0).random((4, 28, 28, 1), dtype=np.float32)
    augment = keras.Sequential([layer for layer in model.layers if type(layer).__name__ in AUGMENTATION])
    np.testing.assert_array_equal(np.asarray(augment(x, training=False)), x)
    assert not np.allclose(np.asarray(augment(x, training=True)), x)
    # BatchNorm and dropout are also at inference: the same input gives the same output every time.
    np.testing.assert_array_equal(np.asarray(model(x, training=False)), np.asarray(model(x, training=False)))
    np.testing.assert_array_equal(model.predict(x, verbose=0), np.asarray(model(x, training=False)))


def test_augmentation_is_the_same_for_the_same_seed():
    import keras

    def augmented_batch(seed: int) -> np.ndarray:
        keras.utils.set_random_seed(seed)  # as train.py seeds every run before building the model
        model = _augmented_deep_cnn(shift=0.1, rotation=10, zoom=0.1)
        augment = keras.Sequential([layer for layer in model.layers if type(layer).__name__ in AUGMENTATION])
        return np.asarray(augment(np.ones((2, 28, 28, 1), dtype=np.float32), training=True))

    np.testing.assert_array_equal(augmented_batch(3), augmented_batch(3))
    assert not np.array_equal(augmented_batch(3), augmented_batch(4))


def test_constant_schedule_is_the_plain_learning_rate():
    config = AdamConfig()
    assert build_schedule(config) == 1e-3 and type(build_schedule(config)) is float
    optimizer = OPTIMIZERS.get("adam")(config, total_steps=1000)
    assert float(optimizer.learning_rate) == pytest.approx(1e-3)


def test_cosine_schedule_starts_at_lr_and_ends_at_the_final_fraction():
    config = AdamWConfig(lr=2e-3, schedule="cosine", final_lr_fraction=0.01)
    schedule = build_schedule(config, total_steps=1000)
    assert float(schedule(0)) == pytest.approx(2e-3)
    assert float(schedule(500)) == pytest.approx(2e-3 * (0.01 + 0.99 * 0.5))
    assert float(schedule(1000)) == pytest.approx(2e-5)
    assert float(schedule(5000)) == pytest.approx(2e-5)  # past the end it stays at the floor
    optimizer = OPTIMIZERS.get("adamw")(config, total_steps=1000)
    assert float(optimizer.learning_rate) == pytest.approx(2e-3)  # read at optimizer.iterations = 0
    assert optimizer.weight_decay == pytest.approx(config.weight_decay)
    # Keyed on the step counter, which model.keras saves: a resumed run picks the schedule up where it was.
    optimizer.iterations.assign(750)
    assert float(optimizer.learning_rate) == pytest.approx(float(schedule(750)))


def test_cosine_warmup_rises_from_zero_to_lr_then_decays():
    config = AdamConfig(lr=1e-3, schedule="cosine", warmup_fraction=0.1)
    schedule = build_schedule(config, total_steps=1000)
    assert float(schedule(0)) == 0.0
    assert float(schedule(50)) == pytest.approx(5e-4)
    assert float(schedule(100)) == pytest.approx(1e-3)
    assert float(schedule(1000)) == pytest.approx(0.0, abs=1e-12)


def test_a_schedule_without_the_step_count_is_a_clear_error():
    with pytest.raises(ConfigError, match=r"^optimizer.schedule=cosine needs the run's total step count"):
        OPTIMIZERS.get("adam")(AdamConfig(schedule="cosine"))


@pytest.mark.parametrize(
    "override,key",
    [
        ("augment.shift=-0.1", "augment.shift"),
        ("augment.shift=0.8", "augment.shift"),
        ("augment.rotation=-5", "augment.rotation"),
        ("augment.rotation=200", "augment.rotation"),
        ("augment.zoom=-0.1", "augment.zoom"),
        ("optimizer.schedule=linear", "optimizer.schedule"),
        ("optimizer.final_lr_fraction=1.5", "optimizer.final_lr_fraction"),
        ("optimizer.warmup_fraction=1", "optimizer.warmup_fraction"),
    ],
)
def test_bad_values_are_rejected_in_one_line_naming_the_key(compose_config, override, key):
    with pytest.raises(FieldError) as caught:
        validate(compose_config("+experiment=best", override))
    message = str(caught.value)
    assert message.startswith(f"{key}=") and " is not allowed: expected " in message, message
    assert "\n" not in message


def test_warmup_needs_the_cosine_schedule(compose_config):
    with pytest.raises(FieldError, match=r"^optimizer.warmup_fraction=0.1 is not allowed: expected 0 unless"):
        validate(compose_config("optimizer.warmup_fraction=0.1"))
