"""tf_runtime.import_tensorflow: TensorFlow and Keras imported with the garbage collector paused, their objects
frozen, and their start-up lines hidden unless the user chose a log level."""

from __future__ import annotations

import subprocess
import sys

import pytest

# One process for both promises of the import (a second would pay TensorFlow's import again).
CHILD = """
import gc, sys
from mnist_hydra import tf_runtime
tf_runtime.leave_out_sklearn_wrappers()
tf = tf_runtime.import_tensorflow()
from keras.src.wrappers import fixes
print(gc.isenabled(), gc.get_freeze_count() > 100_000, "keras" in sys.modules, tf.constant(2).numpy() * 3)
print("sklearn" in sys.modules, fixes.sklearn is None)
import sklearn  # still importable afterwards, for MLflow and anyone else
print(sklearn.__name__)
"""


def test_import_leaves_the_collector_on_the_import_frozen_and_scikit_learn_out_until_asked_for():
    import pytest

    pytest.importorskip("sklearn")  # installed with MLflow
    result = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    imported, lean, after = result.stdout.splitlines()
    assert imported.split() == ["True", "True", "True", "6"]
    # Keras's wrappers did try `import sklearn` while Keras imported (what a plain import pays) and found none.
    assert lean.split() == ["False", "True"]
    assert after == "sklearn"


def test_a_log_level_we_set_is_not_taken_for_the_users_in_a_process_we_start():
    import os

    from mnist_hydra.tf_runtime import OWN_LEVEL

    def users(**env: str) -> str:
        clean = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", OWN_LEVEL)}
        code = "from mnist_hydra import tf_runtime; print(tf_runtime._user_level)"
        return subprocess.run(
            [sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True, timeout=60
        ).stdout.strip()

    assert users() == "False"
    assert users(TF_CPP_MIN_LOG_LEVEL="0") == "True"
    assert users(TF_CPP_MIN_LOG_LEVEL="3", **{OWN_LEVEL: "3"}) == "False"  # inherited from our own process
    assert users(TF_CPP_MIN_LOG_LEVEL="0", **{OWN_LEVEL: "3"}) == "True"  # the user changed it since


def test_a_stop_asked_during_the_import_is_held_back_and_delivered_after_it():
    """A Ctrl-C or SIGTERM raised inside TensorFlow's import could become an ImportError that an optional import
    swallows (the stop lost, the run trained to its end): it waits for the import's end instead."""
    import signal

    from mnist_hydra import tf_runtime

    class Stop(KeyboardInterrupt):
        pass

    def stop(signum, frame):
        raise Stop(signum)

    before, interrupt = signal.signal(signal.SIGTERM, stop), signal.getsignal(signal.SIGINT)
    try:
        reached_the_end = False
        with pytest.raises(Stop) as caught, tf_runtime._signals_deferred():
            signal.raise_signal(signal.SIGTERM)
            try:  # noqa: SIM105  (what an optional import inside TensorFlow does with an interrupt made ImportError)
                import _no_such_module  # noqa: F401
            except ImportError:
                pass
            signal.raise_signal(signal.SIGINT)  # the user insists: the first stop asked for is the one delivered
            reached_the_end = True
        assert reached_the_end and caught.value.args == (signal.SIGTERM,)
        assert signal.getsignal(signal.SIGTERM) is stop and signal.getsignal(signal.SIGINT) is interrupt
    finally:
        signal.signal(signal.SIGTERM, before)
