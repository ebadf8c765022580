"""The optional parts of mnist_hydra, the pip extra that installs each, and the one line that names it.

A plain `pip install mnist-hydra` trains, evaluates, predicts and sweeps with Hydra's basic launcher. The
rest is an extra (pyproject.toml's [project.optional-dependencies]); a command that needs one calls
`require_extra` before it starts, and a user without it reads one line:
`python -m mnist_hydra.serve needs fastapi, uvicorn: pip install 'mnist-hydra[serve]'`.
Nothing on the core's import path imports an extra's package at module level (tests/test_extras.py).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence

from mnist_hydra.errors import UserError

# Each extra: the modules a command imports from it -> the distribution pip installs them from.
EXTRAS: dict[str, dict[str, str]] = {
    "serve": {"fastapi": "fastapi", "uvicorn": "uvicorn", "python_multipart": "python-multipart"},
    "export": {"ai_edge_litert": "ai-edge-litert", "tf2onnx": "tf2onnx", "onnx": "onnx", "onnxruntime": "onnxruntime"},
    "search": {"optuna": "optuna", "cmaes": "cmaes"},
    "mlflow": {"mlflow": "mlflow"},
    "tensorboard": {"tensorboard": "tensorboard"},
    "launchers": {
        "hydra_plugins.hydra_joblib_launcher": "hydra-joblib-launcher",
        "hydra_plugins.hydra_submitit_launcher": "hydra-submitit-launcher",
    },
    "ray": {"ray": "ray"},
}

# Config options that a launcher package files in Hydra's ConfigStore itself: without the package Hydra
# cannot find the option at all, so the error boundary asks here which extra would have brought it.
PLUGIN_OPTIONS: dict[str, tuple[str, str]] = {
    "hydra/launcher/joblib": ("launchers", "hydra_plugins.hydra_joblib_launcher"),
    "hydra/launcher/submitit_local": ("launchers", "hydra_plugins.hydra_submitit_launcher"),
    "hydra/launcher/submitit_slurm": ("launchers", "hydra_plugins.hydra_submitit_launcher"),
}


class MissingExtra(UserError):
    """A command needs a package of an extra that is not installed: the environment's state, not the words."""

    exit_code = 1


def missing(extra: str, modules: Sequence[str] | None = None) -> list[str]:
    """The distributions of `extra` (or only those giving `modules`) that are not installed."""
    wanted = EXTRAS[extra]
    return [wanted[name] for name in modules or wanted if not _installed(name)]


def require_extra(extra: str, what: str, modules: Sequence[str] | None = None) -> None:
    """MissingExtra, in one line, when `what` (a command or an option, as the user wrote it) lacks a package
    of `extra`; `modules`: only these of the extra's modules are needed."""
    message = missing_message(extra, what, modules)
    if message is not None:
        raise MissingExtra(message)


def missing_message(extra: str, what: str, modules: Sequence[str] | None = None) -> str | None:
    """The one line for `what` when a package of `extra` is missing; None when all are installed."""
    absent = missing(extra, modules)
    if not absent:
        return None
    return f"{what} needs {', '.join(absent)}: pip install 'mnist-hydra[{extra}]'"


def plugin_option_message(config_file: str) -> str | None:
    """The one line for a Hydra option (e.g. `hydra/launcher/joblib`) that an uninstalled extra would have filed."""
    if config_file not in PLUGIN_OPTIONS:
        return None
    extra, module = PLUGIN_OPTIONS[config_file]
    group, _, option = config_file.rpartition("/")
    return missing_message(extra, f"{group}={option}", [module])


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package that is missing, or a module set to None in sys.modules
        return False
