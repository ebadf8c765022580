"""The Ray launcher's work: start or join Ray, send each job as a task, gather the results, stop them on Ctrl-C.

Imported only when hydra/launcher=ray is chosen (it imports Ray).
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ray
from hydra.core.hydra_config import HydraConfig
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, configure_log, filter_overrides, run_job, setup_globals
from omegaconf import DictConfig, OmegaConf, open_dict
from ray.exceptions import AuthenticationError

from mnist_hydra.errors import ConfigError

log = logging.getLogger(__name__)


def start(init: DictConfig) -> None:
    """ray.init() with `init` (once per process); ConfigError in one line when the cluster cannot be reached."""
    if ray.is_initialized():
        return
    settings = {key: value for key, value in OmegaConf.to_container(init, resolve=True).items() if value is not None}
    # Ray's own start-up lines and its usage-stats notice are noise in a sweep's output.
    settings.setdefault("logging_level", logging.WARNING)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    address = settings.get("address")
    if not address:  # a Ray of this command's own listens on loopback only
        settings.setdefault("_node_ip_address", "127.0.0.1")
    if address:
        _check_reachable(str(address))
    try:
        # "local": a new Ray of this command's own, even when `ray start` left one running on this machine
        # (ray.init() without an address would join that one).
        ray.init(**{**settings, "address": address or "local"})
    except AuthenticationError as err:  # a cluster with token authentication; Ray's own words span lines
        missing = "no authentication token was found" in str(getattr(err, "message", err))
        what = (
            "Ray's token authentication is on (RAY_AUTH_MODE=token) and this shell has no token"
            if missing
            else "the cluster refused this shell's Ray token"
        )
        raise ConfigError(
            f"cannot join hydra.launcher.ray.init.address={address}: {what}; set RAY_AUTH_TOKEN to the "
            "cluster's token (`ray get-auth-token` on its head prints it), or RAY_AUTH_TOKEN_PATH to a file "
            "holding it"
        ) from None
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as err:
        where = f"hydra.launcher.ray.init.address={address}" if address else "a local Ray (hydra/launcher=ray)"
        reason = " ".join(str(err).split())[:300]
        hint = (
            "start one with `ray start --head`, or leave hydra.launcher.ray.init.address=null for a local Ray"
            if address
            else "check the hydra.launcher.ray.init settings"
        )
        raise ConfigError(f"cannot start {where}: {reason}; {hint}") from None
    cpus = ray.cluster_resources().get("CPU", 0)
    log.info("Ray: %s, %g CPUs", "joined the cluster at " + str(address) if address else "local", cpus)


# Where `ray start` records the cluster it started, for address=auto (Ray's own file, as ray.init reads it).
CURRENT_CLUSTER = Path(os.environ.get("RAY_TMPDIR", "/tmp")) / "ray" / "ray_current_cluster"
CONNECT_TIMEOUT_S = 5.0


def _check_reachable(address: str) -> None:
    """ConfigError at once when the cluster's GCS port does not answer: ray.init would retry for minutes."""
    if address.startswith("ray://") or address == "local":
        return
    shown = address
    if address == "auto":
        address = os.environ.get("RAY_ADDRESS") or (
            CURRENT_CLUSTER.read_text().strip() if CURRENT_CLUSTER.is_file() else ""
        )
        if not address:
            return  # ray.init says at once that it found no running Ray
        shown = f"auto ({address})"
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except (OSError, ValueError) as err:
        reason = getattr(err, "strerror", None) or str(err)
        raise ConfigError(
            f"hydra.launcher.ray.init.address={shown}: no Ray cluster answers there ({reason}); start "
            "one with `ray start --head`, or leave hydra.launcher.ray.init.address=null for a local "
            "Ray"
        ) from None


