"""Finding, verifying and splitting the data sets, on tiny fake files and (when present) the real ones."""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mnist_hydra.data import mnist as data
from mnist_hydra.data.datasets import DATASETS
from mnist_hydra.data.idx_format import write_idx
from mnist_hydra.data.mnist import FASHION_MNIST, MNIST, DataConfig, load_dataset
from mnist_hydra.data.splits import load_splits
from mnist_hydra.errors import DataError, FieldError
from tests.conftest import FASHION_DIR as REAL_FASHION
from tests.conftest import call_app, skip_unless_ci

# Read once at import: the isolation fixture below clears the variable for every test.
REAL_MNIST = os.environ.get("MNIST_HYDRA_DATA")
FILES = MNIST.files
REAL_DOWNLOAD = data.download_with_keras  # before the isolation fixture swaps it out


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """No real data, no Keras cache, no network: each test sees only what it writes. Returns download calls."""
    monkeypatch.delenv("MNIST_HYDRA_DATA", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    calls: list[str] = []

    def no_network(spec):
        calls.append(spec.name)
        raise RuntimeError("network disabled in tests")

    monkeypatch.setattr(data, "download_with_keras", no_network)
    return calls


def ids(n: int, start: int = 0) -> np.ndarray:
    """n images whose first two pixels encode their index, so a split can be traced back."""
    x = np.zeros((n, 28, 28), dtype=np.uint8)
    index = np.arange(start, start + n)
    x[:, 0, 0], x[:, 0, 1] = index % 256, index // 256
    return x


def image_ids(x: np.ndarray) -> np.ndarray:
    return x[:, 0, 0].astype(int) + 256 * x[:, 0, 1].astype(int)


def make_fake(folder: Path, n_train: int = 50, n_test: int = 20, suffix: str = ".gz", **override) -> Path:
    """Write four tiny IDX files; `override` replaces an array by its key (x_train, y_train, x_test, y_test)."""
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "x_train": ids(n_train),
        "y_train": (np.arange(n_train) % 10).astype(np.uint8),
        "x_test": ids(n_test, start=10_000),
        "y_test": (np.arange(n_test) % 10).astype(np.uint8),
    }
    arrays.update(override)
    for name, array in zip(FILES, arrays.values(), strict=False):
        write_idx(folder / f"{name}{suffix}", array)
    return folder


def fake_cfg(root: Path | None, **fields) -> DataConfig:
    return DataConfig(root=None if root is None else str(root), **{"verify": False, **fields})


# --- config and registry


@pytest.mark.parametrize(
    "field, value", [("val_split", 1.5), ("val_split", -0.1), ("val_split", 1.0), ("train_limit", 0), ("test_limit", 0)]
)
def test_check_rejects_out_of_range(field, value):
    with pytest.raises(FieldError) as info:
        DataConfig(**{field: value}).check()
    assert info.value.key == field
    assert str(info.value).startswith(f"{field}={value} is not allowed")


def test_check_accepts_defaults_and_edges():
    DataConfig().check()
    DataConfig(val_split=0.0, train_limit=1, test_limit=1).check()


def test_registry_holds_both_data_sets_as_partials_of_one_loader():
    assert DATASETS.names() == ["cifar", "csv", "fashion_mnist", "folder", "idx", "mnist"]
    for name, spec in [("mnist", MNIST), ("fashion_mnist", FASHION_MNIST)]:
        assert DATASETS.schema(name) is DataConfig
        assert DATASETS.get(name).func is load_dataset
        assert DATASETS.get(name).args == (spec,)


def test_import_does_not_load_tensorflow():
    code = "import sys, mnist_hydra.data.mnist; print(sorted(m for m in ('keras', 'tensorflow') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# --- loading a folder


@pytest.mark.parametrize("suffix", [".gz", ""])
def test_fake_folder_loads_without_verify(tmp_path, suffix):
    folder = make_fake(tmp_path / "fake", suffix=suffix)
    raw = load_dataset(MNIST, fake_cfg(folder))
    assert raw.x_train.shape == (50, 28, 28) and raw.x_train.dtype == np.uint8
    assert raw.y_test.shape == (20,) and raw.y_test.dtype == np.uint8
    assert raw.source == str(folder)
    assert set(raw.checksums) == set(FILES)


