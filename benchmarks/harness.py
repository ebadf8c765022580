"""What every benchmark shares: the repo, running a child command and what it used, waiting for a quiet machine,
what the machine is, the +experiment=best targets. Each benchmark imports this; none imports another's module
for these, so no two benchmarks import each other."""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mnist_hydra.training.precision import cpu_flags

REPO = Path(__file__).resolve().parent.parent
JSON_MARK = "BENCH_JSON "  # prefix of the one result line a helper script prints
TARGET_BEST_ACCURACY = 0.995  # +experiment=best, mean test accuracy over seeds 0, 1, 2
TARGET_BEST_WALL = 300.0  # ... each run's whole command, seconds


@dataclass
class Child:
    """What one finished subprocess left: exit code, output, wall time, peak resident memory."""

    returncode: int
    stdout: str
    stderr: str
    wall_seconds: float
    peak_rss_bytes: int
    other_cpu: float | None = None  # share of the machine's CPU time that other processes used meanwhile
    io_stall_seconds: float | None = None  # time every task of the machine waited on I/O meanwhile (PSI "full")

    def result(self) -> dict[str, Any]:
        """The helper script's JSON line."""
        for line in reversed(self.stdout.splitlines()):
            if line.startswith(JSON_MARK):
                return json.loads(line[len(JSON_MARK) :])
        raise RuntimeError(f"no result line (exit code {self.returncode}); stderr ends:\n{self.stderr[-2000:]}")


def run_child(argv: list[str], env: dict[str, str] | None = None, timeout: float = 3600.0) -> Child:
    """Run `argv` from the repo root; its own peak RSS and CPU time come from wait4 on its pid."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        busy_before, stall_before = busy_cpu_seconds(), io_stall_seconds()
        start = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=out, stderr=err, text=True)
        deadline = start + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.02)
        wall = time.perf_counter() - start
        busy_after, stall_after = busy_cpu_seconds(), io_stall_seconds()
        stall = None if stall_before is None or stall_after is None else stall_after - stall_before
        other = None
        if busy_before is not None and busy_after is not None:
            others = busy_after - busy_before - usage.ru_utime - usage.ru_stime
            other = max(0.0, others / (wall * (os.cpu_count() or 1)))
        proc.returncode = os.waitstatus_to_exitcode(status)  # Popen must not wait for a reaped child
        out.seek(0)
        err.seek(0)
        return Child(
            proc.returncode,
            out.read(),
            err.read(),
            wall,
            usage.ru_maxrss * 1024,
            other,  # ru_maxrss: KiB
            stall,
        )


def wait_for_quiet(limit_seconds: float, threshold: float = 0.1, window: float = 5.0) -> float | None:
    """Wait (up to `limit_seconds`) until other processes use under `threshold` of the CPUs over `window` seconds.

    Returns the share measured last (None without /proc/stat). Two cores leave no room for a test suite
    running beside the benchmark: its figures would say more about the neighbour than about the code.
    """
    if limit_seconds <= 0:
        return None
    deadline = time.perf_counter() + limit_seconds
    while True:
        before, start = busy_cpu_seconds(), time.perf_counter()
        if before is None:
            return None
        time.sleep(window)
        share = (busy_cpu_seconds() - before) / ((time.perf_counter() - start) * (os.cpu_count() or 1))
        if share < threshold or time.perf_counter() >= deadline:
            return share
        print(
            f"  other processes use {share * 100:.0f}% of the CPUs; waiting for them "
            f"(up to {max(0.0, deadline - time.perf_counter()):.0f} s more)",
            flush=True,
        )


def io_stall_seconds() -> float | None:
    """Seconds since boot in which all non-idle tasks stalled on I/O (Linux PSI, /proc/pressure/io), or None."""
    try:
        full = Path("/proc/pressure/io").read_text().splitlines()[-1]
    except OSError:
        return None
    return int(full.rsplit("total=", 1)[1]) / 1e6


def busy_cpu_seconds() -> float | None:
    """CPU seconds the whole machine has spent busy since boot (Linux /proc/stat), or None elsewhere."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return None
    ticks = [int(x) for x in fields]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def child_env(data: Path) -> dict[str, str]:
    env = dict(os.environ, MNIST_HYDRA_DATA=str(data))
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # what the app sets too; keeps stderr readable
    return env


def run_mnist_hydra(overrides: list[str], data: Path) -> tuple[dict[str, Any], Child]:
    """`python -m mnist_hydra OVERRIDES` into a scratch run directory: its metrics.json and the process's record."""
    run_dir = Path(tempfile.mkdtemp(prefix="bench_run_"))
    try:
        argv = [sys.executable, "-m", "mnist_hydra", f"hydra.run.dir={run_dir}", *overrides]
        child = run_child(argv, child_env(data))
        metrics_path = run_dir / "metrics.json"
        if child.returncode != 0 or not metrics_path.is_file():
            raise RuntimeError(f"exit code {child.returncode}; stderr ends:\n{child.stderr[-2000:]}")
        return json.loads(metrics_path.read_text()), child
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("MET" if ok else "NOT MET")


def cpu_model() -> str:
    try:
        names = re.findall(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
    except OSError:
        names = []
    flags = cpu_flags()
    extras = [f for f in ("avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    return f"{names[0] if names else 'unknown CPU'}, {os.cpu_count()} cores" + (
        f" ({', '.join(extras)})" if extras else ""
    )


def load_average() -> str:
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "?"


def add_mnist_option(parser: argparse.ArgumentParser) -> None:
    """--data: the MNIST folder, $MNIST_HYDRA_DATA by default."""
    parser.add_argument(
        "--data",
        type=Path,
        default=Path(os.environ.get("MNIST_HYDRA_DATA", "")),
        help="the MNIST folder (default: $MNIST_HYDRA_DATA)",
    )


def require_mnist(parser: argparse.ArgumentParser, folder: Path) -> None:
    """The parser's one-line usage error unless `folder` holds MNIST's training images."""
    if not (folder / "train-images-idx3-ubyte.gz").is_file():
        parser.error(f"--data {folder}: no MNIST training images there; set MNIST_HYDRA_DATA or --data")
