"""Ending a fit early and cleanly: on Ctrl-C or SIGTERM, and when the loss is no longer a number or has blown up.

Both only ask Keras to stop after the current step; the epoch in progress is dropped and the
last complete epoch's checkpoint is what remains, so a resumed run continues exactly from it.
"""

from __future__ import annotations

import contextlib
import logging
import math
import signal
import threading
from typing import Iterator, Optional

import keras

log = logging.getLogger(__name__)

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """Set by the signal handler; read by `StopOnRequest` after each step."""

    def __init__(self) -> None:
        self.signum: Optional[int] = None


@contextlib.contextmanager
def stop_on_signals() -> Iterator[StopRequest]:
    """While training: SIGINT and SIGTERM ask for a clean stop; a second Ctrl-C stops at once."""
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request  # Python lets only the main thread set handlers; Keras's own behaviour stays
        return

    def handle(signum: int, frame: object) -> None:
        if request.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # the user insists: no clean point, the last checkpoint stays
        request.signum = signum
        log.warning("%s: stopping after this step; the last complete epoch's checkpoint is kept "
                    "(Ctrl-C again to stop at once)", signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, handle) for sig in SIGNALS}
    try:
        yield request
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class StopOnRequest(keras.callbacks.Callback):
    """Ends fit() after the step in which a stop was asked for."""

    def __init__(self, request: StopRequest) -> None:
        super().__init__()
        self.request = request

    def on_train_batch_end(self, batch: int, logs: Optional[dict] = None) -> None:
        if self.request.signum is not None:
            self.model.stop_training = True


class StopOnDivergence(keras.callbacks.Callback):
    """Ends fit() at the first step whose running loss is NaN, infinite or above `limit`, and says where.

    Keras computes the cross-entropy of a softmax output from its logits, unclipped, so a run that blows
    up (optimizer.lr=1e6) can show a finite loss of 1e20 and never reach NaN: hence the limit as well.
    """

    def __init__(self, limit: float) -> None:
        super().__init__()
        self.limit = limit
        self.where: Optional[str] = None
        self._epoch = 0

    def on_epoch_begin(self, epoch: int, logs: Optional[dict] = None) -> None:
        self._epoch = epoch

    def on_train_batch_end(self, batch: int, logs: Optional[dict] = None) -> None:
        loss = (logs or {}).get("loss")
        if loss is None or self.where is not None:
            return
        loss = float(loss)
        if not math.isfinite(loss) or loss > self.limit:
            self.where = f"epoch {self._epoch + 1}, step {batch + 1}: loss {loss:.3g}"
            self.model.stop_training = True