def test_verify_rejects_fake_files_naming_each(tmp_path):
    folder = make_fake(tmp_path / "fake")
    with pytest.raises(DataError) as info:
        load_dataset(MNIST, fake_cfg(folder, verify=True))
    message = str(info.value)
    assert message.startswith(f"data.root={folder}: 4 bad MNIST files: ")
    for name, digest in zip(FILES, MNIST.sha256, strict=False):
        assert f"{folder / name}.gz: SHA-256 of the decompressed content is " in message
        assert f"expected {digest[:12]}..." in message
    assert "\n" not in message


def test_one_file_failing_its_checksum_shows_both_digests_in_full(tmp_path, real_mnist):
    folder = tmp_path / "mnist"
    shutil.copytree(real_mnist, folder)
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.zeros(10000, np.uint8))
    with pytest.raises(DataError) as info:
        load_dataset(MNIST, DataConfig(root=str(folder)))
    message = str(info.value)
    assert message.startswith(
        f"data.root={folder}: {folder / 't10k-labels-idx1-ubyte.gz'}: SHA-256 of the decompressed content is "
    )
    assert message.endswith(
        f", expected {MNIST.sha256[3]} for MNIST; is it another data set or damaged? "
        "(data.verify=false skips this check)"
    )


def test_every_bad_file_is_named_in_one_line(tmp_path):
    folder = make_fake(tmp_path / "fake", y_train=np.full(50, 12, dtype=np.uint8))
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(b"garbage")
    with pytest.raises(DataError) as info:
        load_dataset(MNIST, fake_cfg(folder))
    message = str(info.value)
    assert message == (
        f"data.root={folder}: 2 bad MNIST files: "
        f"{folder / 'train-labels-idx1-ubyte.gz'}: label 12 out of range 0..9; "
        f"{folder / 't10k-images-idx3-ubyte.gz'}: corrupt gzip: Not a gzipped file (b'ga')"
    )


def test_mismatched_counts(tmp_path):
    folder = make_fake(tmp_path / "fake", y_train=np.zeros(49, dtype=np.uint8))
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte\.gz: 49 labels for 50 images"):
        load_dataset(MNIST, fake_cfg(folder))


def test_labels_out_of_range(tmp_path):
    folder = make_fake(tmp_path / "fake", y_test=np.full(20, 10, dtype=np.uint8))
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\.gz: label 10 out of range 0\.\.9"):
        load_dataset(MNIST, fake_cfg(folder))


@pytest.mark.parametrize(
    "key, array, file",
    [
        ("x_train", np.zeros((5, 28, 27), dtype=np.uint8), "train-images-idx3-ubyte"),
        ("x_test", np.zeros((20, 28, 28), dtype=np.float32), "t10k-images-idx3-ubyte"),
        ("y_train", np.zeros(50, dtype=np.int16), "train-labels-idx1-ubyte"),
    ],
)
def test_wrong_dtype_or_shape(tmp_path, key, array, file):
    folder = make_fake(tmp_path / "fake", **{key: array})
    with pytest.raises(DataError, match=rf"{file}\.gz: expected uint8"):
        load_dataset(MNIST, fake_cfg(folder))


def test_corrupt_file_is_named_even_without_verify(tmp_path):
    folder = make_fake(tmp_path / "fake")
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(b"garbage")
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte\.gz: corrupt gzip"):
        load_dataset(MNIST, fake_cfg(folder))


def test_fake_npz_loads_and_is_checked_as_idx(tmp_path):
    folder = tmp_path / "npz"
    folder.mkdir()
    np.savez(
        folder / "mnist.npz",
        x_train=ids(30),
        y_train=np.zeros(30, np.uint8),
        x_test=ids(10),
        y_test=np.ones(10, np.uint8),
    )
    raw = load_dataset(MNIST, fake_cfg(folder))
    assert raw.source == str(folder / "mnist.npz")
    assert (raw.x_train.shape, raw.y_test.tolist()) == ((30, 28, 28), [1] * 10)
    with pytest.raises(DataError, match=r"mnist\.npz\[x_train\]: SHA-256"):
        load_dataset(MNIST, fake_cfg(folder, verify=True))


