"""data=csv: the pixel count says the images' shape; data.image_size and data.channels settle it; a count that
makes no image is one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mnist_hydra.data.csv_table import CsvConfig, load_csv_dataset, pixel_shape
from mnist_hydra.data.preparation import DIGIT, Preparation
from mnist_hydra.errors import DataError, FieldError


def write_csv(path: Path, rows: np.ndarray, labels: list[int]) -> Path:
    """A CSV with a label column first and one pixel column per value of each row."""
    header = "label," + ",".join(f"p{i}" for i in range(rows.shape[1]))
    lines = [header] + [f"{label}," + ",".join(map(str, row)) for label, row in zip(labels, rows, strict=True)]
    path.write_text("\n".join(lines) + "\n")
    return path


def rows_of(count: int, n: int = 10) -> np.ndarray:
    """`n` rows of `count` pixels, each pixel its column's number modulo 251 plus its row's: every cell told apart."""
    return (np.arange(count)[np.newaxis, :] + np.arange(n)[:, np.newaxis]) % 251


@pytest.mark.parametrize(
    ("count", "shape"),
    [(784, (28, 28, 1)), (1024, (32, 32, 1)), (4096, (64, 64, 1)), (3072, (32, 32, 3)), (12288, (64, 64, 3))],
)
def test_a_square_count_or_three_squares_is_the_shape(count, shape):
    assert pixel_shape(count) == shape


def test_the_keys_settle_a_count_the_rule_reads_otherwise():
    assert pixel_shape(3072, [48, 64], 1) == (48, 64, 1)
    assert pixel_shape(3072, [32, 32]) == (32, 32, 3)
    assert pixel_shape(3072, None, 1) is None  # 3072 is no square
    assert pixel_shape(1000) is None
    assert pixel_shape(16) is None  # 4x4: smaller than any network can use


def test_a_grey_csv_of_1024_columns_is_32x32_row_by_row(tmp_path):
    rows = rows_of(1024)
    raw = load_csv_dataset(CsvConfig(root=str(write_csv(tmp_path / "g.csv", rows, [i % 2 for i in range(10)]))))
    images = np.concatenate([raw.x_train, raw.x_test])
    assert images.shape == (10, 32, 32)
    first = raw.x_train[0]
    k = int(first[0, 0])  # the row's offset: pixel (r, c) holds (r * 32 + c + k) % 251
    assert first[1, 0] == (32 + k) % 251 and first[0, 1] == (1 + k) % 251 and first[31, 31] == (1023 + k) % 251
    assert raw.preparation == Preparation("resize", (32, 32), 1)


def test_an_rgb_csv_of_3072_columns_is_red_then_green_then_blue_planes(tmp_path):
    # Each plane a flat colour, so a pixel's channels show the layout: red 200, green 100, blue 50.
    rows = np.tile(np.repeat([200, 100, 50], 1024), (10, 1))
    rows[:, 1024 + 33] = 7  # green plane, row 1, column 1
    raw = load_csv_dataset(CsvConfig(root=str(write_csv(tmp_path / "c.csv", rows, [i % 2 for i in range(10)]))))
    assert raw.x_train.shape[1:] == (32, 32, 3) and raw.x_train.dtype == np.uint8
    assert raw.x_train[0, 0, 0].tolist() == [200, 100, 50]
    assert raw.x_train[0, 1, 1].tolist() == [200, 7, 50]
    assert raw.preparation == Preparation("resize", (32, 32), 3)


def test_image_size_and_channels_read_3072_columns_as_a_grey_48x64(tmp_path):
    rows = rows_of(3072)
    path = write_csv(tmp_path / "w.csv", rows, [i % 2 for i in range(10)])
    raw = load_csv_dataset(CsvConfig(root=str(path), image_size=[48, 64], channels=1))
    assert raw.x_train.shape[1:] == (48, 64)
    k = int(raw.x_train[0, 0, 0])
    assert raw.x_train[0, 1, 0] == (64 + k) % 251
    assert CsvConfig(root="x", image_size=[48, 64], channels=1).declared_shape() == (48, 64, 1)
    assert CsvConfig(root="x").declared_shape() is None


def test_a_kaggle_csv_stays_a_digit_data_set(tmp_path):
    raw = load_csv_dataset(CsvConfig(root=str(write_csv(tmp_path / "k.csv", rows_of(784), [0, 1] * 5))))
    assert raw.x_train.shape[1:] == (28, 28) and raw.preparation == DIGIT


def test_a_count_that_makes_no_image_is_one_line(tmp_path):
    path = write_csv(tmp_path / "b.csv", rows_of(1000), [0, 1] * 5)
    with pytest.raises(DataError) as err:
        load_csv_dataset(CsvConfig(root=str(path)))
    text = str(err.value)
    assert "1000 pixel columns beside 'label' is not an image" in text and "\n" not in text
    assert "1024 = 32x32" in text and "3072 = 32x32x3" in text and "data.image_size and data.channels" in text


def test_keys_that_do_not_fit_the_count_say_what_they_need(tmp_path):
    path = write_csv(tmp_path / "k.csv", rows_of(3072), [0, 1] * 5)
    with pytest.raises(
        DataError, match=r"do not make data.image_size=\[32,32\] data.channels=1 images: they need 1024"
    ):
        load_csv_dataset(CsvConfig(root=str(path), image_size=[32, 32], channels=1))


@pytest.mark.parametrize(("key", "value"), [("channels", 2), ("image_size", [4, 4]), ("image_size", [32])])
def test_bad_keys_fail_the_check(key, value):
    with pytest.raises(FieldError):
        CsvConfig(root="x.csv", **{key: value}).check()
