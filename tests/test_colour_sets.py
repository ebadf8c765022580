"""Colour images made from real ones (tests/colour_sets.py): the folder loader reads them in the shape declared,
their tints tell nothing of the label, and a set told apart by colour alone is learnt in colour and not in grey."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mnist_hydra.data.folder import FolderConfig
from mnist_hydra.data.splits import load_splits
from tests import colour_sets
from tests.conftest import call_app

COLOUR_ONLY_IMAGES = 600  # 120 held out: chance is 0.5 +- 0.046
TINTED_IMAGES = 2000  # 200 a class: enough for each class's mean colour to settle within a few levels


@pytest.fixture(scope="module")
def tinted_fashion() -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST's first TINTED_IMAGES training pictures, tinted at 32x32, and their labels (in memory)."""
    grey, labels = colour_sets.read_source("fashion", "train", TINTED_IMAGES)
    return colour_sets.tinted_pictures(grey, 32, seed=0), labels


def test_the_colour_only_classes_have_one_luminance():
    green, red = (Image.new("RGB", (1, 1), c).convert("L").getpixel((0, 0)) for c in colour_sets.COLOUR_ONLY.values())
    assert green == red
    assert colour_sets.luminance(colour_sets.COLOUR_ONLY["green"]) == pytest.approx(
        colour_sets.luminance(colour_sets.COLOUR_ONLY["red"]), abs=0.01
    )


@pytest.mark.usefixtures("fashion_dir")
def test_tints_backgrounds_and_borders_carry_no_label_information(tinted_fashion):
    pictures, labels = tinted_fashion
    assert pictures.shape == (TINTED_IMAGES, 32, 32, 3) and pictures.dtype == np.uint8
    flat = pictures.reshape(len(pictures), -1, 3).astype(np.float64)
    ink = flat[np.arange(len(flat)), (flat @ colour_sets.LUMA).argmax(axis=1)]  # the lightest pixel: the ink's colour
    corners = flat[:, 0]  # the border's colour, or the background's where there is none
    for feature in (ink, corners):
        per_class = np.stack([feature[labels == k].mean(axis=0) for k in range(10)])
        assert np.ptp(per_class, axis=0).max() < 25, per_class.round(1)  # one class's colours would stand 100 apart
        # The nearest class mean, fitted on one half and scored on the other, stays near chance (0.1).
        half = len(labels) // 2
        centres = np.stack([feature[:half][labels[:half] == k].mean(axis=0) for k in range(10)])
        guess = np.argmin(((feature[half:, None] - centres) ** 2).sum(-1), axis=1)
        assert (guess == labels[half:]).mean() < 0.18
        assert feature.std(axis=0).min() > 30  # ... while the colours vary: not one tint for all


@pytest.mark.usefixtures("fashion_dir")
def test_the_same_seed_writes_the_same_pictures(tinted_fashion):
    grey, _ = colour_sets.read_source("fashion", "train", 5)
    assert np.array_equal(colour_sets.tinted_pictures(grey, 32, seed=0), tinted_fashion[0][:5])
    assert not np.array_equal(colour_sets.tinted_pictures(grey, 32, seed=1), tinted_fashion[0][:5])


@pytest.mark.parametrize("side", [32, 64])
def test_a_tinted_folder_is_read_in_the_declared_shape(tmp_path, side, mnist_dir, fashion_dir):
    source = "fashion" if side == 32 else "mnist"
    written = colour_sets.write_tinted(
        tmp_path / "set", source, side, train=60, test=100
    )  # MNIST's first test 8 is its 62nd image
    assert sorted(p.name for p in (tmp_path / "set" / "test").iterdir()) == sorted(colour_sets.class_names(source))
    splits = load_splits(
        FolderConfig(
            root=str(tmp_path / "set"),
            preprocess="resize",
            image_size=[side, side],
            channels=3,
            cache_dir=str(tmp_path / "cache"),
            val_split=0,
        ),
        seed=0,
    )
    assert splits.input_shape == (side, side, 3)
    assert splits.x_train.shape == (60, side, side, 3) and splits.x_test.shape == (100, side, side, 3)
    assert len(splits.y_test) == len(written["test"])
    # The JPEG keeps the colour: a saturated picture stays one (a grey-coded file would have R = G = B).
    spread = np.ptp(splits.x_train.astype(np.int16), axis=-1)
    assert np.median(spread) > 30


