"""`python -m mnist_hydra.evaluate run=RUN_DIR [data=OPTION] [data.KEY=VALUE]`: score a trained model again.

Loads RUN_DIR/model.keras and scores a test set with it (mnist_hydra.runs.evaluation); the evaluation is
written to RUN_DIR/evaluate/YYYY-MM-DD_HH-MM-SS.ffffff/ (`hydra.run.dir=PATH` picks another place, e.g.
for a run directory you cannot write to).

Which test set:

- by default the run's own data config (RUN_DIR/.hydra/config.yaml): the same images the run
  was scored on, `data.test_limit` included;
- `data.KEY=VALUE` changes one field of it, e.g. `data.test_limit=null` for the whole test set
  or `data.root=PATH` when the data has moved;
- `data=OPTION` (`mnist`, `fashion_mnist`) takes that option's config instead, whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import MISSING, DictConfig

from mnist_hydra.apps.app_kinds import hydra_app
from mnist_hydra.apps.resume import parse_overrides
from mnist_hydra.config import plain_dict, typed_group
from mnist_hydra.errors import ConfigError, require
from mnist_hydra.runs import rundir

PROG = "mnist_hydra.evaluate"
# What the error for a key without a value suggests.
EXAMPLES = {"run": rundir.RUN_EXAMPLE}


@dataclass
class EvaluateConfig:
    """What to evaluate and on which data."""

    run: str = MISSING  # the training run's directory: holds model.keras and .hydra/config.yaml
    data: Any = MISSING  # data option; used whole only when picked with data=OPTION, else only its overridden keys
    batch_size: int = 256  # images per prediction step

    def check(self) -> None:
        require(self.batch_size >= 1, "batch_size", self.batch_size, "an integer >= 1")


@hydra_app(PROG, "evaluate", EvaluateConfig, EXAMPLES)
def evaluate(settings: EvaluateConfig, cfg: DictConfig) -> None:
    """Evaluate `settings.run` in Hydra's run directory and print the accuracy and where the files are."""
    workdir = Path(HydraConfig.get().runtime.output_dir)
    run_dir = Path(settings.run)
    rundir.require_run(run_dir)
    overrides = list(HydraConfig.get().overrides.task)
    data = typed_group("data", _chosen_data(cfg, run_dir, overrides))
    from mnist_hydra.runs.evaluation import evaluate_run

    metrics = evaluate_run(run_dir, data, workdir, batch_size=settings.batch_size, record={"overrides": overrides})
    print(
        f"accuracy {metrics['accuracy']:.4f} (loss {metrics['loss']:.4f}) on {metrics['n']} "
        f"{metrics['data']['name']} test images; evaluation directory: {workdir}"
    )


def _chosen_data(cfg: DictConfig, run_dir: Path, overrides: list[str]) -> dict[str, Any]:
    """The data config to score: see the module docstring."""
    parsed = parse_overrides(overrides)
    keys = [o.key_or_group for o in parsed]
    unknown = [k for k in keys if k.split(".")[0] not in ("run", "data", "batch_size", "hydra")]
    if unknown:  # Hydra would suggest `+key=`, which leads nowhere: this app has only these keys
        raise ConfigError(
            f"{unknown[0]} is not a key of {PROG}; it takes run=, data=OPTION, data.KEY=VALUE "
            "and batch_size= (the model is the run's own)"
        )
    composed = plain_dict(cfg.data)
    if "data" in keys:
        return composed
    values = dict(rundir.read_config(run_dir)["data"])
    # Unless picked with data=OPTION, the composed data option only gives `data.KEY=VALUE` a typed home.
    for key in keys:
        field = key[len("data.") :] if key.startswith("data.") else None
        if field is not None and field in composed:
            values[field] = composed[field]
    return values


main = evaluate.main
