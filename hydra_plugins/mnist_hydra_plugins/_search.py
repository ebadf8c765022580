"""The search loop of the Optuna sweeper: the space from Hydra's sweep syntax, batches of asked trials, told results.

Imported only when a search starts (it imports Optuna).
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import IntervalSweep, Override, RangeSweep, Transformer
from hydra.core.utils import JobStatus
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from mnist_hydra.errors import ConfigError, UserError
from mnist_hydra.search import shared
from mnist_hydra.search import study as studies
from mnist_hydra.search.trials import INTERRUPTED, PRUNED_AT, hand_over, release

log = logging.getLogger("mnist_hydra.search")


def distribution(override: Override) -> Any:
    """The Optuna distribution of a sweep override (choice, range, interval, tag(log/int, interval)); a fixed value's
    text as it is. ConfigError for bounds Optuna refuses (an empty range, low above high, a log scale from 0)."""
    try:
        return _distribution(override)
    except ValueError as err:
        raise ConfigError(
            f"{override.input_line}: not a search space Optuna can sample ({err}); give bounds low <= high (low > 0 "
            "on a log scale) and a step > 0, e.g. interval(1e-4,1e-2), tag(log,interval(1e-4,1e-2)) or range(1,5)"
        ) from err


def _distribution(override: Override) -> Any:
    if not override.is_sweep_override():
        return override.get_value_element_as_str()
    value = override.value()
    if override.is_choice_sweep() or (override.is_range_sweep() and value.shuffle):
        return CategoricalDistribution(list(override.sweep_iterator(transformer=Transformer.encode)))
    if override.is_range_sweep():
        assert isinstance(value, RangeSweep)
        if any(isinstance(v, float) for v in (value.start, value.stop, value.step)):
            # Hydra's range() leaves out its stop; Optuna's bounds include theirs.
            count = len(list(override.sweep_iterator()))
            high = round(float(value.start) + (count - 1) * float(value.step), 12)
            return FloatDistribution(float(value.start), high, step=float(value.step))
        return IntDistribution(int(value.start), int(value.stop) - int(value.step), step=int(value.step))
    if override.is_interval_sweep():
        assert isinstance(value, IntervalSweep)
        log_scale = "log" in value.tags
        if "int" in value.tags:  # Hydra's interval() bounds are floats: tag(int, interval(1, 8)) asks for whole numbers
            return IntDistribution(int(value.start), int(value.end), log=log_scale)
        return FloatDistribution(float(value.start), float(value.end), log=log_scale)
    raise ConfigError(
        f"{override.input_line}: the Optuna sweeper takes choice(), range(), interval() and tag(log, interval()) sweeps"
    )


def grid_values(name: str, dist: BaseDistribution) -> list[Any]:
    """The grid sampler's values of one parameter; ConfigError for a continuous one."""
    if isinstance(dist, CategoricalDistribution):
        return list(dist.choices)
    if isinstance(dist, (IntDistribution, FloatDistribution)) and dist.step is not None:
        count = int(round((dist.high - dist.low) / dist.step)) + 1
        return [dist.low + i * dist.step for i in range(count)]
    raise ConfigError(
        f"hydra.sweeper.sampler.name=grid needs a finite set of values, and {name} is continuous "
        "(interval): give it as choice(...) or range(...), or choose another sampler"
    )


