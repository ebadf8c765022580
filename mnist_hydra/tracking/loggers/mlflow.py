"""MLflow: one MLflow run per run directory, in a SQLite store in the launch directory unless told otherwise.

Logged: the flattened config as params; loss, accuracy, val_loss, val_accuracy and learning_rate per
epoch (step = the epoch), then the test figures; the plots, report.html, metrics.json, history.csv and
the model as artifacts; the overrides, the git commit and the run directory as tags. A sweep is one
parent run with a child run per job (`open_sweep_run`, called once in the sweep's own process, so that
its jobs never race to create the store or the experiment). The run's id is kept in the run directory's
tracking.json, so a resumed run continues the same MLflow run.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlparse

from mnist_hydra.errors import require
from mnist_hydra.extras import require_extra
from mnist_hydra.tracking.base import LOGGERS, Logger, RunInfo, plain_value, read_record, short_error, write_record

if TYPE_CHECKING:
    import keras
    from mlflow import MlflowClient

log = logging.getLogger(__name__)
T = TypeVar("T")

NAME = "mlflow"  # the option (logger=mlflow) and the run's and sweep's entry in tracking.json

DEFAULT_STORE = "mlruns.db"  # in the launch directory
# Schemes MLflow 3 takes as a tracking store; a bare folder (file:) is no longer one of them since 3.13.
DATABASE_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")
SERVER_SCHEMES = ("http", "https", "databricks")
EXPECTED_URI = (
    "null (sqlite:///mlruns.db in the launch directory), a tracking server (http://HOST:PORT, "
    "https://...) or a database (sqlite:///PATH, postgresql://..., mysql://..., mssql://...)"
)
# MLflow has no PRUNED: a pruned trial ends FINISHED, with the tag mnist_hydra.status=pruned.
STATUS = {"completed": "FINISHED", "pruned": "FINISHED", "failed": "FAILED", "interrupted": "KILLED"}
RUN_FILES = (
    "training_curves.png",
    "confusion_matrix.png",
    "misclassified.png",
    "report.html",
    "metrics.json",
    "history.csv",
    "provenance.json",
)
FINAL = ("test_accuracy", "test_loss", "best_val_accuracy", "kept_epoch", "epochs_run", "train_seconds")
SWEEP_FILES = ("sweep_results.csv", "sweep_groups.csv", "sweep_summary.png", "report.html")
QUIET_LOGS = {
    "alembic": logging.WARNING,
    "mlflow.store.db.utils": logging.WARNING,
    "urllib3.connectionpool": logging.ERROR,
}
PARAMS_PER_CALL = 100  # MLflow's limit for one log_batch
LOCKED_RETRIES = 8  # SQLite under parallel jobs: a write that finds the store locked tries again (about 25 s in all)
# A server that is down should cost the run seconds, not MLflow's default four minutes of retries.
HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
}


@dataclass
class MlflowConfig:
    """An MLflow run per run directory; a sweep is a parent run with a child per job."""

    tracking_uri: str | None = None  # null = sqlite:///mlruns.db in the launch directory; http://HOST:PORT for a server
    experiment: str | None = None  # the MLflow experiment; null = the app's name (mnist_hydra)
    log_model: bool = True  # upload model.keras with the other artifacts

    def check(self) -> None:
        require_extra("mlflow", "logger=mlflow")
        require(
            self.tracking_uri is None or uri_scheme(self.tracking_uri) in DATABASE_SCHEMES + SERVER_SCHEMES,
            "tracking_uri",
            self.tracking_uri,
            EXPECTED_URI,
        )
        require(
            self.experiment is None or bool(self.experiment.strip()),
            "experiment",
            self.experiment,
            "null (the app's name) or a non-empty name",
        )


def uri_scheme(uri: str) -> str:
    """The scheme of a store URI, without a driver (postgresql+psycopg2 -> postgresql)."""
    return urlparse(uri).scheme.split("+", 1)[0].lower()


def tracking_uri(config: MlflowConfig, launch_dir: Path) -> str:
    """The store to use: the configured one, or the SQLite file in the launch directory."""
    return config.tracking_uri or f"sqlite:///{(Path(launch_dir) / DEFAULT_STORE).resolve()}"


@LOGGERS.register(NAME, schema=MlflowConfig)
class MlflowLogger(Logger):
    """Mirrors one run into MLflow through MlflowClient (no global active run, so one process can run a sweep).

    Not mlflow.keras.MlflowCallback: it logs to the process's one active run, which the jobs of a sweep in
    one process cannot share, and without the retries a SQLite store needs under parallel jobs.
    """

    config: MlflowConfig

    def __init__(self, config: MlflowConfig) -> None:
        super().__init__(config)
        self.client: MlflowClient | None = None
        self.run_id: str | None = None
        self.run_dir: Path | None = None

    def start(self, info: RunInfo, params: Mapping[str, Any], tags: Mapping[str, str]) -> None:
        from mlflow.entities import Param
        from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

        uri = tracking_uri(self.config, info.launch_dir)
        self.client = make_client(uri)
        self.run_dir = Path(info.run_dir)
        previous = read_record(info.run_dir).get(NAME) or {}
        if info.resumed and previous.get("run_id") and previous.get("tracking_uri") == uri:
            self.run_id = previous["run_id"]
            _retry(self.client.update_run, self.run_id, status="RUNNING")
            log.info("mlflow: continuing run %s in %s", self.run_id, uri)
            return
        experiment_id = experiment(self.client, self.config.experiment or info.app)
        run_tags = mlflow_tags(tags)
        parent = _sweep_parent(info, uri, experiment_id)
        name = info.name
        if parent:
            run_tags[MLFLOW_PARENT_RUN_ID] = parent["run_id"]
            # The job's own settings: its overrides that the sweep's command line does not hold as they are
            # (nor resume=SWEEP_DIR, which a resumed sweep adds to the jobs that start only then).
            # The loggers' own settings are left out, as run_params leaves them out of the params.
            own = [
                o
                for o in info.overrides
                if o not in parent.get("overrides", [])
                and not o.startswith("resume=")
                and not _override_key(o).startswith(("logger.", "logger="))
            ]
            name = f"{info.name}: {' '.join(own)}" if own else info.name
        run = _retry(self.client.create_run, experiment_id, tags=run_tags, run_name=name[:250])
        self.run_id = run.info.run_id
        # Kept before anything else is logged: a run stopped from here on is continued, not duplicated.
        write_record(info.run_dir, NAME, {"tracking_uri": uri, "experiment_id": experiment_id, "run_id": self.run_id})
        items = [Param(key, str(plain_value(value))) for key, value in params.items()]
        for first in range(0, len(items), PARAMS_PER_CALL):
            _retry(self.client.log_batch, self.run_id, params=items[first : first + PARAMS_PER_CALL])
        log.info("mlflow: run %s in experiment %s at %s", self.run_id, self.config.experiment or info.app, uri)

    def callback(self) -> keras.callbacks.Callback:
        import keras

        # loss, accuracy, val_loss, val_accuracy and learning_rate, at step = the epoch.
        return keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: self._metrics(logs, step=epoch))

    def end(self, status: str, metrics: Mapping[str, Any] | None) -> None:
        run_dir = self.run_dir or Path()
        if metrics is not None:
            final = {key: metrics[key] for key in FINAL if metrics.get(key) is not None}
            self._metrics(final, step=int(metrics.get("epochs_run", 0)))
            for name in RUN_FILES:
                if (run_dir / name).is_file():
                    _retry(self._client.log_artifact, self.run_id, str(run_dir / name))
            if self.config.log_model and (run_dir / "model.keras").is_file():
                _retry(self._client.log_artifact, self.run_id, str(run_dir / "model.keras"), "model")
        elif (run_dir / "metrics.json").is_file():  # failed or stopped: it says why, or where it stopped
            _retry(self._client.log_artifact, self.run_id, str(run_dir / "metrics.json"))
        if status == "pruned":
            _retry(self._client.set_tag, self.run_id, "mnist_hydra.status", "pruned")
        _retry(self._client.set_terminated, self.run_id, STATUS[status])

    @classmethod
    def open_sweep(cls, config: MlflowConfig, sweep: RunInfo) -> None:
        open_sweep_run(config, sweep)

    @classmethod
    def close_sweep(cls, sweep_dir: Path, status: str, metrics: Mapping[str, float]) -> None:
        close_sweep_run(sweep_dir, status, metrics)

    @classmethod
    def explain(cls, err: BaseException) -> str:
        return explain(err)

    @property
    def _client(self) -> MlflowClient:
        assert self.client is not None  # Loggers calls start() first
        return self.client

    def _metrics(self, metrics: Mapping[str, Any], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(key, float(value), now, step) for key, value in metrics.items()]
        _retry(self._client.log_batch, self.run_id, metrics=batch)


def make_client(uri: str) -> MlflowClient:
    """An MlflowClient for `uri`, its store created (or migrated) now, retrying while SQLite is locked."""
    for key, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(key, value)  # the user's own settings win
    # A new store's schema migration and a server's connection retries log a screenful each;
    # a failure still reaches the caller as an exception, and becomes one warning line.
    for name, level in QUIET_LOGS.items():
        logging.getLogger(name).setLevel(level)
    from mlflow.tracking import MlflowClient

    # Opening a SQLite store creates or upgrades its tables; two processes doing it at once corrupt the
    # migration ("duplicate column", "table already exists": mlflow #4123), so one at a time, by a lock file.
    with _store_lock(uri):
        client = _retry(MlflowClient, tracking_uri=uri)
        _retry(client.search_experiments, max_results=1)
    return client


@contextlib.contextmanager
def _store_lock(uri: str) -> Iterator[None]:
    """An exclusive lock on DATABASE.lock beside a SQLite store while it is opened; nothing for other stores."""
    if uri_scheme(uri) != "sqlite":
        yield
        return
    import fcntl

    database = Path(urlparse(uri).path[1:])  # sqlite:////abs/file.db or sqlite:///relative/file.db
    database.parent.mkdir(parents=True, exist_ok=True)
    with open(database.with_name(database.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        yield


def experiment(client: MlflowClient, name: str) -> str:
    """The id of experiment `name`, created when missing (another process may create it at the same moment)."""
    from mlflow.exceptions import MlflowException

    found = _retry(client.get_experiment_by_name, name)
    if found is None:
        try:
            return _retry(client.create_experiment, name, artifact_location=artifact_location(client, name))
        except MlflowException as err:
            if err.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            found = _retry(client.get_experiment_by_name, name)
            assert found is not None  # its creation failed because it exists
    if found.lifecycle_stage == "deleted":
        raise RuntimeError(
            f"MLflow experiment {name!r} is deleted: restore it (mlflow experiments restore) "
            "or choose another with logger.mlflow.experiment=NAME"
        )
    return found.experiment_id


def artifact_location(client: MlflowClient, name: str) -> str | None:
    """For a SQLite store, the folder mlruns/NAME beside the database file; else the server's choice (None).

    MLflow's own default for a database store is ./mlruns of whatever directory the process runs in.
    """
    uri = client.tracking_uri
    if uri_scheme(uri) != "sqlite":
        return None
    database = Path(urlparse(uri).path[1:])
    return (database.resolve().parent / "mlruns" / re.sub(r"[^\w.-]+", "_", name)).as_uri()


def _override_key(override: str) -> str:
    """`logger.mlflow.x` of `+logger.mlflow.x=v` (a key, with = for a group choice: `logger=`)."""
    key, equals, _ = override.lstrip("+~").partition("=")
    return key + ("=" if equals and "." not in key else "")


def open_sweep_run(config: MlflowConfig, sweep: RunInfo) -> str:
    """Create (or, for a resumed sweep, reopen) the sweep's parent run; its id goes to SWEEP_DIR/tracking.json."""
    sweep_dir, overrides = Path(sweep.run_dir), sweep.overrides
    uri = tracking_uri(config, sweep.launch_dir)
    client = make_client(uri)
    previous = read_record(sweep_dir).get(NAME) or {}
    if previous.get("run_id") and previous.get("tracking_uri") == uri:
        run_id: str = previous["run_id"]
        _retry(client.update_run, run_id, status="RUNNING")
        return run_id
    experiment_id = experiment(client, config.experiment or sweep.app)
    sweep_dir = sweep_dir.resolve()
    tags = {"overrides": " ".join(overrides), "run_dir": str(sweep_dir), "kind": "sweep"}
    if sweep.git_commit:
        tags["git_commit"] = sweep.git_commit
    run = _retry(
        client.create_run,
        experiment_id,
        tags=mlflow_tags(tags),
        run_name=f"sweep {sweep_dir.parent.name}/{sweep_dir.name}",
    )
    run_id = run.info.run_id
    sweep_dir.mkdir(parents=True, exist_ok=True)
    write_record(
        sweep_dir,
        NAME,
        {"tracking_uri": uri, "experiment_id": experiment_id, "run_id": run_id, "overrides": list(overrides)},
    )
    log.info("mlflow: sweep run %s at %s", run_id, uri)
    return run_id


