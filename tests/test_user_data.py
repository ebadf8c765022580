"""Your own data: a folder of images, a Kaggle-style CSV and an IDX set, built from real MNIST test digits,
each loaded, checked and trained on; fine-tuning with init_from; the class names reach predict and serving."""

from __future__ import annotations

import gzip
import json
import logging
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from mnist_hydra.data.base import holdout
from mnist_hydra.data.csv_table import CsvConfig
from mnist_hydra.data.folder import FolderConfig
from mnist_hydra.data.idx_format import read_idx, write_idx
from mnist_hydra.data.idx_set import IdxConfig, role_of
from mnist_hydra.data.splits import load_splits
from mnist_hydra.errors import DataError
from tests.conftest import call_app, run_app

FOLDER_IMAGES = 500  # the first test digits, written as files of several formats, sizes and polarities
CSV_ROWS = 600
IDX_CLASSES = ("zero", "one", "two")
IDX_TRAIN, IDX_TEST = 600, 300  # images of the digits 0, 1 and 2
# The MLP: the loaders are under test, not the network, and it trains in a second on this little data.
TRAIN = ["model=mlp", "trainer.epochs=8", "trainer.verbose=0"]
# Test accuracy after TRAIN on each, measured on this machine's CPUs (folder 0.88 of 100 test images, csv 0.857
# of 119, idx 0.973 of 300), with room for another CPU's rounding; a loader that scrambles labels or images
# lands far below (0.1, or 0.33 for the three IDX classes).
BANDS = {"folder": (0.75, 0.97), "csv": (0.74, 0.96), "idx": (0.92, 1.0)}


@pytest.fixture(scope="module")
def digits(mnist_dir):
    """MNIST's test images and labels."""
    return (read_idx(mnist_dir / "t10k-images-idx3-ubyte.gz"), read_idx(mnist_dir / "t10k-labels-idx1-ubyte.gz"))


def write_folder(folder: Path, images: np.ndarray, labels: np.ndarray, names=None) -> None:
    """One file per image under folder/CLASS/: PNG and JPEG, 28, 56 and 100 pixels, light on dark and dark on light,
    grey and RGB."""
    for i, (image, label) in enumerate(zip(images, labels, strict=False)):
        picture = Image.fromarray(image)
        if i % 3 == 1:  # dark ink on white paper, twice the size
            picture = Image.fromarray(255 - image).resize((56, 56), Image.BILINEAR)
        elif i % 3 == 2:
            picture = picture.resize((100, 100), Image.BILINEAR).convert("RGB")
        target = folder / (names[label] if names else str(label))
        target.mkdir(parents=True, exist_ok=True)
        picture.save(target / f"{i:05d}.{'jpg' if i % 2 else 'png'}", quality=95)


@pytest.fixture(scope="module")
def user_data(tmp_path_factory, digits):
    """The three layouts: an image folder, a Kaggle-format train.csv, a 3-class IDX set with classes.txt."""
    x, y = digits
    root = tmp_path_factory.mktemp("user_data")
    write_folder(root / "folder", x[:FOLDER_IMAGES], y[:FOLDER_IMAGES])
    frame = pd.DataFrame(x[:CSV_ROWS].reshape(CSV_ROWS, -1), columns=[f"pixel{i}" for i in range(784)])
    frame.insert(0, "label", y[:CSV_ROWS])
    frame.to_csv(root / "train.csv", index=False)
    keep = y < 3
    xs, ys = x[keep], y[keep]
    idx = root / "idx"
    idx.mkdir()
    write_idx(idx / "train-images-idx3-ubyte.gz", xs[:IDX_TRAIN])
    write_idx(idx / "train-labels-idx1-ubyte.gz", ys[:IDX_TRAIN])
    write_idx(idx / "t10k-images-idx3-ubyte.gz", xs[IDX_TRAIN : IDX_TRAIN + IDX_TEST])
    write_idx(idx / "t10k-labels-idx1-ubyte.gz", ys[IDX_TRAIN : IDX_TRAIN + IDX_TEST])
    (idx / "classes.txt").write_text("\n".join(IDX_CLASSES) + "\n")
    return {"folder": root / "folder", "csv": root / "train.csv", "idx": idx}


