"""Claiming run and sweep directories: created, locked, never a run's twice; and taken back when a command fails.

- `claim_run_dir` (the apps call it before Hydra creates or writes anything, whether hydra.run.dir comes
  from our default or is given literally): a new run never goes into a directory that holds a run
  (complete, stopped or failed): that is `resume=DIR`'s job. The directory is created and locked with
  flock for the life of the process, so of two processes started on it at once one runs and the other
  refuses (a lock, not a check-then-write race). A run never goes into a sweep's directory either,
  resumed or not, nor a new run into a new folder inside one (it would become one of the sweep's jobs).
- `claim_sweep_dir`: a new sweep never goes into another sweep's directory, no sweep into or inside a
  run's, and no two jobs into one directory (a fixed hydra.sweep.subdir).
- `discard_created` (called by the error boundary) removes the directories created here that hold no
  result, and takes back what was added to a directory that existed (a resumed one included), so a
  command that fails or is interrupted leaves no stub and "nothing of this command was kept" is true.
- `release` unlocks and forgets this process's claims, for a caller that runs several commands in one process.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from pathlib import Path

from mnist_hydra.errors import ConfigError, OutputError
from mnist_hydra.runs import rundir

_locks: dict[str, int] = {}  # claimed directory -> the open descriptor holding its lock
_created: list[tuple[Path, bool]] = []  # (directory this process made, claimed as a run's), deepest last
# Claimed directories that existed already (a resumed run's, or a fresh claim of an existing folder) -> every path
# below them then, with a file's size: what else is in them is this process's.
_found: dict[Path, dict[Path, int]] = {}
_sweep: list[Path] = []  # the sweep directory of this process, once checked


def claim_run_dir(folder: Path, key: str, resumed: bool, trains: bool = True) -> None:
    """Claim a run directory for this process before anything is written there (see the module docstring);
    `key` is the setting that named it, for the error line; `trains`: the command trains (so resume= is the way
    to continue a run found there), else it writes beside a run (evaluate, predict)."""
    if _is_sweep_here(folder):
        grid = (folder / rundir.SWEEP_RECORD).is_file()
        raise ConfigError(
            f"{key}={folder} holds a sweep; a run never writes into a sweep's directory: choose a new directory"
            + (f" (python -m mnist_hydra resume={folder} continues the sweep)" if grid else "")
        )
    if not resumed and _in_sweep_here(folder):  # a sweep's own job is resumed as a run: that one is allowed
        raise ConfigError(
            f"{key}={folder} is inside the sweep directory {folder.parent}; a run never writes into a sweep's "
            "directory: choose a directory outside it"
        )
    claim(folder, key, fresh=not resumed, trains=trains)


def claim_sweep_dir(folder: Path, key: str, subdir: str, resumed: bool) -> None:
    """Check a sweep directory before a sweep starts, and create it: a new sweep never writes into another sweep's
    directory; `subdir` is hydra.sweep.subdir as written (unresolved)."""
    if "${" not in subdir:  # a fixed name, or "." (the sweep directory itself): every job in the same directory
        raise ConfigError(
            f"hydra.sweep.subdir={subdir} is the same directory for every job, so each job would write into "
            "another's; leave it at its default ${hydra.job.num}, or give a value per job such as "
            "${hydra.job.override_dirname}"
        )
    if _is_run_here(folder) or _is_run_here(folder.parent):
        raise ConfigError(
            f"{key}={folder} holds a run; a sweep never writes into a run's directory: choose a new "
            f"directory (python -m mnist_hydra resume={folder}, without --multirun, continues the run)"
            if _is_run_here(folder)
            else f"{key}={folder} is inside the run directory {folder.parent}; a sweep never writes into a run's "
            "directory: choose a directory outside it"
        )
    if not resumed and ((folder / rundir.SWEEP_RECORD).is_file() or rundir.job_dirs(folder)):
        raise ConfigError(
            f"hydra.sweep.dir={folder} already holds a sweep; continue it with resume={folder}, "
            "or choose a new directory"
        )
    _make(folder, "hydra.sweep.dir")
    _sweep[:] = [folder]


def claim(folder: Path, key: str, fresh: bool, trains: bool = True) -> None:
    """Create `folder` if needed and hold an exclusive lock on it; ConfigError if another process holds it,
    or, when `fresh`, if it already holds a run."""
    name = str(folder.absolute())
    if name in _locks:
        return  # Hydra resolves its directories more than once
    if fresh and _holds_run_here(folder):
        raise _holds_run(folder, key, trains)
    before = _contents(folder) if folder.is_dir() else None
    made = _make(folder, key, claimed=True)
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        for entry in made:  # the other process's directory now, whoever created it
            _created.remove(entry)
        raise ConfigError(
            f"{key}={folder} is in use by another mnist_hydra process; wait for it to end, or choose another directory"
        ) from None
    if fresh and rundir.holds_run(folder):  # a run that ended between the first check and the lock
        os.close(fd)
        raise _holds_run(folder, key, trains)
    _locks[name] = fd
    if before is not None:
        _found[folder] = before


def discard_created() -> Path | None:
    """Remove what this process created and that holds no result: the run or evaluation directory it
    claimed when it has no metrics.json, model or checkpoints (the command failed or was interrupted before
    making anything), or in a directory that existed (a resumed one included), what was added to it and the
    lines appended to its logs; then the folders made above it if that leaves them empty. Returns the run or
    sweep directory that keeps work to resume, if any."""
    for folder, before in _found.items():
        if folder.is_dir() and not rundir.holds_run(folder):
            _restore(folder, before)
    _found.clear()
    for path, claimed in reversed(_created):
        if not path.is_dir():
            continue
        if claimed and not rundir.holds_run(path):
            shutil.rmtree(path, ignore_errors=True)
        elif not claimed:
            (path / f".write-test-{os.getpid()}").unlink(missing_ok=True)  # _make's probe, if a signal cut it short
            if not any(path.iterdir()):
                path.rmdir()  # only when empty: another process may have started a run beside ours
    _created.clear()
    kept = [Path(name) for name in _locks if Path(name).is_dir() and rundir.holds_run(Path(name))]
    kept += [folder for folder in _sweep if folder.is_dir() and rundir.job_dirs(folder)]
    return kept[-1] if kept else None


def _contents(folder: Path) -> dict[Path, int]:
    """The paths in `folder` and in its .hydra/ (all that a start adds to; not a walk of a big folder given as
    hydra.run.dir=.), with a file's size (-1 for anything else)."""
    found: dict[Path, int] = {}
    config_dir = folder / ".hydra"
    below = list(config_dir.rglob("*")) if config_dir.is_dir() and not config_dir.is_symlink() else []
    try:
        entries = list(folder.iterdir())
    except OSError:  # a folder that cannot be listed: _make or Hydra says why
        entries = []
    for path in [*entries, *below]:
        with contextlib.suppress(OSError):
            found[path] = path.stat().st_size if path.is_file() and not path.is_symlink() else -1
    return found


