"""`resume=DIR`: continue an interrupted run, or a whole sweep, in the directory it started in.

A run directory (it holds .hydra/config.yaml) continues with the config saved there, from its newest
checkpoint. A sweep directory (it holds Hydra's multirun.yaml) is launched again with the overrides
saved there: its complete jobs are skipped, the others continue from their checkpoints, and the
sweep's table is rebuilt at the end.

The resolvers below are registered before Hydra composes the config; conf/config.yaml uses them so
that `resume=DIR` becomes hydra.run.dir (or hydra.sweep.dir) and so that Hydra's own files of the
new start go beside, not over, those of the first.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, Optional, Sequence

import yaml
from omegaconf import DictConfig, OmegaConf

from mnist_hydra.errors import ConfigError

SAVED_CONFIG = Path(".hydra") / "config.yaml"
SWEEP_RECORD = "multirun.yaml"
# Launch settings of the first start that the new one must not take over: it sets its own.
OWN_HYDRA_OVERRIDES = ("hydra.sweep.dir=", "hydra.run.dir=", "hydra.mode=")


def register_resolvers() -> None:
    """Register the resolvers conf/config.yaml uses; safe to call more than once."""
    if not OmegaConf.has_resolver("mnist_hydra.resume_dir"):
        OmegaConf.register_new_resolver("mnist_hydra.resume_dir", resume_dir)
    if not OmegaConf.has_resolver("mnist_hydra.config_subdir"):
        # Cached per directory: Hydra reads the subdir more than once, and it must stay the same.
        OmegaConf.register_new_resolver("mnist_hydra.config_subdir", config_subdir, use_cache=True)


def resume_dir(resume: Optional[str], default: str) -> str:
    """hydra.run.dir / hydra.sweep.dir: the directory to resume, checked before Hydra creates anything."""
    if resume is None:
        return default
    folder = Path(str(resume))
    if not ((folder / SAVED_CONFIG).is_file() or (folder / SWEEP_RECORD).is_file()):
        raise ConfigError(
            f"resume={resume} is not a run directory (no {SAVED_CONFIG}) nor a sweep directory "
            f"(no {SWEEP_RECORD}); expected a directory a run or a --multirun sweep wrote, "
            "e.g. resume=outputs/2026-11-24/13-20-02.850171 (an Optuna search cannot be resumed)"
        )
    return str(folder)


def config_subdir(output_dir: str) -> str:
    """hydra.output_subdir: .hydra, or .hydra/resumed-TIME when the directory has a saved config to keep."""
    if (Path(output_dir) / SAVED_CONFIG).is_file():
        return str(Path(".hydra") / f"resumed-{datetime.now():%Y-%m-%d_%H-%M-%S}")
    return ".hydra"


def resume_argv(argv: Sequence[str]) -> Optional[list[str]]:
    """Check a `resume=DIR` command line before Hydra runs; for a sweep, the command line that resumes it.

    A resumed run or sweep takes its config from DIR, so other arguments are refused here, before Hydra
    writes a file. Hydra's sweepers need the swept values when they start, so a sweep's overrides are
    read back from its multirun.yaml. Returns None when `argv` needs no change.
    """
    given = [arg for arg in argv if arg.startswith("resume=")]
    if not given:
        return None
    folder = Path(given[-1].split("=", 1)[1])
    extra = [arg for arg in argv if not arg.startswith("resume=")]
    if extra:
        raise ConfigError(f"resume={folder} continues with the config saved there: drop {' '.join(extra)}")
    record_file = folder / SWEEP_RECORD
    if not record_file.is_file():
        return None
    record = yaml.safe_load(record_file.read_text(encoding="utf-8")) or {}
    overrides = (record.get("hydra") or {}).get("overrides") or {}
    launch = [o for o in overrides.get("hydra") or [] if not o.startswith(OWN_HYDRA_OVERRIDES)]
    task = [o for o in overrides.get("task") or [] if not o.startswith("resume=")]
    return ["--multirun", *launch, *task, f"resume={folder}"]


def saved_config(workdir: Path) -> Optional[DictConfig]:
    """The config a run directory was started with, or None when it has none."""
    path = workdir / SAVED_CONFIG
    return OmegaConf.load(path) if path.is_file() else None


def completed_metrics(workdir: Path) -> Optional[dict[str, Any]]:
    """metrics.json of a run that finished, or None."""
    from mnist_hydra.artifacts import read_json  # pandas with it: not on the start-up path of --help

    metrics = read_json(workdir / "metrics.json")
    return metrics if metrics.get("status") == "completed" else None


def run_config(cfg: DictConfig, workdir: Path, sweep: bool) -> DictConfig:
    """The config to resume `workdir` with: the one saved there when the run or sweep job had started.

    A sweep job's composed config must equal its saved one: otherwise the sweep was launched again with
    other values, and job N is no longer job N.
    """
    saved = saved_config(workdir)
    if saved is None:  # a sweep job that had not started: it starts now, as composed
        return cfg
    if sweep and _without_resume(cfg) != _without_resume(saved):
        raise ConfigError(f"{workdir} was run with another config ({workdir / SAVED_CONFIG}): resume a sweep "
                          "with `resume=SWEEP_DIR` alone, which launches it with its own overrides")
    return saved


def _without_resume(cfg: DictConfig) -> dict[str, Any]:
    container = OmegaConf.to_container(cfg, resolve=True)
    container.pop("hydra", None)
    container.pop("resume", None)
    return container
