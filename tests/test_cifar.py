"""data=cifar: CIFAR-10 and CIFAR-100, python and binary versions, read from files written in their formats."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from mnist_hydra.data.cifar import CifarConfig, load_cifar_dataset
from mnist_hydra.errors import DataError, FieldError
from tests.cifar_files import CIFAR10_NAMES, COARSE_NAMES, FINE_NAMES, stored, write_cifar

KINDS = ["py10", "bin10", "py100", "bin100"]


@pytest.mark.parametrize("kind", KINDS)
def test_every_layout_gives_its_pixels_labels_and_class_names(tmp_path, kind):
    written = write_cifar(tmp_path, kind)
    raw = load_cifar_dataset(CifarConfig(root=str(tmp_path)))
    assert raw.x_train.dtype == np.uint8 and raw.x_train.shape == (100, 32, 32, 3)
    assert raw.x_test.shape == (20, 32, 32, 3)
    np.testing.assert_array_equal(raw.x_train, written.x_train)
    np.testing.assert_array_equal(raw.x_test, written.x_test)
    np.testing.assert_array_equal(raw.y_train, written.fine_train)
    np.testing.assert_array_equal(raw.y_test, written.fine_test)
    assert raw.class_names == tuple(FINE_NAMES if kind.endswith("100") else CIFAR10_NAMES)
    assert raw.source == str(written.folder)
    unused = {"coarse_label_names.txt"}  # read for data.labels=coarse only
    assert set(raw.checksums) == {p.name for p in written.folder.iterdir()} - unused
    assert raw.held_out is None  # CIFAR ships its own test set


@pytest.mark.parametrize("kind", ["py100", "bin100"])
def test_cifar100_coarse_labels_give_the_20_superclasses(tmp_path, kind):
    written = write_cifar(tmp_path, kind)
    raw = load_cifar_dataset(CifarConfig(root=str(written.folder), labels="coarse"))
    np.testing.assert_array_equal(raw.y_train, written.coarse_train)
    np.testing.assert_array_equal(raw.y_test, written.coarse_test)
    assert raw.class_names == tuple(COARSE_NAMES)


@pytest.mark.parametrize("kind", ["py10", "bin10"])
def test_planes_become_height_width_channels(tmp_path, kind):
    """A known image: red rises along each row, green down each column, blue is constant."""
    written = write_cifar(tmp_path, kind, per_batch=1)
    rows, cols = np.mgrid[0:32, 0:32]
    red, green, blue = (cols * 8).astype(np.uint8), (rows * 8).astype(np.uint8), np.full((32, 32), 7, np.uint8)
    record = np.concatenate([red.ravel(), green.ravel(), blue.ravel()])  # as stored: planes, row by row
    batch = written.folder / ("data_batch_1" if kind == "py10" else "data_batch_1.bin")
    if kind == "py10":
        batch.write_bytes(pickle.dumps({b"labels": [3], b"data": record[None, :]}, protocol=2))
    else:
        batch.write_bytes(bytes([3]) + record.tobytes())
    image = load_cifar_dataset(CifarConfig(root=str(tmp_path))).x_train[0]
    assert image[0, 5].tolist() == [40, 0, 7]  # row 0, column 5
    assert image[5, 0].tolist() == [0, 40, 7]  # row 5, column 0
    np.testing.assert_array_equal(image[..., 0], red)
    np.testing.assert_array_equal(stored(image[None]), record[None])


def test_root_may_be_the_unpacked_folder_itself(tmp_path):
    written = write_cifar(tmp_path, "bin10")
    assert load_cifar_dataset(CifarConfig(root=str(written.folder))).source == str(written.folder)


def test_load_splits_takes_cifar_with_its_own_test_set(tmp_path, monkeypatch):
    from mnist_hydra.config import typed_group
    from mnist_hydra.data.splits import load_splits

    write_cifar(tmp_path, "py10")
    monkeypatch.chdir(tmp_path)
    splits = load_splits(typed_group("data", {"name": "cifar", "root": ".", "val_split": 0.2}), seed=0)
    assert (len(splits.y_train), len(splits.y_val), len(splits.y_test)) == (80, 20, 20)
    assert splits.x_train.shape[1:] == (32, 32, 3)
    assert splits.class_names[0] == "airplane"


def _load(root, **fields):
    with pytest.raises(DataError) as info:
        load_cifar_dataset(CifarConfig(root=str(root), **fields))
    message = str(info.value)
    assert "\n" not in message
    return message


def test_a_missing_folder_says_where_to_get_the_archive(tmp_path):
    message = _load(tmp_path / "nowhere")
    assert "no such folder" in message and "https://www.cs.toronto.edu/~kriz/cifar.html" in message
    assert "cifar-10-batches-py/" in message and "cifar-100-binary/" in message


def test_a_folder_with_neither_layout_names_the_folders_looked_for(tmp_path):
    (tmp_path / "photos").mkdir()
    message = _load(tmp_path)
    assert "holds no CIFAR data" in message and "cifar-10-batches-bin/" in message
    assert "https://www.cs.toronto.edu/~kriz/cifar.html" in message


def test_a_missing_batch_is_named(tmp_path):
    written = write_cifar(tmp_path, "py10")
    (written.folder / "data_batch_3").unlink()
    message = _load(tmp_path)
    assert "has no data_batch_3" in message and "data_batch_1..data_batch_5, test_batch, batches.meta" in message


@pytest.mark.parametrize("kind, name", [("py10", "data_batch_2"), ("py100", "meta"), ("py10", "batches.meta")])
def test_a_truncated_pickle_is_one_line(tmp_path, kind, name):
    written = write_cifar(tmp_path, kind)
    path = written.folder / name
    path.write_bytes(path.read_bytes()[:-100])
    message = _load(tmp_path)
    assert f"{path}: cannot unpickle it: it ends early: the file is truncated" in message


@pytest.mark.parametrize("kind, name, record", [("bin10", "test_batch.bin", 3073), ("bin100", "train.bin", 3074)])
def test_a_truncated_bin_is_one_line(tmp_path, kind, name, record):
    written = write_cifar(tmp_path, kind)
    path = written.folder / name
    path.write_bytes(path.read_bytes()[:-10])
    message = _load(tmp_path)
    assert f"{path}:" in message and f"not a whole number of {record}-byte records" in message


def test_a_pickle_that_asks_for_code_is_refused_not_run(tmp_path):
    written = write_cifar(tmp_path, "py10")

    class Payload:
        def __reduce__(self):
            return (print, ("ran",))

    (written.folder / "test_batch").write_bytes(pickle.dumps({b"data": Payload()}, protocol=2))
    message = _load(tmp_path)
    assert "it asks for __builtin__.print, which a CIFAR batch never holds" in message


def test_two_sets_under_one_root_ask_which(tmp_path):
    write_cifar(tmp_path, "py10")
    write_cifar(tmp_path, "bin100", seed=1)
    message = _load(tmp_path)
    assert "cifar-10-batches-py, cifar-100-binary" in message and "point data.root at the one" in message


def test_coarse_labels_on_cifar10_are_refused(tmp_path):
    write_cifar(tmp_path, "bin10")
    assert "CIFAR-100's 20 superclasses" in _load(tmp_path, labels="coarse")


def test_labels_other_than_fine_or_coarse_are_a_config_error():
    with pytest.raises(FieldError, match=r"^labels=medium is not allowed"):
        CifarConfig(root="x", labels="medium").check()


def test_the_option_composes(compose_config):
    from mnist_hydra.config import validate

    config = validate(compose_config("data=cifar", "data.root=/data", "data.labels=coarse"))
    assert isinstance(config.data, CifarConfig) and (config.data.root, config.data.labels) == ("/data", "coarse")


def test_a_cifar_run_trains_the_resnet_and_predicts_a_photo_at_its_shape(tmp_path):
    """The whole chain on a CIFAR layout: the loader's (32, 32, 3) images, model=resnet built for them, the run's
    recorded shape, and a photo of another size and mode made a 32x32 RGB image for predict."""
    from PIL import Image

    from mnist_hydra.serving.classify_files import predict_images
    from tests.conftest import call_app

    write_cifar(tmp_path / "data", "bin10", per_batch=16)
    result = call_app(
        "data=cifar",
        f"data.root={tmp_path / 'data'}",
        "model=resnet",
        "model.width=4",
        "model.depth=1",
        "model.stages=2",
        "trainer.epochs=1",
        "trainer.batch_size=16",
        "trainer.verbose=0",
        f"hydra.run.dir={tmp_path / 'run'}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["input_shape"] == [32, 32, 3]
    assert metrics["preprocessing"] == {
        "preprocess": "resize",
        "image_size": [32, 32],
        "channels": 3,
        "background": "white",
        "fit": "crop",
    }
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.new("RGBA", (90, 60), (200, 30, 30, 255)).save(photos / "red.png")
    records, failures = predict_images(tmp_path / "run", photos)
    assert not failures and [r["file"] for r in records] == [str(photos / "red.png")]
    assert records[0]["class"] in CIFAR10_NAMES
