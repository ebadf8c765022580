"""hydra/launcher=ray: the jobs of a sweep as Ray tasks, on a local Ray or on a running cluster (init.address).

Ours, over `ray.remote`, rather than hydra-ray-launcher (docs/sweeps.md, Parallel and cluster launchers, says why). Each
job reserves `hydra.launcher.ray.remote.num_cpus` CPUs, `trainer.threads` by default, so Ray never runs
more jobs on a node than it has cores for.

No `from __future__ import annotations` here: Hydra's plugin scan runs this module outside sys.modules, where
dataclasses cannot resolve string annotations.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


@dataclass
class RayConf:
    # ray.init()'s arguments. address: null starts a local Ray for the command; auto (or HOST:PORT, or
    # ray://HOST:10001) joins a running cluster (`ray start --head`).
    init: dict[str, Any] = field(default_factory=lambda: {"address": None, "include_dashboard": False})
    # ray.remote()'s options for each job; num_cpus is read from each job's own config.
    remote: dict[str, Any] = field(default_factory=lambda: {"num_cpus": "${trainer.threads}"})
    # Variables of this shell the jobs get (a cluster's workers were started from another shell).
    env: list[str] = field(default_factory=lambda: ["MNIST_HYDRA_DATA", "TF_CPP_MIN_LOG_LEVEL", "MLFLOW_TRACKING_URI"])
    stop_timeout_s: float = 60.0  # Ctrl-C: how long jobs get to stop at a clean point before they are killed


@dataclass
class RayLauncherConf:
    _target_: str = "hydra_plugins.mnist_hydra_plugins.ray_launcher.RayLauncher"
    ray: RayConf = field(default_factory=RayConf)


ConfigStore.instance().store(group="hydra/launcher", name="ray", node=RayLauncherConf, provider="mnist_hydra")


class RayLauncher(Launcher):
    """Hydra's Launcher API over our Ray runner (hydra_plugins/mnist_hydra_plugins/_ray.py)."""

    def __init__(self, ray: DictConfig) -> None:
        self.ray_cfg = ray
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.task_function: TaskFunction | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from mnist_hydra.extras import require_extra

        require_extra("ray", "hydra/launcher=ray")

        from hydra_plugins.mnist_hydra_plugins import _ray

        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function
        _ray.remote_options(config, "of the sweep")  # trainer.threads=null: one line, before Ray starts
        _ray.start(self.ray_cfg.init)  # an unreachable cluster is one line, before any job or trial

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from hydra_plugins.mnist_hydra_plugins import _ray

        return _ray.launch(self, job_overrides, initial_job_idx)