@pytest.fixture(scope="module")
def colour_only_folder(tmp_path_factory, mnist_dir) -> Path:
    root = tmp_path_factory.mktemp("colour_only") / "set"
    colour_sets.write_colour_only(root, COLOUR_ONLY_IMAGES)
    return root


def jpeg_round_trip(picture: np.ndarray) -> Image.Image:
    buffer = io.BytesIO()
    Image.fromarray(picture, "RGB").save(buffer, "JPEG", quality=colour_sets.QUALITY, subsampling=0)
    return Image.open(io.BytesIO(buffer.getvalue()))


def grey(picture: np.ndarray | Image.Image) -> np.ndarray:
    image = picture if isinstance(picture, Image.Image) else Image.fromarray(picture, "RGB")
    return np.asarray(image.convert("L"), np.int16)


@pytest.mark.usefixtures("mnist_dir")
def test_a_grey_copy_cannot_tell_red_from_green():
    """The same shape, brightness and paper in either class's colour: one grey picture (to a level), and after the
    JPEG only its noise, without a side."""
    shapes, _ = colour_sets.read_source("mnist", "train", 50)
    biases = []
    for i, shape in enumerate(shapes):
        green, red = (colour_sets.colour_only(shape, label, 32, np.random.default_rng(i)) for label in (0, 1))
        assert np.abs(grey(green) - grey(red)).max() <= 1
        difference = grey(jpeg_round_trip(green)) - grey(jpeg_round_trip(red))
        assert np.abs(difference).mean() < 1.0 and abs(difference.mean()) < 0.3, (i, difference.mean())
        biases.append(difference.mean())
        assert (red.astype(np.int16) - green)[..., 0].max() > 60  # ... while in colour the ink differs
    assert abs(np.mean(biases)) < 0.1


def test_the_colour_only_folder_holds_both_colours(colour_only_folder):
    for colour, channel in (("green", 1), ("red", 0)):
        files = sorted((colour_only_folder / colour).iterdir())
        assert len(files) == COLOUR_ONLY_IMAGES // 2
        picture = np.asarray(Image.open(files[0]), np.int16)
        ink = picture[picture.sum(-1) < 400]
        assert (ink.argmax(-1) == channel).mean() > 0.9


def train(root: Path, channels: int, cwd: Path) -> dict:
    result = call_app(
        "data=folder",
        f"data.root={root}",
        "data.preprocess=resize",
        "data.image_size=[32,32]",
        f"data.channels={channels}",
        f"data.cache_dir={cwd}/cache",
        "model.filters=8",
        "model.dense_units=16",
        "trainer.epochs=3",
        "trainer.batch_size=16",
        "trainer.verbose=0",
        f"hydra.run.dir={cwd}/run{channels}",
        cwd=cwd,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads((cwd / f"run{channels}" / "metrics.json").read_text())


def test_colour_alone_tells_the_classes_apart_and_grey_cannot(colour_only_folder, tmp_path):
    colour = train(colour_only_folder, 3, tmp_path)
    grey = train(colour_only_folder, 1, tmp_path)
    assert colour["input_shape"] == [32, 32, 3] and grey["input_shape"] == [32, 32, 1]
    assert colour["test_accuracy"] >= 0.9, colour["test_accuracy"]
    assert 0.35 <= grey["test_accuracy"] <= 0.65, grey["test_accuracy"]  # chance: 0.5 on 120 images
