"""What the train app prints around a run: where it goes and what its config changes, then how it ended.

The start: the run directory, the option picked in each group, and every key whose value differs from that
option's own default (an override, an experiment, a search's choice), with the default beside it; the full
tree stays in .hydra/config.yaml. The end: test accuracy, the best epoch, wall time, the run directory and
the commands that look at it.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from mnist_hydra.config import plain_dict

log = logging.getLogger(__name__)

GROUPS = ("data", "model", "optimizer", "trainer")
SHOWN = 12  # changed keys listed at most; the rest are counted


def start_lines(cfg: DictConfig, workdir: Path, resumed: bool) -> list[str]:
    """The lines printed before training: run directory, options, changed keys."""
    choices = HydraConfig.get().runtime.choices
    picked = " ".join(f"{group}={choices.get(group)}" for group in GROUPS if choices.get(group))
    lines = [f"run directory: {workdir}"]
    if resumed:
        return lines + [f"config: as saved in {workdir / '.hydra' / 'config.yaml'} (resumed)"]
    lines.append(f"config: {picked} (the whole tree: {workdir / '.hydra' / 'config.yaml'})")
    try:
        changes = changed_keys(cfg, _defaults({group: choices.get(group) for group in (*GROUPS, "logger")}))
    except (HydraException, OmegaConfBaseException) as err:  # the summary is worth no failed run
        log.debug("no config summary: %s", err)
        return lines
    for key, value, default in changes[:SHOWN]:
        lines.append(f"  {key}={_shown(value)}  (default {_shown(default)})")
    if len(changes) > SHOWN:
        lines.append(f"  ... and {len(changes) - SHOWN} more changed keys")
    return lines


def changed_keys(cfg: DictConfig, defaults: DictConfig) -> list[tuple[str, Any, Any]]:
    """(key, value, default) for every leaf of `cfg` (hydra's own node aside) that `defaults` holds otherwise."""
    now, before = _leaves(_plain(cfg)), _leaves(_plain(defaults))
    missing = object()
    return [(key, value, before.get(key)) for key, value in now.items() if before.get(key, missing) != value]


def end_lines(metrics: Mapping[str, Any], workdir: Path, seconds: float) -> list[str]:
    """The lines printed after a finished run: its figures, then where it is and how to look at it."""
    best = metrics.get("best_epoch")
    epochs = (
        f"best epoch {best} of {metrics.get('epochs_run')} (val_accuracy {metrics['best_val_accuracy']:.4f}); "
        if best and "best_val_accuracy" in metrics
        else ""
    )
    trained = f"{metrics['train_seconds']:.1f} s training, " if "train_seconds" in metrics else ""
    return [
        f"test accuracy {metrics['test_accuracy']:.4f} (loss {metrics['test_loss']:.4f}); {epochs}"
        f"{trained}{seconds:.1f} s in all",
        f"  report: {workdir / 'report.html'} (open it in a browser)",
        f"  serve:  python -m mnist_hydra.serve run={workdir}",
        f"run directory: {workdir}",
    ]


def _defaults(choices: Mapping[str, Any]) -> DictConfig:
    """The config of the same options with no key changed (experiments and searches left out)."""
    overrides = tuple(f"{group}={value}" for group, value in choices.items() if value is not None)
    sources = tuple((s.path, s.provider) for s in HydraConfig.get().runtime.config_sources)
    return _composed(overrides, sources)


@functools.lru_cache(maxsize=8)
def _composed(overrides: tuple[str, ...], sources: tuple[tuple[str, str], ...]) -> DictConfig:
    """compose() once per options and config search path in a process: the jobs of a sweep run in one process
    (the basic launcher, a search) share their options, and a compose costs 0.2 s."""
    from hydra import compose

    return compose(config_name="config", overrides=list(overrides))


def _plain(cfg: DictConfig) -> dict[str, Any]:
    container = plain_dict(cfg, resolve=False)
    container.pop("hydra", None)
    return container


def _leaves(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict) and node:
        return {k: v for key, value in node.items() for k, v in _leaves(value, f"{prefix}{key}.").items()}
    return {prefix.rstrip("."): node}


def _shown(value: Any) -> str:
    return "null" if value is None else str(value).replace("'", "") if isinstance(value, list) else str(value)
