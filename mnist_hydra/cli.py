"""The `python -m mnist_hydra` app: Hydra composes the config, the library does the work."""

from __future__ import annotations

import logging
import os
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, Optional

import hydra
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from mnist_hydra import resume
from mnist_hydra.config import store_schemas, validate
from mnist_hydra.console import exit_with, run_app
from mnist_hydra.errors import ConfigError, Interrupted, UserError
from mnist_hydra.messages import describe
from mnist_hydra.resume import register_resolvers

if TYPE_CHECKING:
    from mnist_hydra.tracking.base import RunInfo

log = logging.getLogger(__name__)
PROG = "mnist_hydra"

# TensorFlow's C++ INFO/WARNING start-up lines bury the run's own log; a user's own setting wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
store_schemas()
register_resolvers()
# Hydra's --help deep-copies the whole process-wide ConfigStore once per config group (~110 times, 0.8 s);
# ConfigStore.load() already hands out copies of each node, so sharing the store itself is safe.
ConfigStore.__deepcopy__ = lambda self, memo: self


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def train(cfg: DictConfig) -> Optional[float]:
    """Train and evaluate one config in Hydra's run directory; return its validation accuracy."""
    workdir = Path(HydraConfig.get().runtime.output_dir)
    if HydraConfig.get().mode == RunMode.MULTIRUN:
        return _sweep_job(cfg, workdir)
    try:
        metrics = _run(cfg, workdir)
    except UserError as err:
        # A resumed directory is the user's: never discarded, whatever it holds.
        if cfg.get("resume") is not None or not _discard_unused_run_dir(workdir):
            log.error("%s", err)  # the job log keeps why this run stopped
        exit_with(err, PROG)
    except Interrupted as stop:
        _stopped(stop, workdir)
    print(f"test accuracy {metrics['test_accuracy']:.4f} (loss {metrics['test_loss']:.4f}); run directory: {workdir}")
    return metrics["val_accuracy"]


# Room a run needs beyond Hydra's own files: the reference model.keras is 7.3 MB, plots ~0.2 MB.
RUN_BYTES = 50_000_000


def _run(cfg: DictConfig, workdir: Path) -> dict:
    """Validate, check the output, load the data, record provenance, then train (TensorFlow loads last).

    With resume=DIR: the config saved in the run directory, and training from its newest checkpoint;
    a run that had finished is not run again.
    """
    resuming = cfg.get("resume") is not None
    if resuming:
        done = resume.completed_metrics(workdir)
        if done is not None:
            log.info("%s is complete already: nothing to resume", workdir)
            return done
        cfg = resume.run_config(cfg, workdir, sweep=HydraConfig.get().mode == RunMode.MULTIRUN)
    config = validate(cfg)
    from mnist_hydra.artifacts import check_writable
    from mnist_hydra.data import load_splits
    from mnist_hydra.distribute import is_chief
    from mnist_hydra.provenance import write_provenance

    if resuming and config.trainer.strategy == "multi_worker":
        # The other workers' checkpoints live in scratch folders that are gone by now.
        raise ConfigError("resume= does not work with trainer.strategy=multi_worker: start the workers afresh, "
                          "or resume with trainer.strategy=default or mirrored")
    chief = is_chief(config.trainer.strategy)  # a bad TF_CONFIG fails here, in one line
    if chief:  # the other workers of a multi_worker run write nothing
        check_writable(workdir, RUN_BYTES)
    splits = load_splits(config.data, seed=config.seed)  # a data mistake shows before TensorFlow's import
    if chief and not (workdir / "provenance.json").is_file():  # a resumed run keeps its first record
        write_provenance(workdir, config, splits, HydraConfig.get().overrides.task)
    from mnist_hydra.train import train_and_evaluate

    return train_and_evaluate(config, workdir, splits, resume=resuming, run_info=_run_info(workdir, resuming))


def _run_info(workdir: Path, resuming: bool) -> "RunInfo":
    """What the loggers are told about this run: where it was launched, its overrides and commit, its sweep."""
    from mnist_hydra.artifacts import read_json
    from mnist_hydra.tracking.base import RunInfo

    hydra_config = HydraConfig.get()
    sweep = hydra_config.mode == RunMode.MULTIRUN
    provenance = read_json(workdir / "provenance.json")
    return RunInfo(run_dir=workdir, launch_dir=Path.cwd(), app=PROG,
                   overrides=list(provenance.get("overrides") or hydra_config.overrides.task),
                   git_commit=(provenance.get("git") or {}).get("commit"),
                   job=str(hydra_config.job.num) if sweep else None,
                   sweep_dir=Path(hydra_config.sweep.dir) if sweep else None, resumed=resuming)


def _sweep_job(cfg: DictConfig, workdir: Path) -> Optional[float]:
    """One job of a sweep: a failure is recorded in its directory, and the sweep goes on."""
    try:
        metrics = _run(cfg, workdir)
    except Interrupted as stop:  # the user stopped the sweep: it ends here, resumable
        _stopped(stop, workdir)
    except Exception as err:  # bugs included: one job must not end the sweep or vanish from its table
        message = describe(err) or f"{type(err).__name__}: {err}"
        log.error("job failed: %s", message, exc_info=describe(err) is None)
        from mnist_hydra.artifacts import write_json

        write_json(workdir / "metrics.json", {"status": "failed", "error": message})
        # Not a float: Optuna marks the trial failed; a NaN would crash its sweeper (hydra #2237).
        return None
    log.info("test accuracy %.4f; run directory: %s", metrics["test_accuracy"], workdir)
    return metrics["val_accuracy"]


def _stopped(stop: Interrupted, workdir: Path) -> NoReturn:
    """Say where a signal stopped training and how to go on; exit 128 + the signal's number."""
    sweep = HydraConfig.get().mode == RunMode.MULTIRUN
    target = Path(HydraConfig.get().sweep.dir) if sweep else workdir
    if sweep:
        from mnist_hydra.tracking.sweep import interrupt_sweep

        interrupt_sweep(target)
    print(f"{PROG}: {stop.signal_name} stopped training after {stop.epochs_done} of {stop.epochs} epochs; "
          f"the checkpoint is kept. Resume with: python -m mnist_hydra resume={target}", file=sys.stderr)
    sys.exit(stop.exit_code)


def main() -> None:
    """Console entry point: run the Hydra app, reporting user mistakes as one line, not a traceback."""
    try:
        # `resume=SWEEP_DIR`: launch that sweep again with its own overrides.
        argv = resume.resume_argv(sys.argv[1:])
    except UserError as err:
        exit_with(err, PROG)
    if argv is not None:
        sys.argv[1:] = argv
    run_app(train, PROG)


def _discard_unused_run_dir(workdir: Path) -> bool:
    """Remove a run directory holding only what Hydra wrote at start (.hydra/, the job log)."""
    hydra_files = {".hydra", f"{HydraConfig.get().job.name}.log"}
    if not workdir.is_dir() or {p.name for p in workdir.iterdir()} - hydra_files:
        return False
    shutil.rmtree(workdir)
    return True
