"""Load `python -m mnist_hydra.serve` over loopback from another process and check the serving targets.

Usage (from the repo root):
  python benchmarks/bench_serve.py [--run RUN_DIR] [--data DIR] [--requests N] [--batches M]
      [--concurrency C] [--batch-size B] [--json PATH] [-- serve overrides...]

It starts the server as users do (`python -m mnist_hydra.serve run=RUN_DIR serve.port=0`), reads the
URL it prints, then from this process (aiohttp, `--concurrency` clients, keep-alive) sends:
  png:    N single-image uploads (multipart PNG), each a real MNIST test digit drawn 280x280 dark on
          white, as the draw page sends its canvas;
  pixels: N single images as JSON {"pixels": 28x28 of 0..255};
  batch:  M requests of {"images": [B x 28x28]}.
png and pixels run twice: at top speed (each client sends again as soon as it has its answer), and
paced at the target rate (request i due at i / 500 s; its latency counts from then). With 32 clients
always waiting, latency is 32 / throughput by Little's law, so the target's p99 is judged on the paced
run, and top speed says how much room is left. Each phase starts with a short warm-up that is not
counted, and ends after its bounded number of requests; this process's garbage collector is paused
while it times one, so that its own pauses do not count as the server's latency. Then SIGTERM stops
the server, whose clean exit is checked. It prints throughput, p50 and p99 latency, errors (must be
0), the accuracy of the answers, the server's CPU time per request, the share of the CPUs other
processes took meanwhile, the server's peak RSS and the CPU model.
Without --run it first trains a throwaway reference-network run (1 epoch on 10,000 images).
It waits (up to --quiet-wait seconds) for other processes to go quiet first, as bench_train.py does.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import gzip
import io
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from harness import busy_cpu_seconds, cpu_model, load_average, wait_for_quiet

REPO = Path(__file__).resolve().parent.parent
TARGET_SINGLE_PER_SECOND = 500  # single-image predictions/s at 32 concurrent clients
TARGET_SINGLE_P99_MS = 50.0
TARGET_BATCH_IMAGES_PER_SECOND = 5000  # images/s in batches of 64
WARMUP_REQUESTS = 200


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, help="run directory to serve (default: train a throwaway one)")
    parser.add_argument(
        "--data",
        type=Path,
        default=Path(os.environ.get("MNIST_HYDRA_DATA", REPO.parent / "shared/data/mnist")),
        help="the MNIST folder (default: $MNIST_HYDRA_DATA)",
    )
    parser.add_argument("--requests", type=int, default=4000, help="single-image requests per single phase")
    parser.add_argument("--batches", type=int, default=300, help="batch requests")
    parser.add_argument("--concurrency", type=int, default=32, help="concurrent clients")
    parser.add_argument("--batch-size", type=int, default=64, help="images per batch request")
    parser.add_argument("--quiet-wait", type=float, default=120, help="seconds to wait for other processes to go quiet")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("overrides", nargs="*", help="extra `python -m mnist_hydra.serve` overrides, after --")
    return parser.parse_args(argv)


def read_test_set(folder: Path, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The first n MNIST test images (uint8 28x28) and labels."""
    with gzip.open(folder / "t10k-images-idx3-ubyte.gz") as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)[:n]
    with gzip.open(folder / "t10k-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)[:n]
    return images, labels


def canvas_png(digit: np.ndarray) -> bytes:
    """The digit as the draw page would send it: 280x280, dark ink on white, PNG."""
    from PIL import Image

    image = Image.fromarray(255 - digit).resize((280, 280), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def env_with_repo(data: Path) -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, "MNIST_HYDRA_DATA": str(data), "TF_CPP_MIN_LOG_LEVEL": "2"}


def train_throwaway(data: Path, workdir: Path) -> Path:
    """A reference-network run good enough to serve: 1 epoch on 10,000 images."""
    run_dir = workdir / "run"
    command = [
        sys.executable,
        "-m",
        "mnist_hydra",
        "trainer.epochs=1",
        "trainer.verbose=0",
        "data.train_limit=10000",
        "data.test_limit=1000",
        f"hydra.run.dir={run_dir}",
    ]
    print(f"training a throwaway run: {' '.join(command[2:])}", flush=True)
    subprocess.run(command, cwd=workdir, env=env_with_repo(data), check=True, capture_output=True, timeout=600)
    return run_dir


class Server:
    """`python -m mnist_hydra.serve` as a child process on a free loopback port."""

    def __init__(self, run_dir: Path, data: Path, overrides: list[str]) -> None:
        command = [sys.executable, "-m", "mnist_hydra.serve", f"run={run_dir}", "serve.port=0", *overrides]
        self.started = time.perf_counter()
        self.process = subprocess.Popen(
            command, env=env_with_repo(data), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        line = self.process.stdout.readline()
        found = re.search(r"(http://\S+/)", line)
        if not found:
            self.process.kill()
            raise SystemExit(f"the server did not start: {line}{self.process.stderr.read()}")
        self.url = found.group(1)
        self.start_seconds = time.perf_counter() - self.started

    def peak_rss_bytes(self) -> int | None:
        """The largest VmHWM among the server's processes (Linux): one model's process."""
        peaks = []
        for pid in _tree(self.process.pid):
            try:
                found = re.search(r"VmHWM:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
            except OSError:
                continue
            if found:
                peaks.append(int(found.group(1)) * 1024)
        return max(peaks) if peaks else None

    def health(self) -> dict[str, Any]:
        """GET /health (with several workers, whichever answers)."""
        import urllib.request

        with urllib.request.urlopen(self.url + "health", timeout=30) as response:
            return json.loads(response.read())

    def cpu_seconds(self) -> float:
        """CPU time of the server and its worker processes so far (Linux /proc)."""
        total, tick = 0.0, os.sysconf("SC_CLK_TCK")
        for pid in _tree(self.process.pid):
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += (int(fields[11]) + int(fields[12])) / tick
        return total

    def stop(self) -> tuple[int, str, str]:
        """SIGTERM; the exit code and what the server printed after its first line."""
        self.process.send_signal(signal.SIGTERM)
        out, err = self.process.communicate(timeout=30)
        return self.process.returncode, out, err


def _tree(pid: int) -> list[int]:
    """`pid` and its descendants (Linux /proc)."""
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        found.append(current)
        try:
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            children = []
        queue.extend(int(child) for child in children)
    return found


async def load(
    url: str, requests: list[tuple[str, Any]], concurrency: int, rate: float | None = None
) -> dict[str, Any]:
    """Send `requests` (kind, payload) with `concurrency` clients; latencies, errors, answers.

    Without `rate` each client sends its next request as soon as it has the answer (a closed loop: the
    server's top speed). With it, request i is due at start + i / rate and its latency runs from then,
    so a server that falls behind pays for the queue it causes (no coordinated omission).
    """
    import aiohttp

    latencies: list[float] = [0.0] * len(requests)
    answers: list[Any] = [None] * len(requests)
    errors: list[str] = []
    next_index = 0
    start = time.perf_counter()

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal next_index
        while next_index < len(requests):
            i = next_index
            next_index += 1
            kind, payload = requests[i]
            if kind == "png":
                form = aiohttp.FormData()
                form.add_field("file", payload, filename="digit.png", content_type="image/png")
                body: dict[str, Any] = {"data": form}
            else:
                body = {"data": payload, "headers": {"Content-Type": "application/json"}}
            if rate:
                due = start + i / rate
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
            sent = due if rate else time.perf_counter()
            try:
                async with session.post(url + "predict", **body) as response:
                    answer = await response.json()
                    if response.status != 200:
                        errors.append(f"{response.status}: {answer}")
            except aiohttp.ClientError as err:
                errors.append(repr(err))
                answer = None
            latencies[i] = time.perf_counter() - sent
            answers[i] = answer

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        start = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(concurrency)))
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "latencies": latencies, "answers": answers, "errors": errors}


