"""The fit loop: build or restore the model, fit it with checkpoints each epoch, score the test set, write artifacts."""

from __future__ import annotations

import contextlib
import logging
import math
import signal
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from mnist_hydra.config import Config
from mnist_hydra.data.pipeline import make_dataset, make_training_dataset
from mnist_hydra.data.splits import Splits
from mnist_hydra.errors import ConfigError, Interrupted, OutputError, TrainingDiverged
from mnist_hydra.models.networks import MODELS
from mnist_hydra.models.optimizers import OPTIMIZERS, fuse_adam_update
from mnist_hydra.runs import artifacts, html_report, plots
from mnist_hydra.runs.metrics import confusion_matrix, cross_entropy
from mnist_hydra.tracking.base import RunInfo, run_params, run_tags
from mnist_hydra.tracking.fanout import Loggers, open_loggers
from mnist_hydra.training import distribute
from mnist_hydra.training.callbacks import (
    CheckpointEachEpoch,
    EpochLog,
    ProgressBar,
    StopAfterSteps,
    StopOnDivergence,
    StopOnRequest,
    terminals_show_no_file_only,
)
from mnist_hydra.training.checkpoints import Checkpoints, TrainingState, restore_random_states
from mnist_hydra.training.epoch_decisions import Control, EarlyStopping, KeepBest, StopAtTarget, find, make_controls
from mnist_hydra.training.init_from import load_weights_from
from mnist_hydra.training.pruning import PruneTrial
from mnist_hydra.training.signals import stop_on_signals

log = logging.getLogger(__name__)

INPUT_SHAPE = (28, 28, 1)
DIVERGENCE_FACTOR = 100  # a loss this many times a uniform guess's ends training as diverged


def fit_and_score(
    config: Config,
    workdir: Path,
    splits: Splits,
    resume: bool = False,
    run_info: RunInfo | None = None,
    trial: Any = None,
) -> dict[str, Any]:
    """Train `config` on `splits`, score the test set once, write the artifacts; return the metrics.

    mnist_hydra.training.run.train_and_evaluate prepares what this needs (data, output checks, provenance);
    see there for the arguments and what is raised. The loggers of `config.logger` (the chief's only, as
    only it writes the run directory) mirror the run after the run directory has it, and end it as
    completed, failed or interrupted.
    """
    workdir = Path(workdir)
    set_threads(
        config.trainer.threads,
        inter_op_threads(config.trainer.inter_op_threads, config.trainer.strategy),
        inter_op_chosen=config.trainer.inter_op_threads is not None,
    )
    # Before any other op: the multi-worker strategy sets up collective ops as TensorFlow starts.
    strategy, chief = distribute.make_strategy(config.trainer.strategy)
    loggers = open_loggers(config.logger) if chief else Loggers({})
    info = run_info or RunInfo(run_dir=workdir, resumed=resume)
    loggers.start(info, run_params(config), run_tags(info))
    try:
        metrics = _fit_and_score(config, workdir, splits, resume, strategy, chief, loggers, trial)
    except KeyboardInterrupt:  # Interrupted included: SIGINT or SIGTERM
        loggers.end("interrupted")
        raise
    except BaseException:
        loggers.end("failed")
        raise
    loggers.end(metrics["status"], metrics)  # completed, or pruned
    return metrics