@ray.remote(max_retries=0)
def _run(hydra_context: Any, sweep_config: DictConfig, task_function: Any, singleton_state: Any) -> JobReturn:
    """One job in a Ray worker, as Hydra's own launchers run it, from the launch directory when this node has it."""
    setup_globals()
    Singleton.set_state(singleton_state)
    launch_dir = Path(str(sweep_config.hydra.runtime.cwd))
    if launch_dir.is_dir():  # relative paths (data.root, sqlite:///study.db, mlruns.db) mean what they meant there
        os.chdir(launch_dir)
    with open_dict(sweep_config):
        sweep_config.hydra.job.id = ray.get_runtime_context().get_task_id()
    HydraConfig.instance().set_config(sweep_config)
    return run_job(
        hydra_context=hydra_context,
        task_function=task_function,
        config=sweep_config,
        job_dir_key="hydra.sweep.dir",
        job_subdir_key="hydra.sweep.subdir",
    )


def launch(launcher: Any, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
    """Run the jobs as Ray tasks, each reserving its num_cpus; their JobReturns in order."""
    setup_globals()
    config = launcher.config
    configure_log(config.hydra.hydra_logging, config.hydra.verbose)
    # Absolute, so a worker on another node or in another folder writes where the sweep is.
    sweep_dir = Path(str(config.hydra.sweep.dir)).absolute()
    sweep_dir.mkdir(parents=True, exist_ok=True)
    env = {name: os.environ[name] for name in launcher.ray_cfg.env if name in os.environ}
    log.info("Ray launcher: %d job(s), sweep output dir: %s", len(job_overrides), sweep_dir)
    refs = []
    for offset, overrides in enumerate(job_overrides):
        idx = initial_job_idx + offset
        sweep_config = launcher.hydra_context.config_loader.load_sweep_config(config, list(overrides))
        with open_dict(sweep_config):
            sweep_config.hydra.job.num = idx
            sweep_config.hydra.sweep.dir = str(sweep_dir)
        options = remote_options(sweep_config, f"job {idx}")
        log.info("\t#%d : %s (%g CPUs)", idx, " ".join(filter_overrides(overrides)), options["num_cpus"])
        refs.append(
            _run.options(**options, runtime_env={"env_vars": env} if env else None).remote(
                launcher.hydra_context, sweep_config, launcher.task_function, Singleton.get_state()
            )
        )
    try:
        return ray.get(refs)
    except KeyboardInterrupt:
        _stop(refs, float(launcher.ray_cfg.stop_timeout_s))
        raise


def remote_options(config: DictConfig, what: str) -> dict[str, Any]:
    """ray.remote()'s options for a job, from its own config: num_cpus is its trainer.threads by default."""
    options = OmegaConf.to_container(config.hydra.launcher.ray.remote, resolve=True)
    cpus = options.get("num_cpus")
    if cpus is None:
        raise ConfigError(
            f"hydra/launcher=ray reserves trainer.threads CPUs for each job, and the config {what} has "
            "trainer.threads=null (all cores): set trainer.threads=N (e.g. 1), or "
            "hydra.launcher.ray.remote.num_cpus=N"
        )
    if not isinstance(cpus, (int, float)) or cpus <= 0:
        raise ConfigError(f"hydra.launcher.ray.remote.num_cpus={cpus} is not allowed: expected a number > 0")
    return options


def _stop(refs: list, timeout_s: float) -> None:
    """Ctrl-C: ask every job to stop (a KeyboardInterrupt in its task: training ends at a clean point and keeps its
    checkpoint), wait `timeout_s` for them, then kill what is left."""
    print(f"stopping {len(refs)} Ray job(s) ...", flush=True)
    for ref in refs:
        ray.cancel(ref, force=False)
    deadline = time.monotonic() + timeout_s
    pending = list(refs)
    while pending and time.monotonic() < deadline:
        left = max(0.0, deadline - time.monotonic())
        _, pending = ray.wait(pending, num_returns=len(pending), timeout=min(1.0, left))
    for ref in pending:
        ray.cancel(ref, force=True)
