"""hydra/launcher=ray on a real Ray cluster that the test starts on loopback (`ray start --head`) and stops.

The cluster is started without MNIST_HYDRA_DATA, from another folder: the jobs find the data and the sweep
directory only because the launcher forwards the variable and runs each job from the launch directory.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.conftest import run_app

RAY = Path(sys.executable).with_name("ray")
# Ray sends its auth token to a cluster named by HOST:PORT only when told to (address=auto does on its own).
AUTH = {"RAY_AUTH_MODE": "token"}
TINY = ["model=mlp", "data.train_limit=300", "data.test_limit=100", "trainer.verbose=0", "trainer.threads=1"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _processes_under(*markers: str) -> set[int]:
    """The processes whose command line names one of `markers` (the cluster's temp folder, its GCS port), and
    their descendants."""
    parents: dict[int, int] = {}
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if any(marker in cmdline + " " for marker in markers):
            found.add(int(entry.name))
    grew = True
    while grew:
        children = {pid for pid, parent in parents.items() if parent in found} - found
        found |= children
        grew = bool(children)
    return found


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, mnist_dir):
    """A 2-CPU Ray head on 127.0.0.1; its address. Stopped (its own processes only) at the end."""
    # A short folder: Ray's Unix sockets live under it, and a socket's path may hold ~100 characters only.
    temp = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))
    port = _free_port()
    # The cluster's own token, in its folder: a machine without ~/.ray/auth_token (Ray makes none unasked) gets one,
    # and one that has it keeps it untouched. The drivers this module starts find it through the environment.
    token = temp / "auth_token"
    token.write_text(secrets.token_hex(32))
    saved = os.environ.get("RAY_AUTH_TOKEN_PATH")
    os.environ["RAY_AUTH_TOKEN_PATH"] = str(token)
    env = {key: value for key, value in os.environ.items() if key not in ("MNIST_HYDRA_DATA", "RAY_ADDRESS")}
    env["RAY_AUTH_MODE"] = "token"  # said here, as the drivers need it too (AUTH)
    try:
        start = subprocess.run(
            [
                str(RAY),
                "start",
                "--head",
                "--num-cpus",
                "2",
                "--node-ip-address",
                "127.0.0.1",
                "--port",
                str(port),
                "--temp-dir",
                str(temp),
                "--include-dashboard=false",
                "--disable-usage-stats",
                "--ray-client-server-port",
                str(_free_port()),
                "--dashboard-agent-listen-port",
                str(_free_port()),
                "--min-worker-port",
                "20000",
                "--max-worker-port",
                "20999",
            ],
            cwd=tmp_path_factory.mktemp("ray-start"),
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert start.returncode == 0, start.stdout[-2000:] + start.stderr[-2000:]
        yield f"127.0.0.1:{port}"
    finally:
        pids = _processes_under(str(temp), f":{port} ")
        for pid in pids:
            with _gone():
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(Path(f"/proc/{pid}").exists() for pid in pids):
            time.sleep(0.5)
        for pid in pids:
            with _gone():
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(temp, ignore_errors=True)
        if saved is None:
            os.environ.pop("RAY_AUTH_TOKEN_PATH", None)
        else:
            os.environ["RAY_AUTH_TOKEN_PATH"] = saved


class _gone:
    """Ignore a process that has ended already."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, value, tb) -> bool:
        return kind is ProcessLookupError


def _spans(job: Path) -> tuple[datetime, datetime]:
    stamps = re.findall(r"^\[([^\]]+)\]", (job / "train.log").read_text(), re.M)
    first, last = (datetime.strptime(s, "%Y-%m-%d %H:%M:%S,%f") for s in (stamps[0], stamps[-1]))
    return first, last


# The cluster's tests are slow: a Ray cluster and ~10 Ray workers that each import TensorFlow, about 3 minutes.
@pytest.mark.slow
def test_a_sweep_runs_on_the_cluster_one_job_fails_and_resume_finishes_it(tmp_path, mnist_dir, cluster):
    roots = []
    for name in ("a", "b", "c"):
        (tmp_path / name).symlink_to(mnist_dir)
        roots.append(name)
    roots.append("later")  # not there yet: that job fails, and the sweep goes on
    sweep = tmp_path / "sweep"
    args = [
        "--multirun",
        "hydra/launcher=ray",
        f"hydra.launcher.ray.init.address={cluster}",
        *TINY,
        "trainer.epochs=1",
        f"data.root={','.join(roots)}",
        f"hydra.sweep.dir={sweep}",
    ]
    result = run_app(*args, cwd=tmp_path, env={"MNIST_HYDRA_DATA": str(mnist_dir), **AUTH}, timeout=400)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"Ray: joined the cluster at {cluster}, 2 CPUs" in result.stdout
    assert len(set(re.findall(r"\(_run pid=(\d+)\)", result.stdout))) >= 2  # Ray workers, not this process
    statuses = {job: json.loads((sweep / job / "metrics.json").read_text())["status"] for job in "0123"}
    assert statuses == {"0": "completed", "1": "completed", "2": "completed", "3": "failed"}
    assert "data.root=later" in json.loads((sweep / "3" / "metrics.json").read_text())["error"]
    # Each job reserved trainer.threads=1 of the cluster's 2 CPUs: never more than two at once.
    spans = [_spans(sweep / job) for job in "012"]
    for moment, _ in spans:
        assert sum(start <= moment <= end for start, end in spans) <= 2

    (tmp_path / "later").symlink_to(mnist_dir)
    resumed = run_app(f"resume={sweep}", cwd=tmp_path, env={"MNIST_HYDRA_DATA": str(mnist_dir), **AUTH}, timeout=400)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert json.loads((sweep / "3" / "metrics.json").read_text())["status"] == "completed"
    table = pd.read_csv(sweep / "sweep_results.csv")
    assert sorted(table["job"]) == [0, 1, 2, 3] and set(table["status"]) == {"completed"}
    first_runs = {
        job: yaml.safe_load((sweep / job / ".hydra" / "hydra.yaml").read_text())["hydra"]["job"]["num"] for job in "012"
    }
    assert first_runs == {"0": 0, "1": 1, "2": 2}


@pytest.mark.slow
def test_ctrl_c_stops_every_job_at_a_clean_point(tmp_path, mnist_dir, cluster):
    sweep = tmp_path / "sweep"
    args = [
        "--multirun",
        "hydra/launcher=ray",
        f"hydra.launcher.ray.init.address={cluster}",
        *TINY,
        "data.train_limit=3000",
        "trainer.epochs=50",
        "seed=1,2",
        f"hydra.sweep.dir={sweep}",
    ]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "MNIST_HYDRA_DATA": str(mnist_dir), **AUTH}
    env.pop("HYDRA_FULL_ERROR", None)
    with open(tmp_path / "out.txt", "w") as out:
        driver = subprocess.Popen(
            [sys.executable, "-m", "mnist_hydra", *args],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 240
        logs = [sweep / job / "train.log" for job in ("0", "1")]
        while time.monotonic() < deadline and not all(p.is_file() and "epoch 1/50" in p.read_text() for p in logs):
            assert driver.poll() is None, driver.stderr.read()
            time.sleep(1)
        assert all("epoch 1/50" in p.read_text() for p in logs), "the jobs did not start"
        driver.send_signal(signal.SIGINT)
        _, err = driver.communicate(timeout=120)
    assert driver.returncode == 130, err
    assert f"Resume with: python -m mnist_hydra resume={sweep}" in err.splitlines()[-1]
    output = (tmp_path / "out.txt").read_text()
    for job in ("0", "1"):
        metrics = json.loads((sweep / job / "metrics.json").read_text())
        assert metrics["status"] == "interrupted" and 1 <= metrics["epochs_run"] < 50, metrics
        assert (sweep / job / "checkpoints" / "checkpoint.json").is_file()
    workers = {int(pid) for pid in re.findall(r"\(_run pid=(\d+)\)", output)}
    assert workers
    time.sleep(2)
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()], "a job's Ray worker still runs"