def _fit_and_score(
    config: Config,
    workdir: Path,
    splits: Splits,
    resume: bool,
    strategy: Any,
    chief: bool,
    loggers: Loggers,
    trial: Any = None,
) -> dict[str, Any]:
    """The body of `fit_and_score`, between the loggers' start and end."""
    if config.trainer.stop_at is not None and splits.val_is_test:
        raise ConfigError(
            f"trainer.stop_at={config.trainer.stop_at} stops on validation, and this run validates on the test set "
            "(data.val_split=0); hold out a validation set (e.g. data.val_split=0.1) or set trainer.stop_at=null"
        )
    seed_everything(config.seed, config.trainer.deterministic)
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

    with contextlib.ExitStack() as cleanup:
        # Saving reads every variable; a variable synchronised on read would make that a collective op which
        # every worker must join. So a non-chief worker saves too, to a scratch folder that is dropped.
        savedir = (
            workdir if chief else Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="mnist_hydra-worker-")))
        )
        checkpoints = Checkpoints(savedir)
        model, state = _build_or_restore(
            config, strategy, checkpoints if resume else None, len(splits.y_train), len(splits.class_names)
        )
        controls = make_controls(config.trainer, config.optimizer)
        if trial is not None:
            controls.append(PruneTrial(trial))
        for control in controls:
            if control.key in state.controls:
                control.restore(state.controls[control.key])
        with _resumable_if_unwritable(workdir if chief else None, state):
            _fit(config, model, splits, checkpoints, state, workdir if chief else None, controls, loggers)
        kept_epoch = state.epoch
        keep = find(controls, KeepBest)
        if keep is not None and keep.best_epoch:
            with strategy.scope():
                model.load_weights(checkpoints.best_weights(state))  # the file, in a fresh or a resumed run alike
            kept_epoch = keep.best_epoch
            log.info("keeping epoch %d's weights: the best %s (%.4f)", kept_epoch, keep.watch.monitor, keep.watch.best)
        distribute.average_across_replicas(strategy, model.non_trainable_variables)  # BatchNorm statistics
        metrics, probabilities = _score(
            config, model, splits, state, strategy, kept_epoch, find(controls, EarlyStopping)
        )
        metrics.update(target_record(config.trainer.stop_at, find(controls, StopAtTarget), state))
        pruned = find(controls, PruneTrial)
        if pruned is not None and pruned.stopped_epoch is not None:
            metrics.update(status="pruned", pruned_epoch=pruned.stopped_epoch, epochs=config.trainer.epochs)
        # Every worker ends with the same weights; comparing this line across the workers' logs shows it.
        log.info("final weights: sha256 %s", distribute.weights_digest(model.get_weights()))
        if chief:
            with _resumable_if_unwritable(workdir, state):
                write_artifacts(workdir, model, metrics, splits, probabilities)
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
    return metrics


def _build_or_restore(
    config: Config, strategy: Any, checkpoints: Checkpoints | None, train_images: int, classes: int
) -> tuple[keras.Model, TrainingState]:
    """A compiled model and where its training stands: new, or from the newest checkpoint when resuming."""
    latest = checkpoints.latest() if checkpoints else None
    with strategy.scope():  # variables made here are mirrored on every replica
        if latest:
            model_file, state = latest
            model = keras.models.load_model(model_file)  # weights, optimizer state and compile settings
            _fuse(model.optimizer, config, strategy)  # the same update kernel as before the stop: a bit-exact resume
            restore_random_states(model, state.random_states)
            log.info("resuming after epoch %d of %d from %s", state.epoch, config.trainer.whole_epochs, model_file)
            return model, state
        if checkpoints:
            log.info("no checkpoint in %s: starting from the first epoch", checkpoints.folder)
        model = with_precision(
            MODELS.get(config.model.name)(config.model, INPUT_SHAPE, classes), config.trainer.precision
        )
        if config.init_from is not None:
            load_weights_from(model, config.init_from)
        steps = math.ceil(train_images / config.trainer.batch_size)  # per epoch; a schedule needs the total
        total = config.trainer.total_steps(steps)
        optimizer = OPTIMIZERS.get(config.optimizer.name)(config.optimizer, total_steps=total)
        _fuse(optimizer, config, strategy)
        model.compile(
            optimizer=with_loss_scaling(optimizer, config.trainer.precision),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
            # Keras's multi-step loop cannot ask a multi-worker iterator whether a batch is left: one step a call.
            steps_per_execution=(
                1
                if config.trainer.strategy == "multi_worker"
                else steps_per_execution(config.trainer.steps_per_execution, steps, total)
            ),
        )
    log.info(
        "model: %s, %d parameters; optimizer: %s lr=%g",
        config.model.name,
        model.count_params(),
        config.optimizer.name,
        config.optimizer.lr,
    )
    return model, TrainingState()


