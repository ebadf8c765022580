"""The speed levers: trainer.precision, steps_per_execution and eval_batch_size; the benchmark's cheap parts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mnist_hydra.config import validate
from mnist_hydra.errors import ConfigError
from tests.conftest import SMALL_RUN, call_app

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "override,key",
    [
        ("trainer.precision=float16", "trainer.precision"),
        ("trainer.precision=bf16", "trainer.precision"),
        ("trainer.steps_per_execution=0", "trainer.steps_per_execution"),
        ("trainer.eval_batch_size=0", "trainer.eval_batch_size"),
    ],
)
def test_bad_lever_values_name_their_key(compose_config, override, key):
    with pytest.raises(ConfigError) as caught:
        validate(compose_config(override))
    message = str(caught.value)
    assert key in message and "\n" not in message
    assert override.split("=", 1)[1] in message  # the bad value is repeated


def test_levers_reach_the_typed_config(compose_config):
    trainer = validate(
        compose_config(
            "trainer.precision=mixed_bfloat16", "trainer.steps_per_execution=32", "trainer.eval_batch_size=1000"
        )
    ).trainer
    assert (trainer.precision, trainer.steps_per_execution, trainer.eval_batch_size) == ("mixed_bfloat16", 32, 1000)


def test_default_trainer_is_float32(compose_config):
    assert validate(compose_config()).trainer.precision == "float32"


def test_fastest_trainer_keeps_the_reference_network(compose_config):
    config = validate(compose_config("trainer=fastest"))
    assert config.model == validate(compose_config()).model  # the reference CNN
    assert config.trainer.epochs == 10 and config.trainer.precision == "auto"  # bf16 where the hardware has it
    # Its own learning rate for its batch, still Adam; the command line wins over the preset.
    assert (config.optimizer.name, config.optimizer.lr, config.optimizer.schedule) == ("adam", 0.004, "cosine")
    assert validate(compose_config("trainer=fastest", "optimizer.lr=0.001")).optimizer.lr == 0.001
    assert validate(compose_config()).optimizer.schedule == "constant"  # the default run is untouched
    # Adam's fused update changes the last bits of each step: fastest only, the default keeps Keras's own step.
    assert config.trainer.fused_adam and not validate(compose_config()).trainer.fused_adam


def test_inter_op_threads_one_op_at_a_time_only_on_one_device(compose_config):
    from mnist_hydra.training.threads import inter_op_threads

    assert validate(compose_config()).trainer.inter_op_threads is None
    assert inter_op_threads(None, "default") == 1
    assert inter_op_threads(None, "multi_worker") is None and inter_op_threads(None, "mirrored") is None
    assert inter_op_threads(3, "default") == 3
    with pytest.raises(ConfigError, match="trainer.inter_op_threads"):
        validate(compose_config("trainer.inter_op_threads=0"))


def test_bad_precision_on_the_command_line_fails_in_one_line(tmp_path):
    result = call_app("trainer.precision=float16", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert result.returncode == 2, result.stderr  # a config mistake
    assert result.stderr.splitlines() == [
        "mnist_hydra: error: trainer.precision=float16 is not allowed: "
        "expected one of float32, mixed_bfloat16, mixed_float16, auto"
    ]
    assert sorted(tmp_path.iterdir()) == []  # no run directory, no outputs/ either


def test_mixed_bfloat16_run_saves_a_model_that_predicts_float32(tmp_path, mnist_dir):
    import keras
    import numpy as np

    run_dir = tmp_path / "run"
    result = call_app(
        *SMALL_RUN,
        "model=mlp",  # any network shows the policies; bf16 on a CPU without bf16 units is slow
        "data.train_limit=1000",
        "data.val_split=0.01",
        "trainer.precision=mixed_bfloat16",
        "trainer.steps_per_execution=8",
        "trainer.eval_batch_size=500",
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
        env={"MNIST_HYDRA_DATA": str(mnist_dir)},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["test_accuracy"] > 0.5
    # The run left this process's global policy as it was (float32), so the saved layers must carry their own.
    assert keras.config.dtype_policy().name == "float32"
    model = keras.models.load_model(run_dir / "model.keras")
    probabilities = model.predict(np.zeros((3, 28, 28, 1), "float32"), verbose=0)
    assert (model.layers[0].dtype_policy.name, model.layers[-1].dtype_policy.name) == ("mixed_bfloat16", "float32")
    assert probabilities.dtype == np.float32 and np.abs(probabilities.sum(axis=1) - 1).max() < 1e-5


@pytest.mark.parametrize(
    "flags,chosen",
    [
        ("fpu sse2 avx avx2 fma", "float32"),  # AVX2 only: bf16 would be emulated
        ("avx2 avx512f avx512_bf16", "mixed_bfloat16"),
        ("avx2 avx512f amx_tile amx_bf16", "mixed_bfloat16"),
        ("avx2 avx512_bf16x", "float32"),  # a whole flag, not a prefix
    ],
)
def test_auto_precision_is_bf16_only_where_the_cpu_computes_it(tmp_path, monkeypatch, caplog, flags, chosen):
    from mnist_hydra.training import precision

    info = tmp_path / "cpuinfo"
    info.write_text(f"processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: {flags}\n\nprocessor\t: 1\n")
    monkeypatch.setattr(precision, "CPU_INFO", info)
    with caplog.at_level("INFO", logger=precision.__name__):
        assert precision.resolve_precision("auto") == chosen
    assert f"precision: auto chose {chosen}" in caplog.text
    # What is set explicitly stays, whatever the CPU.
    assert precision.resolve_precision("mixed_float16") == "mixed_float16"
    assert precision.resolve_precision("float32") == "float32"
    monkeypatch.setattr(precision, "CPU_INFO", tmp_path / "absent")  # not Linux: nothing known, float32
    assert precision.resolve_precision("auto") == "float32"


def test_auto_precision_builds_the_model_it_chose(compose_config, monkeypatch):
    from mnist_hydra.tf_runtime import import_tensorflow

    import_tensorflow()
    import tensorflow as tf

    from mnist_hydra.training import build, precision

    monkeypatch.setattr(precision, "bf16_device", lambda: "AVX-512-BF16")
    config = validate(compose_config("trainer.precision=auto", "model=mlp"))
    one_device = tf.distribute.get_strategy()
    model, _ = build.build_or_restore(config, one_device, None, 1000, 10, (28, 28, 1))
    assert [layer.dtype_policy.name for layer in model.layers][-2:] == ["mixed_bfloat16", "float32"]
    monkeypatch.setattr(precision, "bf16_device", lambda: None)
    model, _ = build.build_or_restore(config, one_device, None, 1000, 10, (28, 28, 1))
    assert {layer.dtype_policy.name for layer in model.layers} == {"float32"}


def test_with_precision_leaves_the_global_policy_alone():
    import keras

    from mnist_hydra.models.networks import CNNConfig, build_cnn
    from mnist_hydra.training.precision import with_precision

    reference = build_cnn(CNNConfig(), (28, 28, 1), 10)
    mixed = with_precision(reference, "mixed_bfloat16")
    assert keras.config.dtype_policy().name == "float32"
    assert [layer.dtype_policy.name for layer in mixed.layers][-2:] == ["mixed_bfloat16", "float32"]
    assert mixed.count_params() == reference.count_params() == 607394
    assert all((a == b).all() for a, b in zip(mixed.get_weights(), reference.get_weights(), strict=False))
    assert with_precision(reference, "float32") is reference


def test_benchmark_help_runs():
    result = subprocess.run(
        [sys.executable, "benchmarks/bench_train.py", "--help"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and "--only" in result.stdout


@pytest.mark.slow
def test_benchmark_cheap_parts_print_their_figures(mnist_dir, tmp_path):
    figures = tmp_path / "figures.json"
    result = subprocess.run(
        [
            sys.executable,
            "benchmarks/bench_train.py",
            "--only",
            "cli,load",
            "--cli-runs",
            "1",
            "--tf-runs",
            "1",
            "--load-runs",
            "1",
            "--data",
            str(mnist_dir),
            "--json",
            str(figures),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "mnist_hydra --help" in result.stdout and "load_splits" in result.stdout
    saved = json.loads(figures.read_text())
    assert {row["command"] for row in saved["cli"]} >= {
        "python -m mnist_hydra --help",
        "python -m mnist_hydra --cfg job",
    }
    assert saved["load"]["train_images"] == 54000
