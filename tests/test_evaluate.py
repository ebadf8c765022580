"""`python -m mnist_hydra.evaluate run=RUN_DIR`: a trained run scored again, on its own or another test set."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from mnist_hydra.errors import ConfigError
from mnist_hydra.config import typed_group
from mnist_hydra.runs.metrics import per_class_scores
from tests.conftest import run_app

EVALUATE = "mnist_hydra.evaluate"
FILES = ["metrics.json", "per_class.csv", "confusion_matrix.png", "misclassified.png", "evaluate.log"]
PRINTED = re.compile(r"^accuracy (\d\.\d{4}) \(loss \d+\.\d{4}\) on (\d+) (\w+) test images; evaluation directory: (.+)$")



def evaluate(*args: str, cwd: Path, mnist_dir: Path):
    return run_app(*args, cwd=cwd, env={"MNIST_HYDRA_DATA": str(mnist_dir)}, module=EVALUATE)


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
    result = evaluate(f"run={trained_run}", "data.test_limit=800", f"hydra.run.dir={out}", cwd=tmp_path,
                      mnist_dir=mnist_dir)
    assert result.returncode == 0, result.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n"] == 800 and metrics["data"]["train_limit"] == 2000  # the rest stays the run's
    assert metrics["overrides"] == [f"run={trained_run}", "data.test_limit=800"]  # hydra.* are not recorded


def test_a_data_option_replaces_the_runs_data_config(trained_run, mnist_dir, tmp_path):
    result = evaluate(f"run={trained_run}", "data=mnist", f"hydra.run.dir={tmp_path}/ev", cwd=tmp_path,
                      mnist_dir=mnist_dir)
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert metrics["n"] == 10_000 and metrics["data"]["test_limit"] is None  # the option's default: all
    assert 0.7 < metrics["accuracy"] < 1


@pytest.mark.parametrize("args,fragment,code", [
    ([], "run has no value", 2),
    (["run={tmp}/no-such-run"], "run={tmp}/no-such-run: no such directory", 2),
    (["run={tmp}"], "run={tmp}: no model.keras in it", 2),
    (["run={run}", "batch_size=0"], "batch_size=0 is not allowed", 2),
    (["run={run}", "data.test_limit=ten"], "data.test_limit=ten has the wrong type", 2),
    (["run={run}", "data=svhn"], "data=svhn is not a data option; choose one of: fashion_mnist, mnist", 2),
    (["run={run}", "data.root={tmp}"], "data.root={tmp}", 1),
])
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
