"""Real training runs on a small subset of the real MNIST: artifacts, repeatability, sweeps."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from mnist_hydra.data.mnist import FASHION_MNIST
from mnist_hydra.runs.provenance import PROJECT_DIR, git_state
from tests.conftest import SMALL_RUN, call_app, run_app, skip_unless_ci

ARTIFACTS = [
    "metrics.json",
    "provenance.json",
    "data_split.npz",
    "history.csv",
    "model.keras",
    "training_curves.png",
    "confusion_matrix.png",
    "misclassified.png",
    "report.html",
    "train.log",
    ".hydra/config.yaml",
    ".hydra/overrides.yaml",
]


# Imported by every Python process when its folder leads PYTHONPATH: with MNIST_HYDRA_TEST_GO set, the
# process loads the train app (the slow imports), says it is ready, and waits for the go file, so that
# processes released together reach Hydra's ${now:...} within milliseconds of each other.
START_LINE = """
import os, time
go = os.environ.get("MNIST_HYDRA_TEST_GO")
if go:
    import mnist_hydra.apps.train
    open(f"{go}.ready-{os.getpid()}", "w").close()
    while not os.path.exists(go):
        time.sleep(0.001)
"""


@pytest.fixture(scope="module")
def twin_runs(tmp_path_factory, mnist_dir):
    """Two identical runs released together, just after a second begins, into the default outputs/ of one folder."""
    cwd = tmp_path_factory.mktemp("twins")
    hook = tmp_path_factory.mktemp("start-line")
    (hook / "sitecustomize.py").write_text(START_LINE)
    go = hook / "go"
    env = {
        **os.environ,
        "MNIST_HYDRA_DATA": str(mnist_dir),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "MNIST_HYDRA_TEST_GO": str(go),
        "PYTHONPATH": os.pathsep.join([str(hook), *filter(None, [os.environ.get("PYTHONPATH")])]),
    }
    env.pop("HYDRA_FULL_ERROR", None)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "mnist_hydra", *SMALL_RUN],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    deadline = time.monotonic() + 120
    while len(list(hook.glob("go.ready-*"))) < 2:
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs), "the twins never got ready"
        time.sleep(0.01)
    time.sleep(1.02 - time.time() % 1)  # just after a second begins: the most room before the next one
    go.touch()
    results = [(proc.wait(timeout=600), *proc.communicate()) for proc in procs]
    for code, out, err in results:
        assert code == 0, out + err
    return cwd, [out for _, out, _ in results]


def _run_dirs(cwd: Path) -> list[Path]:
    return sorted(p for p in (cwd / "outputs").glob("*/*") if p.is_dir())


def test_runs_started_in_the_same_second_get_their_own_timestamped_directories(twin_runs):
    cwd, _ = twin_runs
    dirs = _run_dirs(cwd)
    assert len(dirs) == 2
    # Microseconds in every name: two runs released in the same second (the fixture aims for it; a loaded
    # machine may start one a second later) never share a directory.
    for d in dirs:
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}/\d{2}-\d{2}-\d{2}\.\d{6}", f"{d.parent.name}/{d.name}")


def test_run_directory_holds_every_valid_artifact(twin_runs):
    cwd, _ = twin_runs
    run = _run_dirs(cwd)[0]
    for name in ARTIFACTS:
        assert (run / name).is_file() and (run / name).stat().st_size > 0, name

    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test_accuracy"] > 0.8  # chance is 0.1; the recorded figure and its band: SMALL_RUN_ACCURACY
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
    # The git state of the checkout the app ran from (git_state itself: test_git_state_* below).
    assert record["git"] == git_state(PROJECT_DIR)


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.fixture
def repo(tmp_path, monkeypatch) -> Path:
    """A git repository of one committed file, with its code in a subfolder as mnist_hydra's is."""
    if shutil.which("git") is None:
        skip_unless_ci("git is not installed")
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))  # no repository above tmp_path counts
    repo = tmp_path / "repo"
    (repo / "pkg").mkdir(parents=True)
    (repo / "pkg" / "code.py").write_text("x = 1\n")
    _git(repo, "init", "-q")
    _git(repo, "add", "pkg/code.py")
    _git(repo, "commit", "-q", "-m", "first")
    return repo


