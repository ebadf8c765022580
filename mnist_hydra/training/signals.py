"""Ending a fit early and cleanly on Ctrl-C or SIGTERM (the callbacks that act on it: training/callbacks.py).

Both only ask Keras to stop after the current step; the epoch in progress is dropped and the
last complete epoch's checkpoint is what remains, so a resumed run continues exactly from it.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator

log = logging.getLogger(__name__)

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """Set by the signal handler; read by `StopOnRequest` after each step."""

    def __init__(self) -> None:
        self.signum: int | None = None


@contextlib.contextmanager
def stop_on_signals() -> Iterator[StopRequest]:
    """While training: SIGINT and SIGTERM ask for a clean stop; a second Ctrl-C stops at once."""
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request  # Python lets only the main thread set handlers; Keras's own behaviour stays
        return

    def handle(signum: int, frame: object) -> None:
        if request.signum is not None:
            if signum == signal.SIGINT:
                raise KeyboardInterrupt  # the user insists: no clean point, the last checkpoint stays
            _already_stopping(signum, frame)  # the first signal's stop is under way, and it is the one recorded
            return
        request.signum = signum
        log.warning(
            "%s: stopping after this step; the last complete epoch's checkpoint is kept (Ctrl-C again to stop at once)",
            signal.Signals(signum).name,
        )

    previous = {sig: signal.signal(sig, handle) for sig in SIGNALS}
    try:
        yield request
    finally:
        for sig, handler in previous.items():
            # Once stopping, the process only records the stop and exits: a further Ctrl-C must not cut that
            # short with a second message.
            signal.signal(sig, _already_stopping if request.signum is not None else handler)


@contextlib.contextmanager
def handlers_restored() -> Iterator[None]:
    """SIGINT's and SIGTERM's handlers as they were before, once the run is over. A stopped fit leaves "already
    stopping" in place while the run records its stop; the process of an app then exits, but a library caller's
    goes on, and its next Ctrl-C must be its own again."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def hold_off_signals() -> None:
    """From now on SIGINT and SIGTERM only say "already stopping": for a process that was stopped and now records
    the stop and exits, so that a further Ctrl-C cannot cut that short with a second message."""
    if threading.current_thread() is threading.main_thread():
        for sig in SIGNALS:
            signal.signal(sig, _already_stopping)


def _already_stopping(signum: int, frame: object) -> None:
    log.info("%s: already stopping", signal.Signals(signum).name)
