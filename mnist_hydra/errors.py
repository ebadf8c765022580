"""Errors a user can cause, and a training stopped by a signal: shown as one line, without a traceback."""

from __future__ import annotations

import signal


class UserError(Exception):
    """A mistake in what the user gave us (config, data, paths), not a bug in mnist_hydra."""

    exit_code = 2


class ConfigError(UserError):
    """A config value that the schema does not accept."""

    exit_code = 2


class DataError(UserError):
    """A data set that is missing, truncated, corrupt or unreachable."""

    exit_code = 1


class FieldError(ConfigError):
    """One config field out of its allowed range; `key` gets its group prefix on the way up."""

    def __init__(self, key: str, value: object, expected: str) -> None:
        super().__init__(key, value, expected)
        self.key, self.value, self.expected = key, value, expected

    def __str__(self) -> str:
        shown = "null" if self.value is None else self.value
        return f"{self.key}={shown} is not allowed: expected {self.expected}"


def require(ok: bool, key: str, value: object, expected: str) -> None:
    """Raise FieldError for `key` unless `ok`; `expected` says what would be accepted."""
    if not ok:
        raise FieldError(key, value, expected)


class OutputError(UserError):
    """Where the command must write or listen cannot be had: a run directory that is read-only, full or not a
    directory; a port in use. The machine's state, not the command's words (exit 1)."""

    exit_code = 1


class SweepFailed(UserError):
    """A sweep in which no job completed: each job's metrics.json says why (exit 1, as for a failed run)."""

    exit_code = 1


class Interrupted(KeyboardInterrupt):
    """Training stopped on a signal after `epochs_done` complete epochs.

    A KeyboardInterrupt, so Hydra's launchers let it through (they record an Exception as one failed
    job and go on with the next), and a sweep stops where the user stopped it.
    """

    def __init__(self, signum: int, epochs_done: int, epochs: int) -> None:
        super().__init__(signum, epochs_done, epochs)
        self.signum, self.epochs_done, self.epochs = signum, epochs_done, epochs
        self.exit_code = 128 + signum  # the shell's convention: 130 for SIGINT, 143 for SIGTERM

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name


class TrainingDiverged(UserError):
    """The loss became NaN, infinite or absurdly large: usually too high a learning rate."""

    exit_code = 1


def one_line(error: BaseException | str) -> str:
    """An error (or text) folded onto one line, for messages that must stay one line."""
    text = error if isinstance(error, str) else (str(error) or type(error).__name__)
    return " ".join(text.split())
