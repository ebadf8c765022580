"""Hydra's directories for the apps: resolvers the YAML uses, and the claim on a run directory.

- `claim_run_dir` (called by the ClaimDirectories callback before Hydra creates or writes anything,
  whether hydra.run.dir comes from our default or is given literally): a new run never goes into a
  directory that holds a run (complete, stopped or failed): that is `resume=DIR`'s job. The directory
  is created and locked with flock for the life of the process, so of two processes started on it at
  once one runs and the other refuses (a lock, not a check-then-write race).
  A run never goes into a sweep's directory either, resumed or not, nor a new run into a new folder
  inside one (it would become one of the sweep's jobs).
- `claim_sweep_dir`: a new sweep never goes into another sweep's directory, no sweep into or inside a
  run's, and no two jobs into one directory (a fixed hydra.sweep.subdir).
- `mnist_hydra.run_dir` / `mnist_hydra.sweep_dir`: `resume=DIR` becomes hydra.run.dir / hydra.sweep.dir.
- `mnist_hydra.config_subdir`: a resumed directory keeps its first .hydra/.
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
from datetime import datetime
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from mnist_hydra.apps.resume import RESUME_EXAMPLE
from mnist_hydra.errors import ConfigError, OutputError
from mnist_hydra.runs import rundir

_locks: dict[str, int] = {}  # claimed directory -> the open descriptor holding its lock
_created: list[tuple[Path, bool]] = []  # (directory this process made, claimed as a run's), deepest last
# Claimed directories that existed already (a resumed run's, or a fresh claim of an existing folder) -> every path
# below them then, with a file's size: what else is in them is this process's.
_found: dict[Path, dict[Path, int]] = {}
_sweep: list[Path] = []  # the sweep directory of this process, once checked


def register() -> None:
    """Register the resolvers the apps' YAML uses; safe to call more than once."""
    for name, function, cached in (
        ("mnist_hydra.run_dir", resume_or_default, False),
        ("mnist_hydra.sweep_dir", resume_or_default, False),
        # Cached: Hydra reads the subdir more than once, and it must stay the same.
        ("mnist_hydra.config_subdir", config_subdir, True),
        ("mnist_hydra.evaluation_dir", evaluation_dir, False),
    ):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, function, use_cache=cached)


def resume_or_default(resume: str | None, default: str) -> str:
    """hydra.run.dir / hydra.sweep.dir: the directory `resume` names (checked), else the new default."""
    return default if resume is None else str(_resumable(resume))


def claim_run_dir(config: Any) -> None:
    """Claim hydra.run.dir for this process before Hydra writes there (see the module docstring)."""
    _check_job_name(config)
    resume = OmegaConf.select(config, "resume", default=None)
    folder = _output_dir(config, "run")
    key = "resume" if resume is not None else "hydra.run.dir"
    if _is_sweep_here(folder):
        grid = (folder / rundir.SWEEP_RECORD).is_file()
        raise ConfigError(
            f"{key}={folder} holds a sweep; a run never writes into a sweep's directory: choose a new directory"
            + (f" (python -m mnist_hydra resume={folder} continues the sweep)" if grid else "")
        )
    if resume is None and _in_sweep_here(folder):  # a sweep's own job is resumed as a run: that one is allowed
        raise ConfigError(
            f"{key}={folder} is inside the sweep directory {folder.parent}; a run never writes into a sweep's "
            "directory: choose a directory outside it"
        )
    claim(folder, key, fresh=resume is None)


def claim_sweep_dir(config: Any) -> None:
    """Check hydra.sweep.dir before a sweep starts: a new sweep never writes into another sweep's directory."""
    _check_job_name(config)
    folder = _output_dir(config, "sweep")
    key = "resume" if OmegaConf.select(config, "resume", default=None) is not None else "hydra.sweep.dir"
    subdir = str((OmegaConf.to_container(config.hydra.sweep, resolve=False) or {}).get("subdir"))  # type: ignore[union-attr]
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
    if OmegaConf.select(config, "resume", default=None) is None and (
        (folder / rundir.SWEEP_RECORD).is_file() or rundir.job_dirs(folder)
    ):
        raise ConfigError(
            f"hydra.sweep.dir={folder} already holds a sweep; continue it with resume={folder}, "
            "or choose a new directory"
        )
    _make(folder, "hydra.sweep.dir")
    _sweep[:] = [folder]


