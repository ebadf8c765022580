"""hydra/sweeper=optuna (hparams_search=optuna): a search on a current Optuna, its study in memory or in a storage.

Each trial is asked of the study (`study.ask()`), run as one job of the launcher, and told its result
(`study.tell()`): its validation accuracy, FAIL, or PRUNED when its job was stopped by the pruner. A study
in a storage (hydra.sweeper.storage) is shared: another command on it, now or later, continues the same
search, and the jobs of any launcher reach their trial through it. hydra.sweeper.n_trials is the size the
study grows to, so a restart runs only what is missing. Several commands on one study draw distinct
configurations, and one that dies has its trials run again by another (mnist_hydra.search.shared).

No `from __future__ import annotations` here: Hydra's plugin scan runs this module outside sys.modules, where
dataclasses cannot resolve string annotations.
"""

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import MISSING, DictConfig, OmegaConf

log = logging.getLogger(__name__)


@dataclass
class SamplerConf:
    name: str = "tpe"  # tpe, random, cmaes or grid
    seed: int | None = None  # the same seed proposes the same trials


@dataclass
class OptunaSweeperConf:
    _target_: str = "hydra_plugins.mnist_hydra_plugins.optuna_sweeper.OptunaSweeper"
    defaults: list[Any] = field(default_factory=lambda: [{"sampler": "tpe"}])  # hydra/sweeper/sampler=random
    sampler: Any = MISSING  # the hydra/sweeper/sampler option (a field default here would override its name)
    direction: str = "minimize"  # or maximize: the job's return value
    n_trials: int = 20  # the study's size: a study continued from a storage runs only the trials it lacks
    n_jobs: int = 2  # trials asked per batch; a parallel launcher runs a batch at once
    max_failure_rate: float = 0.0  # the share of a batch that may fail before the search stops
    storage: str | None = None  # null: in memory; an SQLAlchemy URL (sqlite:///study.db) or journal:PATH
    study_name: str = "mnist_hydra"  # the study in the storage: the same name continues it
    pruner: str | None = None  # median, hyperband or null (never prune)
    pruner_startup_trials: int = 5  # median: no pruning until this many trials have finished
    pruner_warmup_epochs: int = 0  # median: no trial is pruned at or before this epoch; hyperband: its min_resource
    heartbeat_interval: int = 10  # seconds between a running trial's heartbeats in the storage
    grace_period: int = 60  # seconds without a heartbeat after which a trial's command is taken for dead, and rerun
    params: dict[str, str] | None = None  # key: search space in Hydra's sweep syntax, e.g. interval(0, 0.5)
    trial: int | None = None  # set by the sweeper for each job: the number of the trial it runs


_store = ConfigStore.instance()
_store.store(group="hydra/sweeper", name="optuna", node=OptunaSweeperConf, provider="mnist_hydra")
for _name in ("tpe", "random", "cmaes", "grid"):
    _store.store(group="hydra/sweeper/sampler", name=_name, node=SamplerConf(name=_name), provider="mnist_hydra")


class OptunaSweeper(Sweeper):
    """Hydra's side of the search: settings in, trials out to the launcher, results back to the study."""

    def __init__(self, **settings: Any) -> None:
        """OptunaSweeperConf's fields, as Hydra instantiates them; `trial` is a job's, not the search's."""
        settings.pop("trial", None)
        self.settings = settings

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from hydra.core.plugins import Plugins

        from mnist_hydra.extras import require_extra

        require_extra("search", "hparams_search=optuna (hydra/sweeper=optuna)", ["optuna"])
        sampler = str(OmegaConf.select(config, "hydra.sweeper.sampler.name", default=""))
        if sampler == "cmaes":  # Optuna's CmaEsSampler imports it only when it first samples
            require_extra("search", "hydra/sweeper/sampler=cmaes", ["cmaes"])

        from hydra_plugins.mnist_hydra_plugins._search import Search

        self.config, self.hydra_context = config, hydra_context
        # The settings are checked before the launcher starts (a Ray cluster, say): a mistake costs a second.
        target = str(OmegaConf.select(config, "hydra.launcher._target_", default=""))
        self.search = Search(
            **self.settings,
            base_dir=Path(config.hydra.runtime.cwd),
            in_process=target == "hydra._internal.core_plugins.basic_launcher.BasicLauncher",
            launcher_name=_launcher_name(config),
        )
        self.launcher = Plugins.instance().instantiate_launcher(
            config=config, hydra_context=hydra_context, task_function=task_function
        )

    def sweep(self, arguments: list[str]) -> Any:
        self.search.prepare([*_params_overrides(self.settings["params"]), *arguments])
        results = self.search.run(self.launcher)
        OmegaConf.save(OmegaConf.create(results), Path(self.config.hydra.sweep.dir) / "optimization_results.yaml")
        return None


def _params_overrides(params: DictConfig | None) -> list[str]:
    return [f"{key!s}={value}" for key, value in (params or {}).items()]


def _launcher_name(config: DictConfig) -> str:
    choice = OmegaConf.select(config, "hydra.runtime.choices", default={}) or {}
    return str(choice.get("hydra/launcher", "basic"))