@pytest.fixture(scope="module")
def runs(user_data, tmp_path_factory, mnist_dir):
    """A small run trained on each layout with the app, in this process: {layout: run directory}."""
    cwd = tmp_path_factory.mktemp("user_runs")
    env = {"MNIST_HYDRA_DATA": str(mnist_dir), "MNIST_HYDRA_CACHE": str(cwd / "cache")}
    out = {}
    for layout, path in user_data.items():
        result = call_app(
            f"data={layout}", f"data.root={path}", *TRAIN, f"hydra.run.dir={cwd}/{layout}", cwd=cwd, env=env
        )
        assert result.returncode == 0, result.stderr[-3000:]
        out[layout] = cwd / layout
    return out


# --- each layout trains, and scores within its band


@pytest.mark.parametrize("layout", ["folder", "csv", "idx"])
def test_each_layout_trains_within_its_band(runs, layout):
    metrics = json.loads((runs[layout] / "metrics.json").read_text())
    low, high = BANDS[layout]
    assert metrics["status"] == "completed"
    assert low <= metrics["test_accuracy"] <= high, metrics["test_accuracy"]
    expected = list(IDX_CLASSES) if layout == "idx" else [str(i) for i in range(10)]
    assert metrics["class_names"] == expected
    assert np.asarray(metrics["confusion_matrix"]).shape == (len(expected),) * 2
    provenance = json.loads((runs[layout] / "provenance.json").read_text())
    assert provenance["data"]["checksums"] and provenance["config"]["data"]["name"] == layout


def test_the_class_count_flows_from_the_data_to_the_last_layer(runs):
    from mnist_hydra.runs.rundir import load_model

    assert load_model(runs["idx"] / "model.keras").output_shape == (None, 3)
    assert load_model(runs["folder"] / "model.keras").output_shape == (None, 10)


def test_predict_and_serving_name_the_runs_classes(runs, user_data, digits):
    from fastapi.testclient import TestClient

    from mnist_hydra.serving.api import create_app

    result = call_app(
        f"run={runs['idx']}",
        f"images={user_data['folder'] / '2'}",
        "top_k=2",
        cwd=runs["idx"],
        module="mnist_hydra.predict",
    )
    assert result.returncode == 0, result.stderr
    rows = result.stdout.strip().splitlines()
    assert rows and sum(" two " in row for row in rows) >= 0.8 * len(rows), result.stdout
    with TestClient(create_app(runs["idx"])) as client:
        assert client.get("/model").json()["class_names"] == list(IDX_CLASSES)
        x, y = digits
        one = x[np.flatnonzero(y == 1)[0]]
        answer = client.post("/predict", json={"pixels": (one / 255).tolist()}).json()
        assert answer["class_name"] == "one" and len(answer["probabilities"]) == 3


# --- fine-tuning


