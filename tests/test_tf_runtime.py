"""tf_runtime.import_tensorflow: TensorFlow and Keras imported with the garbage collector paused, their objects
frozen, and their start-up lines hidden unless the user chose a log level."""

from __future__ import annotations

import subprocess
import sys

CHILD = """
import gc
from mnist_hydra.tf_runtime import import_tensorflow
tf = import_tensorflow()
import sys
print(gc.isenabled(), gc.get_freeze_count() > 100_000, "keras" in sys.modules, tf.constant(2).numpy() * 3)
"""


def test_import_leaves_the_collector_on_and_the_import_frozen():
    result = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["True", "True", "True", "6"]


LEAN_CHILD = """
import sys
from mnist_hydra import tf_runtime
if sys.argv[1] == "lean":
    tf_runtime.leave_out_sklearn_wrappers()
tf_runtime.import_tensorflow()
loaded = "sklearn" in sys.modules
import sklearn  # still importable afterwards, for MLflow and anyone else
print(loaded, sklearn.__name__)
"""


def test_apps_import_keras_without_scikit_learn_which_still_imports_after():
    import pytest

    pytest.importorskip("sklearn")  # installed with MLflow
    runs = {
        mode: subprocess.run([sys.executable, "-c", LEAN_CHILD, mode], capture_output=True, text=True, timeout=180)
        for mode in ("lean", "plain")
    }
    for result in runs.values():
        assert result.returncode == 0, result.stderr[-2000:]
    assert runs["lean"].stdout.split() == ["False", "sklearn"]
    assert runs["plain"].stdout.split() == ["True", "sklearn"]  # what Keras does by itself: the cost avoided


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