def test_git_state_names_the_commit_and_whether_tracked_files_changed(repo, tmp_path):
    commit = _git(repo, "rev-parse", "HEAD")
    assert len(commit) == 40
    assert git_state(repo / "pkg") == {"commit": commit, "dirty": False}
    (repo / "notes.txt").write_text("untracked files are not the code that ran")
    assert git_state(repo / "pkg") == {"commit": commit, "dirty": False}
    (repo / "pkg" / "code.py").write_text("x = 2\n")
    assert git_state(repo / "pkg") == {"commit": commit, "dirty": True}
    _git(repo, "commit", "-q", "-am", "second")
    second = _git(repo, "rev-parse", "HEAD")
    assert second != commit and git_state(repo / "pkg") == {"commit": second, "dirty": False}
    (tmp_path / "elsewhere").mkdir()
    assert git_state(tmp_path / "elsewhere") is None  # not in a repository: an installed wheel


def test_provenance_records_the_git_state_of_the_code(repo, tmp_path, monkeypatch, compose_config):
    from mnist_hydra.config import validate
    from mnist_hydra.data.splits import Splits
    from mnist_hydra.runs import provenance

    monkeypatch.setattr(provenance, "PROJECT_DIR", repo / "pkg")
    (repo / "pkg" / "code.py").write_text("x = 3\n")
    images, labels = np.zeros((4, 28, 28), np.uint8), np.arange(4, dtype=np.uint8)
    splits = Splits(
        images,
        labels,
        images[:2],
        labels[:2],
        images,
        labels,
        tuple("0123456789"),
        "memory",
        {},
        False,
        train_indices=np.array([3, 2]),
        val_indices=np.array([0, 1]),
    )
    provenance.write_provenance(tmp_path, validate(compose_config()), splits, ["seed=0"])
    record = json.loads((tmp_path / "provenance.json").read_text())
    assert record["git"] == {"commit": _git(repo, "rev-parse", "HEAD"), "dirty": True}
    with np.load(tmp_path / "data_split.npz") as split:
        assert split["train"].tolist() == [3, 2] and split["val"].tolist() == [0, 1]


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
    printed = {re.fullmatch(r"run directory: (\S+)", out.strip().splitlines()[-1]).group(1) for out in outputs}
    assert all(re.match(r"test accuracy \d\.\d{4} ", out.strip().splitlines()[-4]) for out in outputs)
    assert printed == {str(d) for d in _run_dirs(cwd)}


def test_same_seed_gives_the_same_figures_epoch_by_epoch(twin_runs):
    cwd, _ = twin_runs
    first, second = (json.loads((d / "metrics.json").read_text()) for d in _run_dirs(cwd))
    assert first["history"] == second["history"]
    assert (first["test_accuracy"], first["test_loss"]) == (second["test_accuracy"], second["test_loss"])
    assert first["confusion_matrix"] == second["confusion_matrix"]


# Where the band comes from: the small run (SMALL_RUN: seed 0, one epoch on 2,000 training images, scored on
# the first 1,000 test images) scored 0.820 test accuracy (0.827 validation) in three separate runs, all
# identical, on 2 CPU cores with TensorFlow 2.21 / Keras 3.15 (2026-11-26). Another CPU's rounding moves a
# fixed seed's figure by a few images; another start moves it more (seeds 1-4: 0.837-0.852). The band is
# 0.820 +- 0.02: a change of data, network, optimizer or loss moves it out (scaling pixels by 1/25.5 instead
# of 1/255 scores 0.874; a broken one far less).
SMALL_RUN_ACCURACY = (0.80, 0.84)


def test_small_run_reaches_its_recorded_accuracy(twin_runs):
    cwd, _ = twin_runs
    low, high = SMALL_RUN_ACCURACY
    for run in _run_dirs(cwd):
        metrics = json.loads((run / "metrics.json").read_text())
        assert low <= metrics["test_accuracy"] <= high, metrics["test_accuracy"]
        assert abs(metrics["val_accuracy"] - metrics["test_accuracy"]) < 0.03  # validation agrees with the test


