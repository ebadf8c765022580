"""A throw-away PostgreSQL server for a test: Debian's binaries, its own data directory, loopback only."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

BINARIES = Path("/usr/lib/postgresql")  # Debian's postgresql package: one bin/ per major version


def bindir() -> Path | None:
    """The newest installed PostgreSQL's bin/ folder, or None."""
    found = sorted(BINARIES.glob("*/bin/initdb"), key=lambda p: (len(p.parts[-3]), p.parts[-3]))
    return found[-1].parent if found else None


def free_port() -> int:
    """A TCP port free on loopback now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def server() -> Iterator[str]:
    """A started server's URL (user postgres, no password, database postgres); stopped and removed at the end.

    PostgreSQL refuses to run as root, so under root (CI) it runs as the `postgres` system user, in a folder it owns.
    """
    binaries = bindir()
    assert binaries is not None, "no PostgreSQL binaries (apt-get install postgresql)"
    root = Path(tempfile.mkdtemp(prefix="mnist_hydra-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        os.chown(root, owner.pw_uid, owner.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = root / "data", free_port()

    def run(*args: str) -> None:
        subprocess.run([*as_user, *args], check=True, capture_output=True, text=True, timeout=120)

    try:
        run(str(binaries / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
        # Loopback only, its socket in its own folder, no fsync (a test's data need not survive a power cut).
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -F"
        run(str(binaries / "pg_ctl"), "-D", str(data), "-l", str(root / "server.log"), "-o", options, "-w", "start")
        try:
            yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
        finally:
            run(str(binaries / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")
    finally:
        shutil.rmtree(root, ignore_errors=True)