def test_fashion_does_not_accept_mnist_npz(tmp_path):
    folder = tmp_path / "npz"
    folder.mkdir()
    np.savez(
        folder / "mnist.npz", x_train=ids(3), y_train=np.zeros(3, np.uint8), x_test=ids(3), y_test=np.zeros(3, np.uint8)
    )
    with pytest.raises(DataError, match="has no Fashion-MNIST files"):
        load_dataset(FASHION_MNIST, fake_cfg(folder))


# --- where to look


def test_explicit_root_with_nothing_is_one_line_error_and_no_download(tmp_path, isolated):
    empty = tmp_path / "empty"
    empty.mkdir()
    make_fake(tmp_path / "keras" / "datasets")  # usable, but an explicit root must not fall back to it
    with pytest.raises(DataError) as info:
        load_dataset(MNIST, fake_cfg(empty, download=True))
    message = str(info.value)
    assert message.startswith(f"data.root={empty}: {empty}: has no MNIST files; accepts the four IDX files")
    assert "mnist.npz" in message and "\n" not in message
    assert isolated == []


def test_explicit_root_missing_folder(tmp_path):
    with pytest.raises(DataError, match=r"^data\.root=.*nowhere: no such folder; accepts"):
        load_dataset(MNIST, fake_cfg(tmp_path / "nowhere"))


def test_relative_root_is_taken_from_the_launch_directory(tmp_path, monkeypatch):
    make_fake(tmp_path / "launch" / "mine")
    monkeypatch.chdir(tmp_path / "launch")
    raw = load_dataset(MNIST, fake_cfg("mine"))
    assert raw.source == str(tmp_path / "launch" / "mine")


def test_partial_set_names_what_is_missing(tmp_path):
    folder = make_fake(tmp_path / "fake")
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"incomplete MNIST files: lacks t10k-labels-idx1-ubyte\[\.gz\]$"):
        load_dataset(MNIST, fake_cfg(folder))


def test_search_skips_bad_candidate_with_warning(tmp_path, monkeypatch, caplog):
    bad = make_fake(tmp_path / "bad", y_train=np.full(50, 12, dtype=np.uint8))
    good = make_fake(tmp_path / "keras" / "datasets", n_train=7)
    monkeypatch.setenv("MNIST_HYDRA_DATA", str(bad))
    with caplog.at_level(logging.INFO, logger="mnist_hydra.data.mnist"):
        raw = load_dataset(MNIST, fake_cfg(None))
    assert raw.source == str(good) and len(raw.y_train) == 7
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and str(bad / "train-labels-idx1-ubyte.gz") in warnings[0]
    assert any(str(good) in r.getMessage() for r in caplog.records if r.levelno == logging.INFO)


def test_search_uses_env_before_keras_cache(tmp_path, monkeypatch):
    mine = make_fake(tmp_path / "mine", n_train=11)
    make_fake(tmp_path / "keras" / "datasets", n_train=7)
    monkeypatch.setenv("MNIST_HYDRA_DATA", str(mine))
    assert load_dataset(MNIST, fake_cfg(None)).source == str(mine)


def test_nothing_found_without_download(tmp_path, isolated):
    with pytest.raises(DataError) as info:
        load_dataset(MNIST, fake_cfg(None, download=False))
    message = str(info.value)
    assert str(tmp_path / "keras" / "datasets") in message
    assert "data.download=false" in message and "\n" not in message
    assert "set data.root=/path/to/folder (four IDX files or mnist.npz) or the MNIST_HYDRA_DATA" in message
    assert isolated == []


def test_download_fills_keras_cache_then_loads_from_it(tmp_path, monkeypatch):
    cache = tmp_path / "keras" / "datasets" / "fashion-mnist"
    calls = []
    monkeypatch.setattr(data, "download_with_keras", lambda spec: calls.append(spec) or make_fake(cache, n_train=9))
    spec = dataclasses.replace(FASHION_MNIST, search_dirs=())  # else the system copy is found first
    raw = load_dataset(spec, fake_cfg(None))
    assert calls == [spec]
    assert raw.source == str(cache) and len(raw.y_train) == 9


