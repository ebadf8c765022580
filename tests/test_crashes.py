"""SIGKILL at any moment, and a disk that fills up mid-run: resume=DIR must end with exactly the figures of a
run that was never stopped (per-epoch history, test metrics, confusion matrix), and leave no debris.

The default suite kills a tiny run's process at one fixed point (paused after epoch 1's checkpoint, so the
kill lands there whatever the machine's speed) and fills the disk in-process just after epoch 1's checkpoint.
The slow suite kills at a dozen seeded random moments, events seen from outside and polled every 2 ms: an
epoch under way, a checkpoint's temporary file being written, a final artifact's temporary file, the plots,
the report. The runs that are killed are processes; the unbroken reference runs and the resumes run
in-process (conftest.call_app), the slow suite's reference while the killed runs train beside it.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import call_app, paused_at, start_paused

ROOT = Path(__file__).resolve().parents[1]
# The default suite's run: two epochs of 5 steps on 300 images, validated on 600, scored on 100.
TINY = ["model=mlp", "data.train_limit=300", "data.val_split=0.01", "data.test_limit=100", "trainer.epochs=2"]
# The slow suite's: two epochs of 2,000 images (32 steps, one execution each), 500 test images: ~1 s an epoch,
# long enough for a kill at a random moment to land anywhere.
RUN = ["trainer.epochs=2", "data.train_limit=2000", "data.test_limit=500"]
FIGURES = (
    "history",
    "test_accuracy",
    "test_loss",
    "val_accuracy",
    "val_loss",
    "best_val_accuracy",
    "best_epoch",
    "epochs_run",
    "confusion_matrix",
    "train_images",
    "val_images",
    "test_images",
)
POLL = 0.002


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("HYDRA_FULL_ERROR", "TF_CPP_MIN_LOG_LEVEL")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def _resume(run: Path, cwd: Path) -> subprocess.CompletedProcess:
    """`python -m mnist_hydra resume=RUN`, in-process."""
    return call_app(f"resume={run}", cwd=cwd)


def _temp_files(folder: Path, name: str = "") -> list[Path]:
    """atomic_write's temporary files in `folder` (for `name` only, when given)."""
    return list(folder.glob(f".{name}*.tmp-*")) if folder.is_dir() else []


def _pointer_epoch(run: Path) -> int:
    try:
        return json.loads((run / "checkpoints" / "checkpoint.json").read_text())["epoch"]
    except (OSError, ValueError, KeyError):
        return 0


@dataclass(frozen=True)
class KillPoint:
    """Kill the run once `event(run_dir)` is true, `delay` seconds later; `during` says what that interrupts."""

    name: str
    during: str  # epoch, checkpoint, artifacts
    event: Callable[[Path], bool]
    delay: float = 0.0

    def __repr__(self) -> str:
        return self.name


def in_epoch(epoch: int, delay: float) -> KillPoint:
    if epoch == 1:  # "model: ..." is logged just before fit starts
        return KillPoint(
            f"epoch 1 +{delay:.2f}s", "epoch", lambda run: "] - model: " in _read(run / "train.log"), delay
        )
    return KillPoint(f"epoch {epoch} +{delay:.2f}s", "epoch", lambda run: _pointer_epoch(run) >= epoch - 1, delay)


def checkpoint_write(epoch: int, delay: float = 0.0) -> KillPoint:
    name = f"epoch-{epoch:04d}.keras"
    return KillPoint(
        f"checkpoint {epoch} write +{delay * 1000:.0f}ms",
        "checkpoint",
        lambda run: bool(_temp_files(run / "checkpoints", name)),
        delay,
    )


def artifact(stage: str, delay: float = 0.0) -> KillPoint:
    """The final artifacts, in their order: model.keras, history.csv, the plots, report.html, metrics.json."""
    events = {
        "model.keras write": lambda run: bool(_temp_files(run, "model.keras")),
        "plots": lambda run: (run / "model.keras").is_file(),
        "report": lambda run: (run / "misclassified.png").is_file(),
        "metrics.json": lambda run: (run / "report.html").is_file(),
        "checkpoint removal": lambda run: (run / "metrics.json").is_file(),
    }
    return KillPoint(f"artifacts: {stage} +{delay * 1000:.0f}ms", "artifacts", events[stage], delay)


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