# The app end to end (a training process); test_init_from_copies_every_layer_but_a_resized_last_one checks the
# weights themselves in this process, by default.
@pytest.mark.slow
def test_init_from_a_run_with_other_classes_replaces_only_the_last_layer(runs, user_data, tmp_path, mnist_dir):
    result = run_app(
        "data=idx",
        f"data.root={user_data['idx']}",
        "model=mlp",
        "trainer.epochs=1",
        "trainer.verbose=0",
        f"init_from={runs['folder']}",
        f"hydra.run.dir={tmp_path}/tuned",
        cwd=tmp_path,
        env={"MNIST_HYDRA_DATA": str(mnist_dir)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    log = (tmp_path / "tuned" / "train.log").read_text()
    assert "its model has 10 classes and this data 3, so the last layer (" in log and "starts afresh" in log
    provenance = json.loads((tmp_path / "tuned" / "provenance.json").read_text())
    assert provenance["init_from"]["run"] == str(runs["folder"])
    assert len(provenance["init_from"]["model_sha256"]) == 64
    assert json.loads((tmp_path / "tuned" / "metrics.json").read_text())["test_accuracy"] > 0.9


def test_init_from_a_run_of_another_network_is_one_line(runs, user_data, tmp_path, mnist_dir):
    result = call_app(
        "data=csv",
        f"data.root={user_data['csv']}",
        "model=cnn",
        "trainer.verbose=0",
        f"init_from={runs['csv']}",
        f"hydra.run.dir={tmp_path}/other",
        cwd=tmp_path,
        env={"MNIST_HYDRA_DATA": str(mnist_dir)},
    )
    lines = result.stderr.splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr[-3000:]
    assert lines[0].startswith(f"mnist_hydra: error: init_from={runs['csv']}: its model is another network")
    assert not (tmp_path / "other").exists()  # no run directory left behind


def test_init_from_copies_every_layer_but_a_resized_last_one(runs, caplog):
    from mnist_hydra.models.networks import MODELS, MLPConfig
    from mnist_hydra.runs.rundir import load_model
    from mnist_hydra.training.init_from import load_weights_from

    source = load_model(runs["folder"] / "model.keras")  # 10 classes
    same = MODELS.get("mlp")(MLPConfig(), (28, 28, 1), 10)
    with caplog.at_level(logging.INFO, logger="mnist_hydra.training.init_from"):
        load_weights_from(same, str(runs["folder"]))
    assert all(np.array_equal(a, b) for a, b in zip(same.get_weights(), source.get_weights(), strict=True))
    assert "(all 3 layers)" in caplog.text
    fewer = MODELS.get("mlp")(MLPConfig(), (28, 28, 1), 3)
    fresh = [w.copy() for w in fewer.layers[-1].get_weights()]
    with caplog.at_level(logging.INFO, logger="mnist_hydra.training.init_from"):
        load_weights_from(fewer, str(runs["folder"]))
    for mine, theirs in zip(fewer.layers[:-1], source.layers[:-1], strict=True):
        assert all(np.array_equal(a, b) for a, b in zip(mine.get_weights(), theirs.get_weights(), strict=True))
    assert all(np.array_equal(a, b) for a, b in zip(fewer.layers[-1].get_weights(), fresh, strict=True))
    assert "its model has 10 classes and this data 3, so the last layer" in caplog.text


# --- the folder loader


def test_a_second_load_reads_the_cache_and_gives_the_same_arrays(user_data, tmp_path, caplog):
    cfg = FolderConfig(root=str(user_data["folder"]), cache_dir=str(tmp_path))
    with caplog.at_level(logging.INFO, logger="mnist_hydra.data.folder"):
        first = load_splits(cfg, seed=0)
        second = load_splits(cfg, seed=0)
    said = [r.getMessage() for r in caplog.records]
    assert any(m.startswith(f"data: decoded {FOLDER_IMAGES} images") for m in said), said
    assert any(m.startswith(f"data: read {FOLDER_IMAGES} decoded images from the cache {tmp_path}") for m in said)
    for name in ("x_train", "y_train", "x_val", "x_test", "y_test"):
        assert np.array_equal(getattr(first, name), getattr(second, name)), name
    assert len(list(tmp_path.glob("folder-*.npz"))) == 1


def test_a_cache_that_cannot_be_written_is_said_once_and_not_claimed(user_data, tmp_path, caplog):
    (tmp_path / "file").write_text("not a folder")
    cfg = FolderConfig(root=str(user_data["folder"]), cache_dir=str(tmp_path / "file" / "cache"))
    with caplog.at_level(logging.INFO, logger="mnist_hydra.data.folder"):
        splits = load_splits(cfg, seed=0)
    said = [r.getMessage() for r in caplog.records]
    assert len(splits.y_train) + len(splits.y_val) + len(splits.y_test) == FOLDER_IMAGES
    assert [m for m in said if "cache" in m] == [
        next(m for m in said if m.startswith(f"data: could not cache the decoded images in {tmp_path / 'file'}")),
        next(m for m in said if m.startswith(f"data: decoded {FOLDER_IMAGES} images") and m.endswith("(not cached)")),
    ], said


def test_a_changed_folder_is_decoded_again(tmp_path, digits):
    x, y = digits
    write_folder(tmp_path / "data", x[:40], y[:40])
    cfg = FolderConfig(root=str(tmp_path / "data"), cache_dir=str(tmp_path / "cache"), val_split=0)
    before = load_splits(cfg, seed=0)
    Image.fromarray(x[40]).save(tmp_path / "data" / str(y[40]) / "new.png")
    after = load_splits(cfg, seed=0)
    assert len(after.y_train) + len(after.y_test) == len(before.y_train) + len(before.y_test) + 1
    assert len(list((tmp_path / "cache").glob("folder-*.npz"))) == 2


def test_images_are_preprocessed_as_predict_does(tmp_path, digits):
    from mnist_hydra.data.digits import preprocess_file

    x, y = digits
    write_folder(tmp_path / "data", x[:30], y[:30])
    cfg = FolderConfig(root=str(tmp_path / "data"), cache=False, test_split=0.01, val_split=0)
    splits = load_splits(cfg, seed=0)
    files = sorted((tmp_path / "data").rglob("*.*"))
    expected = {tuple(np.rint(preprocess_file(f) * 255).astype(np.uint8).ravel()) for f in files}
    got = {tuple(image.ravel()) for image in np.concatenate([splits.x_train, splits.x_test])}
    assert got == expected


def test_an_unreadable_image_is_skipped_with_one_warning(tmp_path, digits, caplog):
    x, y = digits
    write_folder(tmp_path / "data", x[:20], y[:20])
    bad = tmp_path / "data" / "3" / "cut.png"
    good = tmp_path / "data" / "3" / "whole.png"
    Image.fromarray(x[18]).save(good)
    bad.write_bytes(good.read_bytes()[:80])
    (tmp_path / "data" / "3" / "notes.txt").write_text("not an image")
    cfg = FolderConfig(root=str(tmp_path / "data"), cache=False, val_split=0)
    with caplog.at_level(logging.INFO, logger="mnist_hydra.data.folder"):
        splits = load_splits(cfg, seed=0)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and warnings[0].startswith("data: skipped 1 image file(s) that could not be read: ")
    assert str(bad) in warnings[0]
    assert any("left out 1 file(s) that are not images: 3/notes.txt" in r.getMessage() for r in caplog.records)
    assert len(splits.y_train) + len(splits.y_test) == 21


def test_train_and_test_folders_are_the_splits_and_classes_can_be_ordered(tmp_path, digits):
    x, y = digits
    names = {0: "zero", 1: "one"}
    keep = np.flatnonzero(y < 2)
    write_folder(tmp_path / "data" / "train", x[keep[:30]], y[keep[:30]], names)
    write_folder(tmp_path / "data" / "test", x[keep[30:40]], y[keep[30:40]], names)
    splits = load_splits(FolderConfig(root=str(tmp_path / "data"), cache=False, val_split=0), seed=0)
    assert splits.class_names == ("one", "zero")  # sorted
    assert len(splits.y_train) == 30 and len(splits.y_test) == 10
    ordered = load_splits(
        FolderConfig(root=str(tmp_path / "data"), cache=False, val_split=0, classes=["zero", "one"]), seed=0
    )
    assert ordered.class_names == ("zero", "one")
    assert np.bincount(ordered.y_test).tolist() == np.bincount(splits.y_test).tolist()[::-1]


def test_the_test_split_is_stratified_and_the_same_for_every_seed():
    labels = np.repeat(np.arange(4), [50, 20, 10, 1])
    train, test = holdout(labels, 0.2, 4)
    assert np.bincount(labels[test], minlength=4).tolist() == [10, 4, 2, 0]
    assert sorted(np.concatenate([train, test]).tolist()) == list(range(len(labels)))
    assert np.array_equal(holdout(labels, 0.2, 4)[1], test)


# --- the CSV loader


def test_csv_with_the_label_last_and_another_name(tmp_path, digits):
    x, y = digits
    frame = pd.DataFrame(x[:50].reshape(50, -1), columns=[f"p{i}" for i in range(784)])
    frame["digit"] = y[:50]
    frame.to_csv(tmp_path / "d.csv", index=False)
    splits = load_splits(CsvConfig(root=str(tmp_path / "d.csv"), label_column="digit", val_split=0), seed=0)
    both = np.concatenate([splits.x_train, splits.x_test])
    assert len(both) == 50 and {tuple(i.ravel()) for i in both} == {tuple(i.ravel()) for i in x[:50]}
    with pytest.raises(DataError, match="no 'label' column .*data.label_column=NAME"):
        load_splits(CsvConfig(root=str(tmp_path / "d.csv")), seed=0)


def kaggle_rows(n: int = 12) -> tuple[list[str], np.ndarray]:
    """A header and `n` rows of Kaggle's format (labels 0, 1, 2, ...), and the images they hold."""
    images = np.random.default_rng(0).integers(0, 256, (n, 784))
    header = ["label"] + [f"pixel{i}" for i in range(784)]
    return [header] + [[str(i % 3)] + [str(v) for v in image] for i, image in enumerate(images)], images


@pytest.mark.parametrize("sep", [";", "\t", "|", " "])
def test_csv_columns_may_be_separated_by_semicolons_tabs_bars_or_spaces(tmp_path, sep, caplog):
    rows, images = kaggle_rows()
    (tmp_path / "d.csv").write_text("\n".join(sep.join(row) for row in rows) + "\n")
    with caplog.at_level(logging.INFO, logger="mnist_hydra.data.csv_table"):
        splits = load_splits(CsvConfig(root=str(tmp_path / "d.csv"), val_split=0), seed=0)
    both = np.concatenate([splits.x_train, splits.x_test]).reshape(-1, 784)
    assert sorted(map(tuple, both)) == sorted(map(tuple, images))
    assert any("columns separated by" in r.getMessage() for r in caplog.records)


def test_a_csv_whose_separator_is_unknown_is_one_short_line(tmp_path):
    rows, _ = kaggle_rows()
    (tmp_path / "d.csv").write_text("\n".join(":".join(row) for row in rows) + "\n")
    with pytest.raises(DataError, match=r"its header line 'label:pixel0:.*\.\.\.' is one column; .*semicolons") as info:
        load_splits(CsvConfig(root=str(tmp_path / "d.csv")), seed=0)
    assert len(str(info.value).replace(str(tmp_path), ".")) < 300  # the 7,000-character header is not repeated


def test_a_csv_without_a_header_takes_the_label_column_by_its_number(tmp_path):
    rows, images = kaggle_rows()
    (tmp_path / "d.csv").write_text("\n".join(",".join(row) for row in rows[1:]) + "\n")
    with pytest.raises(DataError, match=r"has no header line .*numbered from 0; .*data.label_column=0"):
        load_splits(CsvConfig(root=str(tmp_path / "d.csv")), seed=0)
    splits = load_splits(CsvConfig(root=str(tmp_path / "d.csv"), label_column="0", val_split=0), seed=0)
    assert len(splits.y_train) + len(splits.y_test) == 12  # the first line is an image too
    numbered = [",".join(str(i) for i in range(785))] + [",".join(row) for row in rows[1:]]
    (tmp_path / "n.csv").write_text("\n".join(numbered) + "\n")  # pandas' to_csv of an unnamed frame
    splits = load_splits(CsvConfig(root=str(tmp_path / "n.csv"), label_column="0", val_split=0), seed=0)
    assert len(splits.y_train) + len(splits.y_test) == 12  # its first line is the header


def test_a_csv_in_cp1252_is_read_as_such_and_a_binary_file_is_not_text(tmp_path, caplog):
    rows, _ = kaggle_rows()
    rows[0][0] = "étiquette"
    (tmp_path / "d.csv").write_bytes(("\n".join(",".join(row) for row in rows) + "\n").encode("cp1252"))
    with caplog.at_level(logging.WARNING):
        splits = load_splits(CsvConfig(root=str(tmp_path / "d.csv"), label_column="étiquette", val_split=0), seed=0)
    assert len(splits.y_train) + len(splits.y_test) == 12
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        f"data: {tmp_path / 'd.csv'} is text but not UTF-8 (byte 0xe9); reading it as cp1252 (Windows)"
    ]
    (tmp_path / "b.csv").write_bytes(b"label,\xff\x00\x01\x02" * 100)
    with pytest.raises(DataError, match=r"is not a text CSV file \(it holds NUL bytes"):
        load_splits(CsvConfig(root=str(tmp_path / "b.csv")), seed=0)


@pytest.mark.parametrize("values, read", [([0, 1], [0, 255]), ([0.0, 0.5, 1.0], [0, 128, 255])])
def test_pixels_from_0_to_1_are_refused_unless_data_pixel_scale_says_so(tmp_path, values, read):
    pixels = [values[i % len(values)] for i in range(784)]
    rows = [",".join(["label"] + [f"pixel{i}" for i in range(784)])]
    rows += [",".join(map(str, [i % 2] + pixels)) for i in range(10)]
    (tmp_path / "d.csv").write_text("\n".join(rows) + "\n")
    with pytest.raises(DataError, match=r"the largest pixel is 1: pixels from 0 to 1 .*data.pixel_scale=1"):
        load_splits(CsvConfig(root=str(tmp_path / "d.csv")), seed=0)
    splits = load_splits(CsvConfig(root=str(tmp_path / "d.csv"), pixel_scale=1, val_split=0), seed=0)
    assert splits.x_train.reshape(-1, 784)[0, : len(read)].tolist() == read
    rows[2] = rows[2].rsplit(",", 1)[0] + ",3"
    (tmp_path / "d.csv").write_text("\n".join(rows) + "\n")
    with pytest.raises(DataError, match=r"pixel 3 is outside 0..1 .*or to 255 with data.pixel_scale=255"):
        load_splits(CsvConfig(root=str(tmp_path / "d.csv"), pixel_scale=1), seed=0)


@pytest.mark.parametrize(
    "pixel, scale, refused",
    [
        ("255", 255, None),
        ("256", 255, "pixel 256 is outside 0..255"),
        ("0", 255, None),
        ("-1", 255, "pixel -1 is outside 0..255"),
        ("1", 1, None),
        ("1.001", 1, "pixel 1.001 is outside 0..1"),
    ],
)
def test_a_csv_pixel_at_the_scale_is_full_ink_and_one_past_it_is_refused(tmp_path, pixel, scale, refused):
    """The edges of 0..data.pixel_scale from both sides: the last value inside is read, the first outside named."""
    rows, _ = kaggle_rows()
    # Every other pixel well inside the range, so that only the one under test can be full ink.
    inside = (lambda v: str(int(v) % 200)) if scale == 255 else (lambda v: "0.5" if int(v) % 2 else "0")
    rows = [rows[0]] + [[row[0]] + [inside(v) for v in row[1:]] for row in rows[1:]]
    rows[1 + 8][1 + 300] = pixel  # the ninth image's 300th pixel: row 10 of the file, after its header
    (tmp_path / "d.csv").write_text("\n".join(",".join(row) for row in rows) + "\n")
    cfg = CsvConfig(root=str(tmp_path / "d.csv"), pixel_scale=scale, val_split=0)
    if refused:
        with pytest.raises(DataError, match=rf"row 10, column 'pixel300': {re.escape(refused)} \(1 such cells\)"):
            load_splits(cfg, seed=0)
        return
    splits = load_splits(cfg, seed=0)
    both = np.concatenate([splits.x_train, splits.x_test])
    assert len(both) == 12 and int((both == 255).sum()) == (1 if float(pixel) == scale else 0)


def test_a_dangling_link_and_a_name_that_is_not_utf8_are_files_like_any_other(tmp_path, digits, caplog):
    """A link to nowhere is an unreadable file, skipped; a name that is not UTF-8 is read, cached and named."""
    x, y = digits
    write_folder(tmp_path / "data", x[:20], y[:20])
    (tmp_path / "data" / "3" / "link.png").symlink_to(tmp_path / "nowhere.png")
    Image.fromarray(x[30]).save(tmp_path / "data" / "3" / os.fsdecode(b"caf\xe9.png"))
    (tmp_path / "data" / "3" / os.fsdecode(b"bad\xe9.png")).write_text("not an image")
    cfg = FolderConfig(root=str(tmp_path / "data"), cache_dir=str(tmp_path / "cache"), val_split=0)
    for _ in range(2):  # decoded, then read from the cache
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            splits = load_splits(cfg, seed=0)
        assert len(splits.y_train) + len(splits.y_test) == 21
        [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert warning.startswith("data: skipped 2 image file(s) that could not be read: ")
        assert "3/bad\\xe9.png: not a readable image" in warning and "3/link.png: no such file" in warning


def test_a_class_without_images_among_named_classes_is_said(tmp_path, digits, caplog):
    """EMNIST letters' mapping names label 0, which no image has: one warning line, not a silent class."""
    x, y = digits
    for split, part in (("train", slice(0, 60)), ("test", slice(60, 80))):
        write_idx(tmp_path / f"emnist-letters-{split}-images-idx3-ubyte.gz", x[part])
        write_idx(tmp_path / f"emnist-letters-{split}-labels-idx1-ubyte.gz", (y[part] % 3 + 1).astype(np.uint8))
    (tmp_path / "emnist-letters-mapping.txt").write_text("1 65 97\n2 66 98\n3 67 99\n")
    with caplog.at_level(logging.WARNING):
        splits = load_splits(IdxConfig(root=str(tmp_path), val_split=0), seed=0)
    assert splits.class_names == ("0", "Aa", "Bb", "Cc")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        f"data: 1 of the 4 classes have no image (label 0, named by {tmp_path / 'emnist-letters-mapping.txt'}); "
        "the model still gets an output for each"
    ]


def test_idx_pixels_from_0_to_1_are_read_with_data_pixel_scale(tmp_path):
    binary = np.zeros((20, 28, 28), np.uint8)
    binary[:, 8:20, 12:16] = 1
    for split in ("train", "t10k"):
        write_idx(tmp_path / f"{split}-images-idx3-ubyte.gz", binary)
        write_idx(tmp_path / f"{split}-labels-idx1-ubyte.gz", np.arange(20, dtype=np.uint8) % 2)
    with pytest.raises(DataError, match=r"^data=idx: .*the largest pixel is 1, .*set data.pixel_scale=1"):
        load_splits(IdxConfig(root=str(tmp_path)), seed=0)
    splits = load_splits(IdxConfig(root=str(tmp_path), pixel_scale=1), seed=0)
    assert set(np.unique(splits.x_train).tolist()) == {0, 255}


def test_csv_labels_beyond_the_given_classes_are_refused(tmp_path):
    frame = pd.DataFrame(np.full((4, 784), 200), columns=[f"pixel{i}" for i in range(784)])
    frame.insert(0, "label", [0, 1, 2, 2])
    frame.to_csv(tmp_path / "d.csv", index=False)
    with pytest.raises(DataError, match=r"label 2 is out of range for the 2 classes of data.classes \(labels 0..1\)"):
        load_splits(CsvConfig(root=str(tmp_path / "d.csv"), classes=["a", "b"]), seed=0)


# --- the IDX loader


def test_idx_files_are_told_by_their_names():
    assert role_of("emnist-letters-train-images-idx3-ubyte.gz") == "train images"
    assert role_of("t10k-labels-idx1-ubyte") == "test labels"
    assert role_of("qmnist-test-labels-idx2-int.gz") == "test labels"
    assert role_of("kmnist-classmap.csv") is None and role_of("README.md") is None


def test_emnist_layout_with_a_prefix_a_mapping_and_transposed_images(tmp_path, digits):
    x, y = digits
    for prefix, count in (("emnist-letters", 60), ("emnist-digits", 40)):
        write_idx(tmp_path / f"{prefix}-train-images-idx3-ubyte.gz", x[:count])
        write_idx(tmp_path / f"{prefix}-train-labels-idx1-ubyte.gz", (y[:count] % 3 + 1).astype(np.uint8))
        write_idx(tmp_path / f"{prefix}-test-images-idx3-ubyte.gz", x[count : count + 10])
        write_idx(tmp_path / f"{prefix}-test-labels-idx1-ubyte.gz", (y[count : count + 10] % 3 + 1).astype(np.uint8))
    (tmp_path / "emnist-letters-mapping.txt").write_text("1 65 97\n2 66 98\n3 67 99\n")
    with pytest.raises(DataError, match=r"several train images files .*data\.prefix=emnist-digits"):
        load_splits(IdxConfig(root=str(tmp_path)), seed=0)
    splits = load_splits(IdxConfig(root=str(tmp_path), prefix="emnist-letters", val_split=0), seed=0)
    assert splits.class_names == ("0", "Aa", "Bb", "Cc")  # label 0 is unused in EMNIST letters (and said so)
    assert np.array_equal(splits.x_train, x[:60][splits.train_indices].transpose(0, 2, 1))
    kept = load_splits(IdxConfig(root=str(tmp_path), prefix="emnist-letters", val_split=0, transpose=False), seed=0)
    assert np.array_equal(kept.x_train, x[:60][kept.train_indices])


def test_qmnist_extended_labels_give_the_class_in_their_first_column(tmp_path, digits):
    x, y = digits
    extended = np.zeros((30, 8), np.int32)
    extended[:, 0] = y[:30]
    extended[:, 1] = 7  # QMNIST's writer id and more: not the class
    for split in ("train", "test"):
        write_idx(tmp_path / f"qmnist-{split}-images-idx3-ubyte.gz", x[:30])
        write_idx(tmp_path / f"qmnist-{split}-labels-idx2-int.gz", extended)
    splits = load_splits(IdxConfig(root=str(tmp_path), val_split=0), seed=0)
    assert np.array_equal(splits.y_test, y[:30]) and splits.class_names == tuple(str(i) for i in range(10))


def test_mnist_through_data_idx_is_recognised(mnist_dir, caplog):
    with caplog.at_level(logging.INFO, logger="mnist_hydra.data.idx_set"):
        splits = load_splits(IdxConfig(root=str(mnist_dir), test_limit=10), seed=0)
    assert len(splits.y_train) == 54000 and splits.class_names == tuple(str(i) for i in range(10))
    assert any("checksums: MNIST's files" in r.getMessage() for r in caplog.records)
    assert set(splits.checksums) == {p.name for p in mnist_dir.glob("*-ubyte.gz")}
    with gzip.open(mnist_dir / "t10k-labels-idx1-ubyte.gz") as f:
        assert f.read(4) == b"\x00\x00\x08\x01"


@pytest.mark.slow  # test_export checks the class names of every format on the MNIST run, by default
def test_an_export_of_a_run_on_your_data_carries_its_class_names(runs, tmp_path):
    import shutil

    from mnist_hydra.export import run as export

    run = tmp_path / "idx"
    shutil.copytree(runs["idx"], run)
    record = export.export_run(run, "saved_model", limit=50)
    assert record["passed"] and record["class_names"] == list(IDX_CLASSES)
    assert json.loads((run / "export" / "saved_model" / "export.json").read_text())["class_names"] == list(IDX_CLASSES)


def test_drawings_collected_by_the_server_are_a_folder_data_set(runs, digits, tmp_path):
    """serve.collect_dir's DIR/<class>/<time>.png, then data=folder data.root=DIR: the loop from use to training."""
    from fastapi.testclient import TestClient

    from mnist_hydra.serving.api import create_app
    from mnist_hydra.serving.settings import ServeSettings

    x, y = digits
    drawn = tmp_path / "drawn"
    with TestClient(create_app(runs["idx"], settings=ServeSettings(collect_dir=str(drawn)))) as client:
        for label in range(3):
            for image in x[np.flatnonzero(y == label)[:4]]:
                saved = client.post("/collect", json={"pixels": image.tolist(), "label": IDX_CLASSES[label]})
                assert saved.status_code == 201, saved.text
    splits = load_splits(FolderConfig(root=str(drawn), cache=False, val_split=0, test_split=0.25), seed=0)
    assert splits.class_names == tuple(sorted(IDX_CLASSES))
    assert len(splits.y_train) + len(splits.y_test) == 12
    assert np.bincount(splits.y_test).tolist() == [1, 1, 1]


def test_worker_processes_decode_the_same_images_in_the_same_order(tmp_path, digits):
    """Large folders are decoded by forked workers (before TensorFlow loads): the result is the serial one."""
    import subprocess
    import sys

    x, y = digits
    write_folder(tmp_path / "data", x[:60], y[:60])
    (tmp_path / "data" / "3" / "cut.png").write_bytes(b"\x89PNG\r\n\x1a\n cut short")
    code = f"""
import sys
import numpy as np
from pathlib import Path
from mnist_hydra.data import folder
files = sorted(p for p in Path({str(tmp_path / "data")!r}).rglob("*.*"))
folder.PARALLEL_FROM, folder.MIN_CHUNK = 10, 8  # several chunks, in two workers
assert folder._can_fork() and "tensorflow" not in sys.modules
parallel = folder.decode(files, workers=2)
serial = folder.decode(files, workers=1)
assert all(np.array_equal(a, b) for a, b in zip(parallel[:2], serial[:2], strict=True)), "arrays differ"
assert parallel[2] == serial[2] and len(parallel[2]) == 1 and "cut.png" in parallel[2][0], parallel[2]
print(len(parallel[1]))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "60"
