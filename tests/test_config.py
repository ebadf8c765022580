"""Every option of every group composes, validates and builds; the defaults are the reference."""

from __future__ import annotations

import pytest

from mnist_hydra.config import TrainerConfig, validate
from mnist_hydra.data.cifar import CifarConfig
from mnist_hydra.data.csv_table import CsvConfig
from mnist_hydra.data.folder import FolderConfig
from mnist_hydra.data.idx_set import IdxConfig
from mnist_hydra.data.mnist import DataConfig
from mnist_hydra.errors import ConfigError, FieldError
from mnist_hydra.models.networks import MODELS, CNN2Config, CNNConfig, DeepCNNConfig, MLPConfig, ResNetConfig
from mnist_hydra.models.optimizers import OPTIMIZERS, AdamConfig, AdamWConfig, RMSpropConfig, SGDConfig
from tests.conftest import CONF_DIR

OPTIONS = {
    "data": {
        "mnist": DataConfig,
        "fashion_mnist": DataConfig,
        "folder": FolderConfig,
        "csv": CsvConfig,
        "idx": IdxConfig,
        "cifar": CifarConfig,
    },
    "model": {
        "cnn": CNNConfig,
        "cnn2": CNN2Config,
        "cnn_deep": DeepCNNConfig,
        "mlp": MLPConfig,
        "resnet": ResNetConfig,
    },
    "optimizer": {"adam": AdamConfig, "adamw": AdamWConfig, "sgd": SGDConfig, "rmsprop": RMSpropConfig},
    "trainer": {"default": TrainerConfig, "fast": TrainerConfig, "fastest": TrainerConfig},
}
ALL_OPTIONS = [(group, option) for group, options in OPTIONS.items() for option in options]


def test_conf_dir_holds_exactly_the_expected_options():
    for group, options in OPTIONS.items():
        assert {p.stem for p in (CONF_DIR / group).glob("*.yaml")} == set(options), group


@pytest.mark.parametrize("group,option", ALL_OPTIONS)
def test_every_option_composes_to_its_typed_schema(compose_config, group, option):
    # Your own data has no default place: those options need data.root (checked below).
    root = (
        ["data.root=/your/data"] if OPTIONS[group][option] in (FolderConfig, CsvConfig, IdxConfig, CifarConfig) else []
    )
    config = validate(compose_config(f"{group}={option}", *root))
    typed = getattr(config, group)
    assert type(typed) is OPTIONS[group][option]
    if group != "trainer":
        assert typed.name == option


@pytest.mark.parametrize("option", ["folder", "csv", "idx", "cifar"])
def test_your_own_data_needs_a_root(compose_config, option):
    with pytest.raises(FieldError, match=r"^data\.root=null is not allowed: expected .*e\.g\. data\.root=/path/to/"):
        validate(compose_config(f"data={option}"))


def test_defaults_are_the_reference_setup(compose_config):
    config = validate(compose_config())
    assert config.seed == 0
    assert config.data == DataConfig(name="mnist", root=None, val_split=0.1, train_limit=None)
    assert config.model == CNNConfig(name="cnn", filters=28, kernel_size=3, pool_size=2, dense_units=128, dropout=0.0)
    assert isinstance(config.optimizer, AdamConfig) and config.optimizer.lr == pytest.approx(1e-3)
    assert (config.trainer.epochs, config.trainer.batch_size) == (10, 64)
    assert type(config.trainer.epochs) is int and type(config.optimizer.lr) is float


def test_fast_trainer_is_the_readmes_smoke_run(compose_config):
    config = validate(compose_config("trainer=fast"))
    # docs/running.md: "smoke run: 2 epochs on 5,000 images"; everything else stays the reference's.
    assert (config.trainer.epochs, config.data.train_limit) == (2, 5000)
    assert config.trainer.batch_size == validate(compose_config()).trainer.batch_size == 64
    # The user's own override still wins over the preset.
    assert validate(compose_config("trainer=fast", "data.train_limit=123")).data.train_limit == 123


