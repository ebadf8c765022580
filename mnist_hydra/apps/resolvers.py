"""The OmegaConf resolvers the apps' YAML uses for Hydra's directories.

- `mnist_hydra.run_dir` / `mnist_hydra.sweep_dir`: `resume=DIR` becomes hydra.run.dir / hydra.sweep.dir.
- `mnist_hydra.config_subdir`: a resumed directory keeps its first .hydra/.
- `mnist_hydra.evaluation_dir`: the evaluate app's RUN/evaluate/STAMP, once RUN is checked.

Claiming and locking those directories is runs/claims.py's job; apps/hydra_callbacks.py asks it.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from mnist_hydra.apps.resume import RESUME_EXAMPLE
from mnist_hydra.errors import ConfigError
from mnist_hydra.runs import rundir


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
