"""Loggers and training control, in process on tiny runs: TensorBoard's, MLflow's and the CSV logger's records
read back with their own readers; early stopping, keep=best and the plateau schedule, across a resume too."""

from __future__ import annotations

import importlib
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_module
from mlflow.tracking import MlflowClient
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2
from tensorboard.util import tensor_util

from mnist_hydra.apps.boundary import describe
from mnist_hydra.config import Config, store_schemas, validate
from mnist_hydra.data.pipeline import make_dataset
from mnist_hydra.data.splits import load_splits
from mnist_hydra.errors import ConfigError, Interrupted
from mnist_hydra.registry import Registry
from mnist_hydra.tracking import sweep
from mnist_hydra.tracking.base import Logger, RunInfo, flatten, read_record, write_record
from mnist_hydra.training.checkpoints import Checkpoints
from mnist_hydra.training.run import train_and_evaluate

# Three epochs of 16 steps (the MLP on 256 images, 16 a batch), validated on 600 and scored on 100.
TINY = [
    "model=mlp",
    "trainer.epochs=3",
    "trainer.verbose=0",
    "trainer.batch_size=16",
    "data.train_limit=256",
    "data.test_limit=100",
    "data.val_split=0.01",
]
EPOCH_FIGURES = ["accuracy", "learning_rate", "loss", "val_accuracy", "val_loss"]


def make_config(*overrides: str) -> Config:
    """The app's config composed with `overrides` on top of TINY, validated."""
    store_schemas()
    with initialize_config_module(config_module="mnist_hydra.conf", version_base="1.3"):
        return validate(compose(config_name="config", overrides=[*TINY, *overrides]))


def train(tmp: Path, *overrides: str, run: str = "run", resume: bool = False, **info) -> dict:
    """train_and_evaluate in `tmp/run`, launched from `tmp` (where the default MLflow store goes)."""
    config = make_config(*overrides)
    return train_and_evaluate(
        config, tmp / run, resume=resume, run_info=RunInfo(run_dir=tmp / run, launch_dir=tmp, resumed=resume, **info)
    )


def store(tmp: Path) -> MlflowClient:
    return MlflowClient(f"sqlite:///{tmp / 'mlruns.db'}")


def only_run(client: MlflowClient, name: str = "run"):
    """The one MLflow run named `name` (a run directory's name) in the store."""
    runs = [
        r for r in client.search_runs([e.experiment_id for e in client.search_experiments()]) if r.info.run_name == name
    ]
    assert len(runs) == 1, [r.info.run_name for r in runs]
    return runs[0]


def steps(client: MlflowClient, run_id: str, key: str) -> list[int]:
    return [m.step for m in client.get_metric_history(run_id, key)]


def scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar tag of one TensorBoard run folder: [(step, value)], read with TensorBoard's own reader."""
    events = EventAccumulator(str(folder), size_guidance={"tensors": 0})
    events.Reload()
    return {
        tag: [(e.step, float(tensor_util.make_ndarray(e.tensor_proto))) for e in events.Tensors(tag)]
        for tag in events.Tags()["tensors"]
        if events.SummaryMetadata(tag).plugin_data.plugin_name == "scalars"
    }


def hparams_session(folder: Path) -> dict[str, object]:
    """The HParams plugin's session record of a run folder: hyperparameter name -> value."""
    events = EventAccumulator(str(folder))
    events.Reload()
    content = events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    info = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
    return {
        key: value.WhichOneof("kind") and getattr(value, value.WhichOneof("kind"))
        for key, value in info.hparams.items()
    }


def tracker_warnings(caplog) -> list[str]:
    """Warnings logged by anyone but TensorFlow (whose retracing notice several runs in one process earn), less
    the tiny runs' own warning that they train on few images."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.WARNING
        and not r.name.startswith("tensorflow")
        and not r.getMessage().startswith("training on only ")
    ]


def stop_after_epoch(monkeypatch, epoch: int) -> None:
    """Send this process SIGINT once epoch `epoch`'s checkpoint is written: the next epoch is cut short."""
    save = Checkpoints.save

    def save_then_stop(self, model, state, best=False):
        save(self, model, state, best)
        if state.epoch == epoch:
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(Checkpoints, "save", save_then_stop)