def test_overrides_reach_the_typed_config(compose_config):
    config = validate(
        compose_config(
            "model=cnn_deep",
            "model.filters=[8,16,32]",
            "optimizer=sgd",
            "optimizer.nesterov=true",
            "optimizer.lr=0.05",
            "trainer.epochs=3",
            "data.val_split=0",
            "seed=7",
        )
    )
    assert config.model.filters == [8, 16, 32]
    assert config.optimizer.nesterov is True and config.optimizer.lr == pytest.approx(0.05)
    assert (config.trainer.epochs, config.data.val_split, config.seed) == (3, 0.0, 7)


@pytest.mark.parametrize(
    "override,key",
    [
        ("trainer.epochs=0", "trainer.epochs"),
        ("trainer.batch_size=0", "trainer.batch_size"),
        ("optimizer.lr=-1", "optimizer.lr"),
        ("data.val_split=1.5", "data.val_split"),
        ("data.val_split=-0.1", "data.val_split"),
        ("data.train_limit=0", "data.train_limit"),
        ("model.dropout=1.0", "model.dropout"),
        ("model.kernel_size=40", "model.kernel_size"),
        ("seed=-3", "seed"),
        ("trainer.threads=4097", "trainer.threads"),
        ("trainer.inter_op_threads=0", "trainer.inter_op_threads"),
    ],
)
def test_out_of_range_values_name_their_key(compose_config, override, key):
    with pytest.raises(FieldError) as caught:
        validate(compose_config(override))
    message = str(caught.value)
    assert message.startswith(f"{key}=") and " is not allowed: expected " in message, message


def test_thread_counts_are_taken_up_to_4096():
    """A count past any CPU's cores is refused: a million threads' stacks ended in the kernel's SIGKILL."""
    TrainerConfig(threads=4096, inter_op_threads=4096).check()
    for key in ("threads", "inter_op_threads"):
        with pytest.raises(FieldError, match=f"^{key}=4097 is not allowed: expected null .* or a count from 1 to 4096"):
            TrainerConfig(**{key: 4097}).check()


def test_keys_added_with_plus_are_rejected(compose_config):
    with pytest.raises(ConfigError, match=r"model.depth is not a config key; model accepts: .*filters"):
        validate(compose_config("+model.depth=3"))
    with pytest.raises(
        ConfigError, match=r"lr is not a config key; the top level accepts: augment, data, init_from, logger, model"
    ):
        validate(compose_config("+lr=3"))


def test_a_name_that_disagrees_with_its_schema_is_rejected(compose_config):
    with pytest.raises(ConfigError, match=r"model.name=mlp does not match .*pick the option itself with model=mlp"):
        validate(compose_config("model.name=mlp"))
    with pytest.raises(ConfigError, match=r"optimizer.name=nadam is not a registered optimizer; registered: adam"):
        validate(compose_config("optimizer.name=nadam"))


@pytest.mark.parametrize("option", sorted(OPTIONS["model"]))
def test_every_model_builds_and_maps_images_to_class_probabilities(compose_config, option):
    import numpy as np

    config = validate(compose_config(f"model={option}"))
    model = MODELS.get(option)(config.model, (28, 28, 1), 10)
    probabilities = np.asarray(model(np.zeros((2, 28, 28, 1), dtype="float32")))
    assert probabilities.shape == (2, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_reference_cnn_has_607394_parameters_and_the_reference_layers(compose_config):
    import numpy as np

    config = validate(compose_config())
    model = MODELS.get("cnn")(config.model, (28, 28, 1), 10)
    assert model.count_params() == 607_394
    assert [type(layer).__name__ for layer in model.layers] == ["Conv2D", "MaxPooling2D", "Flatten", "Dense", "Dense"]
    assert model(np.zeros((1, 28, 28, 1), dtype="float32")).shape == (1, 10)


@pytest.mark.parametrize("option", sorted(OPTIONS["optimizer"]))
def test_every_optimizer_builds_with_its_fields(compose_config, option):
    config = validate(compose_config(f"optimizer={option}", "optimizer.lr=0.0125"))
    optimizer = OPTIMIZERS.get(option)(config.optimizer)
    assert type(optimizer).__name__.lower() == option
    assert float(optimizer.learning_rate) == pytest.approx(0.0125)
    if option == "sgd":
        assert optimizer.momentum == pytest.approx(config.optimizer.momentum)
    if option == "adamw":
        assert optimizer.weight_decay == pytest.approx(config.optimizer.weight_decay)
