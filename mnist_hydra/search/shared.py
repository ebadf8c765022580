"""What a study shared by several commands (at once or one after another) promises, on Optuna's own machinery.

- Each command draws from its own random stream: `seed`'s own when it asks the study's first trial (so a search
  run alone repeats from its seed), else one derived from `seed` and the number of the first trial the storage
  hands it, which no other command gets (CommandSampler).
- No two live trials of one study hold the same configuration: a job's run is fixed by its config and seed, so a
  repeat would only repeat a result (ask_distinct).
- A trial whose command died is failed once its heartbeat is `grace_period` seconds old, and Optuna's
  RetryHeartbeatStaleTrialCallback queues its configuration again as a WAITING trial that the next ask takes
  (Heartbeat).
"""

from __future__ import annotations

import contextlib
import copy
import logging
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial, TrialState

from mnist_hydra.search.trials import INTERRUPTED

if TYPE_CHECKING:
    from optuna.study import Study

log = logging.getLogger(__name__)

# System attribute of every trial our commands ask: when its command last said it was alive (time.time()). The
# journal's heartbeat itself; on a database Optuna keeps the heartbeat in its own table, and this marks the trial
# as one whose command beats (a trial of some other tool, with no heartbeat, is never waited for).
HEARTBEAT = "mnist_hydra:heartbeat"
DUPLICATE = "duplicate_of"  # user attribute of an asked trial dropped unrun: the number of the trial it repeated
# A configuration whose command died this many times running it is more likely what kills it (memory) than bad luck:
# after that its trial stays failed.
STALE_RETRIES = 2
LIVE = (TrialState.RUNNING, TrialState.WAITING, TrialState.COMPLETE, TrialState.PRUNED)
MAX_REPEATS = 10  # configurations in a row the sampler may propose that the study holds, before the command stops


def derived_seed(seed: int | None, number: int) -> int | None:
    """The random stream of a command whose first trial is `number`: `seed` itself for the study's first trial."""
    if seed is None or number == 0:
        return seed
    import numpy as np

    return int(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, number]).generate_state(1)[0])


class CommandSampler(BaseSampler):
    """One command's sampler: built from `seed` (see derived_seed) once the first trial it asks has a number."""

    def __init__(self, make: Callable[[int | None], BaseSampler], seed: int | None) -> None:
        self._make, self._seed = make, seed
        self.inner = make(seed)
        self._started = False

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        if not self._started:
            self._started = True
            if trial.number != 0:
                self.inner = self._make(derived_seed(self._seed, trial.number))
        self.inner.before_trial(study, trial)

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return self.inner.infer_relative_search_space(study, trial)

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return self.inner.sample_relative(study, trial, search_space)

    def sample_independent(
        self, study: Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        return self.inner.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study: Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None) -> None:
        self.inner.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.inner.reseed_rng()


def space_size(space: Mapping[str, BaseDistribution]) -> int | None:
    """How many configurations `space` holds; None when one of its parameters is continuous."""
    size = 1
    for dist in space.values():
        if isinstance(dist, CategoricalDistribution):
            size *= len(dist.choices)
        elif isinstance(dist, (IntDistribution, FloatDistribution)) and dist.step is not None:
            size *= int(round((dist.high - dist.low) / dist.step)) + 1
        else:
            return None
    return size


def _key(params: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((name, repr(value)) for name, value in params.items()))


def ask_distinct(study: Study, space: Mapping[str, BaseDistribution], count: int) -> list[optuna.Trial]:
    """Up to `count` trials asked of `study`, none repeating the configuration of a live trial of the study.

    A trial that repeats one is told FAIL with `duplicate_of` and asked again. Each trial's params are written
    before it is checked, so of two commands that ask one configuration at the same moment the one that checks
    last sees the other's and yields. Fewer than `count` come back once the space holds no new configuration, or
    after MAX_REPEATS repeats in a row (a sampler that has converged proposes its best again and again).
    """
    size = space_size(space)
    asked: list[optuna.Trial] = []
    repeats = 0
    while len(asked) < count and repeats < MAX_REPEATS:
        live = study.get_trials(deepcopy=False, states=LIVE)
        queued = any(t.state == TrialState.WAITING for t in live)  # the next ask takes one of them
        if size is not None and not queued and len({_key(t.params) for t in live if t.params}) >= size:
            log.info("every one of the space's %d configurations is in the study: nothing new to ask", size)
            break
        with warnings.catch_warnings():
            # Optuna warns that its heartbeat is meant for optimize(); our loop beats the trials itself.
            warnings.filterwarnings("ignore", message="Heartbeat of storage")
            trial = study.ask(dict(space))
        mine = _key(trial.params)
        twin = next(
            (
                t
                for t in study.get_trials(deepcopy=False, states=LIVE)
                if t.number != trial.number and _key(t.params) == mine
            ),
            None,
        )
        if twin is None:
            asked.append(trial)
            repeats = 0
            continue
        repeats += 1
        trial.set_user_attr(DUPLICATE, twin.number)
        try:
            study.tell(trial, state=TrialState.FAIL)
        except RuntimeError as err:  # the grid sampler's study.stop() once its grid is told, outside optimize()
            if "Study.stop" not in str(err):
                raise
        log.info("trial %d repeated trial %d's configuration: dropped unrun", trial.number, twin.number)
    if repeats >= MAX_REPEATS:
        log.info("the sampler proposed %d configurations in a row that the study holds: asking no more", repeats)
    return asked


