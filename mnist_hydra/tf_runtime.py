"""Importing TensorFlow without its start-up chatter: the one place that loads it for the apps."""

from __future__ import annotations

import contextlib
import gc
import os
import re
import signal
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mnist_hydra.errors import ConfigError

# TensorFlow's C++ start-up lines (absl's INFO/WARNING before its logging is set up: oneDNN, cudart stubs).
NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|[IW]\d{4} [\d:.]+\s+\d+ \S+:\d+\] )"
)
# On a machine without an NVIDIA driver, TensorFlow's CUDA probe fails with an ERROR line that only means "no GPU".
NO_GPU = re.compile(r"^E\d{4} [\d:.]+\s+\d+ \S+:\d+\] failed call to cuInit")
# The level we set is marked, so that a process we start (a server's worker, a sweep's job) does not take it for
# the user's and show TensorFlow's start-up lines.
OWN_LEVEL = "MNIST_HYDRA_OWN_TF_LOG_LEVEL"
# Read once, before we set it: the user's setting wins.
_user_level = os.environ.get("TF_CPP_MIN_LOG_LEVEL", os.environ.get(OWN_LEVEL)) != os.environ.get(OWN_LEVEL)
_lean = False  # set by leave_out_sklearn_wrappers()


def leave_out_sklearn_wrappers() -> None:
    """In this process, let Keras import without scikit-learn (for an app's own process, never a user's).

    Keras imports scikit-learn, and with it SciPy's statistics, whenever it is installed (MLflow installs it),
    only for its keras.wrappers.SKLearn* classes, which no app uses: 0.5-1.5 s of every training, evaluation
    and serving command's start on 2 cores. Those wrappers then say scikit-learn is missing; scikit-learn
    itself still imports normally afterwards (MLflow's own use of it is unaffected).
    """
    global _lean
    _lean = True


def import_tensorflow() -> Any:
    """`import tensorflow` (and Keras) with its INFO/WARNING start-up lines hidden (and its CUDA errors on a machine
    without an NVIDIA driver), whatever TF_CPP_MIN_LOG_LEVEL says, except 0: the user's ask to see every line.
    A level the user set is left in place for what TensorFlow logs later."""
    _check_thread_environment()
    if "tensorflow" in sys.modules:
        import tensorflow

        return tensorflow
    with _signals_deferred(), _collector_paused(), _sklearn_hidden(_lean and "sklearn" not in sys.modules):
        if _user_level and os.environ.get("TF_CPP_MIN_LOG_LEVEL", "").strip() == "0":
            import keras  # noqa: F401 (the user asked for every line: TF_CPP_MIN_LOG_LEVEL=0)
            import tensorflow

            return tensorflow
        driver = Path("/proc/driver/nvidia/version").exists()
        if not _user_level:
            # Without a driver, the cuInit ERROR line means nothing but "no GPU" on a CPU machine.
            os.environ["TF_CPP_MIN_LOG_LEVEL"] = os.environ[OWN_LEVEL] = "2" if driver else "3"
        # The start-up lines come before absl's logging reads the level, so they pass whatever it says (a user's
        # common TF_CPP_MIN_LOG_LEVEL=2 included): they are filtered here, at the file descriptor.
        with _native_stderr_filtered(NOISE if driver else re.compile(f"{NOISE.pattern}|{NO_GPU.pattern}")):
            import keras  # noqa: F401
            import tensorflow

            if not driver and _user_level:
                # The CUDA probe runs when devices are first listed, not at import: run it here, filtered.
                tensorflow.config.list_physical_devices("GPU")
        return tensorflow


def _check_thread_environment() -> None:
    """ConfigError for a negative TF_NUM_INTRAOP_THREADS: TensorFlow's import would abort the process on it (a
    C++ check failure, SIGABRT, no Python error). Text and 0 are TensorFlow's to ignore."""
    value = os.environ.get("TF_NUM_INTRAOP_THREADS", "").strip()
    if value.lstrip("-").isdigit() and int(value) < 0:
        raise ConfigError(
            f"TF_NUM_INTRAOP_THREADS={value} in the environment would abort TensorFlow: expected a thread count "
            ">= 1, or 0 or unset for every core (trainer.threads caps a run's threads)"
        )


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """Ctrl-C and SIGTERM held back while TensorFlow imports, and delivered once it has (a few seconds at most).

    Raised inside the import, the KeyboardInterrupt can land in a C extension's initialisation, which turns it
    into an ImportError, and an optional import's `except ImportError` inside TensorFlow then swallows it: the
    stop was lost and the run trained to its end (a resume sent SIGTERM at that moment exited 0), or the import
    failed with a traceback ("ImportError: initialization failed"). Only Python handlers are held back (they
    are what raises); an ignored or default signal keeps its meaning.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    held = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        handler = signal.getsignal(signum)
        if callable(handler):
            held[signum] = handler
            signal.signal(signum, lambda number, frame: caught.append(number))
    try:
        yield
    finally:
        for signum, handler in held.items():
            signal.signal(signum, handler)
        if caught:
            signal.raise_signal(caught[0])  # the first stop asked for, now that nothing can swallow it


@contextlib.contextmanager
def _sklearn_hidden(hide: bool) -> Iterator[None]:
    """`import sklearn` fails meanwhile (a None in sys.modules means "not installed" to the import system)."""
    if not hide:
        yield
        return
    sys.modules["sklearn"] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        if sys.modules.get("sklearn", 0) is None:
            del sys.modules["sklearn"]


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while TensorFlow and Keras import, their objects frozen after.

    The import makes some 400,000 objects that live as long as the process. Collections during the import
    walk them again and again (0.6-1 s of CPU on 2 cores), and every later full collection (tracing makes many)
    would walk them once more; gc.freeze() moves them out of the collector's sight. The price: the few reference
    cycles the import itself leaves as garbage are never freed.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


@contextlib.contextmanager
def _native_stderr_filtered(noise: re.Pattern[str]) -> Iterator[None]:
    """Catch what C++ code writes to file descriptor 2 meanwhile, and pass on all but the lines `noise` matches."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no stderr at all
        yield
        return
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            kept = [line for line in caught.read().decode(errors="replace").splitlines() if not noise.match(line)]
            if kept:
                print("\n".join(kept), file=sys.stderr)
