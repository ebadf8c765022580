"""The README tells the truth: its test command is CI's, its examples run, its errors are real."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tests.conftest import run_app

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def test_ci_runs_the_readme_test_command_verbatim():
    commands = [line for block in _blocks("") for line in block.splitlines() if "pytest" in line]
    assert len(commands) == 1, commands
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert commands[0] in ci_lines


@pytest.mark.parametrize("override", ["trainer.epochs=0", "model=resnet9000", "logger=[tensorboard,wandb]"])
def test_readme_error_examples_are_what_the_app_prints(tmp_path, override):
    shown = re.search(rf"\$ python -m mnist_hydra {re.escape(override)}\n(.*)\n", README).group(1)
    result = run_app(override, cwd=tmp_path)
    assert result.stderr.strip() == shown


def test_adding_a_model_as_the_readme_shows(tmp_path, mnist_dir):
    """The README's two no-fork ways, pasted into a user's folder and run with the README's own commands."""
    python = next(b for b in _blocks("python") if "MODELS.register" in b)
    module = re.search(r"# (\w+)\.py", python).group(1)
    (tmp_path / f"{module}.py").write_text(python)
    command = re.search(rf"python -m mnist_hydra (plugins=\[{module}\] .*)", README).group(1).split()
    result = run_app(*command, "trainer.epochs=1", "trainer.verbose=0", "data.train_limit=500", "data.test_limit=100",
                     "hydra.run.dir=run", cwd=tmp_path, env={"MNIST_HYDRA_DATA": str(mnist_dir)})
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load((tmp_path / "run" / ".hydra" / "config.yaml").read_text())
    assert config["model"] == {"name": "lenet", "dense_units": 120} and config["plugins"] == [module]

    variant = next(b for b in _blocks("yaml") if "/schema/model/" in b)
    path = re.search(r"# (\S+\.yaml)", variant).group(1)
    (tmp_path / path).parent.mkdir(parents=True)
    (tmp_path / path).write_text(variant)
    command = re.search(r"python -m mnist_hydra (--config-dir .*)", README).group(1).split()
    result = run_app(*command, "--cfg", "job", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert yaml.safe_load(result.stdout)["model"] == {"name": "cnn", "filters": 8, "kernel_size": 3, "pool_size": 2,
                                                     "dense_units": 16, "dropout": 0.0}
