"""apps/process_exit: the app's process ends with its status, its exit hooks run and its output flushed."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mnist_hydra.apps.process_exit import exit_code

# A stand-in module named tensorflow: finish() takes its fast path without the seconds of a real import.
CHILD = """
import atexit, sys, types
sys.modules.setdefault("tensorflow", types.ModuleType("tensorflow")) if {fake_tf} else None
atexit.register(lambda: open({marker!r}, "w").write("hook ran"))
from mnist_hydra.apps.process_exit import finish
sys.stdout.write("unflushed output")  # no newline: still in the buffer when finish() is called
finish({code!r})
"""


@pytest.mark.parametrize("fake_tf", [True, False])
@pytest.mark.parametrize("code,status", [(0, 0), (3, 3), (None, 0), ("a message", 1)])
def test_finish_runs_exit_hooks_flushes_and_keeps_the_status(tmp_path, fake_tf, code, status):
    marker = tmp_path / "hook"
    result = subprocess.run(
        [sys.executable, "-c", CHILD.format(fake_tf=fake_tf, marker=str(marker), code=code)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == status, result.stderr
    assert result.stdout == "unflushed output"
    assert marker.read_text() == "hook ran"
    if isinstance(code, str):
        assert result.stderr.strip() == code


def test_finish_waits_for_a_running_non_daemon_thread(tmp_path):
    marker = tmp_path / "thread"
    child = (
        "import sys, threading, time, types\n"
        "sys.modules['tensorflow'] = types.ModuleType('tensorflow')\n"
        f"threading.Thread(target=lambda: (time.sleep(0.5), open({str(marker)!r}, 'w').write('done'))).start()\n"
        "from mnist_hydra.apps.process_exit import finish\n"
        "finish(0)\n"
    )
    result = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert marker.read_text() == "done"  # os._exit would have cut the thread short


def test_exit_code_follows_sys_exit():
    assert (exit_code(None), exit_code(0), exit_code(2), exit_code(130)) == (0, 0, 2, 130)
