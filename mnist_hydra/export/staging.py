"""Writing an export beside its place and moving it in only once it has passed: a failed export never replaces a
good one."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def staged(export_root: Path, fmt: str) -> Iterator[Path]:
    """An empty hidden folder in `export_root` for `fmt`'s files; whatever is left of it is removed at the end."""
    staging = export_root / f".{fmt}.tmp-{secrets.token_hex(4)}"
    try:
        staging.mkdir()
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def move_into_place(staging: Path, target: Path) -> None:
    """Replace `target` with `staging`: the old export is renamed aside first and removed last."""
    old = target.with_name(f".{target.name}.old-{secrets.token_hex(4)}")
    if target.exists():
        os.replace(target, old)
    os.replace(staging, target)
    shutil.rmtree(old, ignore_errors=True)


def files(folder: Path) -> dict[str, int]:
    """An export's files (its export.json aside) and their sizes in bytes."""
    return {
        str(p.relative_to(folder)): p.stat().st_size
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != "export.json"
    }


def size(folder: Path) -> int:
    return sum(files(folder).values())