def test_offline_download_is_one_line_error_with_the_fix(monkeypatch):
    # The real Keras call path, with Keras's own loader made to fail as it does offline.
    monkeypatch.setattr(data, "download_with_keras", REAL_DOWNLOAD)

    def offline():
        raise Exception(
            "URL fetch failure on https://storage.googleapis.com/mnist.npz: None --\n"
            "[Errno -3] Temporary failure in name resolution"
        )

    monkeypatch.setattr("keras.datasets.mnist.load_data", offline)
    with pytest.raises(DataError) as info:
        load_dataset(MNIST, fake_cfg(None))
    message = str(info.value)
    assert "download with keras.datasets.mnist.load_data(): Exception: URL fetch failure" in message
    assert "Temporary failure in name resolution" in message
    assert "data.root=/path/to/folder" in message and "MNIST_HYDRA_DATA" in message
    assert "\n" not in message


# --- splits


def test_split_sizes_cover_the_training_set(tmp_path):
    folder = make_fake(tmp_path / "fake", n_train=100)
    s = load_splits(fake_cfg(folder, val_split=0.2), seed=0)
    assert (len(s.x_train), len(s.y_train), len(s.x_val), len(s.y_val), len(s.x_test)) == (80, 80, 20, 20, 20)
    train, val = image_ids(s.x_train), image_ids(s.x_val)
    assert sorted(np.concatenate([train, val])) == list(range(100))
    np.testing.assert_array_equal(s.y_train, train % 10)  # labels travel with their images
    assert s.x_train.dtype == np.uint8 and not s.val_is_test
    assert s.class_names == tuple("0123456789")


def test_split_is_seeded(tmp_path):
    folder = make_fake(tmp_path / "fake", n_train=100)
    cfg = fake_cfg(folder, val_split=0.2)
    a, b, c = load_splits(cfg, seed=1), load_splits(cfg, seed=1), load_splits(cfg, seed=2)
    np.testing.assert_array_equal(a.x_val, b.x_val)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert set(image_ids(a.x_val)) != set(image_ids(c.x_val))


def test_val_split_zero_validates_on_the_test_set(tmp_path):
    folder = make_fake(tmp_path / "fake", n_train=30)
    s = load_splits(fake_cfg(folder, val_split=0.0, test_limit=5), seed=0)
    assert s.val_is_test
    assert s.x_val is s.x_test and s.y_val is s.y_test
    assert len(s.x_test) == 5 and len(s.x_train) == 30


def test_limits(tmp_path):
    folder = make_fake(tmp_path / "fake", n_train=100)
    full = load_splits(fake_cfg(folder, val_split=0.1), seed=3)
    limited = load_splits(fake_cfg(folder, val_split=0.1, train_limit=10, test_limit=4), seed=3)
    np.testing.assert_array_equal(limited.x_train, full.x_train[:10])
    np.testing.assert_array_equal(limited.x_val, full.x_val)  # limits never change the validation set
    np.testing.assert_array_equal(image_ids(limited.x_test), np.arange(10_000, 10_004))
    generous = load_splits(fake_cfg(folder, val_split=0.1, train_limit=10**6, test_limit=10**6), seed=3)
    assert (len(generous.x_train), len(generous.x_test)) == (90, 20)


def test_k_folds_partition_the_training_set(tmp_path):
    folder = make_fake(tmp_path / "fake", n_train=103)
    splits = [load_splits(fake_cfg(folder, folds=5, fold=i), seed=4) for i in range(5)]
    vals = [set(image_ids(s.x_val)) for s in splits]
    assert sorted(len(v) for v in vals) == [20, 20, 21, 21, 21]
    assert set().union(*vals) == set(range(103))  # every image validates exactly once
    assert sum(len(v) for v in vals) == 103
    for s, val in zip(splits, vals, strict=False):
        assert set(image_ids(s.x_train)) == set(range(103)) - val
        assert not s.val_is_test
    again = load_splits(fake_cfg(folder, folds=5, fold=2), seed=4)
    np.testing.assert_array_equal(again.x_val, splits[2].x_val)  # seeded
    other_seed = load_splits(fake_cfg(folder, folds=5, fold=2), seed=5)
    assert set(image_ids(other_seed.x_val)) != vals[2]


# --- splits that leave nothing to train, validate or score: refused by load_splits, which every option passes


