"""Real training runs on a small subset of the real MNIST: artifacts, repeatability, sweeps."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tests.conftest import SMALL_RUN, run_app

ARTIFACTS = ["metrics.json", "provenance.json", "history.csv", "model.keras", "training_curves.png", "confusion_matrix.png",
             "misclassified.png", "report.html", "train.log", ".hydra/config.yaml", ".hydra/overrides.yaml"]


@pytest.fixture(scope="module")
def twin_runs(tmp_path_factory, mnist_dir):
    """Two identical runs started together into the default outputs/ of one folder."""
    cwd = tmp_path_factory.mktemp("twins")
    env = {**os.environ, "MNIST_HYDRA_DATA": str(mnist_dir), "TF_CPP_MIN_LOG_LEVEL": "2"}
    procs = [subprocess.Popen([sys.executable, "-m", "mnist_hydra", *SMALL_RUN], cwd=cwd, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(proc.wait(timeout=600), *proc.communicate()) for proc in procs]
    for code, out, err in results:
        assert code == 0, out + err
    return cwd, [out for _, out, _ in results]


def _run_dirs(cwd: Path) -> list[Path]:
    return sorted(p for p in (cwd / "outputs").glob("*/*") if p.is_dir())


def test_runs_started_together_get_their_own_timestamped_directories(twin_runs):
    cwd, _ = twin_runs
    dirs = _run_dirs(cwd)
    assert len(dirs) == 2
    for d in dirs:
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}/\d{2}-\d{2}-\d{2}\.\d{6}", f"{d.parent.name}/{d.name}")


def test_run_directory_holds_every_valid_artifact(twin_runs):
    cwd, _ = twin_runs
    run = _run_dirs(cwd)[0]
    for name in ARTIFACTS:
        assert (run / name).is_file() and (run / name).stat().st_size > 0, name

    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test_accuracy"] > 0.8  # chance is 0.1; 2,000 images and one epoch reach ~0.9
    for key in ("test_loss", "best_val_accuracy", "val_accuracy", "train_seconds"):
        assert isinstance(metrics[key], float) and metrics[key] > 0, key
    assert metrics["epochs_run"] == 1 and metrics["params"] == 607_394
    assert (metrics["train_images"], metrics["val_images"], metrics["test_images"]) == (2000, 6000, 1000)
    assert set(metrics["history"]) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert np.asarray(metrics["confusion_matrix"]).sum() == 1000

    history = pd.read_csv(run / "history.csv")
    assert list(history["epoch"]) == [1]
    assert history["val_accuracy"].iloc[0] == pytest.approx(metrics["val_accuracy"])

    for png in ("training_curves.png", "confusion_matrix.png", "misclassified.png"):
        with Image.open(run / png) as image:
            image.verify()
            assert image.format == "PNG" and min(image.size) > 200

    model = keras.models.load_model(run / "model.keras")
    assert model.count_params() == 607_394
    assert model.predict(np.zeros((1, 28, 28, 1), "float32"), verbose=0).shape == (1, 10)


def test_provenance_records_what_produced_the_run(twin_runs, mnist_dir):
    cwd, _ = twin_runs
    record = json.loads((_run_dirs(cwd)[0] / "provenance.json").read_text())
    assert record["command"][1:3] == ["-m", "mnist_hydra"] and record["overrides"] == SMALL_RUN
    assert record["config"]["trainer"]["epochs"] == 1 and record["config"]["model"]["filters"] == 28
    assert record["versions"]["tensorflow"] == tf_version() and record["versions"]["hydra-core"].startswith("1.3")
    assert record["data"]["checksums"]["train-images-idx3-ubyte"].startswith("ba891046e650")
    assert record["data"]["source"] == str(mnist_dir)
    assert record["git"] is None or len(record["git"]["commit"]) == 40


def tf_version() -> str:
    import tensorflow as tf

    return tf.__version__


def test_job_log_holds_the_runs_log_lines(twin_runs):
    cwd, _ = twin_runs
    log = (_run_dirs(cwd)[0] / "train.log").read_text()
    assert "607394 parameters" in log
    assert re.search(r"epoch 1/1: .*val_accuracy", log)
    assert "test accuracy" in log


def test_run_ends_by_printing_test_accuracy_and_run_directory(twin_runs):
    cwd, outputs = twin_runs
    printed = {re.search(r"test accuracy (\d\.\d{4}) .*run directory: (\S+)$", out.strip().splitlines()[-1]).group(2)
               for out in outputs}
    assert printed == {str(d) for d in _run_dirs(cwd)}


def test_same_seed_gives_the_same_figures_epoch_by_epoch(twin_runs):
    cwd, _ = twin_runs
    first, second = (json.loads((d / "metrics.json").read_text()) for d in _run_dirs(cwd))
    assert first["history"] == second["history"]
    assert (first["test_accuracy"], first["test_loss"]) == (second["test_accuracy"], second["test_loss"])
    assert first["confusion_matrix"] == second["confusion_matrix"]


def test_multirun_of_two_jobs_leaves_two_complete_run_directories(tmp_path, mnist_dir, twin_runs):
    sweep = tmp_path / "sweep"
    result = run_app("--multirun", "seed=1,0", *SMALL_RUN, f"hydra.sweep.dir={sweep}", cwd=tmp_path,
                     env={"MNIST_HYDRA_DATA": str(mnist_dir)})
    assert result.returncode == 0, result.stderr
    assert (sweep / "multirun.yaml").is_file()
    jobs = [json.loads((sweep / str(i) / "metrics.json").read_text()) for i in (0, 1)]
    for i in (0, 1):
        for name in ARTIFACTS:
            assert (sweep / str(i) / name).is_file(), (i, name)
    assert [job["seed"] for job in jobs] == [1, 0]
    # Job 1 runs the twins' config second, in the process that has just trained job 0: no graph,
    # seed or optimizer state may leak across, so it matches the single runs figure for figure.
    twin = json.loads((_run_dirs(twin_runs[0])[0] / "metrics.json").read_text())
    assert jobs[1]["history"] == twin["history"]
    assert jobs[0]["history"] != jobs[1]["history"]


@pytest.mark.slow
def test_default_run_reaches_the_reference_accuracy(tmp_path, mnist_dir):
    """The full reference run: 10 epochs on all of MNIST (several minutes on two cores)."""
    result = run_app("trainer.verbose=2", f"hydra.run.dir={tmp_path}/run", cwd=tmp_path,
                     env={"MNIST_HYDRA_DATA": str(mnist_dir)}, timeout=1800)
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["epochs_run"] == 10
    assert metrics["test_accuracy"] >= 0.984
