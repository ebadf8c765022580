"""The one error boundary of every app: user mistakes end in one line on stderr, bugs keep their traceback.

- A user mistake (UserError, or Hydra's and OmegaConf's errors about the command line) prints
  `PROG: error: ...` and exits with its code: 2 for config and usage, 1 for data and output trouble.
- Ctrl-C (or SIGTERM, where an app turns it into KeyboardInterrupt) at any moment prints one line and
  exits 130.
- Either way, a run or evaluation directory that this process created and that holds no result is
  removed (apps.resolvers keeps the list), so no stub is left for `summarize` to list.
- Anything else is a bug: its traceback is shown. HYDRA_FULL_ERROR=1 shows every traceback.
"""

from __future__ import annotations

import argparse
import errno
import functools
import os
import re
import sys
from typing import Any, Callable, NoReturn, Optional, TypeVar

from hydra.errors import HydraException, MissingConfigException, OverrideParseException
from omegaconf.errors import OmegaConfBaseException

from mnist_hydra.apps import resolvers
from mnist_hydra.config import describe_field
from mnist_hydra.errors import ConfigError, UserError, one_line

F = TypeVar("F", bound=Callable[..., Any])
INTERRUPTED = 130  # the shell's code for a process ended by SIGINT
_full_error = False  # the user's HYDRA_FULL_ERROR=1: every traceback shown


def run_app(app: Callable[[], Any], prog: str) -> None:
    """Call a `@hydra.main` function (or any app) inside the boundary."""
    global _full_error
    before = os.environ.get("HYDRA_FULL_ERROR")
    _full_error = before == "1"
    # Hydra prints its own multi-line report unless this is set; set, it raises and we word the error.
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        _call(app, prog)
    finally:
        if before is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = before


def _call(app: Callable[[], Any], prog: str) -> None:
    try:
        app()
    except KeyboardInterrupt:
        interrupted(prog)
    except BrokenPipeError:
        # `... | head` closed our stdout: nothing more to say to it, and no traceback (Python's docs' recipe).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
    except Exception as err:
        resolvers.discard_created()
        if _full_error or user_error(err) is None:
            raise
        exit_with(err, prog)


def guard(prog: str) -> Callable[[F], F]:
    """Decorator for a Hydra task function: the boundary inside the job, where Hydra would otherwise first
    print "Error executing job with overrides" for every exception it sees."""

    def wrap(task: F) -> F:
        @functools.wraps(task)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            try:
                return task(*args, **kwargs)
            except KeyboardInterrupt:
                interrupted(prog)
            except UserError as err:
                if _full_error:
                    raise
                resolvers.discard_created()
                exit_with(err, prog)

        return guarded  # type: ignore[return-value]

    return wrap


def interrupted(prog: str) -> NoReturn:
    """Ctrl-C outside training (start-up, data loading, writing): one line, exit 130, no stub directory."""
    resolvers.discard_created()
    print(f"{prog}: interrupted (Ctrl-C); nothing of this command was kept", file=sys.stderr)
    sys.exit(INTERRUPTED)


def user_error(err: BaseException) -> Optional[BaseException]:
    """The user's mistake behind `err`, or None for a bug.

    A UserError raised inside an OmegaConf resolver reaches us wrapped in an
    InterpolationResolutionError (as its __context__), so the chain is searched first.
    """
    seen: set[int] = set()
    link: Optional[BaseException] = err
    while link is not None and id(link) not in seen:
        if isinstance(link, UserError):
            return link
        seen.add(id(link))
        link = link.__cause__ or link.__context__
    return err if describe(err) is not None else None


def exit_with(err: BaseException, prog: str) -> NoReturn:
    """Print `err` as one line (`PROG: error: ...`) and exit with its code (2 unless it says otherwise)."""
    cause = user_error(err) or err
    print(f"{prog}: error: {describe(cause) or one_line(cause)}", file=sys.stderr)
    sys.exit(getattr(cause, "exit_code", 2))


# What a path the user chose can do wrong when written or created: theirs to fix, not a bug of ours.
PATH_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.ENOTDIR, errno.EEXIST,
               errno.ENOENT, errno.EISDIR, errno.ENAMETOOLONG, errno.ELOOP}


def describe(err: BaseException) -> Optional[str]:
    """One line saying what was wrong and what would be accepted; None for errors that are bugs."""
    if isinstance(err, UserError):
        return one_line(str(err))
    if isinstance(err, OSError) and err.filename and err.errno in PATH_ERRNOS:
        # Hydra's own mkdir of a hydra.run.dir / hydra.sweep.dir given literally.
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
        reason = "; ".join(line for line in str(err).splitlines() if line.strip() and not line.startswith("See "))
        return (f"cannot parse the override {getattr(err, 'override', '') or ''!s}: {one_line(reason)}; a value with "
                """spaces or any of ()[]{},='" must be quoted, e.g. 'data.root="/my data/mnist"' (see --help)""")
    if isinstance(err, HydraException):
        not_here = re.match(r"Could not override '([^']+)'\. No match in the defaults list", str(err))
        if not_here:  # Hydra then suggests `+key=`, which only leads to a cryptic ConfigKeyError
            return f"{not_here.group(1)}= is not an option of this command; see --help for what it takes"
        field = _field_error(err)
        return describe_field(field) if field is not None else one_line(str(err))
    if isinstance(err, OmegaConfBaseException) and getattr(err, "full_key", None):
        return describe_field(err)
    return None


def _field_error(err: BaseException) -> Optional[OmegaConfBaseException]:
    """OmegaConf's error about one key somewhere in `err`'s chain (Hydra wraps it once or twice)."""
    link: Optional[BaseException] = err
    for _ in range(5):
        link = link.__cause__ or link.__context__ if link is not None else None
        if isinstance(link, OmegaConfBaseException) and getattr(link, "full_key", None):
            return link
    return None


class ArgumentParser(argparse.ArgumentParser):
    """argparse for the apps without Hydra: a usage mistake is one line through the boundary, exit 2."""

    def error(self, message: str) -> NoReturn:
        raise ConfigError(f"{message}; usage: {' '.join(self.format_usage().split()[1:])}")


def _packaged_options(group: str) -> list[str]:
    """The YAML options of config group `group` in mnist_hydra's own conf/ folder."""
    from importlib import resources

    try:
        folder = resources.files("mnist_hydra.conf").joinpath(*group.split("/"))
        return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))
    except (OSError, ValueError):
        return []
