"""`python -m mnist_hydra.evaluate run=RUN_DIR`: a trained run scored again, on its own or another test set."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from mnist_hydra.config import typed_group
from mnist_hydra.errors import ConfigError, DataError
from mnist_hydra.runs.metrics import per_class_scores
from mnist_hydra.runs.rundir import check_model_file, load_model
from tests.conftest import call_app

EVALUATE = "mnist_hydra.evaluate"
FILES = ["metrics.json", "per_class.csv", "confusion_matrix.png", "misclassified.png", "evaluate.log"]
PRINTED = re.compile(
    r"^accuracy (\d\.\d{4}) \(loss \d+\.\d{4}\) on (\d+) (\w+) test images; evaluation directory: (.+)$"
)


def evaluate(*args: str, cwd: Path, mnist_dir: Path):
    """The evaluate app, in-process (the real command's exit code and line: test_cli's sample of every app)."""
    return call_app(*args, cwd=cwd, env={"MNIST_HYDRA_DATA": str(mnist_dir)}, module=EVALUATE)


def test_by_default_scores_the_runs_own_test_set_into_the_run_directory(trained_run, mnist_dir, tmp_path):
    result = evaluate(f"run={trained_run}", cwd=tmp_path, mnist_dir=mnist_dir)
    assert result.returncode == 0, result.stderr
    printed = PRINTED.match(result.stdout.strip().splitlines()[-1])
    assert printed, result.stdout
    workdir = Path(printed.group(4))
    assert workdir.parent == trained_run / "evaluate"
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}\.\d{6}", workdir.name)
    assert sorted(p.name for p in workdir.iterdir()) == sorted(FILES)  # no .hydra/: not a run of its own

    metrics = json.loads((workdir / "metrics.json").read_text())
    run = json.loads((trained_run / "metrics.json").read_text())
    # The same model on the same 500 images: the run's own test figures, again.
    assert metrics["n"] == 500 and printed.group(2) == "500" and printed.group(3) == "mnist"
    assert metrics["accuracy"] == pytest.approx(run["test_accuracy"], abs=1e-9)
    assert metrics["loss"] == pytest.approx(run["test_loss"], rel=1e-4)
    assert metrics["confusion_matrix"] == run["confusion_matrix"]
    assert metrics["data"]["test_limit"] == 500 and metrics["run"] == str(trained_run)

    scores = pd.read_csv(workdir / "per_class.csv")
    assert list(scores.columns) == ["class", "precision", "recall", "f1", "support"]
    assert list(scores["class"]) == list(range(10)) and scores["support"].sum() == 500
    matrix = np.asarray(run["confusion_matrix"])
    assert np.allclose(scores["recall"], np.diag(matrix) / matrix.sum(axis=1))
    assert metrics["macro_f1"] == pytest.approx(scores["f1"].mean())
    for png in ("confusion_matrix.png", "misclassified.png"):
        with Image.open(workdir / png) as image:
            image.verify()
            assert image.format == "PNG"


def test_a_data_key_changes_that_field_of_the_runs_data_config(trained_run, mnist_dir, tmp_path):
    out = tmp_path / "elsewhere"
    result = evaluate(
        f"run={trained_run}", "data.test_limit=800", f"hydra.run.dir={out}", cwd=tmp_path, mnist_dir=mnist_dir
    )
    assert result.returncode == 0, result.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n"] == 800 and metrics["data"]["train_limit"] == 2000  # the rest stays the run's
    assert metrics["overrides"] == [f"run={trained_run}", "data.test_limit=800"]  # hydra.* are not recorded


def test_a_data_option_replaces_the_runs_data_config(trained_run, mnist_dir, tmp_path):
    result = evaluate(
        f"run={trained_run}",
        "data=mnist",
        "data.test_limit=300",
        f"hydra.run.dir={tmp_path}/ev",
        cwd=tmp_path,
        mnist_dir=mnist_dir,
    )
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    # The option's own config (train_limit: null, not the run's 2000), then the key given with it.
    assert metrics["data"]["train_limit"] is None and metrics["data"]["test_limit"] == 300 == metrics["n"]
    assert 0.7 < metrics["accuracy"] < 1


@pytest.mark.parametrize(
    "args,fragment,code",
    [
        # The rest of evaluate's mistakes are rows of tests/test_bad_inputs.py's catalogue (a sandbox run);
        # these two start from the real trained run, whose evaluate/ folder must stay as it was.
        (["run={run}", "batch_size=0"], "batch_size=0 is not allowed", 2),
        (["run={run}", "data.root={tmp}"], "data.root={tmp}", 1),
    ],
)
def test_mistakes_fail_with_one_line_and_leave_no_directory(trained_run, mnist_dir, tmp_path, args, fragment, code):
    values = {"run": trained_run, "tmp": tmp_path}
    before = sorted((trained_run / "evaluate").glob("*")) if (trained_run / "evaluate").is_dir() else []
    result = evaluate(*(a.format(**values) for a in args), cwd=tmp_path, mnist_dir=mnist_dir)
    assert result.returncode == code, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith(f"{EVALUATE}:")]
    assert len(lines) == 1 and lines[0].startswith(f"{EVALUATE}: error: ") and fragment.format(**values) in lines[0]
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []
    after = sorted((trained_run / "evaluate").glob("*")) if (trained_run / "evaluate").is_dir() else []
    assert after == before


def test_data_of_other_classes_is_refused_in_one_line(trained_run, fashion_dir, tmp_path):
    """A digit model scored on Fashion-MNIST (the same count of classes) would be judged against labels it never
    learned: refused, and nothing is written."""
    before = sorted((trained_run / "evaluate").glob("*")) if (trained_run / "evaluate").is_dir() else []
    result = call_app(
        f"run={trained_run}", "data=fashion_mnist", f"data.root={fashion_dir}", cwd=tmp_path, module=EVALUATE
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.splitlines() == [
        f"{EVALUATE}: error: data=fashion_mnist: its classes (T-shirt/top, Trouser, Pullover, Dress, Coat, Sandal, "
        "Shirt, Sneaker, Bag, Ankle boot) are not those the run was trained on (0, 1, 2, 3, 4, 5, 6, 7, 8, 9), in that "
        "order; evaluate on its data"
    ]
    after = sorted((trained_run / "evaluate").glob("*")) if (trained_run / "evaluate").is_dir() else []
    assert after == before and list(tmp_path.iterdir()) == []


def test_per_class_scores_handle_classes_never_predicted_or_absent():
    # true 0: 3 right, 1 called "1"; true 1: 2 right; class 2 absent and never predicted.
    matrix = np.array([[3, 1, 0], [0, 2, 0], [0, 0, 0]])
    scores = per_class_scores(matrix, ["a", "b", "c"])
    assert list(scores["support"]) == [4, 2, 0]
    assert scores["precision"].tolist()[:2] == [1.0, pytest.approx(2 / 3)]
    assert scores["recall"].tolist()[:2] == [0.75, 1.0]
    assert scores["f1"].tolist()[:2] == [pytest.approx(6 / 7), pytest.approx(0.8)]
    assert scores.iloc[2][["precision", "recall", "f1"]].isna().all()


def test_data_config_from_a_run_is_checked_like_the_apps():
    assert typed_group("data", {"name": "mnist", "test_limit": 5}).test_limit == 5
    with pytest.raises(ConfigError, match=r"data\.test_limit=0 is not allowed"):
        typed_group("data", {"name": "mnist", "test_limit": 0})
    with pytest.raises(ConfigError, match=r"data\.colour is not a config key; data accepts: download, fold"):
        typed_group("data", {"name": "mnist", "colour": True})
    with pytest.raises(ConfigError, match=r"data\.name=svhn is not a registered dataset"):
        typed_group("data", {"name": "svhn"})


# A damaged model.keras: named, and called damaged, not "File not found".


def damage(model: Path, how: str) -> None:
    """Spoil a copy of a real model.keras the way `how` says."""
    data = model.read_bytes()
    if how == "garbage":
        model.write_bytes(b"this is not a model\n")
    elif how == "empty":
        model.write_bytes(b"")
    elif how == "truncated":  # a copy cut short: the zip's directory at the end is gone
        model.write_bytes(data[: len(data) // 2])
    elif how == "flipped":  # one byte of the weights changed: the archive's CRC no longer matches
        offset = data.index(b"HDF") + 4096
        model.write_bytes(data[:offset] + bytes([data[offset] ^ 0xFF]) + data[offset + 1 :])
    elif how == "foreign_zip":  # a zip, but not what Keras writes
        with zipfile.ZipFile(model, "w") as archive:
            archive.writestr("readme.txt", "hello")
    elif how in ("garbled_json", "not_hdf5", "unknown_class"):  # one member rewritten, the archive intact
        member, content = {
            "garbled_json": ("config.json", "{not json"),
            "not_hdf5": ("model.weights.h5", "weights"),
            "unknown_class": ("config.json", '{"class_name": "NoSuchLayer", "config": {}}'),
        }[how]
        with zipfile.ZipFile(io.BytesIO(data)) as original, zipfile.ZipFile(model, "w") as archive:
            for name in original.namelist():
                archive.writestr(name, content if name == member else original.read(name))
    else:
        raise ValueError(how)


DAMAGES = {
    "garbage": "damaged or not a Keras archive: 20 bytes that are not a zip archive (a .keras file is a zip archive)",
    "empty": "damaged or not a Keras archive: an empty file",
    "truncated": "bytes that are not a zip archive",
    "flipped": "damaged Keras archive: model.weights.h5 fails its CRC check",
    "foreign_zip": "damaged or not a Keras archive: the zip archive lacks metadata.json, config.json, model.weights.h5",
    "garbled_json": "damaged or not a Keras archive: config.json is not JSON (Expecting property name",
    "not_hdf5": "damaged or not a Keras archive: model.weights.h5 is not an HDF5 file",
    "unknown_class": "damaged or not a Keras model, it cannot be loaded: Could not locate class 'NoSuchLayer'",
}


@pytest.mark.parametrize("how", DAMAGES)
def test_a_damaged_model_is_called_damaged_and_named(trained_run, tmp_path, how):
    model = tmp_path / "model.keras"
    shutil.copyfile(trained_run / "model.keras", model)
    check_model_file(model)  # the intact copy passes
    damage(model, how)
    with pytest.raises(DataError) as info:
        load_model(model)
    message = str(info.value)
    assert message.startswith(f"{model}: ") and DAMAGES[how] in message and "\n" not in message, message
    assert "not found" not in message.lower()


def test_load_model_checks_the_archive_before_importing_tensorflow(tmp_path):
    (tmp_path / "model.keras").write_bytes(b"junk")
    code = (
        "import sys\nfrom mnist_hydra.runs.rundir import load_model\n"
        f"try:\n    load_model({str(tmp_path / 'model.keras')!r})\nexcept Exception as e:\n    print(type(e).__name__)\n"
        "print('tensorflow' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120).stdout.split()
    assert out == ["DataError", "False"]


@pytest.mark.parametrize("module", [EVALUATE, "mnist_hydra.predict"])
def test_apps_report_a_damaged_model_in_one_line(trained_run, mnist_dir, tmp_path, module):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run, ignore=shutil.ignore_patterns("evaluate"))
    damage(run / "model.keras", "truncated")
    digit = np.zeros((28, 28), np.uint8)
    digit[4:24, 13:16] = 255  # a 1
    Image.fromarray(digit).save(tmp_path / "digit.png")
    args = [f"run={run}"] + ([f"images={tmp_path / 'digit.png'}"] if module != EVALUATE else [])
    result = call_app(*args, cwd=tmp_path, env={"MNIST_HYDRA_DATA": str(mnist_dir)}, module=module)
    assert result.returncode == 1, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith(f"{module}:")]
    assert lines == [
        f"{module}: error: {run / 'model.keras'}: damaged or not a Keras archive: "
        f"{(run / 'model.keras').stat().st_size} bytes that are not a zip archive "
        "(a .keras file is a zip archive); train the run again or restore the file"
    ], result.stderr
    assert "Traceback" not in result.stderr
    assert not (run / "evaluate").exists()  # no evaluation directory left behind