def _fit(
    config: Config,
    model: keras.Model,
    splits: Splits,
    checkpoints: Checkpoints,
    state: TrainingState,
    workdir: Path | None,
    controls: list[Control],
    loggers: Loggers,
) -> None:
    """Train from `state.epoch` to the last epoch (or an early stop), checkpointing each; `workdir` (chief only)
    gets a failure record."""
    epochs, batch = config.trainer.whole_epochs, config.trainer.batch_size
    stopping = find(controls, EarlyStopping)
    if state.epoch >= epochs or any(getattr(c, "stopped_epoch", None) is not None for c in controls):
        return  # stopped (or pruned) after the last epoch's checkpoint, before its artifacts were written
    # A uniform guess scores ln(classes) (2.3 for ten); a hundred times that is a run that has blown up.
    diverged = StopOnDivergence(limit=DIVERGENCE_FACTOR * math.log(len(splits.class_names)))
    steps = math.ceil(len(splits.y_train) / batch)
    verbose = verbosity(config.trainer.verbose)
    with stop_on_signals() as request, terminals_show_no_file_only():
        stopped = lambda: request.signum or diverged.where  # noqa: E731
        timer = EpochLog(epochs, stopped, file_only=verbose == 1)
        saver = CheckpointEachEpoch(checkpoints, state, timer, stopped=stopped, controls=controls)
        # The loggers after the saver: they hear of an epoch once its checkpoint is written.
        callbacks = [
            timer,
            diverged,
            StopOnRequest(request),
            saver,
            loggers.callback(lambda: saver.kept),
            ProgressBar(stopped),
        ]
        total = config.trainer.total_steps(steps)
        if total < epochs * steps:  # a fractional trainer.epochs: the last epoch ends at the run's last step
            callbacks.insert(0, StopAfterSteps(steps, total))
        try:
            model.fit(
                make_training_dataset(splits.x_train, splits.y_train, batch, config.seed, state.epoch, epochs),
                steps_per_epoch=steps,
                validation_data=make_dataset(splits.x_val, splits.y_val, config.trainer.eval_batch_size or batch),
                initial_epoch=state.epoch,
                epochs=epochs,
                verbose=verbose,
                callbacks=callbacks,
                shuffle=False,  # the dataset orders each epoch itself, from the seed
            )
        except KeyboardInterrupt:
            # A second Ctrl-C: no clean point to stop at, but the last complete epoch's checkpoint stands.
            request.signum = signal.SIGINT
            log.warning("stopped at once by a second Ctrl-C; the checkpoint of epoch %d is kept", state.epoch)
    if stopping is not None and stopping.stopped_epoch is not None:
        log.info(
            "early stopping after epoch %d: %s has not improved on %.4f (epoch %d) for %d epoch(s)",
            stopping.stopped_epoch,
            stopping.watch.monitor,
            stopping.watch.best,
            stopping.watch.best_epoch,
            stopping.watch.wait,
        )
    target = find(controls, StopAtTarget)
    if target is not None and target.stopped_epoch is not None:
        log.info(
            "stopped at target after epoch %d: %s %.4f reached trainer.stop_at=%s",
            target.stopped_epoch,
            target.watch.monitor,
            state.history[target.watch.monitor][target.stopped_epoch - 1],
            config.trainer.stop_at,
        )
    if diverged.where:
        error = (
            f"training diverged at {diverged.where}; try a lower optimizer.lr "
            f"(this run: optimizer.lr={config.optimizer.lr:g})"
        )
        _record_stop(workdir, {"status": "failed", "error": error, "epochs_run": state.epoch})
        raise TrainingDiverged(error)
    if request.signum is not None:
        stop = Interrupted(request.signum, state.epoch, epochs)
        _record_stop(
            workdir,
            {
                "status": "interrupted",
                "signal": stop.signal_name,
                "epochs_run": state.epoch,
                "epochs": epochs,
                "history": state.history,
            },
        )
        raise stop


def _record_stop(workdir: Path | None, record: dict[str, Any]) -> None:
    if workdir is not None:
        artifacts.write_json(workdir / "metrics.json", record)


@contextlib.contextmanager
def _resumable_if_unwritable(workdir: Path | None, state: TrainingState) -> Iterator[None]:
    """A run file that cannot be written (a full disk, mid-run): the checkpoint of the last complete epoch
    stands, so the one-line error says so and how to go on, and metrics.json records it if it still fits."""
    try:
        yield
    except OutputError as err:
        if workdir is None:
            raise
        where = f"the checkpoint of epoch {state.epoch} is kept" if state.epoch else "no epoch was complete"
        message = f"{err}; {where}: make room, then continue with resume={workdir}"
        with contextlib.suppress(OutputError):
            _record_stop(workdir, {"status": "failed", "error": message, "epochs_run": state.epoch})
        raise OutputError(message) from err


