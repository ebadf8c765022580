"""Your own builders without forking: modules named in `plugins=[...]`, and installed packages' entry points.

A plugin is any importable module that registers builders with the registries (MODELS, DATASETS,
OPTIMIZERS), each with its schema, at import time. Name it in the config (`plugins=[my_models]`), or
ship it in a package that declares an entry point in the group `mnist_hydra.plugins`.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from collections.abc import Iterable
from importlib import metadata

from mnist_hydra.errors import ConfigError, one_line

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "mnist_hydra.plugins"
_loaded: set[str] = set()


def load_plugins(names: Iterable[str]) -> None:
    """Import each module in `names` once; ConfigError in one line when one is missing or fails to register."""
    names = list(names)
    if names and os.getcwd() not in sys.path:
        # `python -m` puts the launch directory on the path, an installed console script does not.
        sys.path.append(os.getcwd())
    for name in names:
        if name in _loaded:
            continue
        try:
            importlib.import_module(str(name))
        except ModuleNotFoundError as err:
            if err.name is not None and str(name).startswith(err.name):
                raise ConfigError(
                    f"plugins=[{name}]: no module named {name}; give importable module names "
                    "(a .py file in the launch directory, or an installed package)"
                ) from None
            raise ConfigError(f"plugins=[{name}]: importing it failed: {one_line(err)}") from None
        except Exception as err:  # a builder registered twice, a syntax error: the user's module, the user's fix
            raise ConfigError(f"plugins=[{name}]: importing it failed: {type(err).__name__}: {one_line(err)}") from None
        _loaded.add(name)


def load_entry_points() -> None:
    """Import every installed package's `mnist_hydra.plugins` entry point; ConfigError when one fails."""
    for point in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if point.value in _loaded:
            continue
        try:
            point.load()
        except Exception as err:
            raise ConfigError(
                f"the {ENTRY_POINT_GROUP} entry point {point.name} = {point.value} failed to load: "
                f"{type(err).__name__}: {one_line(err)}; uninstall or fix that package"
            ) from None
        _loaded.add(point.value)
