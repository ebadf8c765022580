"""Trackers in the app and its sweeps (in-process, hydra.sweep.dir=tmp), and MLflow's SQLite store under writers
that start together (processes: only processes race)."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from mnist_hydra.tracking.base import RunInfo
from mnist_hydra.tracking.fanout import Loggers
from mnist_hydra.tracking.loggers.mlflow import MlflowConfig, MlflowLogger
from tests.conftest import TINY_SEARCH, call_app, run_app

# The smallest real run (the MLP on 300 images, scored on 100), validated on 600 images, two epochs, both trackers.
TINY_JOB = [
    *(o for o in TINY_SEARCH if not o.startswith("hydra.sweeper.") and o != "trainer.epochs=1"),
    "trainer.epochs=2",
    "data.val_split=0.01",
    "logger=[tensorboard,mlflow]",
]


@pytest.mark.parametrize(
    "args, expected",
    [
        (
            ["logger=mlflow", "logger.mlflow.tracking_uri=ftp://host/store"],
            "logger.mlflow.tracking_uri=ftp://host/store is not allowed: expected null (sqlite:///mlruns.db",
        ),
        (
            ["logger=[tensorboard,wandb]"],
            "logger=wandb is not a logger option; choose one of: csv, mlflow, tensorboard",
        ),
        (
            ["--multirun", "logger=mlflow", "logger.mlflow.tracking_uri=mlruns", "seed=1,2"],
            "logger.mlflow.tracking_uri=mlruns is not allowed",
        ),
    ],
)
def test_a_misconfigured_logger_stops_the_app_in_one_line_before_any_data(args, expected, tmp_path):
    # data.root points nowhere: had the data been read first, the error would be about it.
    result = call_app(*args, f"data.root={tmp_path}/no-data", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith(f"mnist_hydra: error: {expected}") and result.stderr.count("\n") == 1
    assert list(tmp_path.iterdir()) == []  # no run or sweep directory, no store


def runs_by_name(client: MlflowClient) -> dict:
    experiments = [e.experiment_id for e in client.search_experiments()]
    return {run.info.run_name: run for run in client.search_runs(experiments)}


def test_a_sweep_is_a_parent_run_with_a_child_per_job_failed_one_included(tmp_path, mnist_dir):
    # A logger's own setting is in every job's overrides; it names no child run (as it is no param).
    store = f"sqlite:///{tmp_path / 'mlruns.db'}"
    result = call_app(
        "--multirun",
        *TINY_JOB,
        f"logger.mlflow.tracking_uri={store}",
        "optimizer.lr=0.001,1e6",
        f"hydra.sweep.dir={tmp_path}/sweep",
        cwd=tmp_path,
        env={"MNIST_HYDRA_DATA": str(mnist_dir)},
    )
    assert result.returncode == 0, result.stderr
    client = MlflowClient(store)
    runs = runs_by_name(client)
    assert sorted(runs) == [
        "job 0: optimizer.lr=0.001",
        "job 1: optimizer.lr=1000000.0",
        f"sweep {tmp_path.name}/sweep",
    ]
    parent = runs[f"sweep {tmp_path.name}/sweep"]
    done, failed = runs["job 0: optimizer.lr=0.001"], runs["job 1: optimizer.lr=1000000.0"]
    assert parent.info.status == "FINISHED" and done.info.status == "FINISHED" and failed.info.status == "FAILED"
    for child in (done, failed):
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert child.data.tags["mnist_hydra.run_dir"] == str(tmp_path / "sweep" / child.data.tags["mnist_hydra.job"])
    assert "mlflow.parentRunId" not in parent.data.tags
    assert parent.data.metrics == {
        "jobs": 2,
        "jobs_completed": 1,
        "jobs_failed": 1,
        "best_val_accuracy": done.data.metrics["val_accuracy"],
    }
    assert {"sweep_results.csv", "sweep_summary.png"} <= {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert [m.step for m in client.get_metric_history(done.info.run_id, "val_accuracy")] == [1, 2]
    failure = [a.path for a in client.list_artifacts(failed.info.run_id)]
    assert failure == ["metrics.json"]  # it says why: training diverged
    assert json.loads((tmp_path / "sweep" / "tracking.json").read_text())["mlflow"]["run_id"] == parent.info.run_id
    # TensorBoard: `tensorboard --logdir SWEEP_DIR` finds each job's HParams session.
    for job in ("0", "1"):
        events = EventAccumulator(str(tmp_path / "sweep" / job / "tensorboard"))
        events.Reload()
        assert "_hparams_/session_start_info" in events.PluginTagToContent("hparams")


@pytest.mark.slow
def test_parallel_joblib_jobs_on_the_sqlite_store_lose_no_run(tmp_path, mnist_dir):
    result = run_app(
        "--multirun",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "trainer.threads=1",
        *TINY_JOB,
        "seed=1,2",
        f"hydra.sweep.dir={tmp_path}/sweep",
        cwd=tmp_path,
        env={"MNIST_HYDRA_DATA": str(mnist_dir)},
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert "locked" not in result.stdout + result.stderr and "logger stopped" not in result.stdout
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlruns.db'}")
    runs = runs_by_name(client)
    parent = runs.pop(f"sweep {tmp_path.name}/sweep")
    assert sorted(runs) == ["job 0: seed=1", "job 1: seed=2"]
    for run in runs.values():
        assert run.info.status == "FINISHED" and run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert [m.step for m in client.get_metric_history(run.info.run_id, "loss")] == [1, 2]
        assert "test_accuracy" in run.data.metrics
    assert _integrity(tmp_path / "mlruns.db") == "ok"


@pytest.mark.slow
def test_a_resumed_sweep_continues_its_parent_and_stopped_child_runs(tmp_path, mnist_dir):
    env = {**os.environ, "MNIST_HYDRA_DATA": str(mnist_dir), "TF_CPP_MIN_LOG_LEVEL": "2"}
    args = ["--multirun", *TINY_JOB, "trainer.epochs=3", "data.train_limit=3000", "seed=1,2", "hydra.sweep.dir=sweep"]
    sweep = subprocess.Popen(
        [sys.executable, "-m", "mnist_hydra", *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    pointer = tmp_path / "sweep" / "0" / "checkpoints" / "checkpoint.json"
    deadline = time.monotonic() + 300
    while not (pointer.is_file() and json.loads(pointer.read_text())["epoch"] >= 1):
        assert sweep.poll() is None and time.monotonic() < deadline, sweep.communicate()
        time.sleep(0.05)
    sweep.send_signal(signal.SIGTERM)
    assert sweep.wait(timeout=120) == 143
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlruns.db'}")
    stopped = runs_by_name(client)
    assert {name: run.info.status for name, run in stopped.items()} == {
        f"sweep {tmp_path.name}/sweep": "KILLED",
        "job 0: seed=1": "KILLED",
    }

    result = run_app("resume=sweep", cwd=tmp_path, env={"MNIST_HYDRA_DATA": str(mnist_dir)}, timeout=600)
    assert result.returncode == 0, result.stderr
    resumed = runs_by_name(client)
    assert sorted(resumed) == ["job 0: seed=1", "job 1: seed=2", f"sweep {tmp_path.name}/sweep"]
    for name, run in stopped.items():
        assert resumed[name].info.run_id == run.info.run_id and resumed[name].info.status == "FINISHED"
    for name in ("job 0: seed=1", "job 1: seed=2"):
        assert [m.step for m in client.get_metric_history(resumed[name].info.run_id, "val_loss")] == [1, 2, 3]


EPOCHS = 3


def _log_a_run(root: str, index: int, barrier) -> None:
    """One writer: a run of EPOCHS epochs into the store in `root`, started together with the others."""
    run_dir = Path(root) / f"run{index}"
    run_dir.mkdir()
    loggers = Loggers({"mlflow": MlflowLogger(MlflowConfig())})
    barrier.wait()
    loggers.start(RunInfo(run_dir=run_dir, launch_dir=Path(root)), {"index": index}, {"run_dir": str(run_dir)})
    figures: dict = {}
    callback = loggers.callback(lambda: figures)  # as fit() drives it: Keras's epochs from 0
    for epoch in range(EPOCHS):
        figures = {"loss": 1 / (epoch + 1), "val_accuracy": (epoch + 1) / EPOCHS}
        callback.on_epoch_end(epoch, figures)
    loggers.end("completed", {"test_accuracy": 0.5, "test_loss": 1.0, "epochs_run": EPOCHS})
    assert loggers.active, "the logger was dropped"


@pytest.mark.slow
def test_runs_started_together_on_a_new_sqlite_store_all_land(tmp_path):
    # No sweep to create the store first: two processes open a store that does not exist yet, at once.
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    writers = [context.Process(target=_log_a_run, args=(str(tmp_path), i, barrier)) for i in range(2)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=300)
    assert [writer.exitcode for writer in writers] == [0, 0]
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlruns.db'}")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert sorted(run.data.params["index"] for run in runs) == ["0", "1"]
    for run in runs:
        assert run.info.status == "FINISHED"
        assert [m.step for m in client.get_metric_history(run.info.run_id, "loss")] == list(range(1, EPOCHS + 1))
    assert _integrity(tmp_path / "mlruns.db") == "ok"


def _integrity(database: Path) -> str:
    with sqlite3.connect(database) as connection:
        return connection.execute("PRAGMA integrity_check").fetchone()[0]