def keep_every_checkpoint(monkeypatch, folder: Path) -> None:
    """Copy each epoch's checkpoint to `folder` before the next epoch drops it."""
    save = Checkpoints.save
    folder.mkdir()

    def save_and_copy(self, model, state, best=False):
        save(self, model, state, best)
        shutil.copy(self.folder / f"epoch-{state.epoch:04d}.keras", folder)

    monkeypatch.setattr(Checkpoints, "save", save_and_copy)


@pytest.fixture(scope="module")
def logged_run(tmp_path_factory, mnist_dir) -> tuple[Path, dict]:
    """Three epochs with every logger, the plateau schedule cutting the lr after epoch 2."""
    tmp = tmp_path_factory.mktemp("logged")
    metrics = train(
        tmp,
        "logger=[tensorboard,mlflow,csv]",
        "logger.tensorboard.update_freq=8",
        "optimizer.schedule=plateau",
        "optimizer.plateau_patience=1",
        "optimizer.plateau_min_delta=10",
        overrides=["logger=[tensorboard,mlflow]"],
        git_commit="abc123",
    )
    return tmp, metrics


# --- config -------------------------------------------------------------------------------------------------


def test_logger_group_takes_one_name_or_a_list_and_defaults_to_none():
    assert make_config().logger == {}
    assert list(make_config("logger=tensorboard").logger) == ["tensorboard"]
    both = make_config("logger=[tensorboard,mlflow]", "logger.mlflow.experiment=mine").logger
    assert sorted(both) == ["mlflow", "tensorboard"] and both["mlflow"].experiment == "mine"


@pytest.mark.parametrize(
    "override, expected",
    [
        ("logger=[tensorboard,wandb]", "logger=wandb is not a logger option; choose one of: csv, mlflow, tensorboard"),
        (
            "logger.mlflow.tracking_uri=ftp://host/x",
            "logger.mlflow.tracking_uri=ftp://host/x is not allowed: expected null",
        ),
        ("logger.mlflow.tracking_uri=/some/folder", "logger.mlflow.tracking_uri=/some/folder is not allowed"),
        (
            "logger.csv.filename=../epochs.csv",
            "logger.csv.filename=../epochs.csv is not allowed: expected a file name ending in .csv, without a folder",
        ),
        ("logger.csv.filename=history.csv", "logger.csv.filename=history.csv is not allowed"),
    ],
)
def test_a_misconfigured_logger_is_a_one_line_config_error(override, expected):
    extra = [] if override.startswith("logger=[") else [f"logger={override.split('.')[1]}"]
    with pytest.raises(Exception) as caught:
        make_config(*extra, override)
    message = describe(caught.value)
    assert message is not None and message.startswith(expected) and "\n" not in message


def test_trainer_keys_check_their_values():
    config = make_config("trainer.early_stopping.patience=2", "trainer.keep=best")
    assert config.trainer.stopping.patience == 2 and config.trainer.best_monitor == ("val_accuracy", "max")
    assert make_config("trainer.early_stopping=null").trainer.stopping is None
    assert make_config("trainer.early_stopping.monitor=val_loss").trainer.best_monitor == ("val_loss", "min")
    for override, key in [
        ("trainer.keep=worst", "trainer.keep"),
        ("trainer.early_stopping.monitor=val_f1", "trainer.early_stopping.monitor"),
        ("trainer.early_stopping.patience=-1", "trainer.early_stopping.patience"),
        ("optimizer.plateau_factor=1.5", "optimizer.plateau_factor"),
        ("optimizer.min_lr=1", "optimizer.min_lr"),
    ]:
        with pytest.raises(ConfigError, match=f"^{key}="):
            make_config(override)


def test_flatten_gives_dotted_keys_and_keeps_empty_groups():
    assert flatten({"a": {"b": 1, "c": {"d": None}}, "e": {}}) == {"a.b": 1, "a.c.d": None, "e": None}


# --- TensorBoard --------------------------------------------------------------------------------------------


