"""Ctrl-C and SIGTERM at the moments a user sends them: at start-up, twice during training, to a parallel sweep.

Each ends in one line on stderr and exit 128 + the signal's number; a start-up stop leaves no directory,
a training stop keeps the last complete epoch's checkpoint, a stopped sweep resumes with resume=SWEEP.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = ["trainer.epochs=3", "data.train_limit=2000", "data.test_limit=200"]


def _env(mnist_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("HYDRA_FULL_ERROR", "TF_CPP_MIN_LOG_LEVEL")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["MNIST_HYDRA_DATA"] = str(mnist_dir)
    return env


def _interactive_signals() -> None:
    """In the child: SIGINT at its default, as in a terminal. A suite started as a background job (`cmd &`) has
    SIGINT ignored, which every child would inherit, and Python then never turns Ctrl-C into KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(args: list[str], cwd: Path, mnist_dir: Path, **options) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "mnist_hydra", *args],
        cwd=cwd,
        env=_env(mnist_dir),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_interactive_signals,
        **options,
    )


def _wait_for(proc: subprocess.Popen, ready, what: str, timeout: float = 240) -> None:
    """Poll every 5 ms until ready() is true; fail if the process ends first."""
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the process ended (exit {proc.returncode}) before {what}:\n{err[-3000:]}\n{out[-2000:]}")
        assert time.monotonic() < deadline, f"no {what} after {timeout} s"
        time.sleep(0.005)


def _finish(proc: subprocess.Popen, timeout: float = 180) -> subprocess.CompletedProcess:
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _loads_tensorflow(pid: int) -> bool:
    """TensorFlow's shared library is mapped into the process: its import is under way."""
    try:
        return "libtensorflow" in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


@pytest.mark.parametrize(
    "sig, moment",
    [
        (signal.SIGINT, "claimed"),  # the run directory was just created and locked: Hydra is composing, data next
        (signal.SIGINT, "tensorflow"),  # TensorFlow's import is under way (about 5 s of start-up)
        (signal.SIGTERM, "claimed"),
    ],
)
def test_a_signal_during_start_up_prints_one_line_and_leaves_no_directory(sig, moment, tmp_path, mnist_dir):
    run = tmp_path / "outputs" / "run"
    proc = _start([*TINY, f"hydra.run.dir={run}"], tmp_path, mnist_dir)
    if moment == "claimed":
        _wait_for(proc, run.is_dir, "the run directory")
    else:
        _wait_for(proc, lambda: _loads_tensorflow(proc.pid), "TensorFlow's import")
    proc.send_signal(sig)
    result = _finish(proc)
    name = "Ctrl-C" if sig == signal.SIGINT else "SIGTERM"
    assert result.returncode == 128 + sig, result.stderr
    assert result.stderr.splitlines() == [f"mnist_hydra: interrupted ({name}); nothing of this command was kept"], (
        result.stderr
    )
    assert not (tmp_path / "outputs").exists(), "a stub directory was left"  # nor the folder made above it


# A second Ctrl-C must land while the first one's clean stop is still under way: after a stop request Keras
# still validates the epoch in progress, and 6,000 images in one-step batches of 10 keep it going for
# seconds (the test sends the second Ctrl-C within milliseconds of seeing the first one's log line).
SLOW_STOP_RUN = [
    "trainer.epochs=2",
    "trainer.verbose=0",
    "data.train_limit=2000",
    "data.test_limit=500",
    "trainer.eval_batch_size=10",
    "trainer.steps_per_execution=1",
]


