"""Caps on request bodies, enforced while they arrive: nothing unbounded is read, buffered or waited for.

FastAPI's own `max_body_size` counts the same way, but answers a declared Content-Length over the
limit with a text/plain "Content Too Large", whatever the app's error handlers say; this API
promises a JSON body naming the limit for every error. uvicorn has no timeout for a body that
stalls (only for idle kept-alive connections), so a client trickling bytes would hold its
connection for as long as it wished: the body's deadline is kept here.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class BodyTooLarge(Exception):
    """The request body passed the limit while it was being read."""

    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self.limit = limit

    @property
    def detail(self) -> str:
        return f"the request body is over the limit of {self.limit} bytes (serve.max_bytes); send a smaller image or fewer images"


class BodyTimeout(Exception):
    """The request body had not all arrived `seconds` after the request's headers."""

    def __init__(self, seconds: float) -> None:
        super().__init__(seconds)
        self.seconds = seconds

    @property
    def detail(self) -> str:
        return (
            f"the request body did not arrive within {self.seconds:g} s (serve.body_timeout_s); "
            "send it in one go, or a smaller image"
        )


class BodyLimit:
    """ASGI middleware: 413 for a declared Content-Length over `max_bytes`, before anything is read;
    a body that grows past it while streaming (chunked, or lying about its length) raises BodyTooLarge
    from `receive`, which the app answers with 413. A body not complete `timeout_s` seconds after the
    request came raises BodyTimeout, answered with 408."""

    def __init__(self, app: ASGIApp, max_bytes: int, timeout_s: float = math.inf) -> None:
        self.app, self.max_bytes, self.timeout_s = app, max_bytes, timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await _reject(send, BodyTooLarge(self.max_bytes).detail)
            return
        seen, complete = 0, False
        deadline = time.monotonic() + self.timeout_s

        async def limited_receive() -> Message:
            nonlocal seen, complete
            if complete:  # only a disconnect is left to wait for: no deadline on that
                return await receive()
            with anyio.move_on_after(max(deadline - time.monotonic(), 0)) as waited:
                message = await receive()
            if waited.cancelled_caught:
                raise BodyTimeout(self.timeout_s)
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
                complete = not message.get("more_body", False)
            return message

        await self.app(scope, limited_receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _reject(send: Send, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