def empty_test_split(option: str, tmp_path: Path):
    """A data set of `option` that its own loader accepts, but whose test split holds no image."""
    from PIL import Image

    from mnist_hydra.data.csv_table import CsvConfig
    from mnist_hydra.data.folder import FolderConfig
    from mnist_hydra.data.idx_set import IdxConfig

    if option in ("mnist", "fashion_mnist", "idx"):
        folder = make_fake(
            tmp_path / "fake", n_test=0, x_test=np.zeros((0, 28, 28), np.uint8), y_test=np.zeros(0, np.uint8)
        )
        if option == "idx":
            return IdxConfig(root=str(folder))
        return DataConfig(name=option, root=str(folder), verify=False)
    if option == "csv":  # one image of each class: none is left over for a test split
        rows = [",".join(["label"] + [f"pixel{i}" for i in range(784)])]
        rows += [",".join([str(label)] + [str(200 * label + 50)] * 784) for label in (0, 1)]
        (tmp_path / "two.csv").write_text("\n".join(rows) + "\n")
        return CsvConfig(root=str(tmp_path / "two.csv"))
    for label in "ab":  # train/ and test/, and not one test image that can be read
        (tmp_path / "train" / label).mkdir(parents=True)
        (tmp_path / "test" / label).mkdir(parents=True)
        picture = np.zeros((28, 28), np.uint8)
        picture[8:20, 12:16] = 255
        Image.fromarray(picture).save(tmp_path / "train" / label / "1.png")
        (tmp_path / "test" / label / "1.png").write_bytes(b"cut short")
    return FolderConfig(root=str(tmp_path), cache=False)


@pytest.mark.parametrize("option", ["mnist", "fashion_mnist", "folder", "csv", "idx"])
def test_an_empty_test_split_is_refused_for_every_data_option(option, tmp_path):
    cfg = empty_test_split(option, tmp_path)
    with pytest.raises(DataError, match=rf"^data={option}: .*: the test split is empty: ") as info:
        load_splits(cfg, seed=0)
    assert len(str(info.value).replace(str(tmp_path), ".")) <= 300


def test_an_empty_validation_split_is_refused_before_training(tmp_path):
    folder = make_fake(tmp_path / "fake", n_train=4)
    with pytest.raises(DataError, match=r"validation split is empty: data.val_split=0.1 of 4 .*data.val_split=0.25"):
        load_splits(fake_cfg(folder, val_split=0.1), seed=0)
    assert len(load_splits(fake_cfg(folder, val_split=0.25), seed=0).y_val) == 1
    assert load_splits(fake_cfg(folder, val_split=0), seed=0).val_is_test  # the test split validates
    with pytest.raises(DataError, match=r"data.folds=5 needs at least 5 training images.*there are 4"):
        load_splits(fake_cfg(folder, folds=5), seed=0)


def test_images_whose_largest_pixel_is_one_are_refused(tmp_path):
    binary = (ids(50) % 2).astype(np.uint8)  # binarised: 0 and 1
    folder = make_fake(tmp_path / "fake", x_train=binary, x_test=binary[:20])
    with pytest.raises(DataError, match=r"^data=mnist: .*: the largest pixel is 1, .*give 8-bit grey levels"):
        load_splits(fake_cfg(folder), seed=0)


def test_a_file_a_loader_cannot_read_is_a_read_error_not_a_write_error(monkeypatch):
    """An OSError that escapes a loader was raised reading: the boundary would call a bare one a write error."""
    import errno

    from mnist_hydra.apps.boundary import describe

    def loader(cfg):
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", "/data/3/dangling.png")

    monkeypatch.setattr(DATASETS, "get", lambda name: loader)
    with pytest.raises(DataError) as info:
        load_splits(fake_cfg(None), seed=0)
    assert describe(info.value) == "data=mnist: cannot read /data/3/dangling.png: No such file or directory"


@pytest.mark.parametrize(
    "fields, key",
    [
        ({"folds": 1}, "folds"),
        ({"folds": 5, "fold": 5}, "fold"),
        ({"folds": 5, "fold": -1}, "fold"),
        ({"fold": 2}, "fold"),
    ],
)
def test_check_rejects_bad_folds(fields, key):
    with pytest.raises(FieldError) as info:
        DataConfig(**fields).check()
    assert info.value.key == key


# --- real data


