"""The one error boundary of every app: user mistakes end in one line on stderr, bugs keep their traceback.

- A user mistake (UserError, or Hydra's and OmegaConf's errors about the command line) prints
  `PROG: error: ...` and exits with its code: 2 for config and usage, 1 for data and output trouble.
- Ctrl-C or SIGTERM at any moment (training stops cleanly on its own: training/signals.py) prints one line
  and exits 130 or 143; a run or sweep directory that holds checkpoints is kept, and the line says how to
  resume it.
- Either way, a run or evaluation directory that this process created and that holds no result is
  removed (runs/claims.py keeps the list), so no stub is left for `summarize` to list.
- Hydra's command line is checked before Hydra sees it (check_hydra_flags), and the errors Hydra lets
  through unwrapped are recognised by their type and message (_hydra_input_error), so no mistake on it prints a traceback or a usage.
- Anything else is a bug: its traceback is shown. HYDRA_FULL_ERROR=1 shows every traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import logging
import os
import re
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any, NoReturn

from hydra.errors import HydraException, MissingConfigException, OverrideParseException
from omegaconf.errors import OmegaConfBaseException

from mnist_hydra.config import describe_field
from mnist_hydra.errors import ConfigError, UserError, one_line
from mnist_hydra.extras import MissingExtra, plugin_option_message
from mnist_hydra.runs import claims

_full_error = False  # the user's HYDRA_FULL_ERROR=1: every traceback shown


@contextlib.contextmanager
def boundary(prog: str, *, hydra_flags: bool = False) -> Iterator[None]:
    """The app's body runs inside this: a user mistake ends in one line and its exit code, Ctrl-C or SIGTERM in
    one line and 128 + the signal's number, a bug keeps its traceback. `hydra_flags`: check the command line's
    flags first, as Hydra's own parser will (it would print its whole usage for a mistake).

    A context manager, not a wrapper: the body's frames are the app's own, one fewer per layer for every
    traceback and profile.
    """
    global _full_error
    before = os.environ.get("HYDRA_FULL_ERROR")
    _full_error = before == "1"
    # Hydra prints its own multi-line report unless this is set; set, it raises and we word the error.
    os.environ["HYDRA_FULL_ERROR"] = "1"
    # A log file that cannot take a line (a full disk) must not print a traceback per line: the console
    # handler still shows it, and the write error that matters is reported once, by the code that writes.
    logging.raiseExceptions = False
    # SIGTERM (a scheduler's stop, `kill`) unwinds like Ctrl-C wherever training does not handle it itself,
    # so it too leaves no stub directory and prints one line.
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if main else None
    try:
        if hydra_flags:
            check_hydra_flags(sys.argv[1:])
        yield
    except KeyboardInterrupt as stop:
        interrupted(prog, stop)
    except BrokenPipeError:
        # `... | head` closed our stdout: nothing more to say to it, and no traceback (Python's docs' recipe).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
    except Exception as err:
        claims.discard_created()
        if _full_error or user_error(err) is None:
            raise
        exit_with(err, prog)
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)
        if before is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = before


class Terminated(KeyboardInterrupt):
    """SIGTERM outside training: a KeyboardInterrupt, so that Hydra's launchers let it through as they do Ctrl-C."""

    signum = signal.SIGTERM


def _terminate(signum: int, frame: object) -> None:
    raise Terminated()


