"""Hydra's command line, read with public parts only: its flags (mirrored here) and its override grammar.

Hydra's own argparse parser lives in its private modules, so its flags are declared again here, the same
names, choices and arities; `tests/test_hydra_public.py` checks that the apps import nothing private.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Sequence
from typing import Any

# What `--info` may be asked to print, as Hydra takes it.
INFO_CHOICES = ["all", "config", "defaults", "defaults-tree", "plugins", "searchpath"]


def args_parser() -> argparse.ArgumentParser:
    """The flags `@hydra.main` accepts, with its overrides as the positional arguments."""
    import hydra

    parser = argparse.ArgumentParser(add_help=False, description="Hydra")
    parser.add_argument("--help", "-h", action="store_true")
    parser.add_argument("--hydra-help", action="store_true")
    parser.add_argument("--version", action="version", version=f"Hydra {hydra.__version__}")
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--cfg", "-c", choices=["job", "hydra", "all"])
    parser.add_argument("--resolve", action="store_true")
    parser.add_argument("--package", "-p")
    parser.add_argument("--run", "-r", action="store_true")
    parser.add_argument("--multirun", "-m", action="store_true")
    parser.add_argument("--shell-completion", "-sc", action="store_true")
    parser.add_argument("--config-path", "-cp")
    parser.add_argument("--config-name", "-cn")
    parser.add_argument("--config-dir", "-cd")
    parser.add_argument("--experimental-rerun")
    parser.add_argument("--info", "-i", const="all", nargs="?", action="store", choices=INFO_CHOICES)
    return parser


def parse_overrides(argv: Sequence[str]) -> list[Any]:
    """The command line's overrides (flags such as --cfg job left out), parsed by Hydra's own parsers."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    overrides = args_parser().parse_known_args(list(argv))[0].overrides
    return OverridesParser.create().parse_overrides(overrides)


def config_groups() -> set[str]:
    """The top-level config groups: mnist_hydra's conf/ folders, its schemas and the groups in Hydra's ConfigStore.
    A group under another (`hydra/launcher`) is told by its `/`."""
    from importlib import resources

    from hydra.core.config_store import ConfigStore

    # `schema` is served by hydra_plugins' SchemaSource, not the ConfigStore.
    groups = {"schema"} | {name for name in ConfigStore.instance().list("") if not name.endswith(".yaml")}
    with contextlib.suppress(OSError, ValueError):
        groups |= {p.name for p in resources.files("mnist_hydra.conf").iterdir() if p.is_dir() and p.name[:1] != "_"}
    return groups


def is_group(key: str, groups: set[str]) -> bool:
    return "/" in key or key in groups