def test_tensorboard_has_one_point_per_epoch_of_every_scalar(logged_run):
    tmp, metrics = logged_run
    board = tmp / "run" / "tensorboard"
    train_figures, val_figures = scalars(board / "train"), scalars(board / "validation")
    for tag in ("epoch_loss", "epoch_accuracy", "epoch_learning_rate"):
        assert [step for step, _ in train_figures[tag]] == [1, 2, 3], tag
    for tag in ("epoch_loss", "epoch_accuracy"):
        assert [step for step, _ in val_figures[tag]] == [1, 2, 3], tag
    assert [v for _, v in val_figures["epoch_accuracy"]] == pytest.approx(metrics["history"]["val_accuracy"])
    # The plateau cut (val_loss never falls by 10) halves the lr after epochs 2 and 3; epoch 3 trained at half.
    assert [v for _, v in train_figures["epoch_learning_rate"]] == pytest.approx([1e-3, 1e-3, 5e-4])
    # 16 steps an epoch reported every 16 (steps_per_execution), one point on each multiple of 8 passed.
    assert [step for step, _ in train_figures["batch_loss"]] == [16, 32, 48]
    final = scalars(board)
    assert final["test/accuracy"] == [(3, pytest.approx(metrics["test_accuracy"]))]
    assert {"test/loss", "final/kept_epoch", "final/best_val_accuracy"} <= set(final)


def test_tensorboard_hparams_record_holds_the_config_and_the_images_are_there(logged_run):
    tmp, _ = logged_run
    board = tmp / "run" / "tensorboard"
    session = hparams_session(board)
    assert session["optimizer.lr"] == pytest.approx(1e-3) and session["optimizer.schedule"] == "plateau"
    assert session["trainer.epochs"] == 3 and session["data.name"] == "mnist"
    assert not any(key.startswith("logger.") for key in session)
    events = EventAccumulator(str(board), size_guidance={"tensors": 0})
    events.Reload()
    images = [
        tag for tag in events.Tags()["tensors"] if events.SummaryMetadata(tag).plugin_data.plugin_name == "images"
    ]
    assert sorted(images) == ["confusion_matrix", "misclassified"]


# --- MLflow -------------------------------------------------------------------------------------------------


def test_mlflow_run_has_params_epoch_metrics_artifacts_tags_and_status(logged_run):
    tmp, metrics = logged_run
    client = store(tmp)
    run = only_run(client)
    assert run.info.status == "FINISHED" and run.info.run_name == "run"
    assert client.get_experiment(run.info.experiment_id).name == "mnist_hydra"
    params = run.data.params
    assert params["optimizer.lr"] == "0.001" and params["trainer.epochs"] == "3" and params["data.root"] == "null"
    assert params["trainer.early_stopping.patience"] == "null" and not any(k.startswith("logger") for k in params)
    for key in EPOCH_FIGURES:
        assert steps(client, run.info.run_id, key) == [1, 2, 3], key
    history = [m.value for m in client.get_metric_history(run.info.run_id, "val_accuracy")]
    assert history == pytest.approx(metrics["history"]["val_accuracy"])
    assert run.data.metrics["test_accuracy"] == pytest.approx(metrics["test_accuracy"])
    assert run.data.metrics["kept_epoch"] == 3
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {
        "training_curves.png",
        "confusion_matrix.png",
        "misclassified.png",
        "report.html",
        "metrics.json",
        "model",
    } <= artifacts
    assert [a.path for a in client.list_artifacts(run.info.run_id, "model")] == ["model/model.keras"]
    tags = run.data.tags
    assert tags["mnist_hydra.overrides"] == "logger=[tensorboard,mlflow]"
    assert tags["mlflow.source.git.commit"] == "abc123"
    assert tags["mnist_hydra.run_dir"] == str((tmp / "run").resolve())
    record = json.loads((tmp / "run" / "tracking.json").read_text())
    assert record["mlflow"]["run_id"] == run.info.run_id


