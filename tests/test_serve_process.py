"""`python -m mnist_hydra.serve` as users run it: a real server process on a free port, stopped by a signal.

What only a real server shows runs one: a digit served, clients that go away, stall or crowd in, and bodies
that arrive in pieces (TestClient hands the app one whole body), then a signal; a second Ctrl-C; two worker
processes. The arguments, checked before uvicorn starts, are checked in this process (conftest.call_app)."""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import call_app

SERVE = "mnist_hydra.serve"


def start_server(*args: str, cwd: Path) -> tuple[subprocess.Popen, str]:
    """The server started with ARGS as a user starts it (TF_CPP_MIN_LOG_LEVEL unset); its URL from the one line
    it prints once it listens."""
    env = {k: v for k, v in os.environ.items() if k not in ("HYDRA_FULL_ERROR", "TF_CPP_MIN_LOG_LEVEL")}
    process = subprocess.Popen(
        [sys.executable, "-m", SERVE, *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = process.stdout.readline()
    found = re.search(r" at (http://127\.0\.0\.1:\d+/)", line)
    if not found:
        process.kill()
        pytest.fail(f"no URL in the first line {line!r}; stderr: {process.stderr.read()[-2000:]}")
    return process, found.group(1)


def stop(process: subprocess.Popen, signum: int) -> tuple[int, str, str]:
    process.send_signal(signum)
    out, err = process.communicate(timeout=60)
    return process.returncode, out, err


def mnist_test_digit(mnist_dir: Path, index: int) -> tuple[bytes, int]:
    with gzip.open(mnist_dir / "t10k-images-idx3-ubyte.gz") as f:
        image = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)[index]
    with gzip.open(mnist_dir / "t10k-labels-idx1-ubyte.gz") as f:
        label = int(np.frombuffer(f.read(), np.uint8, offset=8)[index])
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "PNG")  # the 28x28 test image itself, white on black
    return buffer.getvalue(), label


def test_a_second_ctrl_c_stops_at_once_in_one_line(trained_run, tmp_path):
    process, url = start_server(f"run={trained_run}", "serve.port=0", cwd=tmp_path)
    process.send_signal(signal.SIGINT)
    time.sleep(0.02)  # the second while uvicorn still waits for connections to close: it then skips the wait
    code, out, err = stop(process, signal.SIGINT)
    assert code == 0 and out.strip().splitlines() == [f"{SERVE}: SIGINT received, server stopped"], err
    assert err == ""  # uvicorn logged the app's cancelled shutdown as an ERROR with two tracebacks


@pytest.mark.parametrize(
    "args, code, words",
    [
        ([], 2, "run has no value: set it on the command line, e.g. run="),
        (["run={tmp}/no-such-run"], 2, "run={tmp}/no-such-run: no such directory"),
        (["run={tmp}"], 2, "run={tmp}: no model.keras in it"),
        (["run={run}", "serve.port=70000"], 2, "serve.port=70000 is not allowed: expected a TCP port"),
        (["run={run}", "serve.workers=0"], 2, "serve.workers=0 is not allowed"),
        (["run={run}", "serve.prot=1"], 2, "serve.prot is not a config key"),
        (["run={run}", "serve.port={busy}"], 1, "serve.port={busy}: already in use on 127.0.0.1"),
        (
            ["run={run}", "serve.collect_dir={tmp}/notes.txt"],
            2,
            "serve.collect_dir={tmp}/notes.txt: a file, not a folder; give a folder to save the labelled drawings in",
        ),
        (
            ["run={run}", "serve.collect_dir={tmp}/notes.txt/below"],
            2,
            "serve.collect_dir={tmp}/notes.txt/below: cannot create it (Not a directory)",
        ),
        (["run={run}", "serve.collect_dir=/proc/forbidden"], 2, "serve.collect_dir=/proc/forbidden: cannot create it"),
        (["run={run}", "serve.collect_dir="], 2, "serve.collect_dir= is not allowed: expected null (off) or a folder"),
        (["run={run}", "serve.body_timeout_s=0"], 2, "serve.body_timeout_s=0.0 is not allowed: expected seconds in"),
        (["run={run}", "serve.max_connections=0"], 2, "serve.max_connections=0 is not allowed: expected an integer"),
        (["run={run}", "serve.keep_alive_s=0"], 2, "serve.keep_alive_s=0 is not allowed: expected whole seconds"),
    ],
    ids=[
        "no run",
        "missing run",
        "not a run",
        "bad port",
        "no workers",
        "typo",
        "port in use",
        "collect_dir a file",
        "collect_dir under a file",
        "collect_dir not writable",
        "collect_dir empty",
        "no body timeout",
        "no connections",
        "no keep-alive",
    ],
)
def test_bad_arguments_fail_at_start_in_one_line(trained_run, tmp_path, args, code, words):
    (tmp_path / "notes.txt").write_text("not a folder\n")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        values = {"run": trained_run, "tmp": tmp_path, "busy": busy.getsockname()[1]}
        result = call_app(*(a.format(**values) for a in args), cwd=tmp_path, module=SERVE)
    assert result.returncode == code, result.stderr
    ours = [line for line in result.stderr.splitlines() if line.startswith(f"{SERVE}:")]
    assert len(ours) == 1 and ours[0].startswith(f"{SERVE}: error: ") and words.format(**values) in ours[0], ours
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]  # nothing created


