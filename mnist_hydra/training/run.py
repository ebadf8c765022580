"""train_and_evaluate: one config, from checks and data to a finished run directory. No Hydra here."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mnist_hydra.config import Config
from mnist_hydra.data.splits import Splits, load_splits
from mnist_hydra.errors import ConfigError
from mnist_hydra.runs.artifacts import check_writable, read_json
from mnist_hydra.runs.provenance import write_provenance
from mnist_hydra.tracking.base import RunInfo
from mnist_hydra.training.distribute import is_chief

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
    mistake shows in a second), records provenance.json, then fits (mnist_hydra.training.loop).

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
    check_sizes(config, splits)
    if chief and not (workdir / "provenance.json").is_file():  # a resumed run keeps its first record
        write_provenance(workdir, config, splits, overrides)
    from mnist_hydra.tf_runtime import import_tensorflow

    import_tensorflow()
    from mnist_hydra.training.loop import fit_and_score

    info = run_info or RunInfo(run_dir=workdir, overrides=list(overrides), resumed=resume)
    if info.git_commit is None:
        info = dataclasses.replace(
            info, git_commit=(read_json(workdir / "provenance.json").get("git") or {}).get("commit")
        )
    return fit_and_score(config, workdir, splits, resume=resume, run_info=info, trial=trial)


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
