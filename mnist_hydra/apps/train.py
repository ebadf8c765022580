"""The train app, `python -m mnist_hydra [overrides]`: Hydra composes the config, the library trains it."""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from mnist_hydra.apps import prepare_hydra
from mnist_hydra.apps.boundary import boundary, describe, job_boundary
from mnist_hydra.apps.hydra_callbacks import failed_sweep
from mnist_hydra.apps.resume import parse_overrides, resume_argv, run_config
from mnist_hydra.apps.run_lines import end_lines, start_lines
from mnist_hydra.config import store_schemas, validate
from mnist_hydra.errors import Interrupted, OutputError, SweepFailed
from mnist_hydra.plugins import load_plugins
from mnist_hydra.runs import rundir
from mnist_hydra.runs.artifacts import write_json
from mnist_hydra.tracking.base import RunInfo
from mnist_hydra.training.checkpoints import Checkpoints
from mnist_hydra.training.run import train_and_evaluate
from mnist_hydra.training.signals import hold_off_signals

log = logging.getLogger(__name__)
PROG = "mnist_hydra"

prepare_hydra()


@hydra.main(version_base="1.3", config_path="pkg://mnist_hydra.conf", config_name="config")
def train(cfg: DictConfig) -> float | None:
    """Train and evaluate one config in Hydra's run directory; return its validation accuracy."""
    with job_boundary(PROG):
        workdir = Path(HydraConfig.get().runtime.output_dir)
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            return _sweep_job(cfg, workdir)
        start = time.perf_counter()
        try:
            metrics = _completed(cfg, workdir) or train_and_evaluate(**_arguments(cfg, workdir, announce=True))
        except Interrupted as stop:
            _stopped(stop, workdir)
        print("\n".join(end_lines(metrics, workdir, time.perf_counter() - start)), flush=True)
        return float(metrics["val_accuracy"])


def _completed(cfg: DictConfig, workdir: Path) -> dict[str, Any] | None:
    """With resume=DIR, the metrics of a run that finished already (it is not run again); else None."""
    if cfg.get("resume") is None:
        return None
    done = rundir.completed_metrics(workdir)
    if done is not None:
        log.info("%s is complete already: nothing to resume", workdir)
        Checkpoints(workdir).remove()  # left by a kill after metrics.json, before they were removed
    return done


def _arguments(cfg: DictConfig, workdir: Path, announce: bool = False) -> dict[str, Any]:
    """train_and_evaluate's arguments: the validated config (with resume=DIR, the config saved there), the run's
    overrides, run info and search trial. `announce`: once the config is valid, print the run directory and
    what the config changes."""
    resuming = cfg.get("resume") is not None
    if resuming:
        cfg = run_config(cfg, workdir, sweep=HydraConfig.get().mode == RunMode.MULTIRUN)
    config = validate(cfg)
    if announce:
        print("\n".join(start_lines(cfg, workdir, resumed=resuming)), flush=True)
    return {
        "config": config,
        "workdir": workdir,
        "resume": resuming,
        "overrides": HydraConfig.get().overrides.task,
        "run_info": _run_info(workdir, resuming),
        "trial": _search_trial(),
    }


def _search_trial() -> Any | None:
    """The Optuna trial this sweep job runs, when its search prunes (hydra.sweeper.pruner); else None."""
    hydra_config = HydraConfig.get()
    sweeper = hydra_config.sweeper
    if (
        hydra_config.mode != RunMode.MULTIRUN
        or OmegaConf.select(sweeper, "trial") is None
        or OmegaConf.select(sweeper, "pruner") is None
    ):
        return None
    from mnist_hydra.search.study import storage_url
    from mnist_hydra.search.trials import job_trial

    return job_trial(
        str(sweeper.study_name),
        int(sweeper.trial),
        storage_url(sweeper.storage, Path(hydra_config.runtime.cwd)),
        str(sweeper.pruner),
        int(sweeper.pruner_startup_trials),
        int(sweeper.pruner_warmup_epochs),
    )


def _run_info(workdir: Path, resuming: bool) -> RunInfo:
    """What the loggers are told about this run: where it was launched, its overrides, its sweep and job."""
    hydra_config = HydraConfig.get()
    sweep = hydra_config.mode == RunMode.MULTIRUN
    return RunInfo(
        run_dir=workdir,
        launch_dir=Path.cwd(),
        app=PROG,
        overrides=list(hydra_config.overrides.task),
        job=str(hydra_config.job.num) if sweep else None,
        sweep_dir=Path(hydra_config.sweep.dir) if sweep else None,
        resumed=resuming,
    )


def _sweep_job(cfg: DictConfig, workdir: Path) -> float | None:
    """One job of a sweep: a failure is recorded in its directory, and the sweep goes on."""
    try:
        metrics = _completed(cfg, workdir) or train_and_evaluate(**_arguments(cfg, workdir))
    except Interrupted as stop:  # the user stopped the sweep: it ends here, resumable
        _stopped(stop, workdir)
    except Exception as err:  # bugs included: one job must not end the sweep or vanish from its table
        message = describe(err) or f"{type(err).__name__}: {err}"
        log.error("job failed: %s", message, exc_info=describe(err) is None)
        with contextlib.suppress(OutputError):  # a full disk: the log line above is the record then
            write_json(workdir / rundir.METRICS, {"status": "failed", "error": message})
        # Not a float: Optuna marks the trial failed; a NaN would crash its sweeper (hydra #2237).
        return None
    if metrics.get("status") == "pruned":
        log.info(
            "pruned after epoch %d; test accuracy %.4f; run directory: %s",
            metrics["pruned_epoch"],
            metrics["test_accuracy"],
            workdir,
        )
        return float(metrics["val_accuracy"])
    log.info("test accuracy %.4f; run directory: %s", metrics["test_accuracy"], workdir)
    return float(metrics["val_accuracy"])


def _stopped(stop: Interrupted, workdir: Path) -> NoReturn:
    """Say where a signal stopped training and how to go on; exit 128 + the signal's number."""
    hold_off_signals()  # the library put the process's handlers back; this process only records and exits
    sweep = HydraConfig.get().mode == RunMode.MULTIRUN
    target = Path(HydraConfig.get().sweep.dir) if sweep else workdir
    if sweep:
        from mnist_hydra.tracking.sweep import interrupt_sweep

        interrupt_sweep(target)
    print(
        f"{PROG}: {stop.signal_name} stopped training after {stop.epochs_done} of {stop.epochs} epochs; "
        f"the checkpoint is kept. Resume with: python -m mnist_hydra resume={target}",
        file=sys.stderr,
    )
    sys.exit(stop.exit_code)


def main() -> None:
    """Run the train app inside the error boundary."""
    with boundary(PROG, hydra_flags=True):
        argv = resume_argv(sys.argv[1:])  # `resume=SWEEP_DIR`: launch that sweep again with its own overrides
        if argv is not None:
            sys.argv[1:] = argv
        # Plugins named on the command line register their builders, and so their schemas, before Hydra composes.
        for override in parse_overrides(sys.argv[1:]):
            if override.key_or_group == "plugins" and isinstance(override.value(), list):
                load_plugins(override.value())
                store_schemas()
        train()
        failure = failed_sweep()
        if failure is not None:
            raise SweepFailed(failure)
