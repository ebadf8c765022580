"""Run the API on uvicorn: load the model, listen, print the URL, stop cleanly on SIGINT or SIGTERM."""

from __future__ import annotations

import errno
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Callable, Optional

from mnist_hydra.serving.api import create_app
from mnist_hydra.serving.predictor import Predictor
from mnist_hydra.serving.project import UserError
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
          say: Callable[[str], None] = print) -> Optional[Stopped]:
    """Serve `run_dir`'s model until SIGINT or SIGTERM; return the signal that stopped it.

    Args:
      run_dir: a training run's directory (it holds model.keras).
      settings: host, port and request limits.
      top_k: classes listed per prediction by default.
      prog: the name the printed lines start with.
      say: where the start and stop lines go.
    """
    previous = {sig: signal.signal(sig, _raise_stopped) for sig in STOP_SIGNALS}
    sock, server = None, None
    try:
        predictor = Predictor(Path(run_dir))
        sock = listen(settings.host, settings.port)
        address = url(settings.host, sock.getsockname()[1])
        import uvicorn

        app = create_app(predictor=predictor, settings=settings, top_k=top_k)
        server = uvicorn.Server(uvicorn.Config(
            app, log_level="warning", access_log=settings.access_log, lifespan="on",
            timeout_graceful_shutdown=10, server_header=False))
        info = predictor.info
        accuracy = "" if info["test_accuracy"] is None else f", test accuracy {info['test_accuracy']:.4f}"
        say(f"{prog}: serving run {info['run']} ({info['model']} on {info['data']}{accuracy}) at {address} ; "
            "Ctrl-C stops it")
        sys.stdout.flush()
        # uvicorn handles SIGINT/SIGTERM itself while it runs (a graceful shutdown: requests in progress
        # finish), then raises the signal again, which _raise_stopped turns into Stopped.
        server.run(sockets=[sock])
    except Stopped as stop:
        serving = server is not None and server.started
        say(f"{prog}: {stop.name} received, " + ("server stopped" if serving else "stopped before serving"))
        return stop
    finally:
        if sock is not None:
            sock.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if not server.started:
        raise UserError(f"the server at {address} could not start; see the lines above")
    say(f"{prog}: server stopped")
    return None


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
    sock.set_inheritable(True)
    return sock


def url(host: str, port: int) -> str:
    """http://HOST:PORT/ (IPv6 addresses in brackets)."""
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def _raise_stopped(signum: int, frame: object) -> None:
    raise Stopped(signum)