@pytest.fixture
def real_mnist() -> Path:
    if not REAL_MNIST:
        skip_unless_ci("MNIST_HYDRA_DATA is not set: point it at the real MNIST folder")
    return Path(REAL_MNIST).resolve()  # as given, the README's ../shared/data/mnist is relative


def test_real_mnist(real_mnist):
    s = load_splits(DataConfig(root=str(real_mnist)), seed=0)
    assert (s.x_train.shape, s.x_val.shape, s.x_test.shape) == ((54000, 28, 28), (6000, 28, 28), (10000, 28, 28))
    assert len(s.y_train) + len(s.y_val) == 60000 and len(s.y_test) == 10000
    assert s.checksums == dict(zip(MNIST.files, MNIST.sha256, strict=False))
    assert set(np.unique(s.y_test)) == set(range(10))


def test_real_mnist_as_keras_npz_passes_the_same_checksums(real_mnist, tmp_path, monkeypatch):
    raw = load_dataset(MNIST, DataConfig(root=str(real_mnist)))
    cache = tmp_path / "keras" / "datasets"
    cache.mkdir(parents=True)
    np.savez(cache / "mnist.npz", x_train=raw.x_train, y_train=raw.y_train, x_test=raw.x_test, y_test=raw.y_test)
    monkeypatch.setenv("MNIST_HYDRA_DATA", str(make_fake(tmp_path / "fake")))  # fails its checksums: skipped
    found = load_dataset(MNIST, DataConfig())
    assert found.source == str(cache / "mnist.npz")
    assert found.checksums == raw.checksums


# Not a skipif: under CI=true a missing Fashion-MNIST fails (tests/conftest.py fashion_dir).
needs_fashion = pytest.mark.usefixtures("fashion_dir")


