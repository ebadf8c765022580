"""Run files are written whole or not at all; metrics come out right."""

import json

import numpy as np
import pandas as pd
import pytest

from mnist_hydra.runs.artifacts import atomic_write, write_history_csv, write_json
from mnist_hydra.runs.metrics import confusion_matrix, per_class_accuracy


def test_atomic_write_replaces_and_leaves_no_temp_file(tmp_path):
    target = tmp_path / "model.keras"
    seen = []

    def write(tmp):
        seen.append(tmp)
        tmp.write_bytes(b"new")

    atomic_write(target, write)
    assert target.read_bytes() == b"new"
    assert seen[0].parent == tmp_path and seen[0] != target
    assert seen[0].suffix == ".keras"  # Keras picks the format from the suffix
    assert [p.name for p in tmp_path.iterdir()] == ["model.keras"]


def test_atomic_write_keeps_old_file_when_writer_raises(tmp_path):
    target = tmp_path / "metrics.json"
    target.write_text("old")

    def write(tmp):
        tmp.write_text("half-writ")
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        atomic_write(target, write)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_atomic_write_creates_nothing_when_writer_raises(tmp_path):
    with pytest.raises(ValueError):
        atomic_write(tmp_path / "a.png", lambda tmp: (_ for _ in ()).throw(ValueError()))
    assert list(tmp_path.iterdir()) == []


def test_write_json_round_trips_numpy_values(tmp_path):
    path = tmp_path / "metrics.json"
    obj = {
        "test_accuracy": np.float32(0.98),
        "epochs": np.int64(3),
        "per_class": np.array([0.5, 1.0]),
        "matrix": np.eye(2, dtype=np.int64),
        "ok": np.bool_(True),
        "name": "cnn",
    }
    write_json(path, obj)
    loaded = json.loads(path.read_text())
    assert loaded == {
        "test_accuracy": pytest.approx(0.98),
        "epochs": 3,
        "per_class": [0.5, 1.0],
        "matrix": [[1, 0], [0, 1]],
        "ok": True,
        "name": "cnn",
    }
    assert list(loaded) == list(obj)  # keys keep their order
    assert '\n  "test_accuracy"' in path.read_text()  # indented


def test_write_json_rejects_unknown_types_and_keeps_old_file(tmp_path):
    path = tmp_path / "m.json"
    path.write_text("{}")
    with pytest.raises(TypeError, match="object"):
        write_json(path, {"x": object()})
    assert path.read_text() == "{}"


def test_write_history_csv_has_epoch_column_then_history_keys(tmp_path):
    path = tmp_path / "history.csv"
    history = {"loss": [0.9, 0.5, 0.3], "accuracy": [0.7, 0.8, 0.9], "val_loss": [1.0, 0.6, 0.4]}
    write_history_csv(path, history)
    frame = pd.read_csv(path)
    assert list(frame.columns) == ["epoch", "loss", "accuracy", "val_loss"]
    assert len(frame) == 3
    assert frame["epoch"].tolist() == [1, 2, 3]
    assert frame["val_loss"].tolist() == pytest.approx([1.0, 0.6, 0.4])


def test_confusion_matrix_counts_true_rows_and_predicted_columns():
    y_true = [0, 0, 1, 1, 1, 2, 2, 2, 2]
    y_pred = [0, 1, 1, 1, 2, 2, 2, 0, 2]
    # true 0: one right, one called 1; true 1: two right, one called 2;
    # true 2: three right, one called 0.
    expected = np.array([[1, 1, 0], [0, 2, 1], [1, 0, 3]])
    matrix = confusion_matrix(np.array(y_true), np.array(y_pred), 3)
    assert matrix.dtype == np.int64
    np.testing.assert_array_equal(matrix, expected)
    assert matrix.sum() == len(y_true)


def test_confusion_matrix_keeps_shape_for_unseen_classes():
    matrix = confusion_matrix([0, 0], [0, 0], 4)
    assert matrix.shape == (4, 4)
    assert matrix[0, 0] == 2 and matrix.sum() == 2


@pytest.mark.parametrize(
    "y_true, y_pred, message",
    [
        ([0, 3], [0, 1], r"y_true holds labels in \[0, 3\]; expected 0 to 2"),
        ([0, 1], [0, -1], r"y_pred holds labels in \[-1, 0\]; expected 0 to 2"),
        ([0], [0, 1], "y_true has 1 labels but y_pred has 2"),
    ],
)
def test_confusion_matrix_rejects_bad_labels(y_true, y_pred, message):
    with pytest.raises(ValueError, match=message):  # our message, not numpy's reshape or broadcast error
        confusion_matrix(y_true, y_pred, 3)


def test_per_class_accuracy_is_diagonal_over_row_totals():
    matrix = np.array([[1, 1, 0], [0, 2, 1], [1, 0, 3]])
    np.testing.assert_allclose(per_class_accuracy(matrix), [1 / 2, 2 / 3, 3 / 4])


def test_per_class_accuracy_is_nan_for_a_class_without_samples():
    accuracy = per_class_accuracy(np.array([[2, 0], [0, 0]]))
    assert accuracy[0] == 1.0
    assert np.isnan(accuracy[1])
