"""Concurrent prediction requests share model calls: one call for whatever is waiting."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np


class MicroBatcher:
    """Queue images from many requests and run them through `predict` together.

    One worker thread calls the model. While it runs, new requests queue; the next call takes
    everything queued (up to `max_images`), so batches grow with the load by themselves. A lone
    request can also wait `wait_s` for company; measurement decides (benchmarks/bench_serve.py).
    """

    def __init__(self, predict: Callable[[np.ndarray], np.ndarray], max_images: int = 256, wait_s: float = 0.0) -> None:
        self._predict = predict
        self._max_images = max_images
        self._wait_s = wait_s
        self._pending: list[tuple[np.ndarray, asyncio.Future[np.ndarray]]] = []
        self._ready: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self.calls = 0  # model calls so far
        self.images = 0  # images predicted so far

    async def start(self) -> None:
        """Start the batching loop in the running event loop."""
        self._ready = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")
        self._task = asyncio.create_task(self._run(), name="micro-batcher")

    async def stop(self) -> None:
        """Stop the loop; requests still queued get a RuntimeError."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for _, future in self._pending:
            if not future.done():
                future.set_exception(RuntimeError("the server is shutting down"))
        self._pending.clear()
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    async def predict(self, images: np.ndarray) -> np.ndarray:
        """Probabilities for `images` (n, 28, 28), computed in a call shared with other requests."""
        if self._ready is None or self._task is None or self._task.done():
            raise RuntimeError("the micro-batcher is not running")
        future: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        self._pending.append((images, future))
        self._ready.set()
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        ready = self._ready
        assert ready is not None  # start() makes it before this loop
        while True:
            await ready.wait()
            if self._wait_s and self._queued() < self._max_images:
                await asyncio.sleep(self._wait_s)
            batch = self._take()
            if not self._pending:
                ready.clear()
            if not batch:
                continue
            images = np.concatenate([item[0] for item in batch]) if len(batch) > 1 else batch[0][0]
            try:
                probabilities = await loop.run_in_executor(self._executor, self._predict, images)
            except Exception as err:  # a bug, reported to each waiting request rather than killing the loop
                for _, future in batch:
                    if not future.done():
                        future.set_exception(err)
                continue
            self.calls += 1
            self.images += len(images)
            start = 0
            for part, future in batch:
                if not future.done():  # a client that went away cancelled its future
                    future.set_result(probabilities[start : start + len(part)])
                start += len(part)

    def _queued(self) -> int:
        return sum(len(item[0]) for item in self._pending)

    def _take(self) -> list[tuple[np.ndarray, asyncio.Future[np.ndarray]]]:
        """Whole requests from the front of the queue, up to max_images (at least one request)."""
        taken, count = 0, 0
        for images, _ in self._pending:
            if taken and count + len(images) > self._max_images:
                break
            taken += 1
            count += len(images)
        batch, self._pending = self._pending[:taken], self._pending[taken:]
        return batch
