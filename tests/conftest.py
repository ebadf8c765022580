"""Shared fixtures: compose the real config, run an app in-process or as a user would, find the real data.

`call_app` runs an app's main() in this process (what it prints and its exit status, without an interpreter's
start-up); `run_app` starts `python -m ...` as a user would, for what only a process shows: exit codes of the
real entry point, TensorFlow's own output, signals, two processes racing."""

from __future__ import annotations

import contextlib
import gzip
import importlib
import io
import logging
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import numpy as np
import pytest
from hydra import compose, initialize_config_module
from omegaconf import DictConfig

from mnist_hydra.config import store_schemas
from mnist_hydra.serving.settings import ServeSettings

# The README's command gives MNIST_HYDRA_DATA=../shared/data/mnist, relative to the clone, and many tests start
# the apps from other folders: every test and every process it starts sees the folder as an absolute path.
if os.environ.get("MNIST_HYDRA_DATA"):
    os.environ["MNIST_HYDRA_DATA"] = str(Path(os.environ["MNIST_HYDRA_DATA"]).resolve())

# Under pytest-xdist each worker's TensorFlow (and every process a test starts) takes its share of the cores, not
# all of them: two workers with a thread per core each, on two cores, spin against each other's threads.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", str(max(1, len(os.sched_getaffinity(0)) // _WORKERS)))

CONF_DIR = Path(__file__).resolve().parents[1] / "mnist_hydra" / "conf"

# A run small enough for plumbing tests: one epoch on 2,000 images, scored on 1,000.
SMALL_RUN = [
    "trainer.epochs=1",
    "trainer.verbose=2",
    "data.train_limit=2000",
    "data.test_limit=1000",
]


@pytest.fixture
def compose_config() -> Callable[..., DictConfig]:
    """compose(*overrides) -> the app's composed config (without hydra's own node)."""
    store_schemas()

    def _compose(*overrides: str) -> DictConfig:
        with initialize_config_module(config_module="mnist_hydra.conf", version_base="1.3"):
            return compose(config_name="config", overrides=list(overrides))

    return _compose


# CI (.ci/run) provides everything the tests need, so there a missing prerequisite is a failure, not a skip.
IN_CI = os.environ.get("CI", "").lower() == "true"
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")  # Debian's dataset-fashion-mnist


def skip_unless_ci(reason: str) -> NoReturn:
    """Skip the test for `reason`; under CI=true fail it instead, so nothing is hidden there."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: nothing may skip)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The real MNIST folder from MNIST_HYDRA_DATA (the README's test command sets it)."""
    value = os.environ.get("MNIST_HYDRA_DATA")
    if not value:
        skip_unless_ci("MNIST_HYDRA_DATA is not set: the real-data tests need the MNIST folder")
    return Path(value).resolve()


@pytest.fixture(scope="session")
def fashion_dir() -> Path:
    """The real Fashion-MNIST folder (apt-get install dataset-fashion-mnist; .ci/run installs it)."""
    if not FASHION_DIR.is_dir():
        skip_unless_ci(f"Fashion-MNIST is not installed in {FASHION_DIR} (apt-get install dataset-fashion-mnist)")
    return FASHION_DIR


# The smallest real search: the MLP on 300 images, scored on 100, one epoch; the tests add the space they search.
TINY_SEARCH = [
    "model=mlp",
    "hydra.sweeper.params=null",
    "data.train_limit=300",
    "data.test_limit=100",
    "trainer.verbose=0",
    "trainer.epochs=1",
]

# The trained run that evaluate, predict and report tests read: one epoch on 2,000 images, 500 test images.
TRAINED_RUN = ["trainer.epochs=1", "data.train_limit=2000", "data.test_limit=500", "trainer.verbose=0"]


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, mnist_dir) -> Path:
    """A run directory trained once per session, in-process, with TRAINED_RUN (test accuracy about 0.85)."""
    cwd = tmp_path_factory.mktemp("trained")
    result = call_app(*TRAINED_RUN, f"hydra.run.dir={cwd}/run", cwd=cwd, env={"MNIST_HYDRA_DATA": str(mnist_dir)})
    assert result.returncode == 0, result.stderr
    return cwd / "run"