@contextlib.contextmanager
def _client_collector_paused() -> Iterator[None]:
    """This process's garbage collector off while it times requests, what it holds already frozen.

    A full collection in the client (up to 43 ms measured, as its answers pile up) stalls every request in
    flight, and would count as the server's latency. Load generators are written in C for this reason.
    """
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.unfreeze()


def phase(
    name: str,
    server: Server,
    requests: list[tuple[str, Any]],
    labels: list[np.ndarray],
    concurrency: int,
    images_per_request: int,
    rate: float | None = None,
) -> dict[str, Any]:
    """Warm up, then time `requests`; throughput, latency, errors, accuracy, CPU time and neighbours' share."""
    asyncio.run(load(server.url, requests[: min(WARMUP_REQUESTS, max(len(requests) // 10, 10))], concurrency))
    before = server.health()
    busy, server_cpu, client_cpu = busy_cpu_seconds(), server.cpu_seconds(), time.process_time()
    with _client_collector_paused():
        result = asyncio.run(load(server.url, requests, concurrency, rate))
    server_cpu, client_cpu = server.cpu_seconds() - server_cpu, time.process_time() - client_cpu
    after = server.health()
    # Counts are per worker process: with several, they mean something only when the same one answered twice.
    calls = after["model_calls"] - before["model_calls"] if after["worker_pid"] == before["worker_pid"] else 0
    images_per_call = (after["images_predicted"] - before["images_predicted"]) / calls if calls > 0 else None
    others = None
    if busy is not None:
        others = max(0.0, busy_cpu_seconds() - busy - server_cpu - client_cpu) / (
            result["seconds"] * (os.cpu_count() or 1)
        )
    latencies = np.array(result["latencies"]) * 1000
    right = total = 0
    for answer, truth in zip(result["answers"], labels, strict=False):
        if isinstance(answer, dict):
            predicted = [p["label"] for p in answer["predictions"]] if "predictions" in answer else [answer["label"]]
            right += int(np.sum(np.array(predicted) == truth))
            total += len(truth)
    images = len(requests) * images_per_request
    return {
        "phase": name,
        "requests": len(requests),
        "images": images,
        "concurrency": concurrency,
        "rate": rate,
        "seconds": result["seconds"],
        "requests_per_second": len(requests) / result["seconds"],
        "images_per_second": images / result["seconds"],
        "p50_ms": float(np.percentile(latencies, 50)),
        "p99_ms": float(np.percentile(latencies, 99)),
        "errors": len(result["errors"]),
        "first_error": result["errors"][0] if result["errors"] else None,
        "accuracy": right / total if total else None,
        "server_cpu_ms_per_request": server_cpu / len(requests) * 1000,
        "client_cpu_share": client_cpu / (result["seconds"] * (os.cpu_count() or 1)),
        "others_cpu_share": others,
        "images_per_model_call": images_per_call,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not (args.data / "t10k-images-idx3-ubyte.gz").is_file():
        raise SystemExit(f"bench_serve: --data {args.data}: no t10k-images-idx3-ubyte.gz there; give the MNIST folder")
    images, labels = read_test_set(args.data, 1000)
    with tempfile.TemporaryDirectory(prefix="bench_serve-") as tmp:
        run_dir = args.run or train_throwaway(args.data, Path(tmp))
        pngs = [canvas_png(d) for d in images]
        pixels = [json.dumps({"pixels": d.tolist()}).encode() for d in images]
        n, b = args.requests, args.batch_size
        batches = [json.dumps({"images": images[(i * b) % 1000 :][:b].tolist()}).encode() for i in range(1000 // b)]
        batch_labels = [labels[(i * b) % 1000 :][:b] for i in range(1000 // b)]

        quiet = wait_for_quiet(args.quiet_wait)
        print(
            f"CPU: {cpu_model()}; load average {load_average()}"
            + (f", other processes {quiet * 100:.0f}% of the CPUs" if quiet is not None else ""),
            flush=True,
        )
        server = Server(run_dir, args.data, ["serve.max_batch=" + str(max(b, 256)), *args.overrides])
        print(f"server: {server.url} (ready in {server.start_seconds:.1f} s), run {run_dir}", flush=True)
        results = []
        target = TARGET_SINGLE_PER_SECOND
        try:
            for form, payloads in (("png", pngs), ("pixels", pixels)):
                requests = [("png" if form == "png" else "json", payloads[i % 1000]) for i in range(n)]
                truth = [labels[i % 1000 :][:1] for i in range(n)]
                results.append(phase(f"{form} top speed", server, requests, truth, args.concurrency, 1))
                results.append(
                    phase(f"{form} at {target}/s", server, requests, truth, args.concurrency, 1, rate=target)
                )
            results.append(
                phase(
                    "batch top speed",
                    server,
                    [("json", batches[i % len(batches)]) for i in range(args.batches)],
                    [batch_labels[i % len(batches)] for i in range(args.batches)],
                    args.concurrency,
                    b,
                )
            )
        finally:
            peak = server.peak_rss_bytes()
            code, out, err = server.stop()
    stop_line = out.strip().splitlines()[-1:] or [""]
    report = {
        "cpu": cpu_model(),
        "run": str(run_dir),
        "overrides": args.overrides,
        "results": results,
        "server_peak_rss_bytes": peak,
        "server_exit_code": code,
        "server_stop_line": stop_line[0],
        "server_start_seconds": server.start_seconds,
    }
    return print_report(report, args)


def print_report(report: dict[str, Any], args: argparse.Namespace) -> int:
    print(f"\nserver: python -m mnist_hydra.serve {' '.join(report['overrides']) or '(defaults)'}")
    print(
        f"{'phase':<18} {'requests':>8} {'images/s':>9} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6} "
        f"{'accuracy':>8} {'server CPU ms/req':>17} {'images/call':>11} {'client':>6} {'others':>6}"
    )
    for r in report["results"]:
        accuracy = "-" if r["accuracy"] is None else f"{r['accuracy']:.3f}"
        others = "?" if r["others_cpu_share"] is None else f"{r['others_cpu_share'] * 100:.0f}%"
        per_call = "?" if r["images_per_model_call"] is None else f"{r['images_per_model_call']:.1f}"
        print(
            f"{r['phase']:<18} {r['requests']:>8} {r['images_per_second']:>9,.0f} {r['requests_per_second']:>8,.0f} "
            f"{r['p50_ms']:>7.1f} {r['p99_ms']:>7.1f} {r['errors']:>6} {accuracy:>8} "
            f"{r['server_cpu_ms_per_request']:>17.2f} {per_call:>11} {r['client_cpu_share'] * 100:>5.0f}% {others:>6}"
        )
        if r["first_error"]:
            print(f"  first error: {r['first_error']}")
    peak = report["server_peak_rss_bytes"]
    print(f"server peak RSS: {peak / 1e6:.0f} MB" if peak else "server peak RSS: unknown")
    print(f"server stop: exit code {report['server_exit_code']}: {report['server_stop_line']}")
    print(f"CPU: {report['cpu']}")
    by_phase = {r["phase"]: r for r in report["results"]}
    verdicts = []
    for form in ("png", "pixels"):
        r = by_phase[f"{form} at {TARGET_SINGLE_PER_SECOND}/s"]
        # Paced at the target: the server keeps up when the last answer comes within 2% of the schedule.
        ok = (
            r["images_per_second"] >= 0.98 * TARGET_SINGLE_PER_SECOND
            and r["p99_ms"] <= TARGET_SINGLE_P99_MS
            and r["errors"] == 0
        )
        verdicts.append(ok)
        print(
            f"single image ({form}): {TARGET_SINGLE_PER_SECOND} predictions/s from {r['concurrency']} clients with "
            f"p99 <= {TARGET_SINGLE_P99_MS:.0f} ms, 0 errors: {'MET' if ok else 'NOT MET'} "
            f"({r['images_per_second']:,.0f}/s, p99 {r['p99_ms']:.1f} ms, {r['errors']} errors; "
            f"top speed {by_phase[f'{form} top speed']['images_per_second']:,.0f}/s)"
        )
    r = by_phase["batch top speed"]
    ok = r["images_per_second"] >= TARGET_BATCH_IMAGES_PER_SECOND and r["errors"] == 0
    verdicts.append(ok)
    print(
        f"batches of {args.batch_size}: >= {TARGET_BATCH_IMAGES_PER_SECOND:,} images/s, 0 errors: "
        f"{'MET' if ok else 'NOT MET'} ({r['images_per_second']:,.0f} images/s, {r['errors']} errors)"
    )
    clean = report["server_exit_code"] == 0
    print(f"clean stop on SIGTERM (exit code 0): {'MET' if clean else 'NOT MET'}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0 if all(verdicts) and clean else 1


if __name__ == "__main__":
    sys.exit(main())