def _score(
    config: Config,
    model: keras.Model,
    splits: Splits,
    state: TrainingState,
    strategy: Any,
    kept_epoch: int,
    stopping: EarlyStopping | None,
) -> tuple[dict[str, Any], np.ndarray]:
    """Score the test set once: the run's metrics (history included) and the test images' probabilities.

    val_accuracy and val_loss are those of the kept epoch: the last one, or with keep=best the best one.
    """
    test_data = make_dataset(splits.x_test, splits.y_test, config.trainer.eval_batch_size or config.trainer.batch_size)
    probabilities = model.predict(test_data, verbose=0)
    predicted = probabilities.argmax(axis=1)
    matrix = confusion_matrix(splits.y_test, predicted, len(splits.class_names))
    history = state.history
    val_accuracy = history["val_accuracy"]
    return {
        "status": "completed",
        "test_accuracy": float(np.mean(predicted == splits.y_test)),
        "test_loss": cross_entropy(probabilities, splits.y_test),
        "val_accuracy": val_accuracy[kept_epoch - 1],
        "val_loss": history["val_loss"][kept_epoch - 1],
        "best_val_accuracy": max(val_accuracy),
        "best_epoch": int(np.argmax(val_accuracy)) + 1,
        "epochs_run": len(val_accuracy),
        "keep": config.trainer.keep,
        "kept_epoch": kept_epoch,
        "stopped_early": stopping is not None and stopping.stopped_epoch is not None,
        "train_seconds": float(sum(state.epoch_seconds)),
        "epoch_seconds": state.epoch_seconds,
        "params": int(model.count_params()),
        "train_images": len(splits.y_train),
        "val_images": len(splits.y_val),
        "test_images": len(splits.y_test),
        "val_is_test": splits.val_is_test,
        "seed": config.seed,
        "strategy": config.trainer.strategy,
        "replicas": int(strategy.num_replicas_in_sync),
        "data_source": splits.source,
        "data_checksums": splits.checksums,
        "class_names": list(splits.class_names),
        "history": history,
        "confusion_matrix": matrix.tolist(),
    }, probabilities


def target_record(stop_at: str | None, target: StopAtTarget | None, state: TrainingState) -> dict[str, Any]:
    """metrics.json's trainer.stop_at figures: the target, the epoch that reached it and the training seconds
    to the end of that epoch (its validation included); both null when it was never reached. Nothing when off."""
    if stop_at is None or target is None:
        return {}
    epoch = target.stopped_epoch
    return {
        "stop_at": stop_at,
        "stop_at_epoch": epoch,
        "stop_at_seconds": None if epoch is None else float(sum(state.epoch_seconds[:epoch])),
    }


def verbosity(verbose: int | None) -> int:
    """Keras's verbose: as set, or (null) a progress bar on a terminal, and nothing of Keras's elsewhere: in a log
    file, a pipe or CI the epoch's log line (EpochLog) is then the one line it prints, with no bar redraws."""
    if verbose is not None:
        return verbose
    return 1 if sys.stdout.isatty() else 0


def steps_per_execution(limit: int, steps_per_epoch: int, total_steps: int | None = None) -> int:
    """The largest divisor of `steps_per_epoch` not above `limit`: executions never straddle two epochs.

    Keras runs whole executions, so with 844 steps an epoch and 16 per execution each epoch would take
    848 batches, shifting every later epoch's batches and breaking the (seed, epoch) order a resumed run
    relies on (mnist_hydra.data.pipeline.make_training_dataset). With `total_steps` (a fractional trainer.epochs),
    a divisor of the last epoch's steps as well, so that the run can stop at its last step.
    """
    last = (total_steps or steps_per_epoch) % steps_per_epoch or steps_per_epoch
    both = math.gcd(steps_per_epoch, last)
    chosen = max(d for d in range(1, min(limit, both) + 1) if both % d == 0)
    if chosen != limit:
        log.info(
            "steps per execution: %d (trainer.steps_per_execution=%d; a divisor of the %d steps an epoch%s)",
            chosen,
            limit,
            steps_per_epoch,
            f" and the {last} of the last" if last != steps_per_epoch else "",
        )
    return chosen


def _fuse(optimizer: keras.optimizers.Optimizer, config: Config, strategy: Any) -> None:
    """trainer.fused_adam: Adam's fused update kernel on one replica; a replicated run keeps Keras's step, which
    syncs mirrored state."""
    if config.trainer.fused_adam and strategy.num_replicas_in_sync == 1:
        fuse_adam_update(optimizer)


def with_precision(model: keras.Model, precision: str) -> keras.Model:
    """`model` itself for float32; for a mixed policy, a copy whose layers compute in it, all but the output layer.

    The output layer stays float32, as the Keras mixed-precision guide advises: its softmax is where
    bf16's 8-bit mantissa would blur probabilities near 0 and 1, and it costs next to nothing. The copy
    starts from the same weights, so a mixed run and a float32 run begin at the same point. No global
    policy is set, so nothing carries over to a later job in the same process.
    """
    if precision == "float32":
        return model
    output = model.layers[-1]

    def clone(layer: keras.layers.Layer) -> keras.layers.Layer:
        dtype = "float32" if layer is output else precision
        return layer.__class__.from_config({**layer.get_config(), "dtype": dtype})

    mixed = keras.models.clone_model(model, clone_function=clone)
    mixed.set_weights(model.get_weights())
    return mixed


