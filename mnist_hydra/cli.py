"""The `python -m mnist_hydra` app: Hydra composes the config, the library does the work."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Optional

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from mnist_hydra.config import store_schemas, validate
from mnist_hydra.console import exit_with, run_app
from mnist_hydra.errors import UserError
from mnist_hydra.messages import describe

log = logging.getLogger(__name__)
PROG = "mnist_hydra"

# TensorFlow's C++ INFO/WARNING start-up lines bury the run's own log; a user's own setting wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
store_schemas()


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def train(cfg: DictConfig) -> Optional[float]:
    """Train and evaluate one config in Hydra's run directory; return its validation accuracy."""
    workdir = Path(HydraConfig.get().runtime.output_dir)
    if HydraConfig.get().mode == RunMode.MULTIRUN:
        return _sweep_job(cfg, workdir)
    try:
        metrics = _run(cfg, workdir)
    except UserError as err:
        if not _discard_unused_run_dir(workdir):
            log.error("%s", err)  # the job log keeps why this run stopped
        exit_with(err, PROG)
    print(f"test accuracy {metrics['test_accuracy']:.4f} (loss {metrics['test_loss']:.4f}); run directory: {workdir}")
    return metrics["val_accuracy"]


# Room a run needs beyond Hydra's own files: the reference model.keras is 7.3 MB, plots ~0.2 MB.
RUN_BYTES = 50_000_000


def _run(cfg: DictConfig, workdir: Path) -> dict:
    """Validate, check the output, load the data, record provenance, then train (TensorFlow loads last)."""
    config = validate(cfg)
    from mnist_hydra.artifacts import check_writable
    from mnist_hydra.data import load_splits
    from mnist_hydra.provenance import write_provenance

    from mnist_hydra.distribute import is_chief

    chief = is_chief(config.trainer.strategy)  # a bad TF_CONFIG fails here, in one line
    if chief:  # the other workers of a multi_worker run write nothing
        check_writable(workdir, RUN_BYTES)
    splits = load_splits(config.data, seed=config.seed)  # a data mistake shows before TensorFlow's import
    if chief:
        write_provenance(workdir, config, splits, HydraConfig.get().overrides.task)
    from mnist_hydra.train import train_and_evaluate

    return train_and_evaluate(config, workdir, splits)


def _sweep_job(cfg: DictConfig, workdir: Path) -> Optional[float]:
    """One job of a sweep: a failure is recorded in its directory, and the sweep goes on."""
    try:
        metrics = _run(cfg, workdir)
    except Exception as err:  # bugs included: one job must not end the sweep or vanish from its table
        message = describe(err) or f"{type(err).__name__}: {err}"
        log.error("job failed: %s", message, exc_info=describe(err) is None)
        from mnist_hydra.artifacts import write_json

        write_json(workdir / "metrics.json", {"status": "failed", "error": message})
        # Not a float: Optuna marks the trial failed; a NaN would crash its sweeper (hydra #2237).
        return None
    log.info("test accuracy %.4f; run directory: %s", metrics["test_accuracy"], workdir)
    return metrics["val_accuracy"]


def main() -> None:
    """Console entry point: run the Hydra app, reporting user mistakes as one line, not a traceback."""
    run_app(train, PROG)


def _discard_unused_run_dir(workdir: Path) -> bool:
    """Remove a run directory holding only what Hydra wrote at start (.hydra/, the job log)."""
    hydra_files = {".hydra", f"{HydraConfig.get().job.name}.log"}
    if not workdir.is_dir() or {p.name for p in workdir.iterdir()} - hydra_files:
        return False
    shutil.rmtree(workdir)
    return True
