"""trainer.strategy: mirrored on the CPU, two multi-worker processes on loopback, and TF_CONFIG mistakes."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys

import keras
import pytest

from mnist_hydra.errors import ConfigError
from mnist_hydra.training.distribute import is_chief, read_tf_config, weights_digest
from tests.conftest import call_app

# The plumbing is the point: the MLP on 320 images (5 global batches of 64), scored on 100, one epoch; without
# dropout, whose random masks are drawn per replica, so that two workers can train as one replica does.
TINY_RUN = ["model=mlp", "model.dropout=0", "trainer.epochs=1", "trainer.verbose=2"]
TINY_RUN += ["data.train_limit=320", "data.test_limit=100"]

ARTIFACTS = [
    "metrics.json",
    "history.csv",
    "model.keras",
    "training_curves.png",
    "confusion_matrix.png",
    "misclassified.png",
    "report.html",
    "train.log",
]
# What Hydra itself puts in every run directory; a non-chief worker's directory must hold nothing else.
HYDRA_FILES = {".hydra", "train.log"}
DIGEST = re.compile(r"final weights: sha256 ([0-9a-f]{64})")
WORKER_TIMEOUT = 240  # seconds for both workers; about 10 on two cores


def _tf_config(ports: list[int], index: int) -> str:
    return json.dumps(
        {"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]}, "task": {"type": "worker", "index": index}}
    )


def _free_ports(count: int) -> list[int]:
    """Ports the kernel just handed out on loopback (released again for the workers to bind)."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@pytest.fixture(scope="module")
def mirrored_run(tmp_path_factory, mnist_dir):
    """`trainer.strategy=mirrored` on this machine's CPU (one replica), in-process."""
    cwd = tmp_path_factory.mktemp("mirrored")
    result = call_app(
        "trainer.strategy=mirrored",
        *TINY_RUN,
        f"hydra.run.dir={cwd}/run",
        cwd=cwd,
        env={"MNIST_HYDRA_DATA": str(mnist_dir)},
    )
    assert result.returncode == 0, result.stderr
    return cwd / "run"


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory, mnist_dir):
    """Two `trainer.strategy=multi_worker` processes on 127.0.0.1, each with its TF_CONFIG and run directory."""
    cwd = tmp_path_factory.mktemp("workers")
    ports = _free_ports(2)
    procs = []
    try:
        for index in (0, 1):
            env = {
                **os.environ,
                "MNIST_HYDRA_DATA": str(mnist_dir),
                "TF_CPP_MIN_LOG_LEVEL": "2",
                "TF_CONFIG": _tf_config(ports, index),
            }
            env.pop("HYDRA_FULL_ERROR", None)
            procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "mnist_hydra",
                        "trainer.strategy=multi_worker",
                        "trainer.threads=1",
                        *TINY_RUN,
                        f"hydra.run.dir={cwd}/worker{index}",
                    ],
                    cwd=cwd,
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
        outputs = [proc.communicate(timeout=WORKER_TIMEOUT) for proc in procs]
    finally:
        for proc in procs:  # one worker's failure leaves the other waiting for it: never leave it behind
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    for proc, (out, err) in zip(procs, outputs, strict=False):
        assert proc.returncode == 0, out + err
    return [cwd / f"worker{index}" for index in (0, 1)], [out for out, _ in outputs]


def test_mirrored_on_the_cpu_trains_and_leaves_every_artifact(mirrored_run):
    for name in ARTIFACTS:
        assert (mirrored_run / name).is_file() and (mirrored_run / name).stat().st_size > 0, name
    metrics = json.loads((mirrored_run / "metrics.json").read_text())
    assert (metrics["status"], metrics["strategy"], metrics["replicas"]) == ("completed", "mirrored", 1)
    assert metrics["epochs_run"] == 1 and metrics["test_accuracy"] > 0.3  # chance is 0.1
    assert "strategy: mirrored, 1 replica(s) in sync, global batch 64" in (mirrored_run / "train.log").read_text()
    assert keras.models.load_model(mirrored_run / "model.keras").count_params() == 235_146


@pytest.mark.slow  # two processes that each import TensorFlow and train; is_chief and read_tf_config are tested below
def test_chief_alone_writes_the_artifacts(two_workers):
    (chief, other), _ = two_workers
    for name in ARTIFACTS:
        assert (chief / name).is_file() and (chief / name).stat().st_size > 0, name
    metrics = json.loads((chief / "metrics.json").read_text())
    assert (metrics["strategy"], metrics["replicas"], metrics["train_images"]) == ("multi_worker", 2, 320)
    assert not [name for name in ARTIFACTS if name != "train.log" and (other / name).exists()]
    assert "not the chief" in (other / "train.log").read_text()


