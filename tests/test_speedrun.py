"""The speedrun's pieces: the one-cycle schedule, Adam's betas, fractional epochs, trainer.stop_at, the cnn2
network and the +experiment=speedrun preset. In-process, on small subsets; speed lives in
benchmarks/bench_speedrun.py, not here."""

from __future__ import annotations

import json

import pytest

from mnist_hydra.config import TrainerConfig, validate
from mnist_hydra.errors import ConfigError, FieldError
from mnist_hydra.models.optimizers import OPTIMIZERS, AdamConfig, build_schedule
from mnist_hydra.training.build import steps_per_execution

# The MLP on 1,000 images, 100 a batch (10 steps an epoch), validated on 600: the step counts are the point.
TINY = [
    "model=mlp",
    "trainer.verbose=0",
    "data.train_limit=1000",
    "data.val_split=0.01",
    "data.test_limit=300",
    "trainer.batch_size=100",
]


@pytest.mark.parametrize(
    "override,key",
    [
        ("trainer.stop_at=foo", "trainer.stop_at"),
        ("trainer.stop_at=test_accuracy:0.99", "trainer.stop_at"),  # never the test set
        ("trainer.stop_at=val_accuracy:1.5", "trainer.stop_at"),
        ("trainer.stop_at=val_accuracy:high", "trainer.stop_at"),
        ("trainer.stop_at=val_loss:-1", "trainer.stop_at"),
        ("trainer.epochs=0", "trainer.epochs"),
        ("trainer.epochs=-0.5", "trainer.epochs"),
        ("optimizer.beta_1=1", "optimizer.beta_1"),
        ("optimizer.beta_2=-0.1", "optimizer.beta_2"),
        ("optimizer.schedule=onecycle", "optimizer.warmup_fraction"),  # a one-cycle needs its warm-up share
        ("optimizer.initial_lr_fraction=2", "optimizer.initial_lr_fraction"),
        ("model=cnn2 model.kernel_sizes=[5,12]", "model.kernel_sizes"),
        ("model=cnn2 model.filters=[24]", "model.filters"),
    ],
)
def test_bad_values_are_one_line_errors_naming_the_key(compose_config, override, key):
    with pytest.raises(FieldError) as caught:
        validate(compose_config(*override.split()))
    message = str(caught.value)
    assert message.startswith(f"{key}=") and " is not allowed: expected " in message, message
    assert "\n" not in message and len(message) <= 300


@pytest.mark.parametrize("value", ["foo", "true", "null", "[1]"])
def test_epochs_that_are_no_number_are_a_wrong_type_in_one_line(compose_config, value):
    with pytest.raises(ConfigError) as caught:
        validate(compose_config(f"trainer.epochs={value}"))
    assert str(caught.value) == (
        f"trainer.epochs={value} has the wrong type: expected an integer, or a fraction of epochs that counts steps "
        "(trainer.epochs=0.8)"
    )


def test_the_new_keys_compose_and_keep_their_types(compose_config):
    config = validate(
        compose_config(
            "trainer.epochs=0.8",
            "trainer.stop_at=val_accuracy:0.99",
            "optimizer.schedule=onecycle",
            "optimizer.warmup_fraction=0.25",
            "optimizer.beta_1=0.7",
            "optimizer.beta_2=0.9",
        )
    )
    assert config.trainer.epochs == 0.8 and config.trainer.whole_epochs == 1
    assert config.trainer.target == ("val_accuracy", "max", 0.99)
    assert (config.optimizer.beta_1, config.optimizer.beta_2) == (0.7, 0.9)
    # An integer stays an integer: the default run's config reads as it always did.
    assert validate(compose_config()).trainer.epochs == 10
    assert isinstance(validate(compose_config()).trainer.epochs, int)
    assert TrainerConfig(stop_at="val_loss:0.05").target == ("val_loss", "min", 0.05)


def test_speedrun_preset_composes_to_its_recipe(compose_config):
    config = validate(compose_config("+experiment=speedrun"))
    assert config.model.name == "cnn2"
    assert config.optimizer.schedule == "onecycle" and config.optimizer.lr == 0.01
    assert (config.optimizer.beta_1, config.optimizer.beta_2) == (0.7, 0.9)
    assert config.trainer.batch_size == 256 and config.data.val_split > 0


def test_cnn2_is_the_two_conv_network():
    from mnist_hydra.models.networks import MODELS, CNN2Config

    model = MODELS.get("cnn2")(CNN2Config(), (28, 28, 1), 10)
    # 5x5x24 conv, pool, 3x3x32 conv, pool (5x5x32 = 800), dense 256, dense 10.
    assert model.count_params() == (25 * 24 + 24) + (9 * 24 * 32 + 32) + (800 * 256 + 256) + (256 * 10 + 10)
    assert model.output_shape == (None, 10)