def evaluation_dir(stamp: str, *, _root_: Any) -> str:
    """hydra.run.dir of the evaluate app: RUN/evaluate/STAMP, after checking RUN, so a mistyped path
    leaves no directories."""
    if OmegaConf.is_missing(_root_, "run"):  # not require_values: that would resolve hydra.run.dir, i.e. this
        raise ConfigError(f"run has no value: set it on the command line, e.g. {rundir.RUN_EXAMPLE}")
    run = Path(str(_root_.run))
    rundir.require_run(run)
    return str(run / "evaluate" / stamp)


def config_subdir(output_dir: str, resume: str | None = None) -> str:
    """hydra.output_subdir: .hydra, or .hydra/resumed-TIME when a resumed directory has a saved config to keep."""
    if resume is not None and (Path(output_dir) / rundir.SAVED_CONFIG).is_file():
        return str(Path(".hydra") / f"resumed-{datetime.now():%Y-%m-%d_%H-%M-%S}")
    return ".hydra"


def claim(folder: Path, key: str, fresh: bool) -> None:
    """Create `folder` if needed and hold an exclusive lock on it; ConfigError if another process holds it,
    or, when `fresh`, if it already holds a run."""
    name = str(folder.absolute())
    if name in _locks:
        return  # Hydra resolves its directories more than once
    if fresh and _holds_run_here(folder):
        raise _holds_run(folder, key)
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
        raise _holds_run(folder, key)
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
        elif not claimed and not any(path.iterdir()):
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
    try:
        if folder.exists() and not folder.is_dir():
            raise OutputError(
                f"cannot write {folder}: it is a file, not a directory; choose a directory with "
                "hydra.run.dir=PATH (sweeps: hydra.sweep.dir=PATH)"
            )
        missing = [p for p in [folder.absolute(), *folder.absolute().parents] if not _exists(p)]
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        for path in missing:  # deepest first
            with contextlib.suppress(OSError):
                path.rmdir()  # only an empty folder goes
        raise OutputError(
            f"cannot write {folder}: {err.strerror or err}; choose another directory with "
            "hydra.run.dir=PATH (sweeps: hydra.sweep.dir=PATH)"
        ) from None
    made = [(path, claimed and path == folder.absolute()) for path in reversed(missing)]  # outermost first
    _created.extend(made)
    return made


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:  # e.g. a name too long: it cannot exist
        return False


def _resumable(resume: str) -> Path:
    if not str(resume).strip():  # Path("") is the launch directory
        raise ConfigError(f"resume= is empty; give a run or sweep directory, {RESUME_EXAMPLE}")
    folder = Path(str(resume))
    if not (rundir.is_run(folder) or rundir.is_sweep(folder)):
        raise ConfigError(
            f"resume={resume} is not a run directory (no {rundir.SAVED_CONFIG}) nor a sweep "
            f"directory (no {rundir.SWEEP_RECORD}); expected a directory a run or a --multirun "
            f"sweep wrote, {RESUME_EXAMPLE}"
        )
    return folder


def _holds_run(folder: Path, key: str) -> ConfigError:
    status = rundir.read_metrics(folder).get("status", "stopped")
    return ConfigError(
        f"{key}={folder} already holds a run ({status}); a new run never overwrites one: "
        f"continue it with resume={folder}, or choose a new directory"
    )


def _output_dir(config: Any, mode: str) -> Path:
    """hydra.run.dir or hydra.sweep.dir as a path; an empty one (an unset shell variable) would mean the launch
    directory itself."""
    value = str(OmegaConf.select(config, f"hydra.{mode}.dir", default="") or "")
    if not value.strip():
        raise ConfigError(
            f"hydra.{mode}.dir is empty; give the directory to write to, e.g. hydra.{mode}.dir=outputs/my-{mode}"
        )
    return Path(value)


def _check_job_name(config: Any) -> None:
    name = str(OmegaConf.select(config, "hydra.job.name", default="") or "")
    if not name or "/" in name or name in (".", "..") or "\0" in name:
        raise ConfigError(
            f"hydra.job.name={name} cannot name the job's log file; expected a plain name "
            "without '/', e.g. hydra.job.name=train"
        )
