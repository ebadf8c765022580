"""`python -m mnist_hydra` as a user runs it: bad input, help, and Hydra's own flags.

The mistakes run the app in-process (conftest.call_app: its stderr and exit status); what only a process
shows runs the real command: each app's one-line error and exit code (a sample), the help flags that must
not import TensorFlow, and HYDRA_FULL_ERROR's traceback."""

from __future__ import annotations

import contextlib
import gzip
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import call_app, run_app, skip_unless_ci

ERROR_LINE = re.compile(r"^mnist_hydra: error: .+$")


# The exit codes of docs/what-can-go-wrong.md: 2 for a config or usage mistake, 1 for data (and output) trouble.
CONFIG, DATA = 2, 1


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str, code: int) -> str:
    """Exit `code`, exactly one stderr line of ours, no traceback; returns that line."""
    assert result.returncode == code, (result.returncode, result.stdout + result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and ERROR_LINE.match(lines[0]), result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


# Every other config mistake is a row of tests/test_bad_inputs.py's catalogue, which checks the same line, exit
# code and an untouched folder; this is the lowest batch size, one below the smallest allowed.
@pytest.mark.parametrize(
    "override,fragments,code",
    [("trainer.batch_size=0", ["trainer.batch_size=0 is not allowed", "an integer >= 1"], CONFIG)],
)
def test_bad_config_stops_before_any_run_directory_with_one_line(tmp_path, override, fragments, code):
    result = call_app(override, f"hydra.run.dir={tmp_path}/run", cwd=tmp_path)
    assert_one_line_error(result, *fragments, code=code)
    assert not (tmp_path / "run").exists(), "a rejected config must leave no run directory"


@pytest.mark.parametrize(
    "module,args,fragment,code",
    [
        (
            "mnist_hydra",
            ["trainer.epochs=0", "hydra.run.dir={tmp}/run"],
            "trainer.epochs=0 is not allowed: expected an integer >= 1",
            CONFIG,
        ),
        ("mnist_hydra.export", ["run={tmp}", "format=pickle"], "format=pickle is not allowed", CONFIG),
    ],
    ids=["train", "export"],
)
def test_the_real_commands_end_a_mistake_in_one_line_and_its_exit_code(tmp_path, module, args, fragment, code):
    """A sample through `python -m` itself (the launcher, the process's exit): a config value refused after Hydra
    composed it, and export's. tests/test_bad_inputs.py's PROCESS_SAMPLE runs evaluate, predict, summarize,
    report and train's other exits so; every other mistake is checked in-process, by the same code."""
    result = run_app(*(a.format(tmp=tmp_path) for a in args), cwd=tmp_path, module=module)
    assert result.returncode == code, (result.returncode, result.stdout + result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [f"{module}: error: {lines[0].split(': error: ', 1)[1]}"], result.stderr
    assert fragment.format(tmp=tmp_path) in lines[0] and "Traceback" not in result.stdout + result.stderr
    assert list(tmp_path.iterdir()) == []  # no run directory, no outputs/


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
    result = call_app(f"data.root={folder}", f"hydra.run.dir={tmp_path}/run", cwd=tmp_path)
    assert_one_line_error(result, "data.root", "t10k-labels-idx1-ubyte", code=DATA)
    assert not (tmp_path / "run").exists()


def test_truncated_data_file_names_the_file(tmp_path, mnist_dir):
    whole = gzip.decompress((mnist_dir / "train-labels-idx1-ubyte.gz").read_bytes())
    folder = _data_folder(
        tmp_path, mnist_dir, "train-labels-idx1-ubyte.gz", gzip.compress(whole[:5000], compresslevel=1)
    )
    result = call_app(f"data.root={folder}", f"hydra.run.dir={tmp_path}/run", cwd=tmp_path)
    assert_one_line_error(result, "train-labels-idx1-ubyte.gz", "truncated", code=DATA)
    assert not (tmp_path / "run").exists()


def test_corrupt_data_file_fails_its_checksum(tmp_path, mnist_dir):
    raw = bytearray(gzip.decompress((mnist_dir / "t10k-images-idx3-ubyte.gz").read_bytes()))
    raw[5000] ^= 0xFF  # one pixel changed: still a valid IDX file, no longer MNIST
    damaged = gzip.compress(bytes(raw), compresslevel=1)  # level 1: as valid a gzip file, and quick to write
    folder = _data_folder(tmp_path, mnist_dir, "t10k-images-idx3-ubyte.gz", damaged)
    result = call_app(f"data.root={folder}", f"hydra.run.dir={tmp_path}/run", cwd=tmp_path)
    assert_one_line_error(result, "t10k-images-idx3-ubyte.gz", "SHA-256", code=DATA)
    assert not (tmp_path / "run").exists()


def test_no_data_anywhere_says_how_to_point_at_it(tmp_path):
    env = {"MNIST_HYDRA_DATA": "", "KERAS_HOME": str(tmp_path / "keras")}
    result = call_app("data.download=false", f"hydra.run.dir={tmp_path}/run", cwd=tmp_path, env=env)
    assert_one_line_error(result, "data.root=", "MNIST_HYDRA_DATA", code=DATA)


# `--help` and friends must answer without TensorFlow: one interpreter runs the app with each set of flags
# (the command lines after the script, separated by "--next") and says, after each, whether TensorFlow was loaded.
PROBE = """
import runpy, sys
from hydra.core.global_hydra import GlobalHydra
line = " ".join(sys.argv[1:])
for flags in line.split(" --next "):
    sys.argv = ["mnist_hydra", *flags.split()]
    try:
        runpy.run_module("mnist_hydra", run_name="__main__")
    except SystemExit:
        pass
    GlobalHydra.instance().clear()
    print("tensorflow imported:", "tensorflow" in sys.modules, flush=True)
"""

FLAGS = [
    (["--help"], ["model: cnn, cnn2, cnn_deep, mlp, resnet", "optimizer: adam, adamw, rmsprop, sgd", "epochs: 10"]),
    (["--cfg", "job"], ["filters: 28", "batch_size: 64", "lr: 0.001"]),
    (["--cfg", "job", "optimizer=sgd", "trainer.epochs=3"], ["name: sgd", "epochs: 3"]),
    (["--info"], ["Config search path", "mnist_hydra.conf"]),
]


def test_hydra_flags_answer_without_importing_tensorflow(tmp_path):
    command = " --next ".join(" ".join(flags) for flags, _ in FLAGS).split()
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *command], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    answers = result.stdout.split("tensorflow imported: ")
    assert [answer.split("\n", 1)[0] for answer in answers[1:]] == ["False"] * len(FLAGS), result.stdout
    for (flags, expected), answer in zip(FLAGS, answers[:-1], strict=True):
        for text in expected:
            assert text in answer, (flags, answer)
    assert not (tmp_path / "outputs").exists()


def test_run_dir_override_is_honoured(tmp_path):
    result = call_app("--cfg", "hydra", "hydra.run.dir=custom/place", cwd=tmp_path)
    assert result.returncode == 0
    assert "dir: custom/place" in result.stdout


def test_hydra_full_error_shows_the_traceback(tmp_path):
    result = run_app("trainer.epochs=0", f"hydra.run.dir={tmp_path}/run", cwd=tmp_path, env={"HYDRA_FULL_ERROR": "1"})
    assert result.returncode == 1  # Python's own exit code for an uncaught exception
    assert "Traceback (most recent call last)" in result.stderr
    assert 'mnist_hydra/config.py", line' in result.stderr  # where the value was rejected
    assert result.stderr.strip().splitlines()[-1] == (
        "mnist_hydra.errors.FieldError: trainer.epochs=0 is not allowed: expected an integer >= 1, or a fraction > 0 "
        "that counts steps (trainer.epochs=0.8)"
    )
    assert "mnist_hydra: error:" not in result.stderr
    assert not (tmp_path / "run").exists()


# Unwritable output. CI runs as root, so "read-only" means what stops root too. Each case points data.root
# at an empty folder: the output error, not the data error, shows that the output is checked first.
def _no_data(tmp_path: Path) -> str:
    (tmp_path / "no-data").mkdir()
    return f"data.root={tmp_path / 'no-data'}"


def test_output_directory_under_a_file_fails_before_data_or_training(tmp_path):
    (tmp_path / "afile").write_text("not a folder")
    result = call_app(_no_data(tmp_path), f"hydra.run.dir={tmp_path}/afile/run", cwd=tmp_path)
    assert_one_line_error(result, f"cannot write {tmp_path}/afile/run", "hydra.run.dir=PATH", code=DATA)


def test_immutable_output_directory_fails_before_data_or_training(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    if subprocess.run(["chattr", "+i", str(locked)], capture_output=True).returncode != 0:
        skip_unless_ci("chattr +i is not available here (it needs root on a file system with attributes)")
    try:
        result = call_app(_no_data(tmp_path), f"hydra.run.dir={locked}/run", cwd=tmp_path)
    finally:
        subprocess.run(["chattr", "-i", str(locked)])
    assert_one_line_error(result, f"cannot write {locked}/run", "Operation not permitted", code=DATA)


@contextlib.contextmanager
def small_tmpfs(folder: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` mounted on `folder` (made here) for the block."""
    folder.mkdir()
    if subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True
    ).returncode:
        skip_unless_ci("cannot mount a tmpfs here (it needs root)")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)])


def test_full_disk_fails_before_data_or_training(tmp_path):
    with small_tmpfs(tmp_path / "small", "1m") as small:
        result = call_app(_no_data(tmp_path), f"hydra.run.dir={small}/run", cwd=tmp_path)
        left = list(small.iterdir())
    assert_one_line_error(result, f"{small}/run has 1.0 MB free", "hydra.run.dir=PATH", code=DATA)
    assert left == []


@pytest.mark.parametrize("existing", [False, True])
def test_a_directory_that_takes_no_bytes_fails_at_the_runs_own_write_probe(tmp_path, existing):
    """Hydra's mkdir and the claim's empty probe file succeed on a full disk; only the run's own probe,
    which writes bytes (mnist_hydra.runs.artifacts.check_writable), finds it full.

    Hydra writes nothing of its own there (no .hydra/, no train.log), so nothing else fails first.
    """
    with small_tmpfs(tmp_path / "full", "1m") as full:
        if existing:  # the user's own empty directory: it stays, and stays empty
            (full / "run").mkdir()
        # Every block of the file system taken.
        with open(full / "filler", "wb") as filler, pytest.raises(OSError, match="No space left on device"):
            while True:
                filler.write(b"\0" * 65536)
                filler.flush()
        result = call_app(
            _no_data(tmp_path),
            f"hydra.run.dir={full}/run",
            "hydra.output_subdir=null",
            "hydra/job_logging=disabled",
            cwd=tmp_path,
        )
        left = sorted(p.name for p in full.rglob("*"))
    assert_one_line_error(
        result, f"cannot write the run directory {full}/run: No space left on device", "hydra.run.dir=PATH", code=DATA
    )
    assert left == (["filler", "run"] if existing else ["filler"])  # no probe file, no stub directory
