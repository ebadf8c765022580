"""What a command prints when nothing goes wrong: no TensorFlow chatter, no progress-bar flood off a terminal,
and one warning line, with the effective values, for sizes that make little sense."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]


def _run(module: str, *args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    """The command as a user types it: TF_CPP_MIN_LOG_LEVEL unset unless given, stdout a pipe (not a terminal)."""
    full = {k: v for k, v in os.environ.items() if k not in ("HYDRA_FULL_ERROR", "TF_CPP_MIN_LOG_LEVEL")}
    full["PYTHONPATH"] = os.pathsep.join([str(ROOT), full.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    full.update(env)
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=cwd, env=full, capture_output=True, text=True, timeout=300
    )


def test_a_tiny_run_warns_once_per_odd_size_and_prints_no_tensorflow_line(tmp_path, mnist_dir):
    run = tmp_path / "run"
    result = _run(
        "mnist_hydra",
        "data.train_limit=5",
        "data.test_limit=100",
        "trainer.epochs=2",
        "trainer.batch_size=100000",
        f"hydra.run.dir={run}",
        cwd=tmp_path,
        MNIST_HYDRA_DATA=str(mnist_dir),
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # no TensorFlow line (cuInit, oneDNN, cpu_feature_guard), no Python warning
    warnings = [line for line in result.stdout.splitlines() if "[WARNING]" in line]
    assert len(warnings) == 2, warnings
    assert warnings[0].endswith(
        "training on only 5 images (data.train_limit=5, data.val_split=0.1): expect low accuracy"
    )
    assert warnings[1].endswith(
        "trainer.batch_size=100000 is larger than the 5 training images: each epoch is one batch of 5"
    )
    # Off a terminal (trainer.verbose null): exactly one line per epoch, ours; no Keras line, no bar redraws, no ANSI.
    assert "\r" not in result.stdout and "\x1b[" not in result.stdout and "━" not in result.stdout
    epochs = [
        line for line in result.stdout.splitlines() if re.search(r"\bepoch \d/2\b|Epoch \d/2|val_accuracy:", line)
    ]
    assert len(epochs) == 2 and all(
        re.search(r"\] - epoch \d/2: accuracy .*, val_loss [\d.]+ \([\d.]+ s\)$", line) for line in epochs
    ), result.stdout
    # Before training: where the run goes and what the config changes; after: the figures and the way to look.
    lines = result.stdout.splitlines()
    assert lines[:2] == [
        f"run directory: {run}",
        f"config: data=mnist model=cnn optimizer=adam trainer=default "
        f"(the whole tree: {run / '.hydra' / 'config.yaml'})",
    ]
    assert {
        "  trainer.epochs=2  (default 10)",
        "  trainer.batch_size=100000  (default 64)",
        "  data.train_limit=5  (default null)",
        "  data.test_limit=100  (default null)",
    } <= set(lines[2:6])
    assert re.fullmatch(
        r"test accuracy [\d.]+ \(loss [\d.]+\); best epoch \d of 2 \(val_accuracy [\d.]+\); "
        r"[\d.]+ s training, [\d.]+ s in all",
        lines[-4],
    ), lines[-4:]
    assert lines[-3:] == [
        f"  report: {run / 'report.html'} (open it in a browser)",
        f"  serve:  python -m mnist_hydra.serve run={run}",
        f"run directory: {run}",
    ]
    metrics = json.loads((run / "metrics.json").read_text())
    assert (metrics["status"], metrics["train_images"], metrics["epochs_run"]) == ("completed", 5, 2)


@pytest.mark.slow
def test_the_users_own_tensorflow_log_level_wins(tmp_path):
    """With TF_CPP_MIN_LOG_LEVEL=0 TensorFlow's start-up lines are shown; at any other level, they are hidden (unset:
    test_a_tiny_run_warns_once_per_odd_size_and_prints_no_tensorflow_line)."""
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "config.yaml").write_text("data: {name: mnist}\n")
    with zipfile.ZipFile(run / "model.keras", "w") as archive:  # passes the archive check: Keras, so
        archive.writestr("metadata.json", '{"keras_version": "3.0.0"}')  # TensorFlow, loads, then fails
        archive.writestr("config.json", '{"class_name": "NoSuchLayer", "config": {}}')
        archive.writestr("model.weights.h5", b"\x89HDF\r\n\x1a\n then garbage")
    digit = Image.new("L", (56, 56), 255)
    ImageDraw.Draw(digit).line([(14, 10), (42, 10), (24, 48)], fill=0, width=5)
    digit.save(tmp_path / "seven.png")
    error = "mnist_hydra.predict: error: run/model.keras: damaged or not a Keras model, it cannot be loaded"

    # Unset, the tiny run's process prints nothing on stderr at all. A common setting, which still let absl's
    # start-up lines and the CUDA probe's ERROR through: quiet as well.
    common = _run("mnist_hydra.predict", "run=run", "images=seven.png", cwd=tmp_path, TF_CPP_MIN_LOG_LEVEL="2")
    assert len(common.stderr.splitlines()) == 1 and common.stderr.startswith(error), common.stderr
    loud = _run("mnist_hydra.predict", "run=run", "images=seven.png", cwd=tmp_path, TF_CPP_MIN_LOG_LEVEL="0")
    assert loud.stderr.splitlines()[-1].startswith(error), loud.stderr
    assert re.search(r"^I\d{4} .*\] ", loud.stderr, re.M), loud.stderr  # TensorFlow's own INFO lines
