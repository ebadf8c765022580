"""Extending mnist_hydra without forking: a YAML variant in your own --config-dir, your own builder in your own
module (plugins=[...]) or in an installed package's entry point. Each runs from a temporary folder, as a user's
project would: in this process, which forgets the plugin afterwards (conftest.forget_plugins), but for the
installed package, whose entry point only a process started with it on its path sees."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from tests.conftest import call_app, run_app

TINY = ["trainer.epochs=1", "trainer.verbose=0", "data.train_limit=300", "data.test_limit=100"]

MY_MODELS = """
from dataclasses import dataclass

from mnist_hydra.errors import require
from mnist_hydra.models.networks import MODELS


@dataclass
class TinyConfig:
    name: str = "tiny"
    units: int = 16  # width of the hidden layer

    def check(self) -> None:
        require(self.units >= 1, "units", self.units, "an integer >= 1")


@MODELS.register("tiny", schema=TinyConfig)
def build_tiny(cfg, input_shape, num_classes):
    import keras

    return keras.Sequential([keras.Input(shape=input_shape), keras.layers.Flatten(),
                             keras.layers.Dense(cfg.units, activation="relu"),
                             keras.layers.Dense(num_classes, activation="softmax")], name="tiny")
"""


def _env(mnist_dir: Path, **extra: str) -> dict[str, str]:
    return {"MNIST_HYDRA_DATA": str(mnist_dir), **extra}


def test_a_model_variant_in_your_own_config_dir_trains(tmp_path, mnist_dir):
    (tmp_path / "myconf" / "model").mkdir(parents=True)
    (tmp_path / "myconf" / "model" / "small_cnn.yaml").write_text(
        textwrap.dedent("""\
        defaults:
          - /schema/model/cnn@_here_
          - _self_
        filters: 8
        dense_units: 16
        """)
    )
    result = call_app(
        "--config-dir", "myconf", "model=small_cnn", *TINY, "hydra.run.dir=run", cwd=tmp_path, env=_env(mnist_dir)
    )
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    # Conv 8x(3x3+1) = 80; 13x13x8 = 1352 -> Dense 16: 21,648; Dense 10: 170.
    assert metrics["status"] == "completed" and metrics["params"] == 80 + 21_648 + 170


def test_a_builder_in_your_own_module_trains_with_plugins(tmp_path, mnist_dir, forget_plugins):
    (tmp_path / "my_models.py").write_text(MY_MODELS)
    result = call_app(
        "plugins=[my_models]",
        "model=tiny",
        "model.units=8",
        *TINY,
        "hydra.run.dir=run",
        cwd=tmp_path,
        env=_env(mnist_dir),
    )
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["params"] == 784 * 8 + 8 + 8 * 10 + 10
    saved = json.loads((tmp_path / "run" / "provenance.json").read_text())["config"]
    assert saved["plugins"] == ["my_models"] and saved["model"] == {"name": "tiny", "units": 8}
    # The plugin's schema checks its fields like a built-in one.
    bad = call_app(
        "plugins=[my_models]", "model=tiny", "model.units=0", "hydra.run.dir=bad", cwd=tmp_path, env=_env(mnist_dir)
    )
    assert bad.returncode == 2 and bad.stderr.strip() == (
        "mnist_hydra: error: model.units=0 is not allowed: expected an integer >= 1"
    )
    assert not (tmp_path / "bad").exists()


def test_an_installed_packages_entry_point_adds_its_builder(tmp_path):
    site = tmp_path / "site"
    (site / "tiny_plugin-0.1.dist-info").mkdir(parents=True)
    (site / "tiny_plugin.py").write_text(MY_MODELS)
    (site / "tiny_plugin-0.1.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: tiny-plugin\nVersion: 0.1\n"
    )
    (site / "tiny_plugin-0.1.dist-info" / "entry_points.txt").write_text("[mnist_hydra.plugins]\ntiny = tiny_plugin\n")
    result = run_app("--cfg", "job", "model=tiny", cwd=tmp_path, env={"PYTHONPATH": str(site)})
    assert result.returncode == 0, result.stderr
    assert "name: tiny\n  units: 16" in result.stdout


@pytest.mark.parametrize(
    "module,source,expected",
    [
        (
            "no_such_module",
            None,
            "plugins=[no_such_module]: no module named no_such_module; give importable module names",
        ),
        (
            "dup_models",
            "from mnist_hydra.models.networks import MODELS, CNNConfig\n"
            "MODELS.register('cnn', schema=CNNConfig)(lambda *a: None)\n",
            "plugins=[dup_models]: importing it failed: ValueError: model 'cnn' is registered twice",
        ),
        (
            "broken_models",
            "import numpy as np\nraise RuntimeError('half-written plugin')\n",
            "plugins=[broken_models]: importing it failed: RuntimeError: half-written plugin",
        ),
    ],
)
def test_a_plugin_that_cannot_load_is_a_one_line_error(tmp_path, module, source, expected, forget_plugins):
    if source is not None:
        (tmp_path / f"{module}.py").write_text(source)
    result = call_app(f"plugins=[{module}]", "hydra.run.dir=run", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"mnist_hydra: error: {expected}"), result.stderr
    assert not (tmp_path / "run").exists()
