"""A plain `pip install .` carries the YAML configs: the app runs from the installed package."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_ships_every_config_and_runs_from_another_directory(tmp_path):
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(ROOT)],
                           capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr
    wheel = next(tmp_path.glob("mnist_hydra-*.whl"))
    shipped = set(zipfile.ZipFile(wheel).namelist())
    configs = {p.relative_to(ROOT).as_posix() for p in (ROOT / "mnist_hydra" / "conf").rglob("*.yaml")}
    assert configs and configs <= shipped, configs - shipped
    assert "mnist_hydra/serving/page.html" in shipped  # the page GET / serves

    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}
    result = subprocess.run(
        [sys.executable, "-c", "import runpy, sys, mnist_hydra; print(mnist_hydra.__file__); "
         "sys.argv = ['mnist_hydra', '--cfg', 'job', 'model=cnn_deep']; runpy.run_module('mnist_hydra', run_name='__main__')"],
        cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].startswith(str(site))
    assert "name: cnn_deep" in result.stdout and "convs_per_block: 2" in result.stdout

    # Hydra finds our sweeper and launcher in the installed package's hydra_plugins, not in the source tree.
    plugins = {f"hydra_plugins/mnist_hydra_plugins/{name}.py" for name in ("optuna_sweeper", "ray_launcher")}
    assert plugins <= shipped, plugins - shipped
    found = subprocess.run(
        [sys.executable, "-c", "import runpy, sys, hydra_plugins.mnist_hydra_plugins as p; print(p.__file__); "
         "sys.argv = ['mnist_hydra', '--cfg', 'hydra', 'hparams_search=optuna', 'hydra/launcher=ray']; "
         "runpy.run_module('mnist_hydra', run_name='__main__')"],
        cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120)
    assert found.returncode == 0, found.stderr
    assert found.stdout.splitlines()[0].startswith(str(site))
    assert "_target_: hydra_plugins.mnist_hydra_plugins.optuna_sweeper.OptunaSweeper" in found.stdout
    assert "_target_: hydra_plugins.mnist_hydra_plugins.ray_launcher.RayLauncher" in found.stdout
