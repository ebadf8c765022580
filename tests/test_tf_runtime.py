"""tf_runtime.import_tensorflow: TensorFlow and Keras imported with the garbage collector paused, their objects frozen."""

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