def check_hydra_flags(argv: list[str]) -> None:
    """ConfigError in one line for what Hydra's command line refuses, before Hydra sees it: an unknown flag or a
    bad --cfg choice (Hydra's argparse would print its whole usage), an override without a key (`=3`, which
    Hydra lets through to a ValueError), a config group given something other than an option's name
    (`model=5`, `data=[1]`, which Hydra lets through to a ValueError or TypeError); OverrideParseException for
    an override it cannot parse."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from mnist_hydra.apps.hydra_cli import args_parser, config_groups, is_group

    parser = args_parser()

    def error(message: str) -> NoReturn:
        raise ConfigError(f"{message}; see --help for the flags and overrides it takes")

    parser.error = error  # type: ignore[method-assign]
    known, unknown = parser.parse_known_args(argv)
    if unknown:
        # Hydra's command line takes its overrides in one run: any after a flag (`a=1 -m b=2`) are left over.
        before = [arg for arg in argv[: argv.index(unknown[0])] if arg.startswith("-")]
        order = (
            f" (after {before[-1]}: give the flags first, then every override)" if before and "=" in unknown[0] else ""
        )
        error(f"unrecognized arguments: {' '.join(unknown)}{order}")
    groups = config_groups()
    for override in OverridesParser.create().parse_overrides(known.overrides):
        if not override.key_or_group:
            error(
                f"cannot parse the override {override.input_line}: it has no key before the '='; "
                "overrides are key=value or group=option"
            )
        if is_group(override.key_or_group, groups):
            _check_group_choice(override)


def _check_group_choice(override: Any) -> None:
    """ConfigError unless a config group's override names options: a string, or a list of strings."""
    if override.is_sweep_override():
        return  # each job of the sweep gets one value, checked as that job composes
    value = override.value()
    if isinstance(value, dict):
        return  # `group={key: value}` sets keys, as Hydra reads it
    if override.is_delete():
        if value is not None and not isinstance(value, str):
            raise ConfigError(
                f"cannot apply the override {override.input_line}: deleting a config group takes no value or "
                f"an option's name, not {type(value).__name__}; --help lists the groups and their options"
            )
        return
    if not isinstance(value, (str, list)):
        raise ConfigError(
            f"cannot apply the override {override.input_line}: Config group override must be a string or a "
            f"list. Got {type(value).__name__}; --help lists the groups and their options, --cfg job every key"
        )
    if isinstance(value, list):
        wrong = next((item for item in value if not isinstance(item, str)), None)
        if wrong is not None or None in value:
            raise ConfigError(
                "cannot pick the config groups' options from the command line: argument of type "
                f"'{type(wrong).__name__}' is not iterable; a group takes an option's name, e.g. model=cnn "
                "(--help lists them)"
            )


@contextlib.contextmanager
def job_boundary(prog: str) -> Iterator[None]:
    """The boundary inside a Hydra task function (its body runs inside this), where Hydra would otherwise first
    log "Error executing job with overrides" for every exception it sees, user mistakes included."""
    try:
        yield
    except KeyboardInterrupt as stop:
        interrupted(prog, stop)
    except Exception as err:
        if _full_error or user_error(err) is None:
            raise
        claims.discard_created()
        exit_with(err, prog)


def interrupted(prog: str, stop: BaseException | None = None) -> NoReturn:
    """Ctrl-C or SIGTERM outside a clean stop of training (start-up, data loading, writing, a sweep's launcher):
    one line, exit 128 + the signal's number, no stub directory; what holds a checkpoint is kept and named."""
    signum = getattr(stop, "signum", signal.SIGINT)
    name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
    kept = claims.discard_created()
    if kept is None:
        print(f"{prog}: interrupted ({name}); nothing of this command was kept", file=sys.stderr)
    else:
        print(
            f"{prog}: interrupted ({name}); what was done is kept in {kept}. Resume with: python -m mnist_hydra "
            f"resume={kept}",
            file=sys.stderr,
        )
    sys.exit(128 + signum)


def user_error(err: BaseException) -> BaseException | None:
    """The user's mistake behind `err`, or None for a bug.

    A UserError raised inside an OmegaConf resolver reaches us wrapped in an
    InterpolationResolutionError (as its __context__), so the chain is searched first.
    """
    seen: set[int] = set()
    link: BaseException | None = err
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
    sys.exit(exit_code(cause))


def exit_code(cause: BaseException) -> int:
    """A UserError's own code; 1 for a path that cannot be written and for memory, as for data; else 2 (usage)."""
    if hasattr(cause, "exit_code"):
        return int(cause.exit_code)
    if isinstance(cause, MissingConfigException) and plugin_option_message(cause.missing_cfg_file or "") is not None:
        return MissingExtra.exit_code  # an option of a launcher package that is not installed, as for any extra
    if (
        isinstance(cause, OSError)
        and cause.errno in PATH_ERRNOS
        or isinstance(cause, MemoryError)
        or _out_of_memory(cause)
    ):
        return 1
    return 2


