"""What produced a run: its config and overrides, package versions, data checksums and split, git commit."""

from __future__ import annotations

import dataclasses
import platform
import socket
import subprocess
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from mnist_hydra.config import Config
from mnist_hydra.data.splits import Splits
from mnist_hydra.runs import artifacts

PACKAGES = ("mnist-hydra", "tensorflow", "keras", "hydra-core", "omegaconf", "numpy", "pandas", "matplotlib")
PROJECT_DIR = Path(__file__).resolve().parent
SPLIT_FILE = "data_split.npz"


def write_provenance(workdir: Path, config: Config, splits: Splits, overrides: Sequence[str]) -> dict[str, Any]:
    """Write provenance.json (and data_split.npz) in `workdir`; return what provenance.json holds."""
    record = {
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": sys.orig_argv,  # as typed, e.g. python -m mnist_hydra trainer.epochs=3
        "overrides": list(overrides),
        "config": dataclasses.asdict(config),
        "data": {"source": splits.source, "checksums": splits.checksums},
        "versions": {"python": platform.python_version(), **package_versions()},
        "git": git_state(PROJECT_DIR),
        "host": socket.gethostname(),
    }
    if config.init_from is not None:  # where the first weights came from
        from mnist_hydra.training.init_from import source_record

        record["init_from"] = source_record(config.init_from)
    if splits.train_indices is not None:
        write_split(workdir / SPLIT_FILE, splits)
    artifacts.write_json(workdir / "provenance.json", record)  # last: a resumed run keeps a run's first record
    return record


def write_split(path: Path, splits: Splits) -> None:
    """Which images of the training file trained (`train`) and validated (`val`) the run, as an .npz of indices."""
    train, val = splits.train_indices, splits.val_indices
    assert train is not None and val is not None  # only a split made from the training file has indices
    artifacts.atomic_write(path, lambda tmp: np.savez_compressed(tmp, train=train, val=val))


def package_versions() -> dict[str, str | None]:
    """Installed versions, read from package metadata (no import, so no TensorFlow start-up)."""
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_state(directory: Path) -> dict[str, Any] | None:
    """The commit the code in `directory` comes from, and whether it had uncommitted changes; None outside git."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(directory), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):  # no git on the machine
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return None  # an installed wheel, or a copy without .git
    return {"commit": commit, "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}