class Search:
    """One command's share of a study: checked settings, the space, and the ask-run-tell loop."""

    def __init__(
        self,
        *,
        sampler: Any,
        direction: str,
        n_trials: int,
        n_jobs: int,
        max_failure_rate: float,
        storage: str | None,
        study_name: str,
        pruner: str | None,
        pruner_startup_trials: int,
        pruner_warmup_epochs: int,
        heartbeat_interval: int,
        grace_period: int,
        params: Any,
        base_dir: Path,
        in_process: bool,
        launcher_name: str,
    ) -> None:
        self.sampler_name, self.seed = str(sampler.name), sampler.seed
        self.direction, self.n_trials, self.n_jobs = str(direction), int(n_trials), int(n_jobs)
        self.max_failure_rate, self.study_name, self.pruner = float(max_failure_rate), str(study_name), pruner
        self.startup, self.warmup = int(pruner_startup_trials), int(pruner_warmup_epochs)
        self.beat, self.grace = int(heartbeat_interval), int(grace_period)
        self.in_process, self.launcher_name = in_process, launcher_name
        studies.check_settings(self.sampler_name, pruner, self.direction)
        for key, value, least in (
            ("n_trials", self.n_trials, 1),
            ("n_jobs", self.n_jobs, 1),
            ("pruner_startup_trials", self.startup, 0),
            ("pruner_warmup_epochs", self.warmup, 0),
            ("heartbeat_interval", self.beat, 1),
        ):
            if value < least:
                raise ConfigError(f"hydra.sweeper.{key}={value} is not allowed: expected a whole number >= {least}")
        if not 0.0 <= self.max_failure_rate <= 1.0:
            raise ConfigError(
                f"hydra.sweeper.max_failure_rate={max_failure_rate} is not allowed: expected a share "
                "from 0.0 (stop at the first failure) to 1.0 (never stop)"
            )
        if self.grace <= self.beat:
            raise ConfigError(
                f"hydra.sweeper.grace_period={grace_period} is not allowed: expected a whole number of seconds "
                f"> hydra.sweeper.heartbeat_interval={heartbeat_interval}, or a live trial would be taken for stale"
            )
        self.storage = studies.storage_url(storage, base_dir)
        # A study in a storage outlives the command: its trials beat, so another command can run again the
        # configurations of one that died.
        self.heartbeat = shared.Heartbeat(self.beat, self.grace) if self.storage is not None else None
        if pruner is not None and self.storage is None and not in_process:
            raise ConfigError(
                f"hydra.sweeper.pruner={pruner} with hydra/launcher={launcher_name} needs a study "
                "storage: its jobs run in other processes and reach their trial through it; add "
                "hydra.sweeper.storage=sqlite:///study.db (or journal:study.journal)"
            )
        self.space: dict[str, BaseDistribution] = {}
        self.fixed: dict[str, str] = {}
        self.kept: list[str] = []  # deletions (~key) pass through to every job

    def prepare(self, overrides: Sequence[str]) -> None:
        """The search space from hydra.sweeper.params and the command line (the command line wins)."""
        for override in OverridesParser.create().parse_overrides(list(overrides)):
            if override.is_delete():
                self.kept.append(str(override.input_line))
                continue
            key = override.get_key_element()
            value = distribution(override)
            self.space.pop(key, None)
            self.fixed.pop(key, None)
            if isinstance(value, BaseDistribution):
                self.space[key] = value
            else:
                self.fixed[key] = value
        grid = None
        if self.sampler_name == "grid":
            grid = {name: grid_values(name, dist) for name, dist in self.space.items()}
            size = math.prod(len(values) for values in grid.values())
            if size < self.n_trials:
                log.info("the grid has %d points: %d trials, not hydra.sweeper.n_trials=%d", size, size, self.n_trials)
                self.n_trials = size
        studies.quiet_optuna()
        self.study = studies.open_study(
            self.study_name,
            self.storage,
            self.direction,
            shared.CommandSampler(lambda seed: studies.make_sampler(self.sampler_name, seed, grid), self.seed),
            studies.make_pruner(self.pruner, self.startup, self.warmup),
            self.heartbeat,
        )
        # Optuna caches a database's trials in the process that made them: what a job in another process wrote
        # to its trial (pruned) is read from a storage without that cache.
        self.fresh = studies.open_storage(self.storage) if self.storage is not None else self.study._storage

    def tally(self) -> shared.Tally:
        """The study's trials, counted as shared.Tally says."""
        return shared.tally(self.study.get_trials(deepcopy=False))

    def run(self, launcher: Any) -> dict[str, Any]:
        """Ask, launch and tell batches until the study holds n_trials; the results for optimization_results.yaml."""
        if self.heartbeat is not None:
            self.heartbeat.fail_stale(self.study)
        before = self.tally()
        where = "in memory" if self.storage is None else studies.shown(self.storage)
        log.info(
            "study %s (%s): %d of %d trials there already%s; sampler %s, pruner %s, %d trial(s) a batch",
            self.study_name,
            where,
            before.counted,
            self.n_trials,
            f" ({before.running} running)" if before.running else "",
            self.sampler_name,
            self.pruner or "none",
            self.n_jobs,
        )
        if before.counted >= self.n_trials and not before.running and not before.waiting:
            log.info(
                "the study holds its %d trials already: nothing to run (raise hydra.sweeper.n_trials for more)",
                self.n_trials,
            )
        job_idx, ran, waited = 0, 0, False
        started = time.perf_counter()
        while True:
            if self.heartbeat is not None:
                self.heartbeat.fail_stale(self.study)
            counts = self.tally()
            # Trials queued again after their command died are run even past n_trials: they were counted once.
            batch = min(self.n_jobs, max(self.n_trials - counts.counted, counts.waiting))
            if batch <= 0:
                others = self.heartbeat.waiting_for(self.study) if self.heartbeat is not None else []
                if not others:
                    break
                if not waited:
                    log.info(
                        "waiting for trial(s) %s of other commands; a trial whose command stopped is run again "
                        "here once it has had no heartbeat for %d s (hydra.sweeper.grace_period)",
                        ", ".join(map(str, others)),
                        self.grace,
                    )
                    waited = True
                time.sleep(self.beat)
                continue
            trials = shared.ask_distinct(self.study, self.space, batch)
            if not trials:
                break
            jobs = [self._overrides(trial) for trial in trials]
            if self.in_process:
                for trial in trials:
                    hand_over(self.study_name, trial)
            beating = (
                self.heartbeat.beating([trial._trial_id for trial in trials])
                if self.heartbeat is not None
                else contextlib.nullcontext()
            )
            try:
                with beating:
                    returns = launcher.launch(jobs, initial_job_idx=job_idx)
            except BaseException:  # Ctrl-C, a launcher's failure: the trials in flight are run again on a restart
                for trial in trials:
                    self._interrupted(trial)
                raise
            finally:
                for trial in trials:
                    release(self.study_name, trial.number)
            job_idx += len(returns)
            ran += len(returns)
            self._tell(trials, returns)
        return self._results(ran, time.perf_counter() - started)

    def _overrides(self, trial: optuna.Trial) -> list[str]:
        params = {**trial.params, **self.fixed}
        return [*(f"{key}={value}" for key, value in params.items()), *self.kept, f"hydra.sweeper.trial={trial.number}"]

    def _interrupted(self, trial: optuna.Trial) -> None:
        try:
            trial.set_user_attr(INTERRUPTED, True)
            self._tell_one(trial, state=TrialState.FAIL)
        except Exception as err:  # the storage itself may be what failed; the restart will see a RUNNING trial
            log.warning("trial %d was not marked interrupted in the study: %s", trial.number, err)

    def _tell_one(self, trial: optuna.Trial, **result: Any) -> None:
        try:
            self.study.tell(trial, **result)
        except optuna.exceptions.UpdateFinishedTrialError:
            # Another command took this one's heartbeat for stale (a machine that stalled past grace_period) and
            # queued the configuration again: it is run there, and this result stays in its job directory.
            log.warning(
                "trial %d was failed as stale by another command meanwhile; its configuration runs again there",
                trial.number,
            )
        except RuntimeError as err:
            # The grid sampler calls study.stop() once its last point is told, which outside optimize() raises;
            # the trial's result is stored by then.
            if "Study.stop" not in str(err):
                raise

    def _tell(self, trials: Sequence[optuna.Trial], returns: Sequence[Any]) -> None:
        failed = []
        for trial, ret in zip(trials, returns, strict=False):
            value = _value(ret) if ret.status == JobStatus.COMPLETED else None
            if value is None:
                self._tell_one(trial, state=TrialState.FAIL)
                log.warning("trial %d failed: its job returned no value (its metrics.json says why)", trial.number)
                failed.append(ret)
            elif self.fresh.get_trial(trial._trial_id).user_attrs.get(PRUNED_AT) is not None:
                self._tell_one(trial, state=TrialState.PRUNED)
            else:
                self._tell_one(trial, values=value)
        if failed and len(failed) / len(returns) > self.max_failure_rate:
            for ret in failed:
                if ret.status == JobStatus.FAILED:
                    ret.return_value  # noqa: B018  re-raises the job's own exception, with its traceback
            raise UserError(
                f"{len(failed)} of {len(returns)} trials of a batch failed, more than "
                f"hydra.sweeper.max_failure_rate={self.max_failure_rate:g} allows; each job's "
                "metrics.json in the sweep directory says why"
            )

    def _results(self, ran: int, seconds: float) -> dict[str, Any]:
        counts = self.tally()
        if not counts.complete:
            raise UserError(
                "no trial of the search completed, so there is no best one; each job's metrics.json "
                "in the sweep directory says why it failed"
            )
        best = self.study.best_trial
        others = f", {counts.running} still running elsewhere" if counts.running else ""
        log.info(
            "%d trial(s) run here in %.0f s; the study has %d complete, %d pruned, %d failed, %d stale (run again)%s; "
            "best: trial %d, value %.4f, %s",
            ran,
            seconds,
            counts.complete,
            counts.pruned,
            counts.failed,
            counts.stale,
            others,
            best.number,
            best.value,
            " ".join(f"{k}={v}" for k, v in best.params.items()),
        )
        return {
            "name": "optuna",
            "best_params": dict(best.params),
            "best_value": float(best.value),
            "best_trial": best.number,
            "study_name": self.study_name,
            "storage": None if self.storage is None else studies.shown(self.storage),
            "trials": {
                "complete": counts.complete,
                "pruned": counts.pruned,
                "fail": counts.failed,
                "stale": counts.stale,
                "here": ran,
            },
        }


def _value(ret: Any) -> float | None:
    """A job's return value as its trial's value; None (the trial failed) for None, NaN or no number."""
    try:
        number = float(ret.return_value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
