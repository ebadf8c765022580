"""The README tells the truth: its test command is CI's, its examples run, its errors are real."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

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


def test_adding_a_model_as_the_readme_shows(tmp_path):
    python = next(b for b in _blocks("python") if "MODELS.register" in b)
    yaml = next(b for b in _blocks("yaml") if "/schema/model/" in b)
    option = re.search(r'MODELS.register\("(\w+)"', python).group(1)
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / f"{option}.yaml").write_text(yaml)
    script = textwrap.dedent(f"""
        import mnist_hydra.models.networks as models
        exec({python!r}, vars(models))  # as if pasted into mnist_hydra/models.py
        from hydra import compose, initialize_config_module
        from mnist_hydra.config import store_schemas, validate
        store_schemas()
        with initialize_config_module(config_module="mnist_hydra.conf", version_base="1.3"):
            cfg = compose("config", overrides=["model={option}", "hydra.searchpath=[file://{tmp_path}]"])
        config = validate(cfg)
        model = models.MODELS.get("{option}")(config.model, (28, 28, 1), 10)
        print(type(config.model).__name__, model.output_shape)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0] == "LeNetConfig" and "(None, 10)" in result.stdout
