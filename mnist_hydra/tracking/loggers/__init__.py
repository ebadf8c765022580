"""Every logger of the package: each module here registers its own in LOGGERS, and all are imported here.

A new logger is one module in this folder and one YAML option in conf/logger/; no list to edit. Each
module imports its tracker (and Keras) only when a logger is built, so this import stays light.
"""

import importlib
import pkgutil

from mnist_hydra.tracking.base import LOGGERS

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["LOGGERS"]