@dataclass
class Tally:
    """A study's trials by what they mean for its size: finished ones, running ones, and those not counted."""

    complete: int = 0
    pruned: int = 0
    failed: int = 0  # a job's failure (counted: its configuration is not run again)
    stale: int = 0  # failed because their command stopped beating; their configuration was queued again
    running: int = 0
    waiting: int = 0  # queued again, to be asked next
    not_counted: int = 0  # interrupted by a stop, or dropped as a repeat

    @property
    def counted(self) -> int:
        """The trials towards n_trials: run or running, whatever their outcome."""
        return self.complete + self.pruned + self.failed + self.running


def tally(trials: Sequence[FrozenTrial]) -> Tally:
    """Count `trials` (one study's) as Tally says."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        history = optuna.storages.RetryHeartbeatStaleTrialCallback.retry_history
        retried = {number for t in trials for number in history(t)}
    result = Tally()
    for t in trials:
        if t.state == TrialState.COMPLETE:
            result.complete += 1
        elif t.state == TrialState.PRUNED:
            result.pruned += 1
        elif t.state == TrialState.RUNNING:
            result.running += 1
        elif t.state == TrialState.WAITING:
            result.waiting += 1
        elif t.number in retried:
            result.stale += 1
        elif t.user_attrs.get(INTERRUPTED) or DUPLICATE in t.user_attrs:
            result.not_counted += 1
        else:
            result.failed += 1
    return result


class Heartbeat:
    """A command's trials kept alive in the storage, and the trials of commands that stopped failed and queued again.

    On a database Optuna's own: RDBStorage's heartbeat table (built with heartbeat_interval, grace_period and
    RetryHeartbeatStaleTrialCallback by study.open_storage) and optuna.storages.fail_stale_trials. Optuna's journal
    storage has no heartbeat (it is no BaseHeartbeat, whose interface is private), so on a journal the same two
    steps are done here on a trial system attribute, and the same callback queues the configuration again.
    """

    def __init__(self, interval: int, grace_period: int, max_retry: int = STALE_RETRIES) -> None:
        self.interval, self.grace_period = interval, grace_period
        self.storage: Any = None  # set by study.open_storage
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            self._retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=max_retry)

    @property
    def rdb(self) -> bool:
        return isinstance(self.storage, optuna.storages.RDBStorage)

    def record(self, trial_ids: Sequence[int]) -> None:
        """Say that the command running `trial_ids` is alive."""
        for trial_id in trial_ids:
            with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):  # failed as stale meanwhile
                if self.rdb:
                    self.storage.record_heartbeat(trial_id)
                else:
                    self.storage.set_trial_system_attr(trial_id, HEARTBEAT, time.time())

    def retry(self, study: Study, trial: FrozenTrial) -> None:
        """Optuna's RetryHeartbeatStaleTrialCallback, on a copy of `trial` without its last heartbeat: the queued
        trial starts with none, and is never taken for stale before the command that takes it beats."""
        trial = copy.copy(trial)
        trial.system_attrs = {key: value for key, value in trial.system_attrs.items() if key != HEARTBEAT}
        self._retry(study, trial)

    @contextlib.contextmanager
    def beating(self, trial_ids: Sequence[int]) -> Iterator[None]:
        """Record the heartbeat of `trial_ids` now and every `interval` seconds until the block ends."""
        if self.rdb:  # the heartbeat is in Optuna's table; the attribute marks the trials as beating
            for trial_id in trial_ids:
                self.storage.set_trial_system_attr(trial_id, HEARTBEAT, time.time())
        self.record(trial_ids)
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(self.interval):
                try:
                    self.record(trial_ids)
                except Exception as err:  # a storage that hiccups once must not end the trials: the next beat may pass
                    log.warning("the heartbeat of trials %s was not recorded: %s", list(trial_ids), err)

        thread = threading.Thread(target=beat, name="mnist_hydra-heartbeat", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    def fail_stale(self, study: Study) -> list[int]:
        """Fail the study's trials whose heartbeat is older than grace_period, queue them again; their numbers."""
        before = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
        if self.rdb:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(study)
        else:
            now = time.time()
            for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
                beat = trial.system_attrs.get(HEARTBEAT)
                if beat is None or now - float(beat) <= self.grace_period:
                    continue
                try:
                    failed = self.storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
                except optuna.exceptions.UpdateFinishedTrialError:  # another command failed it first
                    continue
                if failed:
                    self.retry(study, self.storage.get_trial(trial._trial_id))
        after = {t.number: t for t in study.get_trials(deepcopy=False)}
        stale = sorted(n for n in before if after[n].state == TrialState.FAIL)
        if stale:
            log.warning(
                "trial(s) %s had no heartbeat for %d s (their command stopped): failed, and queued to run again",
                ", ".join(map(str, stale)),
                self.grace_period,
            )
        return stale

    def waiting_for(self, study: Study, mine: Sequence[int] = ()) -> list[int]:
        """The study's running trials, not this command's, whose command beats: they end or go stale."""
        return [
            t.number
            for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            if t.number not in mine and HEARTBEAT in t.system_attrs
        ]