def with_loss_scaling(optimizer: keras.optimizers.Optimizer, precision: str) -> keras.optimizers.Optimizer:
    """For mixed_float16, `optimizer` inside Keras's dynamic LossScaleOptimizer; otherwise `optimizer` itself.

    float16's 5-bit exponent flushes small gradients to zero, so the loss is scaled up before the backward
    pass and the gradients down after it (bf16 has float32's exponent and needs none). Keras's compile() only
    does this when the *model's* policy is mixed_float16; with_precision sets the policy per layer and leaves
    the model's float32, so it is done here. The wrapper is saved with the model: a resumed run keeps its scale.
    """
    if precision != "mixed_float16":
        return optimizer
    return keras.optimizers.LossScaleOptimizer(optimizer)


def seed_everything(seed: int, deterministic: bool) -> None:
    """Fresh Keras state and seeded RNGs, so each job of a one-process sweep starts the same way."""
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)  # Python, NumPy and TensorFlow
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def inter_op_threads(setting: int | None, strategy: str) -> int | None:
    """trainer.inter_op_threads as set; null: one op at a time on one device, TensorFlow's own choice otherwise.

    On two cores, two ops side by side that each want both cores mostly spin waiting for each other: one at a
    time took 8% less CPU an epoch for the default config and 20% less for trainer=fastest (measured on a busy
    machine), with the same figures (op determinism). A distributed run keeps TensorFlow's default: its
    collective ops wait on the other replicas and must not hold the only slot.
    """
    if setting is not None:
        return setting
    return 1 if strategy == "default" else None


def set_threads(threads: int | None, inter_op_threads: int | None = None, inter_op_chosen: bool = True) -> None:
    """Cap TensorFlow's thread pools, so parallel jobs share the machine instead of oversubscribing it.

    `inter_op_threads` caps how many ops run side by side (null = `threads`), each op still splitting its work
    over `threads`. Once TensorFlow has run an op the pools are fixed: a later job in the same process warns
    when its own setting cannot take effect, but not about an inter-op count it did not choose
    (`inter_op_chosen=False`: trainer.inter_op_threads=null's one-at-a-time is a speed preference).
    """
    count = threads or 0  # 0 lets TensorFlow use every core
    inter = inter_op_threads or count
    try:
        tf.config.threading.set_intra_op_parallelism_threads(count)
        tf.config.threading.set_inter_op_parallelism_threads(inter)
    except RuntimeError:
        # The pools are fixed once TensorFlow has run an op: a later job in the same process keeps them.
        current = (
            tf.config.threading.get_intra_op_parallelism_threads(),
            tf.config.threading.get_inter_op_parallelism_threads(),
        )
        if current[0] != count or (inter_op_chosen and current[1] != inter):
            log.warning(
                "trainer.threads=%s, trainer.inter_op_threads=%s cannot take effect: TensorFlow already runs "
                "with %s intra-op and %s inter-op threads in this process",
                threads,
                inter_op_threads,
                current[0] or "all cores",
                current[1] or "all cores",
            )


def write_artifacts(
    workdir: Path, model: keras.Model, metrics: dict[str, Any], splits: Splits, probabilities: np.ndarray
) -> None:
    """metrics.json, history.csv, model.keras, the three plots and report.html."""
    predicted = probabilities.argmax(axis=1)
    artifacts.discard_temp_files(workdir)  # a writer killed here before: this run holds the directory's lock
    artifacts.atomic_write(workdir / "model.keras", model.save)
    artifacts.write_history_csv(workdir / "history.csv", {**metrics["history"], "seconds": metrics["epoch_seconds"]})
    plots.plot_training_curves(metrics["history"], workdir / "training_curves.png")
    plots.plot_confusion_matrix(
        np.asarray(metrics["confusion_matrix"]), splits.class_names, workdir / "confusion_matrix.png"
    )
    plots.plot_misclassified(
        splits.x_test,
        splits.y_test,
        predicted,
        probabilities.max(axis=1),
        splits.class_names,
        workdir / "misclassified.png",
    )
    html_report.write_run_report(workdir, metrics)
    # Last: a complete metrics.json marks a complete run directory.
    artifacts.write_json(workdir / "metrics.json", metrics)
