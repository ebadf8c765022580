"""Atomic file I/O for a run's files: JSON, CSV, and anything a writer callback produces.

numpy and pandas are imported where they are used: every app's start-up path reads run files through
this module, and pandas alone costs a bad command line most of a second.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mnist_hydra.errors import OutputError

if TYPE_CHECKING:
    import pandas as pd


TEMP_MARK = ".tmp-"  # in the name of every temporary file atomic_write makes: .NAME.tmp-XXXXXXXX.SUFFIX


def atomic_write(path: str | os.PathLike[str], write: Callable[[Path], object]) -> None:
    """Let `write` fill a temporary file beside `path`, then move it onto `path` in one step.

    OutputError naming `path` when the file system refuses (full, read-only, gone): the writer's own
    OSError (Keras's and h5py's name no file) is the cause.
    """
    path = Path(path)
    # Same directory so os.replace stays a rename on one file system; same final suffix
    # because Keras and matplotlib choose the file format from it.
    tmp = path.with_name(f".{path.name}{TEMP_MARK}{secrets.token_hex(4)}{path.suffix}")
    try:
        # O_EXCL: never reuse someone else's file; mode 0o666 lets the umask decide, as open() would.
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        write(tmp)
        _fsync(tmp)
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot write {path}: {err.strerror or err}") from err
    except BaseException:
        # BaseException too: a Ctrl-C mid-sweep must not leave temp files behind.
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def discard_temp_files(folder: str | os.PathLike[str]) -> None:
    """Remove the temporary files a killed writer left in `folder` (only its owner, holding the lock, may)."""
    for leftover in Path(folder).glob(f".*{TEMP_MARK}*"):
        leftover.unlink(missing_ok=True)


def check_writable(directory: str | os.PathLike[str], need_bytes: int) -> None:
    """Fail now, not after training, if `directory` cannot take a file or lacks `need_bytes` of space."""
    directory = Path(directory)
    probe = directory / f".write-test-{secrets.token_hex(4)}"
    try:
        try:
            probe.write_bytes(b"mnist_hydra")
        finally:
            probe.unlink(missing_ok=True)  # a full disk lets the file be made, then refuses its bytes
        free = shutil.disk_usage(directory).free
    except OSError as err:
        raise OutputError(
            f"cannot write the run directory {directory}: {err.strerror or err}; "
            "choose another with hydra.run.dir=PATH (sweeps: hydra.sweep.dir=PATH)"
        ) from err
    if free < need_bytes:
        raise OutputError(
            f"the run directory {directory} has {free / 1e6:.1f} MB free, a run needs about "
            f"{need_bytes / 1e6:.0f} MB; free some space or choose another with hydra.run.dir=PATH"
        )


def read_json(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A JSON object file such as metrics.json; {} when it is missing, unreadable or not an object."""
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write `obj` as indented JSON; numpy scalars and arrays become plain numbers and lists."""
    text = json.dumps(obj, indent=2, default=_to_builtin) + "\n"
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_csv(path: str | os.PathLike[str], frame: pd.DataFrame) -> None:
    """Write a DataFrame as CSV, without its index."""
    atomic_write(path, lambda tmp: frame.to_csv(tmp, index=False))


def write_history_csv(path: str | os.PathLike[str], history: dict[str, list[float]]) -> None:
    """Write a Keras history as CSV: one row per epoch, `epoch` (from 1) then the history keys."""
    import pandas as pd

    frame = pd.DataFrame({key: list(values) for key, values in history.items()})
    frame.insert(0, "epoch", range(1, len(frame) + 1))
    write_csv(path, frame)


def _to_builtin(value: Any) -> Any:
    """json.dumps fallback for the numpy types a metrics dict tends to hold."""
    import numpy as np

    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON: {value!r}")


def _fsync(path: Path) -> None:
    """Flush a written file to disk, so a crash cannot leave a renamed but empty file."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable; skipped where directories cannot be opened (Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
