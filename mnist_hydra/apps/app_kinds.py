"""The two kinds of app, each written once: a new app is a schema and one function.

- `hydra_app`: Hydra composes conf/NAME.yaml over a typed schema; the boundary catches mistakes; keys left
  `???` are named with an example; the config becomes the schema's dataclass and its `check()` runs; then
  the app's function gets it. (evaluate, predict, serve, export)
- `folder_app`: one folder argument through argparse, checked to be a folder, then the app's function.
  (summarize, report)
Both give a `main()` that runs the app inside the error boundary (apps/boundary.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import hydra
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from mnist_hydra.apps import prepare_hydra
from mnist_hydra.apps.boundary import ArgumentParser, boundary, job_boundary
from mnist_hydra.config import require_values
from mnist_hydra.errors import UserError
from mnist_hydra.extras import require_extra

S = TypeVar("S")


@dataclass(frozen=True)
class App(Generic[S]):
    """An app's entry points: `main()` for the console script and `python -m`, `task` for Hydra."""

    prog: str
    task: Callable[..., Any]
    hydra_flags: bool
    extra: str | None = None  # the pip extra the whole app needs (mnist_hydra/extras.py)

    def main(self) -> None:
        """Run the app inside the error boundary; an app of an extra that is not installed says which, in one line."""

        with boundary(self.prog, hydra_flags=self.hydra_flags):
            if self.extra is not None:
                require_extra(self.extra, f"python -m {self.prog}")
            self.task()


def hydra_app(
    prog: str,
    config_name: str,
    schema: type[S],
    examples: dict[str, str],
    hydra_flags: bool = True,
    extra: str | None = None,
) -> Callable[[Callable[[S, DictConfig], None]], App[S]]:
    """Decorator: `run(settings, cfg)` becomes an app composing conf/`config_name`.yaml over `schema`.

    `settings` is the typed, checked config; `cfg` the composed one, for what a schema cannot hold (which keys
    the command line set). `examples`: what the error for a key without a value suggests, by key.
    `hydra_flags`: check Hydra's own flags before Hydra parses them (the apps that take --multirun and friends).
    `extra`: the pip extra the app needs; without it the app stops at once with the line that names it.
    """
    prepare_hydra()
    ConfigStore.instance().store(name=f"{config_name}_schema", node=schema)

    def wrap(run: Callable[[S, DictConfig], None]) -> App[S]:
        @hydra.main(version_base="1.3", config_path="pkg://mnist_hydra.conf", config_name=config_name)
        def task(cfg: DictConfig) -> None:
            with job_boundary(prog):
                require_values(cfg, examples)
                settings = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), cfg))
                check = getattr(settings, "check", None)
                if check is not None:
                    check()
                run(settings, cfg)  # type: ignore[arg-type]  # to_object returns the schema's instance

        task.__doc__ = run.__doc__
        return App(prog, task, hydra_flags, extra)

    return wrap


def folder_app(prog: str, doc: str, help: str, expected: str) -> Callable[[Callable[[Path], None]], Callable[..., int]]:
    """Decorator: `run(folder)` becomes `main(argv=None) -> 0`, an app of one folder argument.

    `doc`'s first line is the --help description; `help` describes the argument; `expected` says what a path
    that is no directory should have been.
    """

    def wrap(run: Callable[[Path], None]) -> Callable[..., int]:
        def parsed(argv: list[str] | None) -> None:
            parser = ArgumentParser(prog=f"python -m {prog}", description=doc.splitlines()[0])
            parser.add_argument("dir", type=Path, help=help)
            folder: Path = parser.parse_args(argv).dir
            if not folder.is_dir():
                raise UserError(f"{folder} is not a directory; give {expected}")
            run(folder)

        def main(argv: list[str] | None = None) -> int:
            """Run the app inside the error boundary: 0, or one line and SystemExit."""
            with boundary(prog):
                parsed(argv)
            return 0

        return main

    return wrap
