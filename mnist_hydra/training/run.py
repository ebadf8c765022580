"""train_and_evaluate: one config, from checks and data to a finished run directory. No Hydra here."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mnist_hydra.config import Config, check_model_fits
from mnist_hydra.data.splits import Splits, load_splits
from mnist_hydra.errors import ConfigError
from mnist_hydra.runs.artifacts import check_writable, read_json
from mnist_hydra.runs.provenance import write_provenance
from mnist_hydra.tracking.base import RunInfo
from mnist_hydra.training.distribute import is_chief
from mnist_hydra.training.epoch_decisions import Control, EarlyStopping, StopAtTarget, find, make_controls
from mnist_hydra.training.pruning import PruneTrial

log = logging.getLogger(__name__)

# Room a run needs beyond Hydra's own files: the reference model.keras is 7.3 MB, plots ~0.2 MB.
RUN_BYTES = 50_000_000
# Fewer training images than this gives figures that mean little: said once, as a warning.
FEW_IMAGES = 1000


def train_and_evaluate(
    config: Config,
    workdir: Path,
    *,
    resume: bool = False,
    overrides: Sequence[str] = (),
    run_info: RunInfo | None = None,
    trial: Any = None,
) -> dict[str, Any]:
    """Train `config`, score its test set once, and leave every artifact in `workdir`; return the metrics.

    Checks the output directory, loads and verifies the data (both before TensorFlow is imported, so a
    mistake shows in a second), records provenance.json, then builds or restores the model, fits it
    (mnist_hydra.training.fit), scores it and writes its results, the loggers of `config.logger` mirroring the
    run (the chief's only) and ending it as completed, pruned, failed or interrupted.

    Args:
      config: the run's config, as `mnist_hydra.config.validate` returns it.
      workdir: the run directory; created if missing. Under trainer.strategy=multi_worker only the chief
        writes there; the other workers train and score alike.
      resume: continue from the newest checkpoint in `workdir` (from the start when there is none).
      overrides: the command line's overrides, for provenance.json.
      run_info: what the loggers of `config.logger` are told (launch directory, sweep, ...); by default a run
        launched from the current directory with `overrides`. The git commit is filled in from provenance.json.
      trial: a search's trial (Optuna's Trial or alike) to report each epoch's val_accuracy to; training stops
        when it is pruned, and metrics.json says "pruned" (mnist_hydra.training.pruning).

    Raises:
      UserError: a bad output directory, missing or corrupt data, an impossible setting (one line each).
      Interrupted: SIGINT or SIGTERM stopped training; metrics.json says "interrupted", the checkpoint
        of the last complete epoch stays.
      TrainingDiverged: the loss became NaN, infinite or absurdly large; metrics.json records the failure.
    """
    workdir = Path(workdir)
    if resume and config.trainer.strategy == "multi_worker":
        # The other workers' checkpoints live in scratch folders that are gone by now.
        raise ConfigError(
            "resume= does not work with trainer.strategy=multi_worker: start the workers afresh, "
            "or resume with trainer.strategy=default or mirrored"
        )
    chief = is_chief(config.trainer.strategy)  # a bad TF_CONFIG fails here, in one line
    if chief:  # the other workers of a multi_worker run write nothing
        workdir.mkdir(parents=True, exist_ok=True)
        check_writable(workdir, RUN_BYTES)
    if config.init_from is not None:
        from mnist_hydra.training.init_from import require_source

        require_source(config.init_from)  # a wrong path shows before the data is read
    splits = load_splits(config.data, seed=config.seed)
    check_model_fits(config.model, splits.input_shape)  # before any file of the run: the data's shape is known now
    check_sizes(config, splits)
    if chief and not (workdir / "provenance.json").is_file():  # a resumed run keeps its first record
        write_provenance(workdir, config, splits, overrides)
    from mnist_hydra.tf_runtime import import_tensorflow

    import_tensorflow()
    info = run_info or RunInfo(run_dir=workdir, overrides=list(overrides), resumed=resume)
    if info.git_commit is None:
        info = dataclasses.replace(
            info, git_commit=(read_json(workdir / "provenance.json").get("git") or {}).get("commit")
        )
    # TensorFlow from here on: each step below is a module of this package, called and returned from, so that
    # the stack under model.fit is this function and fit() alone.
    from mnist_hydra.training import distribute
    from mnist_hydra.training.build import build_or_restore
    from mnist_hydra.training.checkpoints import Checkpoints
    from mnist_hydra.training.fit import fit
    from mnist_hydra.training.loggers import tracked_run
    from mnist_hydra.training.results import resumable_if_unwritable, write_results
    from mnist_hydra.training.scoring import keep_chosen_weights, score, target_record
    from mnist_hydra.training.seeding import seed_everything
    from mnist_hydra.training.signals import handlers_restored
    from mnist_hydra.training.threads import inter_op_threads, set_threads

    set_threads(
        config.trainer.threads,
        inter_op_threads(config.trainer.inter_op_threads, config.trainer.strategy),
        inter_op_chosen=config.trainer.inter_op_threads is not None,
    )
    # Before any other op: the multi-worker strategy sets up collective ops as TensorFlow starts.
    strategy, chief = distribute.make_strategy(config.trainer.strategy)
    with handlers_restored(), tracked_run(config, info, chief) as tracked, contextlib.ExitStack() as cleanup:
        if config.trainer.stop_at is not None and splits.val_is_test:
            raise ConfigError(
                f"trainer.stop_at={config.trainer.stop_at} stops on validation, and this run validates on the test "
                "set (data.val_split=0); hold out a validation set (e.g. data.val_split=0.1) or set "
                "trainer.stop_at=null"
            )
        seed_everything(config.seed, config.trainer.deterministic)
        _log_setup(config, splits, strategy, chief)
        # Saving reads every variable; a variable synchronised on read would make that a collective op which
        # every worker must join. So a non-chief worker saves too, to a scratch folder that is dropped.
        savedir = (
            workdir if chief else Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="mnist_hydra-worker-")))
        )
        checkpoints = Checkpoints(savedir)
        model, state = build_or_restore(
            config,
            strategy,
            checkpoints if resume else None,
            len(splits.y_train),
            len(splits.class_names),
            splits.input_shape,
        )
        controls = _controls(config, trial, state.controls)
        with resumable_if_unwritable(workdir if chief else None, state):
            fit(config, model, splits, checkpoints, state, workdir if chief else None, controls, tracked.loggers)
        kept_epoch = keep_chosen_weights(model, controls, checkpoints, state, strategy)
        distribute.average_across_replicas(strategy, model.non_trainable_variables)  # BatchNorm statistics
        metrics, probabilities = score(
            config, model, splits, state, strategy, kept_epoch, find(controls, EarlyStopping)
        )
        metrics.update(target_record(config.trainer.stop_at, find(controls, StopAtTarget), state))
        pruned = find(controls, PruneTrial)
        if pruned is not None and pruned.stopped_epoch is not None:
            metrics.update(status="pruned", pruned_epoch=pruned.stopped_epoch, epochs=config.trainer.epochs)
        # Every worker ends with the same weights; comparing this line across the workers' logs shows it.
        log.info("final weights: sha256 %s", distribute.weights_digest(model.get_weights()))
        if chief:
            with resumable_if_unwritable(workdir, state):
                write_results(workdir, model, metrics, splits, probabilities)
        else:
            model.save(savedir / "model.keras")  # the collective read above; the plots are the chief's job
        checkpoints.remove()  # model.keras holds the final model now
        log.info(
            "test accuracy %.4f, test loss %.4f, %.1f s training; %s",
            metrics["test_accuracy"],
            metrics["test_loss"],
            metrics["train_seconds"],
            f"artifacts in {workdir}" if chief else "artifacts left to the chief",
        )
        tracked.metrics = metrics
    return metrics


def _controls(config: Config, trial: Any, saved: dict[str, Any]) -> list[Control]:
    """The run's training controls (early stopping, keep=best, stop_at; a search's pruning), each restored from
    its saved state when resuming."""
    controls = make_controls(config.trainer, config.optimizer)
    if trial is not None:
        controls.append(PruneTrial(trial))
    for control in controls:
        if control.key in saved:
            control.restore(saved[control.key])
    return controls


def _log_setup(config: Config, splits: Splits, strategy: Any, chief: bool) -> None:
    """The run's data and, when distributed, its strategy, one log line each."""
    log.info(
        "data: %s from %s (%d train, %d validation%s, %d test)",
        config.data.name,
        splits.source,
        len(splits.y_train),
        len(splits.y_val),
        " = the test set" if splits.val_is_test else "",
        len(splits.y_test),
    )
    if config.trainer.strategy != "default":
        log.info(
            "strategy: %s, %d replica(s) in sync, global batch %d; %s",
            config.trainer.strategy,
            strategy.num_replicas_in_sync,
            config.trainer.batch_size,
            "this process is the chief and writes the artifacts"
            if chief
            else "this process is not the chief: it trains and scores but writes no artifacts",
        )


def check_sizes(config: Config, splits: Splits) -> None:
    """Few images, or a batch larger than the training set, one warning line each (load_splits refuses none)."""
    n = len(splits.y_train)
    images = f"{n} image" + ("s" if n != 1 else "")
    if n < FEW_IMAGES:
        log.warning(
            "training on only %s (data.train_limit=%s, data.val_split=%s): expect low accuracy",
            images,
            config.data.train_limit,
            config.data.val_split,
        )
    if config.trainer.batch_size > n:
        log.warning(
            "trainer.batch_size=%d is larger than the %d training %s: each epoch is one batch of %d",
            config.trainer.batch_size,
            n,
            "images" if n != 1 else "image",
            n,
        )
