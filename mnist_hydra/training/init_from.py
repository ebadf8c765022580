"""`init_from=RUN_DIR`: start a new run from a finished run's weights (fine-tuning, or a new set of classes).

The network must be the same one (the same layers, in order, with the same weight shapes). A different
class count is the one difference allowed: the last layer then starts afresh, and a line says so.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

from mnist_hydra.errors import UserError
from mnist_hydra.runs import rundir

log = logging.getLogger(__name__)


def require_source(run_dir: str) -> Path:
    """The model.keras of `init_from=run_dir`, checked before any data is read; UserError naming it otherwise."""
    model_path = rundir.require_run(Path(run_dir), key="init_from")
    rundir.check_model_file(model_path)
    return model_path


def source_record(run_dir: str) -> dict[str, Any]:
    """What provenance.json records of where the weights came from: the run and its model file's SHA-256."""
    model_path = Path(run_dir).absolute() / rundir.MODEL
    return {
        "run": str(model_path.parent),
        "model": str(model_path),
        "model_sha256": hashlib.sha256(model_path.read_bytes()).hexdigest(),
    }


def load_weights_from(model: Any, run_dir: str) -> None:
    """Set `model`'s weights to those of `run_dir`'s model.keras, layer by layer; UserError for another network."""
    from mnist_hydra.data.preparation import describe

    given = f"init_from={run_dir}"
    height, width, channels = (int(side) for side in model.input_shape[1:])
    theirs_shape, mine_shape = rundir.input_shape(Path(run_dir)), (height, width, channels)
    if theirs_shape != mine_shape:
        raise UserError(
            f"{given}: its model takes {describe(theirs_shape)} images and this data is {describe(mine_shape)}; "
            "init_from takes a run trained on images of the same size and channels (data.image_size, data.channels)"
        )
    source = rundir.load_model(require_source(run_dir))
    mine, theirs = _weighted_layers(model), _weighted_layers(source)
    if len(mine) != len(theirs):
        raise UserError(
            f"{given}: its model is another network ({len(theirs)} layers with weights, this config "
            f"builds {len(mine)}); init_from takes a run of the same model.* settings"
        )
    fresh = None
    for index, (layer, old) in enumerate(zip(mine, theirs, strict=False)):
        shapes, old_shapes = _shapes(layer), _shapes(old)
        if shapes == old_shapes and type(layer).__name__ == type(old).__name__:
            layer.set_weights(old.get_weights())
        elif index == len(mine) - 1 and type(layer) is type(old) and _same_but_units(shapes, old_shapes):
            fresh = (layer, old_shapes[0][-1], shapes[0][-1])
        else:
            raise UserError(
                f"{given}: its model is another network: layer {index + 1} ({type(old).__name__} "
                f"{old_shapes}) differs from this config's ({type(layer).__name__} {shapes}); init_from "
                "takes a run of the same model.* settings"
            )
    if fresh is None:
        log.info("init_from: starting from the weights of %s (all %d layers)", run_dir, len(mine))
    else:
        layer, was, now = fresh
        log.info(
            "init_from: starting from the weights of %s; its model has %d classes and this data %d, so the "
            "last layer (%s) starts afresh",
            run_dir,
            was,
            now,
            layer.name,
        )


def _weighted_layers(model: Any) -> list[Any]:
    return [layer for layer in model.layers if layer.weights]


def _shapes(layer: Any) -> list[tuple[int, ...]]:
    return [tuple(int(d) for d in w.shape) for w in layer.weights]


def _same_but_units(shapes: list[tuple[int, ...]], old: list[tuple[int, ...]]) -> bool:
    """A Dense layer's kernel and bias that differ only in their output units (the class count)."""
    return (
        len(shapes) == len(old) == 2
        and len(shapes[0]) == len(old[0]) == 2
        and shapes[0][0] == old[0][0]
        and shapes[0][1] != old[0][1]
    )