def test_a_failing_or_unreachable_logger_costs_one_warning_line_and_nothing_else(
    tmp_path, mnist_dir, caplog, monkeypatch
):
    """MLflow's server is unreachable from the start, the CSV logger's disk fills at its first epoch: one warning
    line each, the logger dropped, and the other logger and the run directory go on."""
    from mnist_hydra.tracking.loggers.csv import CsvLogger

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    calls = []

    def disk_full(self, epoch, logs=None):
        calls.append(epoch)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(keras.callbacks.CSVLogger, "on_epoch_end", disk_full)
    monkeypatch.setattr(CsvLogger, "end", lambda self, status, metrics: calls.append(status))
    with caplog.at_level(logging.WARNING):
        metrics = train(
            tmp_path, "logger=[mlflow,csv,tensorboard]", f"logger.mlflow.tracking_uri=http://127.0.0.1:{port}"
        )
    warnings = tracker_warnings(caplog)
    assert len(warnings) == 2, warnings
    assert (
        warnings[0].startswith(
            f"mlflow logger stopped: cannot reach the MLflow tracking server http://127.0.0.1:{port}"
        )
        and "\n" not in warnings[0]
    )
    assert warnings[1] == (
        "csv logger stopped: OSError: [Errno 28] No space left on device; "
        "training and the run directory go on without it"
    )
    assert calls == [1]  # dropped: not called again for epochs 2 and 3, nor to end the run
    run = tmp_path / "run"
    assert metrics["status"] == "completed" and metrics["epochs_run"] == 3
    assert json.loads((run / "metrics.json").read_text())["status"] == "completed"
    for name in ("model.keras", "history.csv", "report.html", "confusion_matrix.png", "misclassified.png"):
        assert (run / name).is_file(), name
    # The other logger went on.
    assert [step for step, _ in scalars(run / "tensorboard" / "train")["epoch_loss"]] == [1, 2, 3]
    assert not (tmp_path / "mlruns.db").exists()


# --- CSV: a logger that is one module and one YAML file ------------------------------------------------------


def test_the_csv_logger_writes_a_row_per_epoch_as_history_csv_has_them(logged_run):
    tmp, metrics = logged_run
    rows = pd.read_csv(tmp / "run" / "epochs.csv")
    assert list(rows.columns) == ["epoch", *EPOCH_FIGURES]
    assert rows["epoch"].tolist() == [1, 2, 3]
    history = pd.read_csv(tmp / "run" / "history.csv")
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert rows[key].tolist() == pytest.approx(history[key].tolist()), key
    assert rows["learning_rate"].tolist() == pytest.approx([1e-3, 1e-3, 5e-4])  # each epoch's own, as trained


