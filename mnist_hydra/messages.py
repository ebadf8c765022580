"""One-line wording of the errors a user can cause, Hydra's included."""

from __future__ import annotations

import dataclasses
import errno
import re
import typing
from typing import Any, Optional

from hydra.errors import HydraException, MissingConfigException, OverrideParseException
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException, ValidationError

from mnist_hydra.errors import UserError


# What a path the user chose can do wrong when written: theirs to fix, not a bug of ours.
WRITE_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.ENOTDIR}


def describe(err: BaseException) -> Optional[str]:
    """One line saying what was wrong and what would be accepted; None for errors that are bugs."""
    if isinstance(err, UserError):
        return _one_line(str(err))
    if isinstance(err, OSError) and err.filename and err.errno in WRITE_ERRNOS:
        return (f"cannot write {err.filename}: {err.strerror}; choose another output directory with "
                "hydra.run.dir=PATH (sweeps: hydra.sweep.dir=PATH)")
    if isinstance(err, ValueError) and str(err) == "No trials are completed yet.":
        # Optuna's sweeper asks for the best trial after a search in which every trial failed.
        return ("no trial of the search completed, so there is no best one; each job's metrics.json "
                "in the sweep directory says why it failed")
    if isinstance(err, MissingConfigException):
        group, _, option = (err.missing_cfg_file or "").rpartition("/")
        # Hydra lists the options only for a single choice; for one item of a list (logger=[a,b]) we look.
        options = err.options if err.options is not None else _packaged_options(group)
        if group and options:
            return f"{group}={option} is not a {group} option; choose one of: {', '.join(options)}"
    if isinstance(err, OverrideParseException):
        return f"cannot parse an override: {_one_line(str(err).splitlines()[0])} (see --help for the syntax)"
    if isinstance(err, HydraException):
        cause = err.__cause__
        if isinstance(cause, OmegaConfBaseException) and getattr(cause, "full_key", None):
            return _describe_field(cause)
        return _one_line(str(err))
    return None


def _packaged_options(group: str) -> list[str]:
    """The YAML options of config group `group` in mnist_hydra's own conf/ folder."""
    from importlib import resources

    try:
        folder = resources.files("mnist_hydra.conf").joinpath(*group.split("/"))
        return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))
    except (OSError, ValueError):
        return []


def _describe_field(cause: OmegaConfBaseException) -> str:
    key = cause.full_key
    schema = cause.object_type
    fields = typing.get_type_hints(schema) if dataclasses.is_dataclass(schema) else {}
    parent, _, leaf = key.rpartition(".")
    if isinstance(cause, (ConfigKeyError, ConfigAttributeError)):
        where = parent or "the top level"
        return f"{key} is not a config key; {where} accepts: {', '.join(sorted(fields))}"
    if isinstance(cause, ValidationError) and leaf in fields:
        match = re.search(r"Value '(.*)' of type", str(cause))
        value = match.group(1) if match else "this value"
        return f"{key}={value} has the wrong type: expected {_type_words(fields[leaf])}"
    return f"{key}: {_one_line(str(cause).splitlines()[0])}"


def _type_words(annotation: Any) -> str:
    """'an integer', 'a number or null', 'a list of integers' for a field's annotation."""
    words = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Union and type(None) in args:
        inner = [a for a in args if a is not type(None)]
        return f"{_type_words(inner[0])} or null"
    if origin in (list, typing.List) and args:
        return f"a list of {_type_words(args[0]).split(' ', 1)[1]}s, e.g. [1,2]"
    return words.get(annotation, str(annotation))


def _one_line(text: str) -> str:
    return " ".join(part.strip() for part in text.splitlines() if part.strip())
