"""How a job reaches its trial: in the sweeper's own process directly, in any other through the study's storage."""

from __future__ import annotations

from typing import Any, Optional

from mnist_hydra.errors import ConfigError
from mnist_hydra.search.study import make_pruner, open_storage, shown

from mnist_hydra.training.pruning import PRUNED_AT  # noqa: F401  (the sweeper reads it)
INTERRUPTED = "interrupted"  # set on the trials a stop cut short: not counted, a restart runs them again

_live: dict[tuple[str, int], Any] = {}  # (study name, trial number) -> the sweeper's Trial, for in-process jobs


def hand_over(study_name: str, trial: Any) -> None:
    """Let a job in this process take `trial` itself (the basic launcher, a study in memory)."""
    _live[(study_name, trial.number)] = trial


def release(study_name: str, number: int) -> None:
    """Forget a trial handed over once its job is done."""
    _live.pop((study_name, number), None)


def job_trial(study_name: str, number: int, storage: Optional[str], pruner: Optional[str], startup_trials: int,
              warmup_epochs: int) -> Any:
    """Trial `number` of study `study_name`, for a job to report its epochs to: the sweeper's own object when it
    runs in this process, else one on the study's `storage` (absolute) with the same pruner."""
    trial = _live.get((study_name, number))
    if trial is not None:
        return trial
    if storage is None:
        raise ConfigError(f"trial {number} of study {study_name} runs in another process than its sweeper, and the "
                          "study is in memory: set hydra.sweeper.storage (e.g. sqlite:///study.db) for pruning")
    import optuna

    backend = open_storage(storage)
    try:
        study = optuna.load_study(study_name=study_name, storage=backend,
                                  pruner=make_pruner(pruner, startup_trials, warmup_epochs))
    except KeyError:
        raise ConfigError(f"no study {study_name} in {shown(storage)}: was the storage emptied during the search?") \
            from None
    trial_id = backend.get_trial_id_from_study_id_trial_number(study._study_id, number)
    return optuna.trial.Trial(study, trial_id)
