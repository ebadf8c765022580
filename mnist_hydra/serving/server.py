"""Run the API on uvicorn: load the model, listen, print the URL, stop cleanly on SIGINT or SIGTERM."""

from __future__ import annotations

import dataclasses
import errno
import logging
import os
import signal
import socket
import sys
import tempfile
import threading
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mnist_hydra.errors import OutputError, UserError
from mnist_hydra.runs.rundir import require_run
from mnist_hydra.serving.collect import prepare_collect_dir
from mnist_hydra.serving.process import prepare_process
from mnist_hydra.serving.served_run import headline, read_served_run
from mnist_hydra.serving.settings import ServeSettings

if TYPE_CHECKING:
    import uvicorn
    from fastapi import FastAPI

    from mnist_hydra.serving.compiled_model import Predictor

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Stopped(Exception):
    """A stop signal arrived; `signum` says which."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name


def serve(
    run_dir: str | os.PathLike[str],
    settings: ServeSettings,
    top_k: int = 3,
    prog: str = "mnist_hydra.serve",
    say: Callable[[str], None] = print,
) -> str | None:
    """Serve `run_dir`'s model until SIGINT or SIGTERM; return the name of the signal that stopped it.

    Args:
      run_dir: a training run's directory (it holds model.keras).
      settings: host, port, worker processes and request limits.
      top_k: classes listed per prediction by default.
      prog: the name the printed lines start with.
      say: where the start and stop lines go (stdout); the start line comes once requests are answered.
    """
    from mnist_hydra.tf_runtime import import_tensorflow

    if settings.collect_dir is not None:  # a bad folder fails now, before TensorFlow loads; workers get it absolute
        settings = dataclasses.replace(settings, collect_dir=str(prepare_collect_dir(settings.collect_dir)))
    model_path = require_run(Path(run_dir))  # so does a wrong run path
    import_tensorflow()  # here, without its start-up chatter, before anything of the server's imports it
    previous = {sig: signal.signal(sig, _raise_stopped) for sig in STOP_SIGNALS}
    sock = None
    announced = threading.Event()

    def announce(what: str) -> None:
        workers = f" with {settings.workers} worker processes" if settings.workers > 1 else ""
        collecting = f" ; labelled drawings go to {settings.collect_dir}" if settings.collect_dir else ""
        say(f"{prog}: serving {what} at {address}{workers}{collecting} ; Ctrl-C stops it")
        sys.stdout.flush()
        announced.set()

    try:
        sock = listen(settings.host, settings.port)  # so does a port in use; connections wait in the backlog
        address = url(settings.host, sock.getsockname()[1])
        if settings.workers == 1:
            from mnist_hydra.serving.compiled_model import Predictor

            predictor = Predictor(Path(run_dir), settings.threads)
            what = headline(predictor.info)
            stopped_by = _run_one(predictor, settings, top_k, sock, lambda: announce(what))
        else:
            what = headline(read_served_run(Path(run_dir), model_path))
            stopped_by = _run_workers(run_dir, settings, top_k, prog, sock, lambda: announce(what))
    except Stopped as stop:
        stopped_by = stop.name
    finally:
        if sock is not None:
            sock.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if not announced.is_set():
        say(f"{prog}: {stopped_by} received while loading the model; stopped before serving")
    else:
        say(f"{prog}: {stopped_by + ' received, ' if stopped_by else ''}server stopped")
    return stopped_by


def _config(app: FastAPI | str, settings: ServeSettings, **extra: Any) -> uvicorn.Config:
    import uvicorn

    return uvicorn.Config(
        app,
        log_level="warning",
        access_log=settings.access_log,
        lifespan="on",
        timeout_graceful_shutdown=10,
        # A bound on what clients can hold: connections beyond it get 503 (uvicorn's), idle ones close. A body that
        # stalls is timed out by the app (serving/limits.py): uvicorn has no timeout for it.
        limit_concurrency=settings.max_connections,
        timeout_keep_alive=settings.keep_alive_s,
        server_header=False,
        **extra,
    )


def _run_one(
    predictor: Predictor, settings: ServeSettings, top_k: int, sock: socket.socket, announce: Callable[[], None]
) -> str | None:
    """One process: the model loaded here, uvicorn on this event loop."""
    import uvicorn

    from mnist_hydra.serving.api import create_app

    server = uvicorn.Server(_config(create_app(predictor=predictor, settings=settings, top_k=top_k), settings))
    prepare_process()
    done = threading.Event()
    threading.Thread(target=_when_answering, args=(sock, done, announce), daemon=True).start()
    try:
        # uvicorn handles SIGINT/SIGTERM itself while it runs (a graceful shutdown: requests in progress
        # finish), then raises the signal again, which _raise_stopped turns into Stopped.
        server.run(sockets=[sock])
    except Stopped as stop:
        return stop.name
    finally:
        done.set()
    if not server.started:
        raise OutputError("the server could not start; see the lines above")
    return None


def _run_workers(
    run_dir: str | os.PathLike[str],
    settings: ServeSettings,
    top_k: int,
    prog: str,
    sock: socket.socket,
    announce: Callable[[], None],
) -> str | None:
    """Several processes sharing the socket, each with its own model (uvicorn's supervisor).

    The start line waits until a worker answers GET /health; a worker that cannot load the model
    leaves its reason in a file, and the parent says it once.
    """
    from uvicorn.supervisors import Multiprocess

    from mnist_hydra.serving import worker

    class Supervisor(Multiprocess):
        stopped_by: str | None = None

        def handle_int(self) -> None:
            self.stopped_by = "SIGINT"
            super().handle_int()

        def handle_term(self) -> None:
            self.stopped_by = "SIGTERM"
            super().handle_term()

    with tempfile.TemporaryDirectory(prefix="mnist_hydra-serve-") as tmp:
        error_file = Path(tmp) / "worker-error.txt"
        os.environ[worker.ENV_VAR] = worker.worker_spec(str(run_dir), settings, top_k, error_file)
        config = _config(
            "mnist_hydra.serving.worker:create_worker_app", settings, factory=True, workers=settings.workers
        )
        # The supervisor logs a worker's failed start as an ERROR; the parent words it itself below.
        logging.getLogger("uvicorn.error").setLevel(logging.CRITICAL)
        supervisor = Supervisor(config, sockets=[sock])
        done = threading.Event()
        threading.Thread(target=_when_answering, args=(sock, done, announce), daemon=True).start()
        try:
            supervisor.run()
        finally:
            done.set()
        if supervisor.stopped_by is None and error_file.exists():
            raise UserError(error_file.read_text(encoding="utf-8").strip())
        if supervisor.stopped_by is None and any(p.exitcode == worker.STARTUP_FAILURE for p in supervisor.processes):
            raise OutputError("a worker process could not start; see the lines above")
    return supervisor.stopped_by


def _when_answering(sock: socket.socket, done: threading.Event, then: Callable[[], None]) -> None:
    """Call `then` once GET /health on `sock`'s port answers 200 (unless `done` is set first): the start
    line comes when the server really answers."""
    host, port = sock.getsockname()[:2]
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    while not done.wait(0.05):
        try:
            with urllib.request.urlopen(url(host, port) + "health", timeout=2) as response:
                if response.status == 200:
                    if not done.is_set():
                        then()
                    return
        except OSError:
            continue


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (port 0: a free one); UserError naming serve.host/port if not."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as err:
        raise OutputError(
            f"serve.host={host}: not an address of this machine ({err.strerror}); "
            "e.g. serve.host=127.0.0.1, or 0.0.0.0 for every interface"
        ) from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as err:
        sock.close()
        if err.errno == errno.EADDRINUSE:
            raise OutputError(
                f"serve.port={port}: already in use on {host}; pick another port, or serve.port=0 for a free one"
            ) from None
        if err.errno in (errno.EACCES, errno.EPERM):
            raise OutputError(
                f"serve.port={port}: not allowed ({err.strerror}); ports below 1024 need root, pick one above"
            ) from None
        raise OutputError(f"serve.host={host} serve.port={port}: cannot listen ({err.strerror})") from None
    return sock


def url(host: str, port: int) -> str:
    """http://HOST:PORT/ (IPv6 addresses in brackets)."""
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def _raise_stopped(signum: int, frame: object) -> None:
    raise Stopped(signum)