def test_onecycle_rises_from_its_start_to_the_peak_then_anneals_to_the_end():
    config = AdamConfig(lr=0.01, schedule="onecycle", warmup_fraction=0.2, final_lr_fraction=0.001)
    schedule = build_schedule(config, total_steps=1000)
    assert float(schedule(0)) == pytest.approx(0.01 * 0.04)  # initial_lr_fraction: PyTorch's 1/25
    assert float(schedule(100)) == pytest.approx((0.0004 + 0.01) / 2)  # linear: halfway up at half the warm-up
    assert float(schedule(200)) == pytest.approx(0.01)  # the peak, at the end of the warm-up
    assert float(schedule(600)) == pytest.approx(0.01 * (0.001 + 0.999 * 0.5))  # cosine: half-way down
    assert float(schedule(1000)) == pytest.approx(1e-5)  # final_lr_fraction * lr
    assert all(float(schedule(s)) < float(schedule(s + 1)) for s in range(0, 200, 20))
    assert all(float(schedule(s)) > float(schedule(s + 1)) for s in range(200, 1000, 50))


@pytest.mark.parametrize("name", ["cosine", "onecycle"])
@pytest.mark.parametrize("total", [1, 2, 8])
def test_a_warm_up_share_that_rounds_to_every_step_leaves_one_to_decay(name, total):
    """optimizer.warmup_fraction=0.99 of a short run (1.5 epochs of 5 steps: 8) rounded to all 8 steps, and Keras
    refused the schedule (decay_steps=0): a traceback from the train command."""
    schedule = build_schedule(AdamConfig(lr=0.01, schedule=name, warmup_fraction=0.99), total_steps=total)
    assert float(schedule(total)) == pytest.approx(0.0, abs=1e-9)  # final_lr_fraction=0: the end of the decay
    if total > 1:
        assert float(schedule(total - 1)) == pytest.approx(0.01)  # the peak, one step before the end
        assert float(schedule(0)) < 0.01


def test_onecycle_reaches_keras_adam_with_the_betas():
    config = AdamConfig(lr=0.01, beta_1=0.7, beta_2=0.9, schedule="onecycle", warmup_fraction=0.3)
    optimizer = OPTIMIZERS.get("adam")(config, total_steps=10)
    assert (optimizer.beta_1, optimizer.beta_2) == (0.7, 0.9)
    assert float(optimizer.learning_rate) == pytest.approx(0.0004)  # read at step 0


@pytest.mark.parametrize(
    "epochs,steps,total,whole", [(0.8, 211, 169, 1), (2.5, 10, 25, 3), (1, 844, 844, 1), (10, 844, 8440, 10)]
)
def test_fractional_epochs_count_steps(epochs, steps, total, whole):
    trainer = TrainerConfig(epochs=epochs)
    assert trainer.total_steps(steps) == total and trainer.whole_epochs == whole


def test_steps_per_execution_divides_the_last_partial_epoch_too():
    assert steps_per_execution(1000, 844) == 844  # whole epochs: as before
    assert steps_per_execution(1000, 844, 8440) == 844
    assert steps_per_execution(32, 10, 25) == 5  # 10 an epoch, the last one 5: gcd 5
    assert steps_per_execution(1000, 211, 169) == 1  # 211 is prime


@pytest.fixture
def run(compose_config, mnist_dir, tmp_path):
    """train_and_evaluate on 1,000 images (10 steps an epoch) with `overrides`: (metrics, run directory)."""
    from mnist_hydra.training.run import train_and_evaluate

    def train(*overrides: str):
        workdir = tmp_path / "run"
        config = validate(compose_config(*TINY, f"data.root={mnist_dir}", *overrides))
        return train_and_evaluate(config, workdir, overrides=list(overrides)), workdir

    return train


def test_a_fractional_epoch_trains_exactly_its_steps(run):
    import keras

    metrics, workdir = run("trainer.epochs=1.5", "optimizer.schedule=onecycle", "optimizer.warmup_fraction=0.2")
    assert metrics["epochs_run"] == 2 and len(metrics["history"]["val_accuracy"]) == 2
    model = keras.models.load_model(workdir / "model.keras")
    assert int(model.optimizer.iterations) == 15  # 1.5 x 10 steps, the second epoch cut at its fifth
    # The schedule spans those 15 steps: it ends at its floor (final_lr_fraction = 0).
    assert float(model.optimizer.learning_rate) == pytest.approx(0.0, abs=1e-9)
    assert json.loads((workdir / "metrics.json").read_text())["status"] == "completed"


def test_stop_at_stops_on_validation_and_records_epoch_and_time(run):
    metrics, _ = run("trainer.epochs=3", "trainer.stop_at=val_accuracy:0.05")  # any trained net beats 5%
    assert metrics["epochs_run"] == 1
    assert metrics["stop_at"] == "val_accuracy:0.05" and metrics["stop_at_epoch"] == 1
    assert metrics["stop_at_seconds"] == pytest.approx(metrics["epoch_seconds"][0])


def test_stop_at_never_reached_trains_every_epoch_and_says_so(run):
    metrics, _ = run("trainer.epochs=2", "trainer.stop_at=val_loss:0")  # a loss of 0 is out of reach
    assert metrics["epochs_run"] == 2
    assert metrics["stop_at_epoch"] is None and metrics["stop_at_seconds"] is None


def test_stop_at_refuses_a_run_that_validates_on_the_test_set(run):
    with pytest.raises(ConfigError, match=r"^trainer.stop_at=val_accuracy:0.9 stops on validation, .* test set"):
        run("trainer.stop_at=val_accuracy:0.9", "data.val_split=0")
