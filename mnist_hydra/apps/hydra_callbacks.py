"""Hydra callbacks of mnist_hydra (named in conf/config.yaml under hydra.callbacks)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from mnist_hydra.apps.boundary import exit_with, user_error
from mnist_hydra.errors import ConfigError, UserError
from mnist_hydra.runs import claims

log = logging.getLogger(__name__)


class ClaimDirectories(Callback):
    """Before Hydra creates or writes anything: claim the run directory (or check the sweep directory).

    A callback, not a resolver, so that a literal `hydra.run.dir=PATH` is checked too. Hydra turns a
    callback's exception into a warning and goes on, so a refusal ends the command here, in one line.
    """

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._claim(config, claim_run_dir)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._claim(config, claim_sweep_dir)

    @staticmethod
    def _claim(config: DictConfig, claim: Any) -> None:
        try:
            claim(config)
        except Exception as err:
            if user_error(err) is None:
                raise
            exit_with(err, str(OmegaConf.select(config, "hydra.help.app_name", default="mnist_hydra")))


def claim_run_dir(config: Any) -> None:
    """Claim hydra.run.dir (or the resumed run's directory) for this process: runs/claims.py says what is refused."""
    _check_job_name(config)
    resumed = OmegaConf.select(config, "resume", default=None) is not None
    folder = _output_dir(config, "run")
    claims.claim_run_dir(folder, "resume" if resumed else "hydra.run.dir", resumed)


def claim_sweep_dir(config: Any) -> None:
    """Check and create hydra.sweep.dir before a sweep starts: runs/claims.py says what is refused."""
    _check_job_name(config)
    folder = _output_dir(config, "sweep")
    resumed = OmegaConf.select(config, "resume", default=None) is not None
    subdir = str((OmegaConf.to_container(config.hydra.sweep, resolve=False) or {}).get("subdir"))  # type: ignore[union-attr]
    claims.claim_sweep_dir(folder, "resume" if resumed else "hydra.sweep.dir", subdir, resumed)


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


class SummarizeSweep(Callback):
    """At the end of a multirun: the sweep table, plot, report.html and best run, from every job's files."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from mnist_hydra.runs.sweeps import report, summarize_sweep

        sweep_dir = Path(config.hydra.sweep.dir)
        try:
            summary = summarize_sweep(sweep_dir)
        except UserError as err:  # e.g. every job was killed before Hydra wrote its directory
            if (sweep_dir / "optimization_results.yaml").is_file():  # a continued study that was complete already
                log.info("no sweep summary: no trial ran in this command")
            else:
                log.error("no sweep summary: %s", err)
            return
        print(report(summary, sweep_dir))


class TrackSweep(Callback):
    """With logger=[...,mlflow]: the sweep's parent MLflow run, opened here once before any job starts (so that
    parallel jobs never race to create the store), and closed after the sweep summary with its figures."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from mnist_hydra.config import validate_loggers

        try:
            loggers = validate_loggers(config.get("logger"))  # a bad setting stops the sweep before any job
        except Exception as err:
            if user_error(err) is None:
                raise
            claims.discard_created()  # the sweep directory just claimed, still empty
            exit_with(err, str(OmegaConf.select(config, "hydra.help.app_name", default="mnist_hydra")))
        if not loggers:
            return
        from mnist_hydra.runs.provenance import PROJECT_DIR, git_state
        from mnist_hydra.tracking.sweep import open_sweep

        commit = (git_state(PROJECT_DIR) or {}).get("commit")
        open_sweep(
            loggers,
            Path(config.hydra.sweep.dir),
            Path.cwd(),
            str(config.hydra.help.app_name),
            list(config.hydra.overrides.task),
            commit,
        )

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from mnist_hydra.runs import rundir
        from mnist_hydra.tracking.sweep import close_sweep

        sweep_dir = Path(config.hydra.sweep.dir)
        metrics = [rundir.read_metrics(job) for job in rundir.job_dirs(sweep_dir)]
        accuracies = [m["val_accuracy"] for m in metrics if m.get("status") == "completed" and "val_accuracy" in m]
        close_sweep(sweep_dir, [m.get("status", "incomplete") for m in metrics], max(accuracies, default=None))
