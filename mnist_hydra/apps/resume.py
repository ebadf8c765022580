"""`resume=DIR`: continue an interrupted run, or a whole sweep, in the directory it started in.

A run directory (it holds .hydra/config.yaml) continues with the config saved there, from its newest
checkpoint. A sweep directory (it holds Hydra's multirun.yaml) is launched again with the overrides
saved there: its complete jobs are skipped, the others continue from their checkpoints, and the
sweep's table is rebuilt at the end.

A search's directory (job directories, no multirun.yaml) is not launched again: a search continues from
its study, and `resume=` says so in one line. A run's directory with --multirun is refused, as a sweep
would write its jobs into the run.

`resume=DIR` becomes hydra.run.dir (or hydra.sweep.dir) through the resolvers in apps/resolvers.py,
which also keep Hydra's own files of the new start beside, not over, those of the first.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf

from mnist_hydra.config import plain_dict
from mnist_hydra.errors import ConfigError
from mnist_hydra.runs.rundir import SAVED_CONFIG, SWEEP_RECORD, is_run, is_sweep, job_dirs

RESUME_EXAMPLE = (
    "e.g. resume=outputs/2026-11-24/13-20-02.850171 (an Optuna search resumes from hydra.sweeper.storage=...)"
)

# Launch settings of the first start that the new one must not take over: it sets its own.
OWN_HYDRA_OVERRIDES = ("hydra.sweep.dir=", "hydra.run.dir=", "hydra.mode=")


def resume_argv(argv: Sequence[str]) -> list[str] | None:
    """Check a `resume=DIR` command line before Hydra runs; for a sweep, the command line that resumes it.

    A resumed run or sweep takes its config from DIR, so other arguments are refused here, before Hydra
    writes a file. Hydra's sweepers need the swept values when they start, so a sweep's overrides are
    read back from its multirun.yaml. Returns None when `argv` needs no change.
    """
    given = [o for o in parse_overrides(argv) if o.key_or_group == "resume"]
    if not given:
        return None
    value = given[-1].value()
    if value is not None and not str(value).strip():
        raise ConfigError(f"resume= is empty; give a run or sweep directory, {RESUME_EXAMPLE}")
    folder = Path(str(value))
    extra = [arg for arg in argv if arg != given[-1].input_line and arg not in ("-m", "--multirun")]
    if extra:
        raise ConfigError(f"resume={folder} continues with the config saved there: drop {' '.join(extra)}")
    record_file = folder / SWEEP_RECORD
    if not record_file.is_file():
        if is_sweep(folder):  # job directories, no multirun.yaml: a search, which Hydra cannot launch again as it was
            raise ConfigError(_search_resume(folder))
        if is_run(folder) and any(arg in ("-m", "--multirun") for arg in argv):
            raise ConfigError(
                f"resume={folder} is a run's directory, not a sweep's: drop --multirun "
                f"(python -m mnist_hydra resume={folder} continues the run)"
            )
        return None
    record = yaml.safe_load(record_file.read_text(encoding="utf-8")) or {}
    overrides = (record.get("hydra") or {}).get("overrides") or {}
    launch = [o for o in overrides.get("hydra") or [] if not o.startswith(OWN_HYDRA_OVERRIDES)]
    task = [o for o in overrides.get("task") or [] if not o.startswith("resume=")]
    return ["--multirun", *launch, *task, f"resume={folder}"]


def _search_resume(folder: Path) -> str:
    """Why `resume=` cannot continue the search whose jobs are in `folder`, and what does."""
    sweeper: dict[str, Any] = {}
    for job in job_dirs(folder)[:1]:
        with contextlib.suppress(OSError, yaml.YAMLError, AttributeError):
            sweeper = (
                (yaml.safe_load((job / ".hydra" / "hydra.yaml").read_text(encoding="utf-8"))["hydra"]).get("sweeper")
                or {}
            )
    storage, study = sweeper.get("storage"), sweeper.get("study_name")
    where = f"resume={folder} is a search's sweep directory (its job directories, no {SWEEP_RECORD})"
    if storage:
        return (
            f"{where}: a search continues from its study, not from a directory; start the search's command "
            f"again with hydra.sweeper.storage={storage} hydra.sweeper.study_name={study}, and it runs only "
            "the trials the study lacks"
        )
    return (
        f"{where}, and its study was kept in memory only (no hydra.sweeper.storage), so it cannot be continued; "
        "start a new search, with hydra.sweeper.storage=sqlite:///study.db to make it continuable"
    )


def run_config(cfg: DictConfig, workdir: Path, sweep: bool) -> DictConfig:
    """The config to resume `workdir` with: the one saved there when the run or sweep job had started.

    A sweep job's composed config must equal its saved one: otherwise the sweep was launched again with
    other values, and job N is no longer job N.
    """
    path = workdir / SAVED_CONFIG
    saved = OmegaConf.load(path) if path.is_file() else None
    if not isinstance(saved, DictConfig):  # a sweep job that had not started: it starts now, as composed
        return cfg
    if sweep and _without_resume(cfg) != _without_resume(saved):
        raise ConfigError(
            f"{workdir} was run with another config ({workdir / SAVED_CONFIG}): resume a sweep "
            "with `resume=SWEEP_DIR` alone, which launches it with its own overrides"
        )
    return saved


def _without_resume(cfg: DictConfig | ListConfig) -> dict[str, Any]:
    container = plain_dict(cfg)
    container.pop("hydra", None)
    container.pop("resume", None)
    return container


def parse_overrides(argv: Sequence[str]) -> list[Any]:
    """The command line's overrides (flags such as --cfg job left out), parsed by Hydra's own parsers."""
    from mnist_hydra.apps import hydra_cli

    return hydra_cli.parse_overrides(argv)