def load_quietly(caplog, name: str, **fields):
    """load_dataset for `name`, and every warning it logged."""
    spec = {"mnist": MNIST, "fashion_mnist": FASHION_MNIST}[name]
    with caplog.at_level(logging.INFO, logger="mnist_hydra.data"):
        raw = load_dataset(spec, DataConfig(name=name, **fields))
    return raw, [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


@needs_fashion
def test_mnist_in_the_environment_variable_does_not_disturb_fashion_mnist(real_mnist, monkeypatch, caplog):
    # docs/data.md's `export MNIST_HYDRA_DATA=/path/to/mnist`: each data set still finds its own files.
    monkeypatch.setenv("MNIST_HYDRA_DATA", str(real_mnist))
    fashion, warnings = load_quietly(caplog, "fashion_mnist")
    assert warnings == []
    assert fashion.source == str(REAL_FASHION)
    assert fashion.checksums == dict(zip(FASHION_MNIST.files, FASHION_MNIST.sha256, strict=False))
    assert fashion.class_names[0] == "T-shirt/top" and fashion.class_names[9] == "Ankle boot"
    caplog.clear()
    mnist, warnings = load_quietly(caplog, "mnist")
    assert warnings == [] and mnist.source == str(real_mnist)
    assert mnist.checksums == dict(zip(MNIST.files, MNIST.sha256, strict=False))


@needs_fashion
@pytest.mark.parametrize("fashion_name", ["fashion_mnist", "fashion-mnist"])
def test_one_folder_with_a_subfolder_per_data_set(real_mnist, tmp_path, monkeypatch, caplog, fashion_name):
    (tmp_path / "datasets").mkdir()
    (tmp_path / "datasets" / "mnist").symlink_to(real_mnist)
    (tmp_path / "datasets" / fashion_name).symlink_to(REAL_FASHION)
    for how in ("environment", "root"):
        fields = {"root": str(tmp_path / "datasets")} if how == "root" else {}
        if how == "environment":
            monkeypatch.setenv("MNIST_HYDRA_DATA", str(tmp_path / "datasets"))
        for name, folder, spec in (("mnist", "mnist", MNIST), ("fashion_mnist", fashion_name, FASHION_MNIST)):
            caplog.clear()
            raw, warnings = load_quietly(caplog, name, **fields)
            assert warnings == [] and raw.source == str(tmp_path / "datasets" / folder), (how, name)
            assert raw.checksums == dict(zip(spec.files, spec.sha256, strict=False))


@needs_fashion
def test_keras_cache_layout_mnist_beside_a_fashion_subfolder(real_mnist, tmp_path, monkeypatch, caplog):
    # As ~/.keras/datasets holds them: MNIST's files in the folder, Fashion-MNIST in fashion-mnist/.
    both = tmp_path / "both"
    both.mkdir()
    for name in MNIST.files:
        (both / f"{name}.gz").symlink_to(real_mnist / f"{name}.gz")
    (both / "fashion-mnist").symlink_to(REAL_FASHION)
    monkeypatch.setenv("MNIST_HYDRA_DATA", str(both))
    fashion, warnings = load_quietly(caplog, "fashion_mnist")
    assert warnings == [] and fashion.source == str(both / "fashion-mnist")
    caplog.clear()
    mnist, warnings = load_quietly(caplog, "mnist")
    assert warnings == [] and mnist.source == str(both)


@needs_fashion
def test_a_root_holding_the_other_data_set_says_which_it_holds(real_mnist):
    with pytest.raises(DataError) as info:
        load_dataset(FASHION_MNIST, DataConfig(name="fashion_mnist", root=str(real_mnist)))
    assert str(info.value).startswith(
        f"data.root={real_mnist}: {real_mnist}: holds MNIST (data=mnist), not Fashion-MNIST"
    )
    with pytest.raises(DataError, match=r"holds Fashion-MNIST \(data=fashion_mnist\), not MNIST"):
        load_dataset(MNIST, DataConfig(root=str(REAL_FASHION), verify=False))  # recognised even unverified


def test_a_root_that_is_a_file_is_called_a_file(tmp_path):
    note = tmp_path / "passwd"
    note.write_text("root:x:0:0")
    with pytest.raises(DataError) as info:
        load_dataset(MNIST, fake_cfg(note))
    assert str(info.value) == (
        f"data.root={note}: {note} is a file, not a folder; accepts a folder holding the four "
        "IDX files (train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
        "t10k-labels-idx1-ubyte), each .gz or plain, or mnist.npz"
    )
    folder = make_fake(tmp_path / "fake")
    with pytest.raises(DataError, match=rf"is a file, not a folder \(its folder: data\.root={folder}\); accepts"):
        load_dataset(MNIST, fake_cfg(folder / "train-images-idx3-ubyte.gz"))


def test_an_environment_variable_naming_a_file_is_skipped_with_a_warning(tmp_path, monkeypatch, caplog):
    note = tmp_path / "passwd"
    note.write_text("root:x:0:0")
    good = make_fake(tmp_path / "keras" / "datasets", n_train=7)
    monkeypatch.setenv("MNIST_HYDRA_DATA", str(note))
    with caplog.at_level(logging.WARNING, logger="mnist_hydra.data"):
        raw = load_dataset(MNIST, fake_cfg(None))
    assert raw.source == str(good)
    assert [r.getMessage() for r in caplog.records] == [f"skipping {note}: {note} is a file, not a folder"]


def test_data_root_a_file_through_the_app(tmp_path):
    result = call_app("data.root=/etc/passwd", f"hydra.run.dir={tmp_path}/run", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "mnist_hydra: error: data.root=/etc/passwd: /etc/passwd is a file, not a folder; accepts a folder holding "
        f"{data._accepts(MNIST)}"
    ]
    assert not (tmp_path / "run").exists()


def test_fashion_mnist_names_each_label_after_what_its_images_show(fashion_dir):
    """The names are read against the pictures (label 7 is Sneaker, 8 Bag, as Zalando's table says): trousers are
    the narrowest things, sneakers the flattest, and a bag is taller than every kind of shoe."""
    raw = load_dataset(FASHION_MNIST, DataConfig(name="fashion_mnist", root=str(fashion_dir)))
    ink = raw.x_test > 64
    rows = {name: ink[raw.y_test == label].any(axis=2).sum(axis=1).mean() for label, name in enumerate(raw.class_names)}
    cols = {name: ink[raw.y_test == label].any(axis=1).sum(axis=1).mean() for label, name in enumerate(raw.class_names)}
    assert min(cols, key=cols.__getitem__) == "Trouser", cols
    assert min(rows, key=rows.__getitem__) == "Sneaker", rows
    assert rows["Bag"] > max(rows["Sandal"], rows["Sneaker"], rows["Ankle boot"]), rows
