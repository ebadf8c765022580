"""Run the API on uvicorn: load the model, listen, print the URL, stop cleanly on SIGINT or SIGTERM."""

from __future__ import annotations

import errno
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Callable, Optional

from mnist_hydra.serving.project import UserError, require_run
from mnist_hydra.serving.runinfo import headline, read_run_info
from mnist_hydra.serving.settings import ServeSettings

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Stopped(Exception):
    """A stop signal arrived; `signum` says which."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name


def serve(run_dir: str | os.PathLike, settings: ServeSettings, top_k: int = 3, prog: str = "mnist_hydra.serve",
          say: Callable[[str], None] = print) -> Optional[str]:
    """Serve `run_dir`'s model until SIGINT or SIGTERM; return the name of the signal that stopped it.

    Args:
      run_dir: a training run's directory (it holds model.keras).
      settings: host, port, worker processes and request limits.
      top_k: classes listed per prediction by default.
      prog: the name the printed lines start with.
      say: where the start and stop lines go (stdout).
    """
    previous = {sig: signal.signal(sig, _raise_stopped) for sig in STOP_SIGNALS}
    sock = None
    state = {"serving": False}
    try:
        model_path = require_run(Path(run_dir))  # a wrong path fails here, before TensorFlow loads
        sock = listen(settings.host, settings.port)  # so does a port in use; connections wait in the backlog
        address = url(settings.host, sock.getsockname()[1])
        if settings.workers == 1:
            from mnist_hydra.serving.predictor import Predictor

            predictor = Predictor(Path(run_dir))
            what = headline(predictor.info)
        else:
            what = headline(read_run_info(Path(run_dir), model_path))
        workers = f" with {settings.workers} worker processes" if settings.workers > 1 else ""
        say(f"{prog}: serving {what} at {address}{workers} ; Ctrl-C stops it")
        sys.stdout.flush()
        state["serving"] = True
        if settings.workers == 1:
            stopped_by = _run_one(predictor, settings, top_k, sock)
        else:
            stopped_by = _run_workers(run_dir, settings, top_k, prog, sock)
    except Stopped as stop:
        stopped_by = stop.name
    finally:
        if sock is not None:
            sock.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if not state["serving"]:
        say(f"{prog}: {stopped_by} received while loading the model; stopped before serving")
    else:
        say(f"{prog}: {stopped_by + ' received, ' if stopped_by else ''}server stopped")
    return stopped_by


def _config(app, settings: ServeSettings, **extra):
    import uvicorn

    return uvicorn.Config(app, log_level="warning", access_log=settings.access_log, lifespan="on",
                          timeout_graceful_shutdown=10, server_header=False, **extra)


def _run_one(predictor, settings: ServeSettings, top_k: int, sock: socket.socket) -> Optional[str]:
    """One process: the model loaded here, uvicorn on this event loop."""
    import uvicorn

    from mnist_hydra.serving.api import create_app

    server = uvicorn.Server(_config(create_app(predictor=predictor, settings=settings, top_k=top_k), settings))
    try:
        # uvicorn handles SIGINT/SIGTERM itself while it runs (a graceful shutdown: requests in progress
        # finish), then raises the signal again, which _raise_stopped turns into Stopped.
        server.run(sockets=[sock])
    except Stopped as stop:
        return stop.name
    if not server.started:
        raise UserError("the server could not start; see the lines above")
    return None


def _run_workers(run_dir, settings: ServeSettings, top_k: int, prog: str, sock: socket.socket) -> Optional[str]:
    """Several processes sharing the socket, each with its own model (uvicorn's supervisor)."""
    from uvicorn.supervisors import Multiprocess

    from mnist_hydra.serving.worker import ENV_VAR, STARTUP_FAILURE, worker_spec

    class Supervisor(Multiprocess):
        stopped_by: Optional[str] = None

        def handle_int(self) -> None:
            self.stopped_by = "SIGINT"
            super().handle_int()

        def handle_term(self) -> None:
            self.stopped_by = "SIGTERM"
            super().handle_term()

    os.environ[ENV_VAR] = worker_spec(str(run_dir), settings, top_k, prog)
    config = _config("mnist_hydra.serving.worker:create_worker_app", settings, factory=True,
                     workers=settings.workers)
    supervisor = Supervisor(config, sockets=[sock])
    supervisor.run()
    if supervisor.stopped_by is None and any(p.exitcode == STARTUP_FAILURE for p in supervisor.processes):
        raise UserError("a worker process could not start; see the line above")
    return supervisor.stopped_by


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (port 0: a free one); UserError naming serve.host/port if not."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as err:
        raise UserError(f"serve.host={host}: not an address of this machine ({err.strerror}); "
                        "e.g. serve.host=127.0.0.1, or 0.0.0.0 for every interface") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as err:
        sock.close()
        if err.errno == errno.EADDRINUSE:
            raise UserError(f"serve.port={port}: already in use on {host}; pick another port, "
                            "or serve.port=0 for a free one") from None
        if err.errno in (errno.EACCES, errno.EPERM):
            raise UserError(f"serve.port={port}: not allowed ({err.strerror}); ports below 1024 need root, "
                            "pick one above") from None
        raise UserError(f"serve.host={host} serve.port={port}: cannot listen ({err.strerror})") from None
    return sock


def url(host: str, port: int) -> str:
    """http://HOST:PORT/ (IPv6 addresses in brackets)."""
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def _raise_stopped(signum: int, frame: object) -> None:
    raise Stopped(signum)