# What a path the user chose can do wrong when written or created: theirs to fix, not a bug of ours.
PATH_ERRNOS = {
    errno.EACCES,
    errno.EPERM,
    errno.EROFS,
    errno.ENOSPC,
    errno.EDQUOT,
    errno.ENOTDIR,
    errno.EEXIST,
    errno.ENOENT,
    errno.EISDIR,
    errno.ENAMETOOLONG,
    errno.ELOOP,
}


def describe(err: BaseException) -> str | None:
    """One line saying what was wrong and what would be accepted; None for errors that are bugs."""
    if isinstance(err, UserError):
        return one_line(str(err))
    if isinstance(err, OSError) and err.filename and err.errno in PATH_ERRNOS:
        # Hydra's own mkdir of a hydra.run.dir / hydra.sweep.dir given literally.
        return (
            f"cannot write {err.filename}: {err.strerror}; choose another output directory with "
            "hydra.run.dir=PATH (sweeps: hydra.sweep.dir=PATH)"
        )
    if isinstance(err, MemoryError) or _out_of_memory(err):
        # TensorFlow's message names the tensor: "OOM when allocating tensor with shape[4732,100000000] ...".
        shape = re.search(r"OOM when allocating tensor with shape\[[^\]]*\]", str(err))
        return (
            f"out of memory{': ' + shape.group(0) if shape else ''}; choose a smaller model "
            "(model.*) or batch (trainer.batch_size, trainer.eval_batch_size)"
        )
    unwrapped = _hydra_input_error(err)
    if unwrapped is not None:
        return unwrapped
    if isinstance(err, ValueError) and str(err) == "No trials are completed yet.":
        # Optuna's sweeper asks for the best trial after a search in which every trial failed.
        return (
            "no trial of the search completed, so there is no best one; each job's metrics.json "
            "in the sweep directory says why it failed"
        )
    if isinstance(err, MissingConfigException):
        from_extra = plugin_option_message(err.missing_cfg_file or "")
        if from_extra is not None:  # hydra/launcher=joblib without hydra-joblib-launcher: Hydra knows no such option
            return from_extra
        group, _, option = (err.missing_cfg_file or "").rpartition("/")
        # Hydra lists the options only for a single choice; for one item of a list (logger=[a,b]) we look.
        options = err.options if err.options is not None else _packaged_options(group)
        if group and options:
            article = "an" if group[:1] in "aeiou" else "a"
            return f"{group}={option} is not {article} {group} option; choose one of: {', '.join(options)}"
    if isinstance(err, OverrideParseException):
        reason = "; ".join(line for line in str(err).splitlines() if line.strip() and not line.startswith("See "))
        override = str(getattr(err, "override", "") or "")
        # Hydra's grammar takes only ASCII unquoted: a path such as /data/données reads as a syntax error.
        what = "non-ASCII characters, " if not override.isascii() else ""
        return (
            f"cannot parse the override {override}: {one_line(reason)}; a value with {what}"
            """spaces or any of ()[]{},='" must be quoted, e.g. 'data.root="/my data/mnist"' (see --help)"""
        )
    if isinstance(err, HydraException):
        not_here = re.match(r"Could not override '([^']+)'\. No match in the defaults list", str(err))
        if not_here:  # Hydra then suggests `+key=`, which only leads to a cryptic ConfigKeyError, but for a preset
            group = not_here.group(1)
            if group == "experiment":  # the one group no defaults list names: a training adds its presets
                presets = ", ".join(_packaged_options(group))
                return f"experiment needs a plus: a training adds a preset, python -m mnist_hydra +experiment=NAME ({presets})"
            return f"{group} is not a config group of this command; see --help for what it takes"
        twice = re.match(r"Multiple values for (\S+)\. To override a value use 'override", str(err))
        if twice:  # Hydra's advice is for a defaults list in YAML, not a command line
            group = twice.group(1)
            return f"{group} is given more than once; give it once, or its options as one list, e.g. +{group}=[a,b]"
        field = _field_error(err)
        return _with_preset(describe_field(field), field) if field is not None else one_line(str(err))
    if isinstance(err, OmegaConfBaseException) and getattr(err, "full_key", None):
        return _with_preset(describe_field(err), err)
    return None