def test_a_second_ctrl_c_during_the_stops_validation_ends_at_once_and_keeps_the_checkpoint(
    tmp_path, mnist_dir, signal_at_step
):
    """In this process: Ctrl-C at epoch 2's second step, and again as that epoch's validation begins (a process
    sent both from outside: the slow test_a_second_ctrl_c_stops_at_once_and_keeps_the_checkpoint)."""
    from tests.conftest import call_app

    run = tmp_path / "run"
    signal_at_step(signal.SIGINT, 2, 2, again=True)
    args = ["model=mlp", "data.train_limit=300", "data.val_split=0.01", "data.test_limit=100", "trainer.epochs=2"]
    result = call_app(*args, "trainer.steps_per_execution=1", f"hydra.run.dir={run}", cwd=tmp_path)
    assert result.returncode == 130, result.stderr
    assert result.stderr == (
        "mnist_hydra: SIGINT stopped training after 1 of 2 epochs; the checkpoint is kept. "
        f"Resume with: python -m mnist_hydra resume={run}\n"
    )
    metrics = json.loads((run / "metrics.json").read_text())
    assert (metrics["status"], metrics["epochs_run"], metrics["signal"]) == ("interrupted", 1, "SIGINT")
    pointer = json.loads((run / "checkpoints" / "checkpoint.json").read_text())
    assert pointer["epoch"] == 1
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["checkpoint.json", pointer["file"]]
    with zipfile.ZipFile(run / "checkpoints" / pointer["file"]) as archive:  # readable, whole
        assert archive.testzip() is None and "model.weights.h5" in archive.namelist()
    assert not (run / "model.keras").exists()
    log = (run / "train.log").read_text()
    assert "stopped at once by a second Ctrl-C; the checkpoint of epoch 1 is kept" in log, log[-2000:]
    assert "epoch 2/2" not in log  # at once: the epoch in progress never reached its end


@pytest.mark.slow
def test_a_second_ctrl_c_stops_at_once_and_keeps_the_checkpoint(tmp_path, mnist_dir):
    """Both Ctrl-Cs sent from outside to a process, the second while the first one's stop validates the epoch
    (in the default suite: test_a_second_ctrl_c_during_the_stops_validation_ends_at_once_and_keeps_the_checkpoint,
    both raised in this process at the same points)."""
    import keras
    import numpy as np

    run = tmp_path / "run"
    proc = _start([*SLOW_STOP_RUN, f"hydra.run.dir={run}"], tmp_path, mnist_dir)
    pointer = run / "checkpoints" / "checkpoint.json"
    _wait_for(proc, lambda: pointer.is_file() and json.loads(pointer.read_text())["epoch"] >= 1, "epoch 1's checkpoint")
    proc.send_signal(signal.SIGINT)
    log = run / "train.log"
    _wait_for(proc, lambda: "SIGINT: stopping after this step" in log.read_text(), "the first Ctrl-C's log line")
    proc.send_signal(signal.SIGINT)  # the user insists
    result = _finish(proc)

    assert result.returncode == 130, result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr  # no traceback, nothing but the one line
    assert re.fullmatch(
        rf"mnist_hydra: SIGINT stopped training after 1 of 2 epochs; the checkpoint is kept\. "
        rf"Resume with: python -m mnist_hydra resume={re.escape(str(run))}\n",
        result.stderr,
    )
    metrics = json.loads((run / "metrics.json").read_text())
    assert (metrics["status"], metrics["epochs_run"], metrics["signal"]) == ("interrupted", 1, "SIGINT")
    checkpoint = json.loads(pointer.read_text())
    assert checkpoint["epoch"] == 1
    with zipfile.ZipFile(run / "checkpoints" / checkpoint["file"]) as archive:  # readable, whole
        assert archive.testzip() is None and "model.weights.h5" in archive.namelist()
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["checkpoint.json", checkpoint["file"]]
    model = keras.models.load_model(run / "checkpoints" / checkpoint["file"])
    assert model.predict(np.zeros((1, 28, 28, 1), "float32"), verbose=0).shape == (1, 10)
    assert not (run / "model.keras").exists()
    text = log.read_text()
    assert "stopped at once by a second Ctrl-C; the checkpoint of epoch 1 is kept" in text, text[-2000:]
    # At once: the epoch in progress never reached its end, where it would have been logged as dropped.
    assert "epoch 2/2" not in text


