"""Run `python -m MODULE ARGS` many times, fast: a process that has imported the apps forks one child per command.

A bad command line costs a fresh interpreter about 0.8 s of CPU, half of it importing Hydra, OmegaConf and
the apps; a forked child starts with those imported and runs the same `__main__` code from there (runpy, as
`python -m` does), with its own working directory, environment, stdout and stderr. What it prints and its
exit status are what a user would see, bar the imports' own time. A child still running after `timeout`
seconds is killed with its process group.

`FORKSERVER=0` in the environment runs every command as a plain subprocess instead, to check that both
ways give the same answers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

SERVER = r"""
import json, os, runpy, signal, sys, time
for module in sys.argv[1:]:
    __import__(module)
print("ready", flush=True)
for line in sys.stdin:
    request = json.loads(line)
    pid = os.fork()
    if pid == 0:
        os.setpgrp()
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        for fd, name in ((1, request["stdout"]), (2, request["stderr"])):
            opened = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(opened, fd)
            os.close(opened)
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        sys.stdin = open(os.devnull)
        sys.argv = [request["module"], *request["args"]]
        runpy.run_module(request["module"], run_name="__main__", alter_sys=True)
        sys.exit(0)
    deadline = time.monotonic() + request["timeout"]
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            print(json.dumps(os.waitstatus_to_exitcode(status)), flush=True)
            break
        if time.monotonic() > deadline:
            os.killpg(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            print(json.dumps(None), flush=True)
            break
        time.sleep(0.005)
"""


class ForkServer:
    """One forking process; `run` is safe to call from one thread at a time (use one server per worker)."""

    def __init__(self, preload: Sequence[str], env: dict[str, str]) -> None:
        self.plain = os.environ.get("FORKSERVER") == "0"
        self.lock = threading.Lock()
        self.scratch = Path(tempfile.mkdtemp(prefix="forkserver-"))
        if self.plain:
            return
        self.process = subprocess.Popen(
            [sys.executable, "-c", SERVER, *preload], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )
        assert self.process.stdout.readline().strip() == "ready", "the fork server did not start"

    def run(
        self, module: str, args: Sequence[str], cwd: Path, env: dict[str, str], timeout: float
    ) -> subprocess.CompletedProcess:
        """`python -m MODULE *args` in `cwd` with exactly `env`; returncode None when it was killed at `timeout`."""
        command = [sys.executable, "-m", module, *args]
        if self.plain:
            try:
                return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
            except subprocess.TimeoutExpired as late:
                return subprocess.CompletedProcess(command, None, _text(late.stdout), _text(late.stderr))
        with self.lock:
            out, err = self.scratch / "stdout", self.scratch / "stderr"
            request = {
                "module": module,
                "args": list(args),
                "cwd": str(cwd),
                "env": env,
                "stdout": str(out),
                "stderr": str(err),
                "timeout": timeout,
            }
            self.process.stdin.write(json.dumps(request) + "\n")
            self.process.stdin.flush()
            code = json.loads(self.process.stdout.readline())
            return subprocess.CompletedProcess(
                command, code, out.read_text(errors="replace"), err.read_text(errors="replace")
            )

    def close(self) -> None:
        if not self.plain:
            self.process.stdin.close()
            self.process.wait(timeout=30)
        for path in self.scratch.iterdir():
            path.unlink()
        self.scratch.rmdir()


def _text(output: bytes | str | None) -> str:
    return output.decode(errors="replace") if isinstance(output, bytes) else output or ""