_rng = random.Random(11)  # the slow suite's moments: random, and the same on every run
SLOW = [
    in_epoch(1, _rng.uniform(0.0, 1.0)),
    in_epoch(2, _rng.uniform(0.0, 0.8)),
    in_epoch(2, _rng.uniform(0.0, 0.8)),
    checkpoint_write(1, _rng.uniform(0.0, 0.03)),
    checkpoint_write(2, _rng.uniform(0.0, 0.03)),
    checkpoint_write(1, _rng.uniform(0.0, 0.03)),
    artifact("model.keras write", _rng.uniform(0.0, 0.03)),
    artifact("plots"),
    artifact("plots", _rng.uniform(0.0, 0.3)),
    artifact("report"),
    artifact("metrics.json"),
    artifact("checkpoint removal"),
]


@dataclass
class Killed:
    """What the kill left and what the resume made of it."""

    point: KillPoint
    code: int | None
    left: list[str]  # the run directory's files right after the kill
    temp_left: list[str]  # temporary files a killed writer left
    pointer: int  # the checkpoint's epoch after the kill
    resumed: subprocess.CompletedProcess | None = None
    metrics: dict = field(default_factory=dict)
    files: list[str] = field(default_factory=list)  # the run directory's files after the resume


def _listing(run: Path) -> list[str]:
    return sorted(str(p.relative_to(run)) for p in run.rglob("*") if p.is_file())


def kill(point: KillPoint, cwd: Path) -> Killed:
    """Start the run as a process and SIGKILL it at `point`; what is left (resumed: see resume)."""
    run = cwd / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "mnist_hydra", *RUN, f"hydra.run.dir={run}"],
        cwd=cwd,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 300
    try:
        while not point.event(run):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(
                    f"{point}: the run ended (exit {proc.poll()}) before the kill point came: "
                    f"{proc.stderr.read()[-2000:]}"
                )
            time.sleep(POLL)
        time.sleep(point.delay)
        proc.kill()
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stderr.close()
    left, temp_left = _listing(run), [str(p.relative_to(run)) for p in run.rglob(".*.tmp-*")]
    return Killed(point, proc.returncode, left, temp_left, _pointer_epoch(run))


def resume(killed: Killed, cwd: Path) -> Killed:
    """Resume the killed run in `cwd` in-process, and record what that made of it."""
    run = cwd / "run"
    killed.resumed = _resume(run, cwd)
    killed.metrics = json.loads(_read(run / "metrics.json") or "{}")
    killed.files = _listing(run)
    return killed


def _selected(request, test: str) -> list[KillPoint]:
    return [
        item.callspec.params["point"]
        for item in request.session.items
        if getattr(item, "originalname", None) == test and hasattr(item, "callspec")
    ]


@pytest.fixture(scope="module")
def crashes(request, tmp_path_factory, mnist_dir) -> dict:
    """The reference run and every selected kill point's run: {"reference": metrics, point: Killed}. The killed
    runs, two at a time, are processes; the reference trains in-process meanwhile, then resumes each of them."""
    points = _selected(request, "test_sigkill_at_random_moments")
    base = tmp_path_factory.mktemp("crashes")

    def crash(index: int, point: KillPoint) -> tuple[Path, Killed]:
        cwd = base / f"kill-{index:02d}"
        cwd.mkdir()
        return cwd, kill(point, cwd)

    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = {point.name: pool.submit(crash, i, point) for i, point in enumerate(points)}
        cwd = base / "reference"
        cwd.mkdir()
        result = call_app(*RUN, f"hydra.run.dir={cwd}/run", cwd=cwd)
        assert result.returncode == 0, result.stderr[-3000:]
        reference = json.loads((cwd / "run" / "metrics.json").read_text())
        killed = {name: future.result() for name, future in runs.items()}
    return {"reference": reference, **{name: resume(left, cwd) for name, (cwd, left) in killed.items()}}


def _check(killed: Killed, reference: dict) -> None:
    point = killed.point
    assert killed.code == -signal.SIGKILL, f"{point}: not killed ({killed.code})"
    if point.during == "epoch":
        assert "model.keras" not in killed.left and "metrics.json" not in killed.left
    elif point.during == "checkpoint":
        # Killed with the checkpoint's temporary file open: the previous epoch's checkpoint is the newest.
        epoch = int(point.name.split()[1])
        assert any(name.startswith(f"checkpoints/.epoch-{epoch:04d}.keras.tmp-") for name in killed.temp_left), (
            killed.left
        )
        assert killed.pointer == epoch - 1
    else:
        assert killed.pointer == 2 or "metrics.json" in killed.left  # every epoch done: only the end was cut
    assert killed.resumed is not None and killed.resumed.returncode == 0, killed.resumed
    assert killed.resumed.stderr == "", killed.resumed.stderr[-3000:]
    for key in FIGURES:
        assert killed.metrics.get(key) == reference[key], f"{point}: {key} differs from the unbroken run's"
    assert killed.metrics["status"] == "completed"
    # No debris: no temporary files, no checkpoints; every artifact there.
    assert not [name for name in killed.files if ".tmp-" in name or name.startswith("checkpoints/")], killed.files
    for name in (
        "model.keras",
        "history.csv",
        "training_curves.png",
        "confusion_matrix.png",
        "misclassified.png",
        "report.html",
        "metrics.json",
        "provenance.json",
    ):
        assert name in killed.files, f"{point}: {name} missing after the resume"