@pytest.mark.slow
def test_ctrl_c_stops_every_job_of_a_parallel_sweep_and_resume_finishes_it(tmp_path, mnist_dir):
    sweep = tmp_path / "sweep"
    pid_format = "'pid %(process)d [%(name)s] %(message)s'"
    args = [
        "-m",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "trainer.threads=1",
        *TINY,
        "seed=0,1,2",
        f"hydra.sweep.dir={sweep}",
        f"hydra.job_logging.formatters.simple.format={pid_format}",
    ]
    # Its own process group, as a terminal gives a command: Ctrl-C reaches the launcher and every worker.
    proc = _start(args, tmp_path, mnist_dir, start_new_session=True)
    pointers = [sweep / job / "checkpoints" / "checkpoint.json" for job in "01"]
    _wait_for(proc, lambda: all(p.is_file() for p in pointers), "both jobs' first checkpoints", timeout=400)
    workers = {int(re.search(r"^pid (\d+) ", (sweep / job / "train.log").read_text(), re.M).group(1)) for job in "01"}
    assert len(workers) == 2 and proc.pid not in workers  # two worker processes besides the launcher
    os.killpg(proc.pid, signal.SIGINT)
    result = _finish(proc)

    assert result.returncode == 130, result.stderr
    assert result.stderr.splitlines() == [
        f"mnist_hydra: interrupted (Ctrl-C); what was done is kept in {sweep}. "
        f"Resume with: python -m mnist_hydra resume={sweep}"
    ], result.stderr
    deadline = time.monotonic() + 30
    while any(Path(f"/proc/{pid}").exists() for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()], "a worker outlived the sweep"
    assert not any(
        (sweep / job / "metrics.json").is_file()
        and json.loads((sweep / job / "metrics.json").read_text())["status"] == "completed"
        for job in "01"
    )
    assert not (sweep / "2").exists()  # the third job never started

    resumed = subprocess.run(
        [sys.executable, "-m", "mnist_hydra", f"resume={sweep}"],
        cwd=tmp_path,
        env=_env(mnist_dir),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    for job in "012":
        metrics = json.loads((sweep / job / "metrics.json").read_text())
        assert metrics["status"] == "completed" and metrics["epochs_run"] == 3, (job, metrics)
    assert "resuming after epoch" in (sweep / "0" / "train.log").read_text()
    assert len((sweep / "sweep_results.csv").read_text().splitlines()) == 1 + 3


def test_a_signal_while_a_resume_starts_leaves_its_directory_as_it_was(tmp_path, mnist_dir):
    """A run directory with no result yet (its first start was killed): a resume stopped during its start-up
    takes back what it added (.hydra/resumed-TIME, the data split, provenance.json, its train.log lines), so
    "nothing of this command was kept" is true."""
    config = subprocess.run(
        [sys.executable, "-m", "mnist_hydra", "--cfg", "job", *TINY],
        cwd=tmp_path,
        env=_env(mnist_dir),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert config.returncode == 0, config.stderr
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "config.yaml").write_text(config.stdout)
    (run / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in TINY))
    (run / "train.log").write_text("[2026-12-01 10:00:00,000][__main__][INFO] - the first start, killed\n")
    sizes = lambda: {  # noqa: E731
        str(p.relative_to(run)): p.stat().st_size if p.is_file() else -1 for p in sorted(run.rglob("*"))
    }
    before = sizes()
    proc = _start([f"resume={run}"], tmp_path, mnist_dir)
    _wait_for(proc, lambda: any((run / ".hydra").glob("resumed-*/config.yaml")), "the resume's .hydra/ files")
    proc.send_signal(signal.SIGTERM)
    result = _finish(proc)
    assert result.returncode == 128 + signal.SIGTERM, result.stderr
    assert result.stderr.splitlines() == ["mnist_hydra: interrupted (SIGTERM); nothing of this command was kept"]
    assert sizes() == before


def test_a_sigterm_after_a_ctrl_c_leaves_the_first_stop_in_charge(caplog):
    from mnist_hydra.training.signals import stop_on_signals

    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with caplog.at_level("INFO", logger="mnist_hydra.training.signals"), stop_on_signals() as request:
            signal.raise_signal(signal.SIGINT)
            signal.raise_signal(signal.SIGTERM)  # a scheduler's stop while the Ctrl-C's is under way
        assert request.signum == signal.SIGINT  # recorded, and exited with, as the stop that was asked first
        assert caplog.text.count("stopping after this step") == 1
        assert "SIGTERM: already stopping" in caplog.text
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)