def _with_preset(line: str, cause: OmegaConfBaseException) -> str:
    """`line`, and for a key that a preset on the command line sets (+experiment=best sets model.filters for its
    cnn_deep; model=mlp has none) which preset it is and for which option: else the key seems to come from nowhere."""
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError

    if not isinstance(cause, (ConfigKeyError, ConfigAttributeError)):
        return line
    key = str(cause.full_key)
    for preset in _presets_given(sys.argv[1:]):
        content = _preset_yaml(preset)
        node: Any = content
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node is None:
            continue
        group = key.split(".")[0]
        chosen = next(
            (
                str(v)
                for d in content.get("defaults") or []
                if isinstance(d, dict)
                for k, v in d.items()
                if k.endswith(f"/{group}")
            ),
            None,
        )
        option = f" for its {group}={chosen}" if chosen else ""
        return f"{line} (+experiment={preset} sets {key}{option}: leave out {group}=..., or the preset)"
    return line


def _presets_given(argv: list[str]) -> list[str]:
    """The +experiment=NAME presets on a command line (one or a list)."""
    from mnist_hydra.apps.hydra_cli import parse_overrides

    try:
        overrides = parse_overrides(argv)
    except Exception:  # a line Hydra cannot parse has been reported for that already
        return []
    names: list[str] = []
    for override in overrides:
        if override.key_or_group == "experiment":
            value = override.value()
            names += [str(v) for v in value] if isinstance(value, list) else [str(value)]
    return names


def _preset_yaml(name: str) -> dict[str, Any]:
    """The packaged conf/experiment/NAME.yaml as a dict; {} when there is none."""
    from importlib import resources

    import yaml

    try:
        content = yaml.safe_load(resources.files("mnist_hydra.conf").joinpath(f"experiment/{name}.yaml").read_text())
    except (OSError, ValueError, yaml.YAMLError):
        return {}
    return content if isinstance(content, dict) else {}


def _hydra_input_error(err: BaseException) -> str | None:
    """One line for a ValueError that Hydra lets through unwrapped while it reads the command line, told by its
    message, else None: OmegaConf's for a word as a list index (`plugins.x=1`) while an override is applied, and
    Hydra's for a group given a number (`model=5`) in an app whose flags are not checked up front."""
    if not isinstance(err, ValueError):
        return None
    message = str(err)
    if message.startswith("Config group override must be a string or a list."):
        return (
            f"cannot pick the config groups' options from the command line: {one_line(err)}; a group takes "
            "an option's name, e.g. model=cnn (--help lists them)"
        )
    index = re.fullmatch(r"invalid literal for int\(\) with base 10: '([^']*)'", message)
    if index is None:
        return None
    from mnist_hydra.apps.hydra_cli import parse_overrides

    try:
        overrides = parse_overrides(sys.argv[1:])
    except Exception:  # the command line is not Hydra's: the error is not about it
        return None
    for override in overrides:
        key = override.key_or_group or ""
        if index.group(1) in key.split(".")[1:]:
            return (
                f"cannot apply the override {override.input_line}: {one_line(err)}; "
                "--help lists the groups and their options, --cfg job every key"
            )
    return None


def _out_of_memory(err: BaseException) -> bool:
    """TensorFlow's ResourceExhaustedError (an allocation failed), told by name: TensorFlow is not imported here."""
    return any(cls.__name__ == "ResourceExhaustedError" for cls in type(err).__mro__)


def _field_error(err: BaseException) -> OmegaConfBaseException | None:
    """OmegaConf's error about one key somewhere in `err`'s chain (Hydra wraps it once or twice)."""
    link: BaseException | None = err
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