def call_app(
    *args: str, cwd: Path, env: dict[str, str] | None = None, module: str = "mnist_hydra"
) -> subprocess.CompletedProcess:
    """`python -m MODULE ARGS` in `cwd`, run in this process: the app's main() with that command line, working
    directory and environment; its stdout and stderr (Python's, not TensorFlow's C++ lines) and exit status.

    The app's claims on directories are released and Hydra's global state and the job's log handlers are
    cleared afterwards, as the end of a process would, so calls do not see each other.
    """
    from hydra.core.global_hydra import GlobalHydra

    from mnist_hydra.apps.process_exit import exit_code
    from mnist_hydra.runs import claims

    app = importlib.import_module("mnist_hydra.apps." + ("train" if module == "mnist_hydra" else module.split(".")[1]))
    out, err = io.StringIO(), io.StringIO()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    # A logging config that fails half-way (a full disk under the job's log file) leaves the loggers it had
    # not reached disabled: the next test's caplog would see nothing of them.
    enabled = [
        lg for lg in logging.root.manager.loggerDict.values() if isinstance(lg, logging.Logger) and not lg.disabled
    ]
    code = 0
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(cwd)
        patch.setattr(sys, "argv", [module, *args])
        patch.delenv("HYDRA_FULL_ERROR", raising=False)  # as run_app: only `env` may set it
        for key, value in (env or {}).items():
            patch.setenv(key, value)
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                _point_absl_at(err)
                app.main()
        except SystemExit as stop:
            code = exit_code(stop.code)
        finally:
            _point_absl_at(sys.__stderr__)
            claims.release()
            GlobalHydra.instance().clear()
            for handler in root.handlers[:]:  # Hydra's job logging: the run's log file and the console
                root.removeHandler(handler)
                if isinstance(handler, logging.FileHandler):  # others may close a stream that is not theirs
                    handler.close()
            for handler in handlers:
                root.addHandler(handler)
            root.setLevel(level)
            for logger in enabled:
                logger.disabled = False
    return subprocess.CompletedProcess([sys.executable, "-m", module, *args], code, out.getvalue(), err.getvalue())


def _point_absl_at(stream: object) -> None:
    """Point absl's log handler (TensorFlow's) at `stream`. Hydra's job logging closes every handler, and absl's
    closes its stream unless that is sys.stderr then: left at the stream of its import, it would close pytest's
    capture of stderr, or a finished call's."""
    absl = sys.modules.get("absl.logging")
    if absl is not None:
        absl.get_absl_handler().python_handler.stream = stream


def run_app(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 300, module: str = "mnist_hydra"
) -> subprocess.CompletedProcess:
    """`python -m mnist_hydra ARGS` in `cwd`, as a user would run it."""
    # The user's HYDRA_FULL_ERROR would turn every one-line error into a traceback: only `env` may set it.
    inherited = {key: value for key, value in os.environ.items() if key != "HYDRA_FULL_ERROR"}
    full_env = {**inherited, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="session")
def predictor(trained_run):
    """The trained run's model loaded for serving, once per session (the API and browser tests share it)."""
    from mnist_hydra.serving.compiled_model import Predictor

    return Predictor(trained_run)


def snapshot(root: Path) -> dict[str, tuple]:
    """Every file and folder below `root` (links not followed): relative path -> ("file", size, mtime_ns), or
    ("dir",) for a folder (its mtime moves when a file is made and removed in it: what is left is what counts)."""
    found: dict[str, tuple] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs:
            found[str(Path(folder, name).relative_to(root))] = ("dir",)
        for name in files:
            info = Path(folder, name).lstat()
            found[str(Path(folder, name).relative_to(root))] = ("file", info.st_size, info.st_mtime_ns)
    return found


# The API tests' limits: small, so that a small request reaches each.
LIMITS = ServeSettings(max_bytes=200_000, max_pixels=1_000_000, max_batch=8)
DIGITS = 16


