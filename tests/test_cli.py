"""`python -m mnist_hydra` as a user runs it: bad input, help, and Hydra's own flags."""

from __future__ import annotations

import gzip
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import run_app

ERROR_LINE = re.compile(r"^mnist_hydra: error: .+$")


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> str:
    """Non-zero exit, exactly one stderr line of ours, no traceback; returns that line."""
    assert result.returncode != 0, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and ERROR_LINE.match(lines[0]), result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("override,fragments,code", [
    ("trainer.epochz=3", ["trainer.epochz is not a config key", "trainer accepts:", "epochs"], 2),
    ("trainer.epochs=ten", ["trainer.epochs=ten has the wrong type", "expected an integer"], 2),
    ("trainer.epochs=0", ["trainer.epochs=0 is not allowed", "an integer >= 1"], 2),
    ("trainer.batch_size=0", ["trainer.batch_size=0 is not allowed", "an integer >= 1"], 2),
    ("optimizer.lr=-1", ["optimizer.lr=-1.0 is not allowed", "> 0"], 2),
    ("data.val_split=1.5", ["data.val_split=1.5 is not allowed", "[0, 1)"], 2),
    ("model=resnet9000", ["model=resnet9000 is not a model option", "cnn, cnn_deep, mlp"], 2),
    ("+model.depth=3", ["model.depth is not a config key", "filters"], 2),
    ("data.train_limit=-5", ["data.train_limit=-5 is not allowed"], 2),
    ("model.filters=[1", ["cannot parse the override model.filters=[1", "must be quoted"], 2),
])
def test_bad_config_stops_before_any_run_directory_with_one_line(tmp_path, override, fragments, code):
    result = run_app(override, f"hydra.run.dir={tmp_path}/run", cwd=tmp_path)
    assert_one_line_error(result, *fragments)
    assert result.returncode == code
    assert not (tmp_path / "run").exists(), "a rejected config must leave no run directory"


def _data_folder(tmp_path: Path, mnist_dir: Path, broken: str, content: bytes | None) -> Path:
    """A copy of MNIST (links) where file `broken` is replaced by `content`, or removed when None."""
    folder = tmp_path / "data"
    folder.mkdir()
    for source in mnist_dir.glob("*.gz"):
        if source.name != broken:
            (folder / source.name).symlink_to(source)
    if content is not None:
        (folder / broken).write_bytes(content)
    return folder


def test_missing_data_file_names_the_file(tmp_path, mnist_dir):
    folder = _data_folder(tmp_path, mnist_dir, "t10k-labels-idx1-ubyte.gz", None)
    result = run_app(f"data.root={folder}", f"hydra.run.dir={tmp_path}/run", cwd=tmp_path)
    assert_one_line_error(result, "data.root", "t10k-labels-idx1-ubyte")
    assert result.returncode == 1
    assert not (tmp_path / "run").exists()


def test_truncated_data_file_names_the_file(tmp_path, mnist_dir):
    whole = gzip.decompress((mnist_dir / "train-labels-idx1-ubyte.gz").read_bytes())
    folder = _data_folder(tmp_path, mnist_dir, "train-labels-idx1-ubyte.gz", gzip.compress(whole[:5000]))
    result = run_app(f"data.root={folder}", f"hydra.run.dir={tmp_path}/run", cwd=tmp_path)
    assert_one_line_error(result, "train-labels-idx1-ubyte.gz", "truncated")


def test_corrupt_data_file_fails_its_checksum(tmp_path, mnist_dir):
    raw = bytearray(gzip.decompress((mnist_dir / "t10k-images-idx3-ubyte.gz").read_bytes()))
    raw[5000] ^= 0xFF  # one pixel changed: still a valid IDX file, no longer MNIST
    folder = _data_folder(tmp_path, mnist_dir, "t10k-images-idx3-ubyte.gz", gzip.compress(bytes(raw)))
    result = run_app(f"data.root={folder}", f"hydra.run.dir={tmp_path}/run", cwd=tmp_path)
    assert_one_line_error(result, "t10k-images-idx3-ubyte.gz", "SHA-256")


def test_no_data_anywhere_says_how_to_point_at_it(tmp_path):
    env = {"MNIST_HYDRA_DATA": "", "KERAS_HOME": str(tmp_path / "keras")}
    result = run_app("data.download=false", f"hydra.run.dir={tmp_path}/run", cwd=tmp_path, env=env)
    assert_one_line_error(result, "data.root=", "MNIST_HYDRA_DATA")


# `--help` and friends must answer without TensorFlow: run the app in-process and look.
PROBE = """
import runpy, sys
sys.argv = ["mnist_hydra", *sys.argv[1:]]
try:
    runpy.run_module("mnist_hydra", run_name="__main__")
except SystemExit:
    pass
print("tensorflow imported:", "tensorflow" in sys.modules)
"""


@pytest.mark.parametrize("flags,expected", [
    (["--help"], ["model: cnn, cnn_deep, mlp", "optimizer: adam, adamw, rmsprop, sgd", "epochs: 10"]),
    (["--cfg", "job"], ["filters: 28", "batch_size: 64", "lr: 0.001"]),
    (["--cfg", "job", "optimizer=sgd", "trainer.epochs=3"], ["name: sgd", "epochs: 3"]),
    (["--info"], ["Config search path", "mnist_hydra.conf"]),
])
def test_hydra_flags_answer_without_importing_tensorflow(tmp_path, flags, expected):
    result = subprocess.run([sys.executable, "-c", PROBE, *flags], cwd=tmp_path, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert "tensorflow imported: False" in result.stdout
    for text in expected:
        assert text in result.stdout, result.stdout
    assert not (tmp_path / "outputs").exists()


def test_run_dir_override_is_honoured(tmp_path):
    result = run_app("--cfg", "hydra", "hydra.run.dir=custom/place", cwd=tmp_path)
    assert result.returncode == 0
    assert "dir: custom/place" in result.stdout


# Unwritable output: CI runs as root, so "read-only" means what stops root too.
def test_output_directory_under_a_file_fails_before_training(tmp_path):
    (tmp_path / "afile").write_text("not a folder")
    result = run_app(f"hydra.run.dir={tmp_path}/afile/run", cwd=tmp_path)
    assert_one_line_error(result, f"cannot write {tmp_path}/afile/run", "hydra.run.dir=PATH")


def test_immutable_output_directory_fails_before_training(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    if subprocess.run(["chattr", "+i", str(locked)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not available here")
    try:
        result = run_app(f"hydra.run.dir={locked}/run", cwd=tmp_path)
    finally:
        subprocess.run(["chattr", "-i", str(locked)])
    assert_one_line_error(result, f"cannot write {locked}/run", "Operation not permitted")


def test_full_disk_fails_before_data_or_training(tmp_path):
    small = tmp_path / "small"
    small.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(small)], capture_output=True).returncode:
        pytest.skip("cannot mount a small tmpfs here")
    try:
        result = run_app(f"hydra.run.dir={small}/run", cwd=tmp_path)
        left = list(small.iterdir())
    finally:
        subprocess.run(["umount", str(small)])
    assert_one_line_error(result, f"{small}/run has 1.0 MB free", "hydra.run.dir=PATH")
    assert result.returncode == 1 and left == []
