"""The apps: every command-line entry point, and the only code that knows Hydra (with config.py's schema filing).

Each app is `@hydra.main` (or argparse), validation, one library call, and the error boundary
(apps/boundary.py). `launched` is what `python -m mnist_hydra[.X]` and the console scripts run the app in: it
imports the app inside it, so a Ctrl-C even while Hydra or TensorFlow load prints one line, not a traceback.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def launched(prog: str) -> Iterator[None]:
    """The whole process runs inside this (the app's import included): Ctrl-C at any moment ends in one line,
    exit 130; the process then ends without tearing TensorFlow down (apps/process_exit.py). A bug's traceback
    still ends it the ordinary way."""
    from mnist_hydra.apps.process_exit import finish
    from mnist_hydra.tf_runtime import leave_out_sklearn_wrappers

    leave_out_sklearn_wrappers()
    try:
        yield
    except KeyboardInterrupt:
        print(f"{prog}: interrupted (Ctrl-C); nothing of this command was kept", file=sys.stderr)
        finish(130)
    except SystemExit as stop:
        finish(stop.code)
    finish(0)


def launch(module: str, prog: str) -> None:
    """Import `mnist_hydra.apps.<module>` and run its main() inside `launched`."""
    with launched(prog):
        importlib.import_module(f"mnist_hydra.apps.{module}").main()


def prepare_hydra() -> None:
    """What every Hydra app needs before Hydra composes: installed plugins, schemas, resolvers."""
    from mnist_hydra.apps import resolvers
    from mnist_hydra.config import store_schemas
    from mnist_hydra.plugins import load_entry_points

    load_entry_points()  # an installed package's builders, and so their schemas, before the store is filled
    store_schemas()
    resolvers.register()


def main_train() -> None:
    """Console script `mnist-hydra`."""
    launch("train", "mnist_hydra")


def main_evaluate() -> None:
    """Console script `mnist-hydra-evaluate`."""
    launch("evaluate", "mnist_hydra.evaluate")


def main_predict() -> None:
    """Console script `mnist-hydra-predict`."""
    launch("predict", "mnist_hydra.predict")


def main_serve() -> None:
    """Console script `mnist-hydra-serve`."""
    launch("serve", "mnist_hydra.serve")


def main_export() -> None:
    """Console script `mnist-hydra-export`."""
    launch("export", "mnist_hydra.export")