def close_sweep_run(sweep_dir: Path, status: str, metrics: Mapping[str, float]) -> None:
    """End the sweep's parent run as `status`, with its summary figures and files; nothing when it has none."""
    record = read_record(sweep_dir).get(NAME) or {}
    if not record.get("run_id"):
        return
    from mlflow.entities import Metric

    client = make_client(record["tracking_uri"])
    now = int(time.time() * 1000)
    if metrics:
        _retry(client.log_batch, record["run_id"], metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()])
    for name in SWEEP_FILES:
        if (Path(sweep_dir) / name).is_file():
            _retry(client.log_artifact, record["run_id"], str(Path(sweep_dir) / name))
    _retry(client.set_terminated, record["run_id"], STATUS[status])


def mlflow_tags(tags: Mapping[str, str]) -> dict[str, str]:
    """Our tags under MLflow's names where it has one (the git commit), else as mnist_hydra.NAME."""
    return {
        ("mlflow.source.git.commit" if key == "git_commit" else f"mnist_hydra.{key}"): str(value)
        for key, value in tags.items()
    }


def explain(err: BaseException) -> str:
    """An MLflow failure in a few words: an unreachable server by its address, else the error's own first words."""
    text = str(err)
    match = re.search(r"API request to (\S+?)/api/\S+ failed", text)
    if match and ("NewConnectionError" in text or "ConnectTimeout" in text or "Max retries exceeded" in text):
        reason = re.search(r"\[Errno -?\d+\] ([^'\")]+)", text)
        return (
            f"cannot reach the MLflow tracking server {match.group(1)}"
            f"{f' ({reason.group(1).strip()})' if reason else ''}"
        )
    return short_error(err)


def _sweep_parent(info: RunInfo, uri: str, experiment_id: str) -> dict[str, Any] | None:
    """The record of a sweep job's parent run (run_id, the sweep's overrides), when the sweep opened one in the
    same store and experiment."""
    if info.sweep_dir is None:
        return None
    parent = read_record(info.sweep_dir).get(NAME) or {}
    if parent.get("run_id") and parent.get("tracking_uri") == uri and parent.get("experiment_id") == experiment_id:
        return parent
    return None


def _retry(call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """call(*args, **kwargs), again after a short, growing pause while a SQLite store is locked by another job."""
    attempt = 0
    while True:
        try:
            return call(*args, **kwargs)
        except Exception as err:
            attempt += 1
            if attempt >= LOCKED_RETRIES or not _locked(err):
                raise
            time.sleep(min(0.1 * 2**attempt, 5.0) * (1 + random.random()))


def _locked(err: BaseException) -> bool:
    text = str(err).lower()
    # The last two: two processes creating or upgrading a new store's tables at once (mlflow #4123).
    return "database is locked" in text or "duplicate column" in text or ("already exists" in text and "table" in text)