@pytest.mark.slow  # two processes that each import TensorFlow and train; is_chief and read_tf_config are tested below
def test_non_chief_run_directory_holds_only_hydras_files(two_workers):
    (_, other), _ = two_workers
    assert {p.name for p in other.iterdir()} == HYDRA_FILES


@pytest.mark.slow  # two processes that each import TensorFlow and train; is_chief and read_tf_config are tested below
def test_workers_end_with_the_weights_the_chief_saved(two_workers):
    (chief, other), _ = two_workers
    logged = [DIGEST.findall((d / "train.log").read_text()) for d in (chief, other)]
    assert all(len(found) == 1 for found in logged), logged
    saved = weights_digest(keras.models.load_model(chief / "model.keras").get_weights())
    assert logged[0][0] == logged[1][0] == saved


@pytest.mark.slow  # two processes that each import TensorFlow and train; is_chief and read_tf_config are tested below
def test_workers_split_each_global_batch_between_them(two_workers, mirrored_run):
    (chief, _), outputs = two_workers
    # 320 images in global batches of 64: 5 steps on each worker (10 if each read every image in batches of 32).
    for out in outputs:
        assert re.search(r"^5/5 ", out, re.MULTILINE), out
    # Same global batches, same seed: two workers of one replica each train as the single replica does.
    one, two = (json.loads((d / "metrics.json").read_text()) for d in (mirrored_run, chief))
    for key, values in one["history"].items():
        assert two["history"][key] == pytest.approx(values, rel=1e-4), key
    assert two["test_loss"] == pytest.approx(one["test_loss"], rel=1e-4)
    assert two["confusion_matrix"] == one["confusion_matrix"]


def test_bad_tf_config_is_one_line_naming_tf_config(tmp_path, mnist_dir):
    result = call_app(
        "trainer.strategy=multi_worker",
        *TINY_RUN,
        f"hydra.run.dir={tmp_path}/run",
        cwd=tmp_path,
        env={"MNIST_HYDRA_DATA": str(mnist_dir), "TF_CONFIG": "{not json"},
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("mnist_hydra: error:")]
    assert len(errors) == 1 and "TF_CONFIG" in errors[0] and "is not valid JSON" in errors[0], result.stderr


@pytest.mark.parametrize(
    "value, problem",
    [
        ("", "is not set"),
        ("[1, 2]", "is not a JSON object"),
        ('{"task": {"type": "worker", "index": 0}}', 'has no "cluster" object'),
        ('{"cluster": {"ps": ["h:1"], "worker": ["h:2"]}, "task": {"type": "worker", "index": 0}}', 'names a "ps" job'),
        ('{"cluster": {"worker": ["h"]}, "task": {"type": "worker", "index": 0}}', '"host:port" strings'),
        ('{"cluster": {"worker": ["h:1"]}}', 'has no "task" object'),
        ('{"cluster": {"worker": ["h:1"]}, "task": {"type": "chief", "index": 0}}', 'task type "chief"'),
        ('{"cluster": {"worker": ["h:1", "h:2"]}, "task": {"type": "worker", "index": 2}}', "index must be 0 to 1"),
        ('{"cluster": {"worker": ["h:1"]}, "task": {"type": "worker", "index": "0"}}', 'task index "0"'),
    ],
)
def test_tf_config_mistakes_say_what_tf_config_must_hold(value, problem):
    with pytest.raises(ConfigError) as caught:
        read_tf_config({"TF_CONFIG": value})
    message = str(caught.value)
    assert problem in message and "TF_CONFIG" in message and '"cluster"' in message and "\n" not in message


def test_chief_is_the_chief_task_or_else_worker_zero():
    workers = {"worker": ["h:1", "h:2"]}
    with_chief = {"chief": ["h:0"], **workers}

    def chief(cluster, kind, index):
        env = {"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": kind, "index": index}})}
        return is_chief("multi_worker", env)

    assert [chief(workers, "worker", i) for i in (0, 1)] == [True, False]
    assert [chief(with_chief, "chief", 0), chief(with_chief, "worker", 0)] == [True, False]
    assert is_chief("default", {}) and is_chief("mirrored", {})  # single-process strategies ignore TF_CONFIG
