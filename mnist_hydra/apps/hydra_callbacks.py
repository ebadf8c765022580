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
    trains = "resume" in config  # only the train app's config has the key; the others write beside a run
    claims.claim_run_dir(folder, "resume" if resumed else "hydra.run.dir", resumed, trains=trains)


def claim_sweep_dir(config: Any) -> None:
    """Check and create hydra.sweep.dir before a sweep starts: runs/claims.py says what is refused."""
    _check_job_name(config)
    try:
        _check_sweep_has_jobs(config)
    except ConfigError:
        raise
    except Exception as err:  # a check that cannot read the sweep must not stop the claim below
        log.debug("no check for an empty sweep: %s", err)
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


def _check_sweep_has_jobs(config: Any) -> None:
    """A basic sweep over an empty range or list (seed=range(0,0)) would launch no job and leave an empty sweep
    directory behind: a mistake, said before anything is made."""
    if not str(OmegaConf.select(config, "hydra.sweeper._target_", default="")).endswith(".BasicSweeper"):
        return  # a search proposes its own trials
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import Override, ValueType

    params = OmegaConf.select(config, "hydra.sweeper.params", default=None)
    task = OmegaConf.select(config, "hydra.overrides.task", default=None)
    lines = [f"{key}={value}" for key, value in (params or {}).items()] + [str(line) for line in task or []]
    last: dict[str, Override] = {}  # as the basic sweeper reads them: a key's last override wins
    for override in OverridesParser.create().parse_overrides(lines):
        last[override.get_key_element()] = override
    for override in last.values():
        # A glob's options are known only to Hydra's config loader: the sweeper expands it, not this check.
        discrete = (ValueType.RANGE_SWEEP, ValueType.CHOICE_SWEEP, ValueType.SIMPLE_CHOICE_SWEEP)
        if override.value_type in discrete and next(iter(override.sweep_string_iterator()), None) is None:
            raise ConfigError(
                f"{override.input_line} sweeps over no value, so the sweep would have no job; "
                "give it at least one, e.g. seed=range(0,3) or seed=1,2"
            )


def _check_job_name(config: Any) -> None:
    name = str(OmegaConf.select(config, "hydra.job.name", default="") or "")
    if not name or "/" in name or name in (".", "..") or "\0" in name:
        raise ConfigError(
            f"hydra.job.name={name} cannot name the job's log file; expected a plain name "
            "without '/', e.g. hydra.job.name=train"
        )


# The sweeps of this process that ended without a completed job, for the app's exit code (a Hydra callback's
# exception only becomes a warning, and the callbacks after this one must still close the sweep).
_failed_sweeps: list[str] = []


def failed_sweep() -> str | None:
    """Why the last sweep of this process ended without a completed job, once; None if one completed."""
    return _failed_sweeps.pop() if _failed_sweeps else None


class SummarizeSweep(Callback):
    """At the end of a multirun: the sweep table, plot, report.html and best run, from every job's files."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        _failed_sweeps.clear()

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
        if summary.best is None and summary.pruned.empty:
            first = summary.failed.iloc[0]
            _failed_sweeps.append(
                f"no job of the sweep completed (job {first['job']} {first['status']}: {first['error']}); "
                f"the table of all {len(summary.table)}: {sweep_dir / 'sweep_results.csv'}"
            )


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