def test_the_readme_error_example_is_what_the_app_prints(tmp_path):
    page = (Path(__file__).resolve().parents[1] / "docs" / "serving.md").read_text()  # the README's, moved there
    command, shown = re.search(r"\$ python -m mnist_hydra\.serve (run=\S+)\n(.*)\n", page).groups()
    result = call_app(command, cwd=tmp_path, module=SERVE)
    assert result.returncode == 2 and shown in result.stderr.splitlines(), result.stderr


@pytest.mark.slow
def test_two_worker_processes_serve_and_stop_together(trained_run, mnist_dir, tmp_path):
    import httpx2

    process, url = start_server(
        f"run={trained_run}", "serve.port=0", "serve.workers=2", "serve.collect_dir=drawn", cwd=tmp_path
    )
    try:
        digit, label = mnist_test_digit(mnist_dir, 0)
        with httpx2.Client(base_url=url, timeout=120) as http:
            answers = [http.post("predict", files={"file": ("d.png", digit, "image/png")}).json() for _ in range(8)]
            saved = [
                http.post("collect", files={"file": ("d.png", digit, "image/png")}, data={"label": "7"})
                for _ in range(4)
            ]
        assert all(a["label"] == label for a in answers)
        assert [r.status_code for r in saved] == [201] * 4  # each worker saves where the parent was told, relative
        assert len({r.json()["file"] for r in saved}) == 4 == len(list((tmp_path / "drawn" / "7").glob("*.png")))
    finally:
        code, out, err = stop(process, signal.SIGTERM)
    assert code == 0 and out.strip().splitlines()[-1] == f"{SERVE}: SIGTERM received, server stopped", err
    assert err == ""  # each worker imports TensorFlow without its start-up lines too


def _request(port: int, head: str, body: bytes = b"") -> socket.socket:
    """A connection to the server on loopback with `head` (the request line and headers) and `body` sent."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
    return sock


def _answer(sock: socket.socket) -> tuple[int, dict, float]:
    """Status, JSON body and seconds waited of the one response on `sock`, read until the server closes it."""
    started, data = time.monotonic(), b""
    with sock:
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body) if b"application/json" in head.lower() else {}, time.monotonic() - started


def _get_health(port: int, statuses: list[int]) -> int:
    """GET /health's status, also added to `statuses`."""
    statuses.append(_answer(_request(port, "GET /health HTTP/1.1\nHost: t\nConnection: close\n"))[0])
    return statuses[-1]


def _settled(port: int, statuses: list[int]) -> int:
    """GET /health's status once the server has let go of the connections just closed (at most 10 s)."""
    deadline = time.monotonic() + 10
    while _get_health(port, statuses) == 503 and time.monotonic() < deadline:
        time.sleep(0.1)
    return statuses[-1]


UPLOAD = "POST /predict HTTP/1.1\nHost: t\nContent-Type: {kind}\nContent-Length: {length}\n"