def test_a_logger_module_registers_itself_and_the_registry_imports_no_tracker():
    # In a fresh interpreter: what the config's validation imports (sys.modules is per process).
    probe = (
        "import sys, mnist_hydra.config\n"
        "from mnist_hydra.tracking.loggers import LOGGERS\n"
        "print(LOGGERS.names(), sorted(m for m in ('keras', 'tensorflow', 'mlflow', 'tensorboard') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "['csv', 'mlflow', 'tensorboard'] []", result.stderr
    # Each module of tracking/loggers/ is an option of conf/logger/, with nothing else edited to add it.
    root = Path(__file__).resolve().parents[1] / "mnist_hydra"
    modules = sorted(p.stem for p in (root / "tracking" / "loggers").glob("*.py") if p.stem != "__init__")
    assert (
        modules == sorted(p.stem for p in (root / "conf" / "logger").glob("*.yaml")) == ["csv", "mlflow", "tensorboard"]
    )


def test_a_logger_as_the_extending_page_shows(tmp_path, mnist_dir, monkeypatch):
    """docs/extending.md's logger, pasted into a user's module and run with the page's own overrides."""
    page = (Path(__file__).resolve().parents[1] / "docs" / "extending.md").read_text()
    code = next(block for block in re.findall(r"```python\n(.*?)```", page, re.S) if "LOGGERS.register" in block)
    module = re.search(r"# (\w+)\.py", code).group(1)
    (tmp_path / f"{module}.py").write_text(code)
    monkeypatch.syspath_prepend(str(tmp_path))
    from mnist_hydra.tracking.loggers import LOGGERS

    for registered in ("_builders", "_schemas"):  # the registry as it was, after the test
        monkeypatch.setattr(LOGGERS, registered, dict(getattr(LOGGERS, registered)))
    importlib.import_module(module)  # as the app does before composing: `logger=jsonl` is then an option
    overrides = re.search(rf"python -m mnist_hydra (plugins=\[{module}\] .*)", page).group(1).split()
    metrics = train(tmp_path, *overrides, "trainer.epochs=2")
    lines = [json.loads(line) for line in (tmp_path / "run" / "epochs.jsonl").read_text().splitlines()]
    assert [line["epoch"] for line in lines[:-1]] == [1, 2]
    assert lines[0]["val_accuracy"] == pytest.approx(metrics["history"]["val_accuracy"][0])
    assert lines[-1] == {"test_accuracy": pytest.approx(metrics["test_accuracy"])}
    assert (tmp_path / "run" / "tensorboard").is_dir()  # beside a built-in logger


class SweepProbe(Logger):
    """A logger that keeps a record per sweep, as MLflow's parent run does."""

    calls: list = []

    def start(self, info, params, tags): ...

    def callback(self):
        return keras.callbacks.Callback()

    def end(self, status, metrics): ...

    @classmethod
    def open_sweep(cls, config, sweep):
        cls.calls.append(("open", config, sweep.run_dir, sweep.overrides))
        write_record(sweep.run_dir, "probe", {"opened": True})

    @classmethod
    def close_sweep(cls, sweep_dir, status, metrics):
        cls.calls.append(("close", status, dict(metrics)))


def test_sweep_level_work_goes_through_the_logger_interface(tmp_path, monkeypatch):
    registry = Registry("logger")
    registry.register("probe", schema=dict)(SweepProbe)
    registry.register("plain", schema=dict)(type("Plain", (SweepProbe,), {"open_sweep": classmethod(lambda *a: None)}))
    monkeypatch.setattr(sweep, "LOGGERS", registry)
    monkeypatch.setattr(SweepProbe, "calls", [])
    sweep.open_sweep({"probe": {"x": 1}, "plain": {}}, tmp_path, tmp_path, "app", ["seed=1,2"], None)
    assert SweepProbe.calls == [("open", {"x": 1}, tmp_path, ["seed=1,2"])]
    assert read_record(tmp_path) == {"probe": {"opened": True}}
    sweep.close_sweep(tmp_path, ["completed", "failed", "pruned"], 0.9)
    sweep.interrupt_sweep(tmp_path)
    # Only the logger that recorded a sweep is asked to close it.
    assert SweepProbe.calls[1:] == [
        (
            "close",
            "completed",
            {"jobs": 3, "jobs_completed": 1, "jobs_failed": 1, "jobs_pruned": 1, "best_val_accuracy": 0.9},
        ),
        ("close", "interrupted", {}),
    ]


# --- early stopping, keep=best, plateau, resume -------------------------------------------------------------


# Early stopping on the training loss by max (it falls every epoch), never better by 10: epoch 1 is the best,
# the run stops after epoch 3 (patience 2). keep=best on the same figure: epoch 1's weights, a best that is not
# the last. The plateau cuts the lr after epochs 2 and 3 (val_loss never falls by 10). A run stopped after
# epoch 2 must resume with the patience counter at 1, the best weights kept and the lr already cut, or it
# would train longer, differently, or score other weights.
CONTROLLED = [
    "trainer.epochs=6",
    "trainer.early_stopping.patience=2",
    "trainer.early_stopping.min_delta=10",
    "trainer.early_stopping.monitor=loss",
    "trainer.early_stopping.mode=max",
    "trainer.keep=best",
    "optimizer.schedule=plateau",
    "optimizer.plateau_patience=1",
    "optimizer.plateau_min_delta=10",
    "logger=[tensorboard,mlflow,csv]",
    "logger.tensorboard.update_freq=8",
]


@pytest.fixture(scope="module")
def controlled(tmp_path_factory, mnist_dir) -> tuple[Path, dict]:
    """CONTROLLED, never stopped, in `tmp/reference`, every epoch's checkpoint copied to `tmp/every_epoch`."""
    tmp = tmp_path_factory.mktemp("controlled")
    with pytest.MonkeyPatch.context() as patch:
        keep_every_checkpoint(patch, tmp / "every_epoch")
        reference = train(tmp, *CONTROLLED, run="reference")
    return tmp, reference


def test_early_stopping_stops_at_the_predicted_epoch(controlled):
    _, metrics = controlled
    assert metrics["epochs_run"] == 3 and metrics["stopped_early"] is True
    assert len(metrics["history"]["val_loss"]) == 3


def test_keep_best_scores_the_best_epochs_weights(controlled, mnist_dir):
    tmp, metrics = controlled
    assert metrics["kept_epoch"] == 1 and metrics["keep"] == "best" and metrics["epochs_run"] == 3
    assert metrics["val_accuracy"] == metrics["history"]["val_accuracy"][0]
    config = make_config()
    splits = load_splits(config.data, seed=config.seed)
    test_data = make_dataset(splits.x_test, splits.y_test, 64)

    def accuracy(epoch: int) -> float:
        model = keras.models.load_model(tmp / "every_epoch" / f"epoch-{epoch:04d}.keras")
        return float(np.mean(model.predict(test_data, verbose=0).argmax(axis=1) == splits.y_test))

    assert metrics["test_accuracy"] == accuracy(1)
    assert accuracy(3) != accuracy(1)  # so the check above tells the kept epoch from the last
    assert json.loads((tmp / "reference" / "metrics.json").read_text())["kept_epoch"] == 1


def test_early_stopping_best_weights_and_plateau_survive_a_resume_exactly(controlled, monkeypatch):
    tmp_path, reference = controlled  # the same MLflow store, another run directory

    stop_after_epoch(monkeypatch, 2)
    with pytest.raises(Interrupted):
        train(tmp_path, *CONTROLLED)
    client = store(tmp_path)
    stopped = only_run(client)
    assert stopped.info.status == "KILLED"
    pointer = json.loads((tmp_path / "run" / "checkpoints" / "checkpoint.json").read_text())
    assert pointer["epoch"] == 2 and pointer["controls"]["early_stopping"]["watch"]["wait"] == 1
    assert pointer["best_weights"].startswith("best-epoch-")

    monkeypatch.undo()
    resumed = train(tmp_path, *CONTROLLED, resume=True)
    for key in (
        "epochs_run",
        "kept_epoch",
        "stopped_early",
        "test_accuracy",
        "test_loss",
        "val_loss",
        "history",
        "confusion_matrix",
    ):
        assert resumed[key] == reference[key], key

    # The same MLflow run, continued: every epoch once, the lr as the uninterrupted run had it.
    run = only_run(client)
    assert run.info.run_id == stopped.info.run_id and run.info.status == "FINISHED"
    assert steps(client, run.info.run_id, "val_loss") == [1, 2, 3]
    lrs = [m.value for m in client.get_metric_history(run.info.run_id, "learning_rate")]
    reference_run = only_run(client, "reference")
    assert lrs == [m.value for m in client.get_metric_history(reference_run.info.run_id, "learning_rate")]
    assert lrs == pytest.approx([1e-3, 1e-3, 5e-4])
    # TensorBoard: one point per epoch after the resume too, the cut epoch's steps dropped.
    board = scalars(tmp_path / "run" / "tensorboard" / "train")
    assert [step for step, _ in board["epoch_loss"]] == [1, 2, 3]
    assert [step for step, _ in board["batch_loss"]] == [16, 32, 48]
    assert len(hparams_sessions(tmp_path / "run" / "tensorboard")) == 1
    # CSV: the stopped run's rows kept and the rest appended under the one header, as the uninterrupted run's.
    assert (tmp_path / "run" / "epochs.csv").read_text() == (tmp_path / "reference" / "epochs.csv").read_text()


def hparams_sessions(folder: Path) -> list[bytes]:
    """Every HParams session record written in a run folder (one per run, resumed or not)."""
    events = EventAccumulator(str(folder), size_guidance={"tensors": 0})
    events.Reload()
    return [e.tensor_proto.SerializeToString() for e in events.Tensors("_hparams_/session_start_info")]