def test_a_small_fashion_mnist_run_trains(tmp_path, fashion_dir):
    result = call_app(
        "data=fashion_mnist",
        *SMALL_RUN,
        "data.test_limit=500",
        f"hydra.run.dir={tmp_path}/run",
        cwd=tmp_path,
        env={"MNIST_HYDRA_DATA": ""},
    )
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["data_source"] == str(fashion_dir)
    assert metrics["data_checksums"] == dict(zip(FASHION_MNIST.files, FASHION_MNIST.sha256, strict=False))
    assert (metrics["train_images"], metrics["test_images"]) == (2000, 500)
    # Chance is 0.1. Measured here (2026-11-26): seed 0 scores 0.686, seeds 1 and 2 0.762 and 0.734; the band
    # is that spread and a few points more (clothes are harder than digits: MNIST's same run scores 0.82).
    assert 0.64 <= metrics["test_accuracy"] <= 0.80, metrics["test_accuracy"]
    assert "name: fashion_mnist" in (tmp_path / "run" / "report.html").read_text()


def test_multirun_leaves_complete_run_directories_and_no_state_crosses_jobs(tmp_path, mnist_dir):
    sweep = tmp_path / "sweep"
    tiny = ["model=mlp", "trainer.epochs=1", "trainer.verbose=0", "data.train_limit=300", "data.test_limit=100"]
    result = call_app(
        "--multirun",
        "seed=0,1,0",
        *tiny,
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
        env={"MNIST_HYDRA_DATA": str(mnist_dir)},
    )
    assert result.returncode == 0, result.stderr
    assert (sweep / "multirun.yaml").is_file()
    jobs = [json.loads((sweep / str(i) / "metrics.json").read_text()) for i in (0, 1, 2)]
    for i in (0, 1, 2):
        for name in ARTIFACTS:
            assert (sweep / str(i) / name).is_file(), (i, name)
    assert [job["seed"] for job in jobs] == [0, 1, 0]
    # Job 2 runs job 0's config again, in the process that has just trained jobs 0 and 1: no graph, seed or
    # optimizer state may leak across, so it matches job 0 figure for figure.
    assert jobs[2]["history"] == jobs[0]["history"]
    assert (jobs[2]["test_loss"], jobs[2]["confusion_matrix"]) == (jobs[0]["test_loss"], jobs[0]["confusion_matrix"])
    assert jobs[0]["history"] != jobs[1]["history"]


# The reference run's figures as measured on this project's 2-core AMD EPYC (Zen 3) with TensorFlow 2.21 /
# Keras 3.15: op determinism makes them the same on every run there. Another CPU's rounding, or another thread
# count, moves them, so the band is the promise everywhere and the figures a tripwire on that machine only.
REFERENCE_ACCURACY = 0.9864
REFERENCE_DIGEST = "196b723cd10a7435d7530f99a4362450412ddf514964cf5aa8ff6c55c420070c"
REFERENCE_MACHINE = ("AuthenticAMD", "25", "1", 2)  # /proc/cpuinfo's vendor_id, cpu family and model; cores


def _machine() -> tuple[str, str, str, int]:
    """This machine as REFERENCE_MACHINE names one."""
    fields: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    return (
        fields.get("vendor_id", ""),
        fields.get("cpu family", ""),
        fields.get("model", ""),
        len(os.sched_getaffinity(0)),
    )


@pytest.mark.slow
def test_default_run_reaches_the_reference_accuracy(tmp_path, mnist_dir):
    """The full reference run: 10 epochs on all of MNIST (several minutes on two cores); its accuracy, and the
    final weights' SHA-256 that the run logs."""
    result = run_app(
        "trainer.verbose=2",
        f"hydra.run.dir={tmp_path}/run",
        cwd=tmp_path,
        # Every core, as the README's command trains (conftest gives each xdist worker's processes their share):
        # the thread count decides how sums are split, and so the pinned figures.
        env={"MNIST_HYDRA_DATA": str(mnist_dir), "TF_NUM_INTRAOP_THREADS": "0"},
        timeout=1800,
    )
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["epochs_run"] == 10
    assert metrics["test_accuracy"] >= 0.984
    digests = re.findall(r"final weights: sha256 (\w+)", (tmp_path / "run" / "train.log").read_text())
    assert len(digests) == 1
    if _machine() == REFERENCE_MACHINE:
        assert (metrics["test_accuracy"], digests[0]) == (REFERENCE_ACCURACY, REFERENCE_DIGEST)