@pytest.fixture(scope="module")
def digits(mnist_dir) -> tuple[np.ndarray, np.ndarray]:
    """The first DIGITS MNIST test images (uint8 28x28) and labels."""
    with gzip.open(mnist_dir / "t10k-images-idx3-ubyte.gz") as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)[:DIGITS]
    with gzip.open(mnist_dir / "t10k-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)[:DIGITS]
    return images, labels


@pytest.fixture(scope="module")
def client(predictor):
    """The API over the shared predictor, with LIMITS, as a test client (the API and collect tests use it)."""
    from fastapi.testclient import TestClient

    from mnist_hydra.serving.api import create_app

    with TestClient(create_app(predictor=predictor, settings=LIMITS, top_k=3)) as test_client:
        yield test_client


# Stops at a chosen point of training, for the resume tests: in this process, a signal raised at a chosen step;
# in a process of its own, a pause after a chosen epoch's checkpoint, for a signal or a kill from outside.
@pytest.fixture
def signal_at_step(monkeypatch):
    """signal_at_step(sig, epoch, step, fit=1, again=False): the `fit`-th training from now in this process (a
    sweep's job `fit - 1`) raises `sig` in the main thread, as if sent from outside, once step `step` of epoch
    `epoch` (both from 1) is done, or the first multi-step execution that takes it past that step; once only, or
    with `again` a second time as the stop's validation of that epoch begins (a user who insists). This
    process's SIGINT and SIGTERM handlers are put back afterwards: an app stopped in this process leaves
    "already stopping" in place, as the process it was made for exits."""
    import signal

    from mnist_hydra.training import callbacks
    from mnist_hydra.training import fit as fit_module

    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def arm(sig: int, epoch: int, step: int, fit: int = 1, again: bool = False) -> None:
        fired, fits = [], []

        class RaiseThenStop(callbacks.StopOnRequest):
            def on_train_begin(self, logs: dict | None = None) -> None:
                fits.append(self)
                super().on_train_begin(logs)

            def on_epoch_begin(self, index: int, logs: dict | None = None) -> None:
                self.epoch = index + 1

            def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
                if not fired and len(fits) == fit and self.epoch == epoch and batch + 1 >= step:
                    fired.append(True)
                    signal.raise_signal(sig)
                super().on_train_batch_end(batch, logs)

            def on_test_batch_begin(self, batch: int, logs: dict | None = None) -> None:
                if again and len(fired) == 1:
                    fired.append(True)
                    signal.raise_signal(sig)

        monkeypatch.setattr(fit_module, "StopOnRequest", RaiseThenStop)

    yield arm
    for sig, handler in handlers.items():
        signal.signal(sig, handler)


# `python -c PAUSING_APP RUN_DIR EPOCH ARGS...` is `python -m mnist_hydra ARGS...`, but the run training in RUN_DIR
# waits after epoch EPOCH's checkpoint until a signal asks it to stop (then it stops at its next step, as it would
# anywhere in an epoch) or it is killed: an outside signal lands at the same point every time, whatever the speed.
PAUSING_APP = """
import runpy, sys, time
from pathlib import Path
from mnist_hydra.tf_runtime import import_tensorflow
import_tensorflow()
from mnist_hydra.training import fit
target, pause_epoch = Path(sys.argv.pop(1)).resolve(), int(sys.argv.pop(1))
class Pausing(fit.CheckpointEachEpoch):
    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        if epoch + 1 == pause_epoch and self.checkpoints.folder.parent.resolve() == target:
            deadline = time.monotonic() + 120
            while not self.stopped() and time.monotonic() < deadline:
                time.sleep(0.01)
fit.CheckpointEachEpoch = Pausing
sys.argv[0] = "mnist_hydra"
runpy.run_module("mnist_hydra", run_name="__main__", alter_sys=True)
"""


def start_paused(args: list[str], run_dir: Path, epoch: int, cwd: Path, env: dict[str, str]) -> subprocess.Popen:
    """The train app as a process (PAUSING_APP), paused in `run_dir` after epoch `epoch`'s checkpoint; the caller
    waits for that checkpoint (paused_at), then signals or kills the process."""
    inherited = {key: value for key, value in os.environ.items() if key != "HYDRA_FULL_ERROR"}
    return subprocess.Popen(
        [sys.executable, "-c", PAUSING_APP, str(run_dir), str(epoch), *args],
        cwd=cwd,
        env={**inherited, "TF_CPP_MIN_LOG_LEVEL": "2", **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def paused_at(proc: subprocess.Popen, run_dir: Path, epoch: int, timeout: float = 240) -> None:
    """Wait until `run_dir`'s checkpoint pointer says `epoch`: the PAUSING_APP process waits there."""
    import json
    import time

    pointer = run_dir / "checkpoints" / "checkpoint.json"
    deadline = time.monotonic() + timeout
    while True:
        try:
            if json.loads(pointer.read_text())["epoch"] >= epoch:
                return
        except (OSError, ValueError, KeyError):
            pass
        if proc.poll() is not None:
            raise AssertionError(f"the run ended before epoch {epoch}'s checkpoint: {proc.communicate()}")
        assert time.monotonic() < deadline, f"no checkpoint of epoch {epoch} after {timeout} s"
        time.sleep(0.02)


# A user's plugin loaded in this process, then forgotten, as the end of the user's process would forget it.
@pytest.fixture
def forget_plugins():
    """Whatever a test's plugins=[...] adds in this process is taken back afterwards: the registries' builders
    and schemas, their options in Hydra's ConfigStore, the plugins loaded, the import path, and the modules
    imported from outside it (the user's). Modules are removed, never reloaded: classes made before the test
    stay the same objects, and the libraries a test happens to import first stay imported."""
    from hydra.core.config_store import ConfigStore

    from mnist_hydra import plugins
    from mnist_hydra.config import REGISTRIES
    from mnist_hydra.tracking.base import LOGGERS

    groups = {**REGISTRIES, "logger": LOGGERS}
    registries = {group: (dict(r._builders), dict(r._schemas)) for group, r in groups.items()}
    loaded, modules, path = set(plugins._loaded), set(sys.modules), sys.path[:]
    roots = [Path(entry or ".").resolve() for entry in path]
    importlib.invalidate_caches()  # the test writes its modules now: the import system must look again
    yield
    store = ConfigStore.instance()
    for group, registry in groups.items():
        builders, schemas = registries[group]
        for name in set(registry._builders) - set(builders):
            store.repo.get(group, {}).pop(f"{name}.yaml", None)
        registry._builders.clear()
        registry._builders.update(builders)
        registry._schemas.clear()
        registry._schemas.update(schemas)
    plugins._loaded.clear()
    plugins._loaded.update(loaded)
    for name in set(sys.modules) - modules:
        file = getattr(sys.modules[name], "__file__", None)
        if file and not any(Path(file).resolve().is_relative_to(root) for root in roots):
            del sys.modules[name]
    sys.path[:] = path