@pytest.fixture(scope="module")
def reference(tmp_path_factory, mnist_dir) -> dict:
    """The metrics of TINY, never stopped."""
    cwd = tmp_path_factory.mktemp("reference")
    result = call_app(*TINY, f"hydra.run.dir={cwd}/run", cwd=cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads((cwd / "run" / "metrics.json").read_text())


@pytest.mark.slow
def test_sigkill_then_resume_gives_the_figures_of_an_unbroken_run(reference, tmp_path, mnist_dir):
    """SIGKILL between epoch 1's checkpoint and epoch 2 (test_sigkill_at_random_moments: anywhere else). In the
    default suite: test_a_full_disk_during_a_checkpoint_keeps_the_previous_one_and_resume_finishes, a run that
    dies mid-checkpoint and resumes, in this process."""
    run = tmp_path / "run"
    proc = start_paused([*TINY, f"hydra.run.dir={run}"], run, 1, tmp_path, {"MNIST_HYDRA_DATA": str(mnist_dir)})
    try:
        paused_at(proc, run, 1)
        proc.kill()
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    left = _listing(run)
    killed = Killed(in_epoch(2, 0.0), proc.returncode, left, [n for n in left if ".tmp-" in n], _pointer_epoch(run))
    assert killed.pointer == 1, left
    _check(resume(killed, tmp_path), reference)


@pytest.mark.slow
@pytest.mark.parametrize("point", SLOW, ids=repr)
def test_sigkill_at_random_moments(point, crashes):
    """Every other moment of test_sigkill_then_resume_gives_the_figures_of_an_unbroken_run's kill."""
    _check(crashes[point.name], crashes["reference"])


def test_a_full_disk_during_a_checkpoint_keeps_the_previous_one_and_resume_finishes(tmp_path, reference, monkeypatch):
    """A 64 MB tmpfs: the run starts (50 MB free is its minimum), epoch 1's checkpoint is written, then the disk
    is filled to 1 MB free, so epoch 2's 2.8 MB checkpoint cannot be written."""
    from mnist_hydra.training.checkpoints import Checkpoints

    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(disk)], capture_output=True, text=True
    )
    if mounted.returncode:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must be able to mount a tmpfs (run as root): {mounted.stderr.strip()}")
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    filler = disk / "filler"
    save = Checkpoints.save

    def save_then_fill(self, model, state, best=False):
        save(self, model, state, best)
        if state.epoch == 1:  # leave 1 MB: the log can still take lines, a checkpoint cannot
            with open(filler, "wb") as fill:
                free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
                os.posix_fallocate(fill.fileno(), 0, free - 1_000_000)

    try:
        run = disk / "run"
        with monkeypatch.context() as patch:
            patch.setattr(Checkpoints, "save", save_then_fill)
            result = call_app(*TINY, f"hydra.run.dir={run}", cwd=tmp_path)

        assert result.returncode == 1, result.stderr
        assert result.stderr.splitlines() == [
            f"mnist_hydra: error: cannot write {run}/checkpoints/epoch-0002.keras: No space left on device; the "
            f"checkpoint of epoch 1 is kept: make room, then continue with resume={run}"
        ], result.stderr
        assert "Traceback" not in result.stdout + result.stderr
        checkpoints = sorted(p.name for p in (run / "checkpoints").iterdir())
        assert checkpoints == ["checkpoint.json", "epoch-0001.keras"], checkpoints  # no half-written file
        assert _pointer_epoch(run) == 1
        with zipfile.ZipFile(run / "checkpoints" / "epoch-0001.keras") as archive:
            assert archive.testzip() is None
        record = json.loads((run / "metrics.json").read_text())
        assert (record["status"], record["epochs_run"]) == ("failed", 1) and "No space left" in record["error"]

        filler.unlink()  # room again
        resumed = _resume(run, tmp_path)
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        metrics = json.loads((run / "metrics.json").read_text())
        assert metrics["status"] == "completed"
        for key in FIGURES:
            assert metrics[key] == reference[key], key
        assert "resuming after epoch 1 of 2" in (run / "train.log").read_text()
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)