def test_a_token_cluster_without_a_token_is_one_line_naming_what_to_set(tmp_path):
    """RAY_AUTH_MODE=token with HOST:PORT (as docs/sweeps.md says) and no token anywhere: ray.init refuses before
    it connects (Ray's AuthenticationError), so a plain listener on loopback stands in for the cluster's port."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_") and k != "HYDRA_FULL_ERROR"}
    env.update(AUTH, HOME=str(tmp_path / "home"))  # no ~/.ray/auth_token, no RAY_AUTH_TOKEN(_PATH)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        address = f"127.0.0.1:{listener.getsockname()[1]}"
        result = subprocess.run(
            [sys.executable, "-m", "mnist_hydra", "--multirun", "hydra/launcher=ray"]
            + [f"hydra.launcher.ray.init.address={address}", f"hydra.sweep.dir={tmp_path}/sweep", *TINY, "seed=1,2"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [
        f"mnist_hydra: error: cannot join hydra.launcher.ray.init.address={address}: Ray's token authentication "
        "is on (RAY_AUTH_MODE=token) and this shell has no token; set RAY_AUTH_TOKEN to the cluster's token "
        "(`ray get-auth-token` on its head prints it), or RAY_AUTH_TOKEN_PATH to a file holding it"
    ], result.stderr
    assert not (tmp_path / "sweep").exists()  # the sweep directory it had claimed is gone
