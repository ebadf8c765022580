"""The rest of mnist_hydra that the tracking package uses, in one place (one edit when modules move).

Imported when called: mnist_hydra.artifacts loads pandas, and the config module imports this package
on the start-up path of --help.
"""

from __future__ import annotations

import os
from typing import Any


def read_json(path: str | os.PathLike) -> dict[str, Any]:
    """mnist_hydra.artifacts.read_json: a JSON object file, {} when missing or unreadable."""
    from mnist_hydra.artifacts import read_json as read

    return read(path)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """mnist_hydra.artifacts.write_json: written atomically."""
    from mnist_hydra.artifacts import write_json as write

    write(path, obj)
