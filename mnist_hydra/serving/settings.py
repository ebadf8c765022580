"""How the HTTP server runs and what it accepts: the `serve` group of `python -m mnist_hydra.serve`."""

from __future__ import annotations

from dataclasses import dataclass

from mnist_hydra.errors import require


@dataclass
class ServeSettings:
    """Where the server listens and the limits it puts on requests."""

    host: str = "127.0.0.1"  # interface to listen on; 0.0.0.0 exposes the server to the network: your choice
    port: int = 8000  # TCP port; 0 picks a free one (the URL is printed)
    workers: int = 1  # server processes, each with its own model: more serve more uploads a second, at that much memory
    threads: int | None = 1  # TensorFlow threads per process for the model; null = one per core
    max_bytes: int = 10_000_000  # largest request body (an upload or JSON), in bytes; larger gets 413
    max_pixels: int = 16_777_216  # largest image accepted, in pixels (4096 x 4096); a decompression bomb gets 422
    max_batch: int = 256  # most images in one {"images": [...]} request
    batch_wait_ms: float = 0.0  # how long a lone request waits for others to share its model call
    body_timeout_s: float = 30.0  # a request body not all arrived this many seconds after its headers gets 408
    max_connections: int = 500  # connections one server process holds; a request beyond them gets 503
    keep_alive_s: int = 5  # an idle kept-alive connection is closed after this many seconds
    access_log: bool = False  # a log line per request (costs throughput)
    collect_dir: str | None = None  # save drawings the user labels as DIR/<class>/<time>.png; null = off

    def check(self) -> None:
        require(0 <= self.port <= 65535, "serve.port", self.port, "a TCP port 1-65535, or 0 for a free one")
        require(1 <= self.workers <= 64, "serve.workers", self.workers, "a process count from 1 to 64")
        require(self.threads is None or self.threads >= 1, "serve.threads", self.threads, "null or a count >= 1")
        require(self.max_bytes >= 1024, "serve.max_bytes", self.max_bytes, "a size in bytes >= 1024")
        require(self.max_pixels >= 28 * 28, "serve.max_pixels", self.max_pixels, "a pixel count >= 784")
        require(self.max_batch >= 1, "serve.max_batch", self.max_batch, "an integer >= 1")
        require(0 < self.body_timeout_s <= 3600, "serve.body_timeout_s", self.body_timeout_s, "seconds in (0, 3600]")
        require(self.max_connections >= 1, "serve.max_connections", self.max_connections, "an integer >= 1")
        require(1 <= self.keep_alive_s <= 3600, "serve.keep_alive_s", self.keep_alive_s, "whole seconds from 1 to 3600")
        require(0 <= self.batch_wait_ms <= 100, "serve.batch_wait_ms", self.batch_wait_ms, "milliseconds in [0, 100]")
        require(
            self.collect_dir is None or bool(self.collect_dir.strip()),
            "serve.collect_dir",
            self.collect_dir,
            "null (off) or a folder to save labelled drawings in",
        )