def _restore(folder: Path, before: dict[Path, int]) -> None:
    """Put `folder` back as `before` found it: remove the paths added since (deepest first), and cut the logs
    that grew (Hydra appends a job's log to an existing train.log) back to their size."""
    for path in sorted(_contents(folder), key=lambda p: len(p.parts), reverse=True):
        size = before.get(path)
        with contextlib.suppress(OSError):
            if size is None:
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
            elif path.suffix == ".log" and size >= 0 and path.stat().st_size > size:
                os.truncate(path, size)


def release() -> None:
    """Unlock every directory this process claimed and forget them, as the process's end would: for a caller
    that runs several commands in one process (the tests), so one command's claims do not bind the next."""
    for fd in _locks.values():
        os.close(fd)
    _locks.clear()
    _created.clear()
    _found.clear()
    _sweep.clear()


def _holds_run_here(folder: Path) -> bool:
    try:
        return rundir.holds_run(folder)
    except OSError:  # a name too long, a loop of links: _make says so, naming the path
        return False


def _is_run_here(folder: Path) -> bool:
    try:
        return rundir.is_run(folder) or rundir.holds_run(folder)
    except OSError:
        return False


def _in_sweep_here(folder: Path) -> bool:
    try:
        return rundir.in_sweep(folder)
    except OSError:
        return False


def _is_sweep_here(folder: Path) -> bool:
    try:
        return rundir.is_sweep(folder)
    except OSError:
        return False


def _make(folder: Path, key: str, claimed: bool = False) -> list[tuple[Path, bool]]:
    """mkdir -p `folder`, remembering what was created; OutputError naming the path on any failure, after
    removing the folders it made on the way (any errno: a name too long fails only at the last one)."""
    missing: list[Path] = []
    made: list[tuple[Path, bool]] = []
    try:
        if folder.exists() and not folder.is_dir():
            raise OutputError(
                f"cannot write {folder}: it is a file, not a directory; choose a directory with "
                "hydra.run.dir=PATH (sweeps: hydra.sweep.dir=PATH)"
            )
        missing = [p for p in [folder.absolute(), *folder.absolute().parents] if not _exists(p)]
        # Remembered before they exist: a signal between the mkdir and the return must still find them to
        # take back (discard_created skips a path that was never made).
        made = [(path, claimed and path == folder.absolute()) for path in reversed(missing)]  # outermost first
        _created.extend(made)
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        for path in missing:  # deepest first
            with contextlib.suppress(OSError):
                path.rmdir()  # only an empty folder goes
        for entry in made:
            _created.remove(entry)
        raise OutputError(
            f"cannot write {folder}: {err.strerror or err}; choose another directory with "
            "hydra.run.dir=PATH (sweeps: hydra.sweep.dir=PATH)"
        ) from None
    return made


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:  # e.g. a name too long: it cannot exist
        return False


def _holds_run(folder: Path, key: str, trains: bool) -> ConfigError:
    status = rundir.read_metrics(folder).get("status", "stopped")
    if not trains:  # evaluate, predict: their output goes beside a run (by default in its own subfolder)
        return ConfigError(
            f"{key}={folder} holds a run ({status}); this command writes beside a run, never into one: leave "
            f"{key} at its default, or choose a new directory"
        )
    return ConfigError(
        f"{key}={folder} already holds a run ({status}); a new run never overwrites one: "
        f"continue it with resume={folder}, or choose a new directory"
    )