@pytest.mark.parametrize(
    "signum", [signal.SIGTERM, pytest.param(signal.SIGINT, marks=pytest.mark.slow)], ids=["SIGTERM", "SIGINT"]
)
def test_serves_a_digit_outlasts_clients_that_go_away_stall_or_crowd_in_and_stops_on_a_signal(
    trained_run, mnist_dir, tmp_path, signum
):
    """A real digit is predicted; aborted uploads leave no log line; a stalled or trickling body gets a JSON 408
    after serve.body_timeout_s; a body of serve.max_bytes, in many small chunks or small writes, gets an
    answer, and one byte more a JSON 413; beyond serve.max_connections a request gets 503; the server goes on
    serving throughout, then stops cleanly on the signal, having written nothing."""
    import httpx2

    limit, timeout, connections = 20_000, 2, 12
    process, url = start_server(
        f"run={trained_run}",
        "serve.port=0",
        f"serve.max_bytes={limit}",
        f"serve.body_timeout_s={timeout}",
        f"serve.max_connections={connections}",
        cwd=tmp_path,
    )
    port = int(url.rstrip("/").rsplit(":", 1)[1])
    statuses: list[int] = []  # of every GET /health: each 503 may log uvicorn's one line
    digit, label = mnist_test_digit(mnist_dir, 0)
    try:
        with httpx2.Client(base_url=url, timeout=60) as http:  # the URL is printed once the model is loaded
            assert http.get("health").json()["status"] == "ok"
            answer = http.post("predict", files={"file": ("seven.png", digit, "image/png")})
            assert answer.status_code == 200 and answer.json()["label"] == label == 7
            assert http.post("predict", content=b"7", headers={"content-type": "text/plain"}).status_code == 415
            broken = http.post(
                "predict", content=b"garbage", headers={"content-type": "multipart/form-data; boundary=x"}
            )
            assert broken.status_code == 400 and "send one image in the field 'file'" in broken.json()["detail"]
            assert http.get("health").json()["images_predicted"] == 1

        # A client that closes mid-upload: 12 bytes of a declared 1000, for both kinds of body, 30 times, in
        # groups that stay under serve.max_connections (so each reaches the app, not uvicorn's 503).
        for group in range(6):
            assert _settled(port, statuses) == 200
            for i in range(5):
                kind = "multipart/form-data; boundary=x" if (group + i) % 2 else "application/json"
                _request(port, UPLOAD.format(kind=kind, length=1000), b'{"pixels": [').close()
        assert _settled(port, statuses) == 200

        # A body that stalls, and one that trickles 2 bytes every 0.25 s: both 408 after the timeout, in JSON.
        stalled = _request(port, UPLOAD.format(kind="application/json", length=1000), b'{"pixels": [')
        status, body, waited = _answer(stalled)
        assert status == 408 and "serve.body_timeout_s" in body["detail"], body
        assert timeout - 1 < waited < timeout + 10
        trickle = _request(port, UPLOAD.format(kind="application/json", length=1000))
        status, start = None, time.monotonic()
        with contextlib.suppress(OSError):  # the server closes the connection on its 408
            while time.monotonic() - start < timeout + 10:
                trickle.sendall(b"  ")
                time.sleep(0.25)
        status, body, _ = _answer(trickle)
        assert status == 408 and f"did not arrive within {timeout} s" in body["detail"], body

        # serve.max_bytes through the real server: exactly the limit is answered, one byte over it is 413, as
        # HTTP chunks of 100 bytes and as a Content-Length body (sent in 100-byte writes when it is accepted).
        pixels = np.asarray(Image.open(io.BytesIO(digit))).tolist()
        document = json.dumps({"pixels": pixels}).encode()
        for size, expected in ((limit, 200), (limit + 1, 413)):
            padded = document + b" " * (size - len(document))
            pieces = [padded[i : i + 100] for i in range(0, size, 100)]
            chunked = "POST /predict HTTP/1.1\nHost: t\nContent-Type: application/json\nTransfer-Encoding: chunked\n"
            sock = _request(port, chunked + "Connection: close\n")
            for piece in pieces:
                sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
            sock.sendall(b"0\r\n\r\n")
            status, body, _ = _answer(sock)
            assert status == expected, ("chunked", size, body)
            assert body.get("label") == label if expected == 200 else "serve.max_bytes" in body["detail"], body
            # A declared length over the limit is refused before a byte of the body is read: none is sent.
            sock = _request(port, UPLOAD.format(kind="application/json", length=size) + "Connection: close\n")
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # each piece a segment of its own
            for piece in pieces if expected == 200 else []:
                sock.sendall(piece)
            status, body, _ = _answer(sock)
            assert status == expected, ("content-length", size, body)
            assert body.get("label") == label if expected == 200 else "serve.max_bytes" in body["detail"], body

        # serve.max_connections: one stalled connection short of it, a request is answered; at it, 503.
        held = [_request(port, UPLOAD.format(kind="application/json", length=1000)) for _ in range(connections - 2)]
        time.sleep(0.5)  # the server has accepted them all
        assert _get_health(port, statuses) == 200
        held.append(_request(port, UPLOAD.format(kind="application/json", length=1000)))
        time.sleep(0.5)
        assert _get_health(port, statuses) == 503
        assert {_answer(sock)[0] for sock in held} == {408}  # each is timed out and closed, freeing its place
        assert _settled(port, statuses) == 200
    finally:
        code, out, err = stop(process, signum)
    assert code == 0, err
    assert out.strip().splitlines() == [f"{SERVE}: {signal.Signals(signum).name} received, server stopped"], out
    assert "Traceback" not in err and "ClientDisconnect" not in err and "Exception" not in err, err[-3000:]
    # Nothing for the aborted uploads, the stalled bodies or the over-large one, none of TensorFlow's start-up
    # lines; uvicorn's one line per 503.
    assert err.splitlines() == ["WARNING:  Exceeded concurrency limit."] * statuses.count(503), err[-3000:]
    assert list(tmp_path.iterdir()) == []  # the server writes nothing
